"""``rsu_contradiction``: an RSU saw a vehicle far from where the vehicle says it was.

An RSU sighting names a vehicle and the ``ts`` of the vehicle's latest report, so it pairs
with exactly one vehicle point: same device, same ``ts``. Whichever of the two arrives first
waits for the other, for ``rsu_match_window_ms`` of arrival time (a vehicle that was offline
delivers its points late; an RSU report may be late too). A pair further apart than
``rsu_contradiction_m`` is one warning about the vehicle (its reported position is the one
contradicted; the RSU may be the liar, which the evidence lets a person judge), with the RSU
record and the vehicle record as evidence. One warning per pass: contradicting sightings of
one vehicle by one RSU less than :data:`~contracts.rules.thresholds.RSU_PASS_GAP_MS` (10 s)
apart (a vehicle waiting at the light is sighted at every report) are one event, warned at its
first sighting to arrive; one 10 s or more after the pass's latest begins a new pass. The id is
keyed by that RSU report, so reprocessing the same records yields the same ids.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

from analytics.warnings.checks import Check, RsuReport, Sighting
from analytics.warnings.detectors import Point, RuleSource
from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from contracts.roads import haversine_m
from contracts.rules.thresholds import RSU_PASS_GAP_MS

__all__ = ["RsuContradictionCheck"]

_MAX_PASSES: Final = 200_000

_Key = tuple[str, int]  # (vehicle, ts of its report)
_Waiting = tuple[RsuReport, Sighting]


class RsuContradictionCheck(Check):
    """Pairs RSU sightings with vehicle points by (vehicle, ts); see the module docstring.

    Memory is bounded by the match window (points and sightings older than two windows, in
    arrival time, are dropped) and by ``max_points`` / ``max_waiting`` (the oldest go first).
    """

    def __init__(
        self, rules: RuleSource, *, max_points: int = 500_000, max_waiting: int = 100_000
    ) -> None:
        super().__init__(rules)
        self.max_points = max_points
        self.max_waiting = max_waiting
        self._points: OrderedDict[_Key, Point] = OrderedDict()  # in arrival order
        # Sightings whose point has not arrived, by (RSU, RSU seq): a re-delivered RSU
        # report waits once.
        self._waiting: dict[_Key, dict[_Key, _Waiting]] = {}
        self._arrivals: deque[tuple[int, _Key]] = deque()  # (recv_ms, key) of waiting ones
        self._waiting_count = 0
        self._clock_ms = 0  # the latest arrival seen
        # (vehicle, RSU) -> ts of the latest contradicting sighting (the current pass)
        self._passes: OrderedDict[tuple[str, str], int] = OrderedDict()

    def on_point(self, point: Point) -> list[Warning]:
        self._clock_ms = max(self._clock_ms, point.recv_ms)
        key = (point.device_id, point.ts_ms)
        self._points[key] = point
        self._points.move_to_end(key)
        if len(self._points) > self.max_points:
            self._points.popitem(last=False)
        waiting = self._waiting.pop(key, None)
        if waiting is None:
            return []
        self._waiting_count -= len(waiting)
        found = (self._judge(report, sighting, point) for report, sighting in waiting.values())
        return [w for w in found if w is not None]

    def on_rsu(self, report: RsuReport) -> list[Warning]:
        self._clock_ms = max(self._clock_ms, report.recv_ms)
        found = []
        for sighting in report.sightings:
            key = (sighting.veh, sighting.ts_ms)
            point = self._points.get(key)
            if point is not None:
                if (warning := self._judge(report, sighting, point)) is not None:
                    found.append(warning)
                continue
            waiting = self._waiting.setdefault(key, {})
            if (report.device_id, report.seq) not in waiting:
                waiting[(report.device_id, report.seq)] = (report, sighting)
                self._arrivals.append((report.recv_ms, key))
                self._waiting_count += 1
        return found

    def on_batch_end(self) -> list[Warning]:
        window, _ = self.rules.in_force(self._clock_ms).threshold("rsu_match_window_ms")
        # Kept for two windows: the consumer may read one partition up to a window ahead of
        # another, and the clock is the newest arrival of any of them.
        horizon = self._clock_ms - 2 * window
        while self._points:
            key, oldest = next(iter(self._points.items()))
            if oldest.recv_ms >= horizon:
                break
            del self._points[key]
        while self._arrivals and (
            self._arrivals[0][0] < horizon or self._waiting_count > self.max_waiting
        ):
            _, key = self._arrivals.popleft()
            self._drop_waiting(key, horizon)
        return []

    def _drop_waiting(self, key: _Key, horizon: int) -> None:
        """Forget the sightings of ``key`` that arrived before ``horizon`` (all of them when
        over ``max_waiting``)."""
        waiting = self._waiting.get(key)
        if waiting is None:
            return
        over = self._waiting_count > self.max_waiting
        for rsu_key, (report, _) in list(waiting.items()):
            if over or report.recv_ms < horizon:
                del waiting[rsu_key]
                self._waiting_count -= 1
        if not waiting:
            del self._waiting[key]

    def _judge(self, report: RsuReport, sighting: Sighting, point: Point) -> Warning | None:
        """The warning for a sighting and the vehicle's own point, if they contradict."""
        rules = self.rules.in_force(sighting.ts_ms).at(sighting.lat_e7, sighting.lon_e7)
        window, _ = rules.threshold("rsu_match_window_ms")
        if abs(report.recv_ms - point.recv_ms) > window:
            return None  # too far apart in arrival: judged only when both were in memory
        limit, label = rules.threshold("rsu_contradiction_m")
        distance = haversine_m(sighting.lat_e7, sighting.lon_e7, point.lat_e7, point.lon_e7)
        if distance <= limit:
            return None
        pair = (point.device_id, report.device_id)
        last = self._passes.pop(pair, None)
        self._passes[pair] = sighting.ts_ms if last is None else max(last, sighting.ts_ms)
        if len(self._passes) > _MAX_PASSES:
            self._passes.popitem(last=False)
        if last is not None and abs(sighting.ts_ms - last) < RSU_PASS_GAP_MS:
            return None  # the same pass, already warned
        return Warning(
            warning_id(
                WarningType.RSU_CONTRADICTION, point.device_id, f"{report.device_id}:{report.seq}"
            ),
            WarningType.RSU_CONTRADICTION,
            Severity.CRITICAL,
            point.device_id,
            None,
            min(sighting.ts_ms, report.ts_ms),
            max(sighting.ts_ms, report.ts_ms),
            label,
            (report.evidence, point.evidence),
            {"rsu": report.device_id, "rsu_seq": report.seq, "distance_m": round(distance)},
        )
