"""Speeding: the scenario that makes a driver reckless, and the truth of every speeding run.

The ``speeding`` scenario makes its vehicle drive at ``factor`` x the limit of whatever road it
is on for the window, ignoring traffic, lights and parking (see
:meth:`~device_sim.driving.DrivenVehicle.drive_recklessly`). Ordinary drivers speed too,
a little (up to about 1.11 x the limit in free flow at night), so the truth does not come from
the scenario: :class:`SpeedingTruth` watches every vehicle report and records each run of
reports over the limit of the road the vehicle is truly on (no rules are published by the
simulator: each segment's own limit) by more than the tolerance, with consecutive seqs, lasting
at least the minimum duration (analytics' definition: :mod:`analytics.warnings.speeding`). A
report the pipeline will not store, or whose position is off its road (further than map
matching reaches: a spoofed position), ends a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from analytics.warnings.speeding import is_over_limit
from contracts.map_matching import DEFAULT_RADIUS_M, segment_distance_m
from contracts.rules.thresholds import THRESHOLDS
from device_sim.driving import DrivenVehicle
from device_sim.effects import Effect, Emission
from device_sim.observers import RunObserver, VehicleReport
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["SPEEDING_EFFECTS", "Speeding", "SpeedingTruth"]

_TOLERANCE_KMH: Final = THRESHOLDS["speeding_tolerance_kmh"].default
_MIN_DURATION_MS: Final = THRESHOLDS["speeding_min_duration_ms"].default


class Speeding(Effect):
    """During the window the driver goes ``factor`` x the limit, whatever the traffic."""

    def steer(self, driven: DrivenVehicle, t: int) -> None:
        driven.drive_recklessly(self.scenario.param("factor") if self.active(t) else None)

    def before(self, emission: Emission) -> None:
        if self.active(emission.t):
            self.touch(emission)


@dataclass(slots=True)
class _Run:
    scenario: str | None
    first: VehicleReport
    last: VehicleReport
    max_kmh: float
    limit_kmh: int
    messages: int


class SpeedingTruth(RunObserver):
    """Every speeding run of every vehicle (see the module docstring)."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(simulation)
        self._links = simulation.network.links
        self._runs: dict[str, _Run] = {}
        self._events: list[WarningTruth] = []

    def vehicle_report(self, report: VehicleReport) -> None:
        run = self._runs.get(report.device)
        segment = self._links[report.driven.link].segment
        limit = segment.speed_limit_kmh
        over = (
            report.stored
            and is_over_limit(report.reading.spd_cms, limit, _TOLERANCE_KMH)
            and segment_distance_m(segment, report.reading.lat_e7, report.reading.lon_e7)
            <= DEFAULT_RADIUS_M
        )
        if not over:
            if run is not None:
                self._close(self._runs.pop(report.device))
            return
        kmh = report.reading.spd_cms * 0.036
        if run is None:
            scenario = next(iter(report.labels), None)
            self._runs[report.device] = _Run(scenario, report, report, kmh, limit, 1)
            return
        run.last = report
        run.messages += 1
        if kmh - limit > run.max_kmh - run.limit_kmh:
            run.max_kmh, run.limit_kmh = kmh, limit

    def _close(self, run: _Run) -> None:
        if run.last.reading.ts - run.first.reading.ts < _MIN_DURATION_MS:
            return
        self._events.append(
            WarningTruth(
                type="speeding",
                device=run.first.device,
                scenario=run.scenario or "natural",
                from_ts=run.first.reading.ts,
                to_ts=run.last.reading.ts,
                from_seq=run.first.seq,
                to_seq=run.last.seq,
                messages=run.messages,
                detail={"max_speed_kmh": round(run.max_kmh, 1), "limit_kmh": run.limit_kmh},
            )
        )

    def warnings(self) -> list[WarningTruth]:
        for device in list(self._runs):
            self._close(self._runs.pop(device))
        return sorted(self._events, key=lambda e: (e.from_ts, e.device))


SPEEDING_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.SPEEDING: Speeding}
