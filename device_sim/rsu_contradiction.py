"""RSU sightings that contradict a vehicle's own report: the ``rsu_displaced`` scenario and the
ground truth of ``rsu_contradiction``.

An RSU sighting names a vehicle and the ``ts`` of its latest report, so the analytics pair it
with the vehicle's own message of that ``ts`` and compare the two positions. They disagree by
more than :data:`RSU_CONTRADICTION_M` when the RSU lies (``rsu_displaced``: a cloned or
misconfigured unit reports every sighting ``distance_m`` away) or the vehicle does (a
teleported or drifted vehicle passing an RSU). :class:`RsuContradictionTruth` reports both,
computed from the exact signed numbers the detector sees.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

from analytics.warnings.rsu_contradiction import PASS_GAP_MS
from contracts.roads import haversine_m
from device_sim.effects import Effect, Emission
from device_sim.observers import RunObserver, VehicleReport
from device_sim.observing import Sighting
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["RSU_CONTRADICTION_M", "RSU_EFFECTS", "RsuContradictionTruth", "RsuDisplaced"]

# The analytics' default ``rsu_contradiction_m`` (contracts/rules/thresholds.py; a unit test
# keeps the two equal): a sighting further than this from the vehicle's own position.
RSU_CONTRADICTION_M: Final = 500.0
# A pass ends when the same RSU has not contradicted the vehicle for this long.
# Reports kept per vehicle: a sighting names the vehicle's latest report.
_KEPT_REPORTS: Final = 4


class RsuDisplaced(Effect):
    """During the window the RSU reports every sighting ``distance_m`` away, on one bearing
    drawn by the seed. The events are the vehicles' (see :class:`RsuContradictionTruth`)."""

    _offset: tuple[float, float] | None = None

    def before(self, emission: Emission) -> None:
        if emission.sightings is None or not self.active(emission.t):
            return
        self.touch(emission)  # sent while displaced, even when it saw nobody
        if self._offset is None:
            distance = self.scenario.param("distance_m")
            bearing = math.radians(self.rng.uniform(0.0, 360.0))
            self._offset = self.context.frame.shift_e7(
                distance * math.sin(bearing), distance * math.cos(bearing)
            )
        d_lat, d_lon = self._offset
        emission.sightings = [
            s._replace(lat_e7=round(s.lat_e7 + d_lat), lon_e7=round(s.lon_e7 + d_lon))
            for s in emission.sightings
        ]


class _Reported(NamedTuple):
    """A stored vehicle report, as the detector will see it."""

    ts: int
    seq: int
    lat_e7: int
    lon_e7: int
    labels: Sequence[str]


@dataclass(slots=True)
class _Pass:
    """Consecutive contradicting sightings of one vehicle by one RSU."""

    rsu: str
    vehicle: str
    from_ts: int
    to_ts: int
    from_seq: int
    to_seq: int
    max_m: float
    scenarios: dict[str, None] = field(default_factory=dict)
    sightings: int = 1

    def truth(self) -> WarningTruth:
        return WarningTruth(
            type="rsu_contradiction",
            device=self.vehicle,
            scenario="+".join(self.scenarios) or "natural",
            from_ts=self.from_ts,
            to_ts=self.to_ts,
            from_seq=self.from_seq,
            to_seq=self.to_seq,
            messages=self.sightings,
            detail={"rsu": self.rsu, "distance_m": round(self.max_m)},
        )


class RsuContradictionTruth(RunObserver):
    """``rsu_contradiction`` events: a stored RSU sighting more than
    :data:`RSU_CONTRADICTION_M` from the stored vehicle report it names. One event per pass
    (vehicle, RSU, contradicting sightings with gaps under 10 s); ``device`` is the vehicle,
    its span runs from the first contradicted report to the last RSU report."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(simulation)
        self._reports: dict[str, deque[_Reported]] = {}
        self._open: dict[tuple[str, str], _Pass] = {}
        self._done: list[_Pass] = []

    def vehicle_report(self, report: VehicleReport) -> None:
        if not report.stored:
            return  # analytics never sees it, so nothing can contradict it
        # A stored report was signed with its reading's ts (only a skewed clock, which is
        # rejected, signs another), the ts an RSU sighting names.
        kept = self._reports.setdefault(report.device, deque(maxlen=_KEPT_REPORTS))
        reading = report.reading
        kept.append(_Reported(reading.ts, report.seq, reading.lat_e7, reading.lon_e7,
                              tuple(report.labels)))  # fmt: skip

    def rsu_report(
        self, device: str, t: int, seq: int, sightings: Sequence[Sighting], stored: bool
    ) -> None:
        if not stored:
            return
        for sighting in sightings:
            own = next(
                (r for r in self._reports.get(sighting.veh, ()) if r.ts == sighting.ts), None
            )
            if own is None:
                continue  # the vehicle's report was rejected: there is nothing to compare
            distance = haversine_m(sighting.lat_e7, sighting.lon_e7, own.lat_e7, own.lon_e7)
            key = (sighting.veh, device)
            current = self._open.get(key)
            if distance <= RSU_CONTRADICTION_M:
                if current is not None:
                    self._done.append(self._open.pop(key))
                continue
            if current is None or sighting.ts - current.to_ts > PASS_GAP_MS:
                if current is not None:
                    self._done.append(current)
                current = self._open[key] = _Pass(
                    device, sighting.veh, sighting.ts, t, own.seq, own.seq, distance
                )
            else:
                current.to_ts, current.to_seq = t, own.seq
                current.max_m = max(current.max_m, distance)
                current.sightings += 1
            current.scenarios.update(dict.fromkeys(own.labels))
            current.scenarios.update(dict.fromkeys(self._scenarios_of(device, t)))

    def _scenarios_of(self, device: str, t: int) -> list[str]:
        return [
            s.name
            for s in self.simulation.scenarios
            if device in s.devices and s.from_ms <= t < s.to_ms
        ]

    def warnings(self) -> list[WarningTruth]:
        passes = sorted([*self._done, *self._open.values()], key=lambda p: (p.from_ts, p.vehicle))
        return [p.truth() for p in passes]


RSU_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.RSU_DISPLACED: RsuDisplaced}
