"""``odo_gnss_mismatch``: the odometer counts far less distance than the GNSS track covers.

An odometer blocker ("mileage stopper") makes the odometer count only part of what the vehicle
drives. Per device, in seq order (a buffered burst arrives shuffled: points wait for the gap
before them to fill), the track is cut into legs: from an anchor point to the first later
point at least :data:`LEG_MIN_M` away from it. Summing raw fix-to-fix steps would add up the
GNSS noise (about 4 m per fix, several fixes a second, even while parked); a leg of 30 m or
more outgrows that noise and a parked vehicle never completes one. A leg's GNSS distance is
the straight line between its ends, its odometer distance the reading's increase.

Steps that say nothing about the distance driven are left out, and the leg under way is
dropped with them (the next one starts after the step): a jump of ``teleport_min_distance_m``
or more, a point off the road network (``segment`` None: a spoofed or drifting position), an
odometer that goes down (``odometer_rollback`` reports that), a seq that never arrived.

Over the latest ``odo_gnss_min_distance_m`` of GNSS distance (whole legs, and the part of the
one before that completes it, pro rata), the odometer must have counted at least
``100 - odo_gnss_mismatch_pct`` % of it, or of the distance the reported speeds give if that is
smaller. Where the speeds do not confirm the GNSS distance within the same tolerance, nothing
is judged: a spoofed position the map still matches (a drift that begins on the road, a parked
vehicle's moved position) moves without the vehicle, and its own speed says so (a blocker
that also cuts the reported speed is therefore not seen). Only the low side is judged: a chord
between two fixes is never longer than the road driven between them (it cuts corners and
U-turns), so an odometer counting more than GNSS says nothing. One warning per run of
mismatching spans, its id derived from the first seq of the span that first mismatched.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Generic, NamedTuple, TypeVar

from analytics.warnings.checks import Check
from analytics.warnings.detectors import Point, RulesInForce, RuleSource
from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from contracts.roads import haversine_m

__all__ = [
    "LEG_MIN_M",
    "DistanceSpan",
    "Fix",
    "Legs",
    "OdometerGnssCheck",
    "Span",
    "counted_too_little",
]

# Twice the largest error of a plausible fix: noise alone never completes a leg.
LEG_MIN_M: Final = 30.0
# A seq missing from the stream (rejected, or lost) is waited for this long (arrival time)
# or this many later points, then the points after it are judged without it.
_GAP_WAIT_MS: Final = 60_000
_GAP_WAIT_POINTS: Final = 1_000

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Span(Generic[K]):
    """The latest ``distance_m`` of GNSS distance: the distance the reported speeds give and
    the odometer's increase over it, the point it starts from (within its first leg, which
    counts pro rata) and the one it ends at."""

    distance_m: float
    speed_m: float
    counted_m: float
    first: K
    last: K


class DistanceSpan(Generic[K]):
    """The latest ``min_m`` of distance, as legs (the first one in part).

    Exactly ``min_m`` long, so that where the legs happen to begin does not change the share
    counted. Shared by the detector (GNSS legs) and the simulator's ground truth (legs on the
    true track), so that both call the same stretch of driving a mismatch.
    """

    def __init__(self) -> None:
        self._legs: deque[tuple[float, float, int, K]] = deque()

    def add(
        self, distance_m: float, speed_m: float, counted_m: int, start: K, end: K, min_m: float
    ) -> Span[K] | None:
        """Append a leg; the span it closes, or None while the legs cover less than ``min_m``."""
        legs = self._legs
        legs.append((distance_m, speed_m, counted_m, start))
        # Summed afresh (a few legs): running sums would leave rounding residue, and a speed
        # that adds up to nothing must read 0 (a parked vehicle whose position is moved).
        distance = math.fsum(leg[0] for leg in legs)
        while len(legs) > 1 and distance - legs[0][0] >= min_m:
            distance -= legs.popleft()[0]
        if distance < min_m:
            return None
        rest = list(legs)[1:]
        head, share = legs[0], 1.0 - (distance - min_m) / legs[0][0]
        return Span(
            min_m,
            math.fsum(leg[1] for leg in rest) + share * head[1],
            sum(leg[2] for leg in rest) + share * head[2],
            head[3],
            end,
        )


def counted_too_little(span: Span[K], mismatch_pct: int) -> bool:
    """Whether the odometer counted less than ``100 - mismatch_pct`` % of the span's distance
    by GNSS and by speed (the smaller). Not judged when the reported speeds do not confirm the
    GNSS distance within the same tolerance: then the position moved without the vehicle."""
    share = 100 - mismatch_pct
    if span.speed_m * 100 < share * span.distance_m:
        return False
    return span.counted_m * 100 < share * min(span.distance_m, span.speed_m)


class Fix(NamedTuple):
    """What legs need of a message."""

    ts_ms: int
    lat_e7: int
    lon_e7: int
    odo_m: int
    spd_cms: int


class Legs(Generic[K]):
    """A track cut into legs of at least :data:`LEG_MIN_M` (GNSS), and the span of the latest
    ones; ``K`` names a leg's ends (the detector's points, the simulator's times)."""

    def __init__(self) -> None:
        self.span: DistanceSpan[K] = DistanceSpan()
        self._anchor: tuple[Fix, K] | None = None
        self._prev: Fix | None = None
        self._speed_m = 0.0  # by the reported speeds since the anchor

    def restart(self, fix: Fix | None, key: K) -> None:
        """Drop the leg under way; the next one starts at ``fix`` (None: at the next fix)."""
        self._anchor = None if fix is None else (fix, key)
        self._prev, self._speed_m = fix, 0.0

    def add(self, fix: Fix, key: K, min_m: float) -> Span[K] | None:
        """The next fix of the track; the span when it completes a leg and the legs cover
        ``min_m``."""
        prev, anchor = self._prev, self._anchor
        if prev is None or anchor is None:
            self.restart(fix, key)
            return None
        self._prev = fix
        self._speed_m += (prev.spd_cms + fix.spd_cms) / 200.0 * max(0, fix.ts_ms - prev.ts_ms) / 1e3
        start, start_key = anchor
        distance = haversine_m(start.lat_e7, start.lon_e7, fix.lat_e7, fix.lon_e7)
        if distance < LEG_MIN_M:
            return None
        speed, self._speed_m, self._anchor = self._speed_m, 0.0, (fix, key)
        return self.span.add(distance, speed, fix.odo_m - start.odo_m, start_key, key, min_m)


