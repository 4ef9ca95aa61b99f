"""RSU sightings that contradict a vehicle's own report: the ``rsu_displaced`` scenario and the
ground truth of ``rsu_contradiction``.

An RSU sighting names a vehicle and the ``ts`` of the vehicle's latest report. It contradicts
the vehicle when the RSU lies (``rsu_displaced``: a cloned or misconfigured unit reports every
sighting ``distance_m`` away) or the vehicle does (a teleported or drifted vehicle passing an
RSU). :class:`RsuContradictionTruth` states the event on its own, from what the simulator
published:

    A stored RSU sighting contradicts a vehicle when the position it gives is more than
    ``rsu_contradiction_m`` from the position the vehicle itself reported, in its stored
    message of the ``ts`` the sighting names. A pass is the vehicle's contradicting sightings
    by one RSU, each less than :data:`~contracts.rules.thresholds.RSU_PASS_GAP_MS` (10 s,
    by the ``ts`` they name) after the one before; a sighting 10 s or more after it begins a
    new pass. A sighting that agrees with the vehicle in between does not end a pass. One
    event per pass, about the vehicle (``device``), from its first contradicted report to the
    last RSU report of the pass.

Only the published threshold and the pass gap (:mod:`contracts.rules.thresholds`) are shared
with the detector. A sighting of a vehicle whose report was rejected has nothing to compare.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, NamedTuple

from contracts.roads import haversine_m
from contracts.rules.thresholds import RSU_PASS_GAP_MS, THRESHOLDS
from device_sim.effects import Effect, Emission
from device_sim.observers import RunObserver, VehicleReport
from device_sim.observing import Sighting
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["RSU_CONTRADICTION_M", "RSU_EFFECTS", "RsuContradictionTruth", "RsuDisplaced"]

# The published ``rsu_contradiction_m``: a sighting further than this from the vehicle's own
# position contradicts it.
RSU_CONTRADICTION_M: Final = float(THRESHOLDS["rsu_contradiction_m"].default)
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
    last_sighted: int  # the ts named by its latest contradicting sighting
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
    """Every ``rsu_contradiction`` pass of the run (see the module docstring)."""

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
            if distance <= RSU_CONTRADICTION_M:
                continue  # agrees: neither a contradiction nor the end of a pass
            key = (sighting.veh, device)
            current = self._open.get(key)
            if current is None or sighting.ts - current.last_sighted >= RSU_PASS_GAP_MS:
                if current is not None:
                    self._done.append(current)
                current = self._open[key] = _Pass(
                    device, sighting.veh, sighting.ts, t, own.seq, own.seq, distance, sighting.ts
                )
            else:
                current.to_ts, current.to_seq = t, own.seq
                current.last_sighted = sighting.ts
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
