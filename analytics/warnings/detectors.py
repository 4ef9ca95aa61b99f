"""The detectors: pure functions of the records seen so far and the rules in force.

Per device, the verified telemetry is kept as a short track ordered by ``seq`` (devices buffer
while offline, so records arrive out of order). A new point is compared with its direct
neighbours (seq - 1 and seq + 1) once they are there, never with whatever arrived last; a pair
across a seq that never arrives (e.g. a tampered message) is not compared:

- ``odometer_rollback``: the odometer goes down by more than ``rollback_tolerance_m`` from one
  point to the next (a re-flashed odometer drops once; later points are consistent again, so
  the event is reported once, at the step).
- ``teleport``: the distance between consecutive points needs more than
  ``teleport_max_speed_kmh`` and is at least ``teleport_min_distance_m`` (GNSS noise over a
  short interval is not a jump). A spoofed excursion is reported at both of its edges.
- ``drift_off_road``: ``drift_min_messages`` points in a row, each further than
  ``drift_off_road_m`` from every road segment, where the run did not begin with a jump (a
  teleport lands off the road too); reported once per run. Needs the road network.
- ``silent_device``: a point reached us ``silent_after_ms`` or more after the device stamped it:
  the device was cut off and delivered its buffer late.

From the quarantine, per rejected record (reason -> warning):

- ``bad_signature`` -> ``forged_signature`` when the device's genuine message for that seq was
  accepted (an injected copy signed by another key), else ``tampered_payload`` (bytes altered
  in transit: the genuine message never arrived);
- ``duplicate`` -> ``replay`` when its seq is ``replay_min_seq_lag`` or more behind the newest
  seq the device had delivered before it (a plain re-delivery arrives right after its
  original and is not warned);
- ``conflict``: one warning per conflicting record;
- ``unknown_device``, ``revoked_key`` (-> ``revoked_key_use``), ``clock_skew``: standing
  conditions that reject every message, so one warning per device and 10-minute window
  (from the first such record to the window's end; that record is the evidence).

From a verified record the verifier flagged (its ``chain_broken`` header, see
``ingest/chain_links.py``): ``chain_broken``, one per broken link of a device's hash chain
(a re-flashed device, a message slipped in between), the flagged record as evidence.

Every threshold comes from the rules in force at the record's own time and place (an
authority's rules apply only in its jurisdiction, ``contracts/rules/jurisdiction.py``), and
the warning cites the label of the rules version that set it. A quarantined record has no
trusted position: it is judged by the rules that apply everywhere (the built-in defaults).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from analytics.warnings.model import Evidence, Severity, Warning, WarningType, warning_id
from contracts.roads import RoadSegment, haversine_m
from contracts.rules.geometry import Vertex
from contracts.rules.thresholds import THRESHOLDS

__all__ = [
    "DEFAULT_THRESHOLDS",
    "GeofenceInForce",
    "Point",
    "QuarantinedRecord",
    "RuleSource",
    "RulesInForce",
    "TelemetryDetector",
    "chain_broken_warning",
    "quarantine_warning",
]

# The built-in value of every threshold (contracts/rules/thresholds.py owns them).
DEFAULT_THRESHOLDS: Final[dict[str, int]] = {name: t.default for name, t in THRESHOLDS.items()}


class GeofenceInForce(Protocol):
    """An area rule in force (see :class:`contracts.rules.model.Geofence`)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def max_speed_kmh(self) -> int | None: ...
    @property
    def polygon(self) -> tuple[Vertex, ...]: ...

    def contains(self, lat_e7: int, lon_e7: int) -> bool: ...


class RulesInForce(Protocol):
    @property
    def label(self) -> str:
        """The rules version in force (merged versions: the newest one's label)."""
        ...

    def threshold(self, name: str) -> tuple[int, str]:
        """The value of threshold ``name`` and the label of the rules version that set it."""
        ...

    def speed_limit_kmh(self, segment: RoadSegment, vehicle_class: str | None) -> tuple[int, str]:
        """The speed limit for ``vehicle_class`` on ``segment`` and the label that set it."""
        ...

    def geofences(self, ts_ms: int, vehicle_class: str | None) -> Sequence[GeofenceInForce]:
        """The geofences that apply to ``vehicle_class`` at ``ts_ms``."""
        ...

    def at(self, lat_e7: int, lon_e7: int) -> RulesInForce:
        """The rules at this position (each authority's apply only in its jurisdiction)."""
        ...