class _Trail:
    """One device's state: where seq order stands, the leg under way, the span."""

    __slots__ = ("in_mismatch", "legs", "next_seq", "pending", "prev")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, Point] = {}
        self.prev: Point | None = None
        self.legs: Legs[Point] = Legs()
        self.in_mismatch = False

    def ready(self, point: Point) -> list[Point]:
        """Add ``point``; the points now due for judging, in seq order."""
        if self.next_seq is not None and point.seq < self.next_seq:
            return []  # behind the judged stretch (its gap was given up): too late
        self.pending[point.seq] = point
        if self.next_seq is None:
            self.next_seq = point.seq
        elif self.next_seq not in self.pending and self._gap_given_up():
            self.next_seq = min(self.pending)
        due = []
        while self.next_seq in self.pending:
            due.append(self.pending.pop(self.next_seq))
            self.next_seq += 1
        return due

    def _gap_given_up(self) -> bool:
        if len(self.pending) >= _GAP_WAIT_POINTS:
            return True
        arrivals = [p.recv_ms for p in self.pending.values()]
        return max(arrivals) - min(arrivals) >= _GAP_WAIT_MS


class OdometerGnssCheck(Check):
    """``odo_gnss_mismatch`` per device (see the module docstring)."""

    def __init__(self, rules: RuleSource, *, max_devices: int = 200_000) -> None:
        super().__init__(rules)
        self.max_devices = max_devices
        self._trails: dict[str, _Trail] = {}

    def on_point(self, point: Point) -> list[Warning]:
        # Re-inserted on every point: the first in the dict is the device heard from least
        # recently, dropped when there are too many.
        trail = self._trails.pop(point.device_id, None) or _Trail()
        self._trails[point.device_id] = trail
        if len(self._trails) > self.max_devices:
            del self._trails[next(iter(self._trails))]
        found = []
        for due in trail.ready(point):
            warning = self._judge(trail, due)
            if warning is not None:
                found.append(warning)
        return found

    def _judge(self, trail: _Trail, point: Point) -> Warning | None:
        rules = self.rules.in_force(point.ts_ms).at(point.lat_e7, point.lon_e7)
        prev, trail.prev = trail.prev, point
        fix = Fix(point.ts_ms, point.lat_e7, point.lon_e7, point.odo_m, point.spd_cms)
        if prev is None or not _usable_step(prev, point, rules):
            trail.legs.restart(fix if point.segment is not None else None, point)
            return None
        min_m, _ = rules.threshold("odo_gnss_min_distance_m")
        span = trail.legs.add(fix, point, min_m)
        if span is None:
            return None
        pct, label = rules.threshold("odo_gnss_mismatch_pct")
        was, trail.in_mismatch = trail.in_mismatch, counted_too_little(span, pct)
        if was or not trail.in_mismatch:
            return None
        return _warning(span, label, pct)


def _usable_step(prev: Point, point: Point, rules: RulesInForce) -> bool:
    """Whether the step from ``prev`` to ``point`` measures distance driven (see the module
    docstring for the steps left out)."""
    if point.seq != prev.seq + 1:
        return False
    if prev.segment is None or point.segment is None or point.odo_m < prev.odo_m:
        return False
    jump, _ = rules.threshold("teleport_min_distance_m")
    return haversine_m(prev.lat_e7, prev.lon_e7, point.lat_e7, point.lon_e7) < jump


def _warning(span: Span[Point], label: str, pct: int) -> Warning:
    first, last = span.first, span.last
    detail: dict[str, int | str] = {
        "gnss_m": round(span.distance_m),
        "speed_m": round(span.speed_m),
        "odometer_m": round(span.counted_m),
        "counted_pct": round(100 * span.counted_m / max(1.0, min(span.distance_m, span.speed_m))),
        "min_counted_pct": 100 - pct,
    }
    kind = WarningType.ODO_GNSS_MISMATCH
    return Warning(
        warning_id=warning_id(kind, first.device_id, f"from:{first.seq}"),
        type=kind,
        severity=Severity.CRITICAL,
        device_id=first.device_id,
        segment_id=None,
        from_ts_ms=first.ts_ms,
        to_ts_ms=last.ts_ms,
        rule_version=label,
        evidence=(first.evidence, last.evidence),
        detail=detail,
    )