class RuleSource(Protocol):
    def in_force(self, ts_ms: int) -> RulesInForce: ...


@dataclass(frozen=True, slots=True)
class Point:
    """One verified vehicle message, as much of it as the detectors need.

    ``segment``: the road segment it was matched to (None: off the network, or no network);
    ``vehicle_class``: the registry's class of the vehicle (None: unknown).
    """

    device_id: str
    seq: int
    ts_ms: int
    recv_ms: int
    odo_m: int
    lat_e7: int
    lon_e7: int
    leaf_hash: bytes
    src: str | None
    spd_cms: int = 0
    hdg_cdeg: int = 0
    segment: RoadSegment | None = None
    vehicle_class: str | None = None

    @property
    def evidence(self) -> Evidence:
        return Evidence(self.device_id, self.seq, self.leaf_hash, self.src)


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One record of ``telemetry.quarantine``; seq/ts are None when it did not parse."""

    device_id: str
    reason: str
    seq: int | None
    ts_ms: int | None
    recv_ms: int
    message_sha256: bytes
    src: str | None


class _Track:
    """The latest points of one device, ordered by seq (bounded)."""

    __slots__ = ("off_by_jump", "off_road", "points", "seqs")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.points: dict[int, Point] = {}
        self.off_road: list[Point] = []  # the current run of points away from every road
        self.off_by_jump = False  # that run began with a jump (a teleport, not a drift)

    def add(self, point: Point, limit: int) -> tuple[Point | None, Point | None] | None:
        """Insert ``point``; its (predecessor, successor), or None if the seq was known."""
        if point.seq in self.points:
            return None
        index = bisect.bisect_left(self.seqs, point.seq)
        before = self.points[self.seqs[index - 1]] if index > 0 else None
        after = self.points[self.seqs[index]] if index < len(self.seqs) else None
        self.seqs.insert(index, point.seq)
        self.points[point.seq] = point
        if len(self.seqs) > limit:
            del self.points[self.seqs.pop(0)]
        return before, after


class TelemetryDetector:
    """Per-device tracks and the checks of the module docstring. Not thread-safe."""

    def __init__(
        self,
        rules: RuleSource,
        *,
        off_road: Callable[[int, int], bool] | None = None,
        points_per_device: int = 16,
        max_devices: int = 200_000,
    ) -> None:
        self.rules = rules
        self.off_road = off_road
        self.points_per_device = points_per_device
        self.max_devices = max_devices
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

    def knows(self, device_id: str, seq: int) -> bool:
        """Whether the point (device, seq) is among those in memory."""
        track = self._tracks.get(device_id)
        return track is not None and seq in track.points

    def newest_seq(self, device_id: str, received_by_ms: int) -> int | None:
        """The highest seq of ``device_id`` among the points in memory that the bridge had
        received by ``received_by_ms`` (None: none)."""
        track = self._tracks.get(device_id)
        if track is None:
            return None
        seqs = [p.seq for p in track.points.values() if p.recv_ms <= received_by_ms]
        return max(seqs) if seqs else None

    def observe(self, point: Point) -> list[Warning]:
        """Add a verified point; the warnings it reveals (none for a point seen before)."""
        track = self._tracks.get(point.device_id)
        if track is None:
            track = self._tracks[point.device_id] = _Track()
            if len(self._tracks) > self.max_devices:
                self._tracks.popitem(last=False)  # the device heard from least recently
        else:
            self._tracks.move_to_end(point.device_id)
        neighbours = track.add(point, self.points_per_device)
        if neighbours is None:
            return []
        before, after = neighbours
        rules = self.rules.in_force(point.ts_ms).at(point.lat_e7, point.lon_e7)
        found = [w for w in (_silent(point, rules), self._drift(track, point, before)) if w]
        for a, b in ((before, point), (point, after)):
            # Only direct neighbours: while a buffer arrives shuffled, seq 3 and 7 meet before
            # 4-6 arrive, and comparing them would judge a pair that is not one.
            if a is not None and b is not None and b.seq == a.seq + 1:
                found.extend(
                    _pair_checks(a, b, self.rules.in_force(b.ts_ms).at(b.lat_e7, b.lon_e7))
                )
        return found

    def _drift(self, track: _Track, point: Point, before: Point | None) -> Warning | None:
        """``drift_off_road``: ``drift_min_messages`` points in a row further than
        ``drift_off_road_m`` from every road, the run not begun by a jump (judged in arrival
        order, which is seq order but for buffered bursts)."""
        if self.off_road is None:
            return None
        if not self.off_road(point.lat_e7, point.lon_e7):
            track.off_road.clear()
            return None
        rules = self.rules.in_force(point.ts_ms).at(point.lat_e7, point.lon_e7)
        if not track.off_road:
            jump, _ = rules.threshold("teleport_min_distance_m")
            track.off_by_jump = before is not None and jump <= haversine_m(
                before.lat_e7, before.lon_e7, point.lat_e7, point.lon_e7
            )
        track.off_road.append(point)
        needed, label = rules.threshold("drift_min_messages")
        if len(track.off_road) != needed or track.off_by_jump:
            return None
        first = track.off_road[0]
        return Warning(
            warning_id(WarningType.DRIFT_OFF_ROAD, point.device_id, f"from:{first.seq}"),
            WarningType.DRIFT_OFF_ROAD,
            Severity.WARNING,
            point.device_id,
            None,
            first.ts_ms,
            point.ts_ms,
            label,
            tuple(p.evidence for p in track.off_road),
            {"off_road_m": rules.threshold("drift_off_road_m")[0], "points": needed},
        )


def _pair_warning(
    kind: WarningType, a: Point, b: Point, label: str, detail: dict[str, int | str]
) -> Warning:
    """A critical warning about the step from ``a`` to ``b`` (consecutive seqs)."""
    return Warning(
        warning_id(kind, a.device_id, f"{a.seq}->{b.seq}"),
        kind,
        Severity.CRITICAL,
        a.device_id,
        None,
        a.ts_ms,
        b.ts_ms,
        label,
        (a.evidence, b.evidence),
        detail,
    )


def _pair_checks(a: Point, b: Point, rules: RulesInForce) -> list[Warning]:
    found = []
    tolerance, label = rules.threshold("rollback_tolerance_m")
    if b.odo_m < a.odo_m - tolerance:
        detail: dict[str, int | str] = {
            "from_odo_m": a.odo_m, "to_odo_m": b.odo_m, "drop_m": a.odo_m - b.odo_m,
        }  # fmt: skip
        found.append(_pair_warning(WarningType.ODOMETER_ROLLBACK, a, b, label, detail))
    distance = haversine_m(a.lat_e7, a.lon_e7, b.lat_e7, b.lon_e7)
    min_distance, _ = rules.threshold("teleport_min_distance_m")
    if distance >= min_distance:
        max_kmh, label = rules.threshold("teleport_max_speed_kmh")
        kmh = distance / (max(b.ts_ms - a.ts_ms, 1) / 1000) * 3.6
        if kmh > max_kmh:
            detail = {"distance_m": round(distance), "implied_speed_kmh": round(kmh)}
            found.append(_pair_warning(WarningType.TELEPORT, a, b, label, detail))
    return found


def _silent(point: Point, rules: RulesInForce) -> Warning | None:
    after_ms, label = rules.threshold("silent_after_ms")
    delay = point.recv_ms - point.ts_ms
    if delay < after_ms:
        return None
    # One event per device and minute of arrival: a buffer flushed at once is one warning.
    key = f"arrived:{point.recv_ms // 60_000}"
    return Warning(
        warning_id(WarningType.SILENT_DEVICE, point.device_id, key),
        WarningType.SILENT_DEVICE,
        Severity.INFO,
        point.device_id,
        None,
        point.ts_ms,
        point.recv_ms,
        label,
        (point.evidence,),
        {"delay_ms": delay},
    )


_DIRECT: Final = {
    "conflict": (WarningType.CONFLICT, Severity.CRITICAL),
    "unknown_device": (WarningType.UNKNOWN_DEVICE, Severity.WARNING),
    "revoked_key": (WarningType.REVOKED_KEY_USE, Severity.CRITICAL),
    "clock_skew": (WarningType.CLOCK_SKEW, Severity.WARNING),
}


_ONE_PER_WINDOW: Final = frozenset({"unknown_device", "revoked_key", "clock_skew"})
_WINDOW_MS: Final = 600_000


def quarantine_warning(
    record: QuarantinedRecord,
    rules: RuleSource,
    *,
    seq_accepted: Callable[[str, int], bool],
    newest_seq: Callable[[str, int], int | None],
) -> Warning | None:
    """The warning a quarantined record earns, if any (see the module docstring).

    ``seq_accepted(device, seq)``: whether a message for that (device, seq) was accepted (the
    verifier's ``device_messages``); ``newest_seq(device, recv_ms)``: the newest seq of it
    received by then (not merely processed by then: the two topics are read side by side).
    """
    # A clock-skewed device's own time is the one thing not to trust, and a replay happens
    # when the old message arrives again: both are placed at arrival.
    trusted_ts = record.ts_ms is not None and record.reason not in ("clock_skew", "duplicate")
    when = record.ts_ms if trusted_ts and record.ts_ms is not None else record.recv_ms
    in_force = rules.in_force(when)
    label = in_force.label
    kind: WarningType
    severity = Severity.CRITICAL
    detail: dict[str, int | str] = {"reason": record.reason}
    if record.reason in _DIRECT:
        kind, severity = _DIRECT[record.reason]
        if record.reason == "clock_skew" and record.ts_ms is not None:
            detail["skew_ms"] = record.ts_ms - record.recv_ms
    elif record.reason == "bad_signature":
        if record.seq is None:
            return None
        genuine = seq_accepted(record.device_id, record.seq)
        kind = WarningType.FORGED_SIGNATURE if genuine else WarningType.TAMPERED_PAYLOAD
    elif record.reason == "duplicate":
        newest = newest_seq(record.device_id, record.recv_ms)
        lag, label = in_force.threshold("replay_min_seq_lag")
        if record.seq is None or newest is None or newest - record.seq < lag:
            return None
        kind, severity = WarningType.REPLAY, Severity.WARNING
        detail["seq_lag"] = newest - record.seq
    else:
        return None
    key = f"{record.seq}:{record.message_sha256.hex()}"
    if record.reason in _ONE_PER_WINDOW:
        # A standing condition (an unregistered device, a revoked key, a wrong clock) rejects
        # every message: one warning per device and window, with the window's first record
        # as evidence (the others are in the quarantine with the same reason).
        window = when // _WINDOW_MS
        key = f"window:{window}"
        until = (window + 1) * _WINDOW_MS - 1
        detail["window_ms"] = _WINDOW_MS
    else:
        until = when
    return Warning(
        warning_id(kind, record.device_id, key),
        kind,
        severity,
        record.device_id,
        None,
        when,
        until,
        label,
        (Evidence(record.device_id, record.seq, None, record.src),),
        detail,
    )


def chain_broken_warning(
    evidence: Evidence, ts_ms: int, from_seq: int, detail: str, rules: RuleSource
) -> Warning:
    """The ``chain_broken`` warning of the link ``from_seq`` -> ``from_seq + 1`` that the
    verifier flagged on a verified record (``evidence``, stamped ``ts_ms``).

    One warning per link (its id names the link), whichever end of it was flagged.
    """
    return Warning(
        warning_id(WarningType.CHAIN_BROKEN, evidence.device_id, f"link:{from_seq}"),
        WarningType.CHAIN_BROKEN,
        Severity.CRITICAL,
        evidence.device_id,
        None,
        ts_ms,
        ts_ms,
        rules.in_force(ts_ms).label,
        (evidence,),
        {"from_seq": from_seq, "to_seq": from_seq + 1, "detail": detail},
    )
