"""Speeding: the scenario that makes a driver reckless, and the truth of every speeding run.

The ``speeding`` scenario makes its vehicle drive at ``factor`` x the limit of whatever road it
is on for the window, ignoring traffic, lights and parking (see
:meth:`~device_sim.driving.DrivenVehicle.drive_recklessly`). Ordinary drivers speed too,
a little (up to about 1.11 x the limit in free flow at night), so the truth does not come from
the scenario. :class:`SpeedingTruth` states the event on its own, from what the simulator
knows of every vehicle:

    A vehicle speeds while its true speed is more than ``speeding_tolerance_kmh`` above the
    limit of the road it is truly on (the simulator publishes no rules: the segment's own
    limit). A speeding event is a run of consecutive reports the pipeline stores, each of them
    speeding, from the first to the last lasting ``speeding_min_duration_ms`` or more.

Only the two published thresholds (:data:`contracts.rules.thresholds.THRESHOLDS`) are shared
with the detector. A report the pipeline will not store ends a run (analytics never sees it,
so the run it would have continued is two), and so does a report whose position is further
from its road than map matching reaches (a spoofed position names no road, so no limit). A
run exactly ``speeding_tolerance_kmh`` over the limit is no speeding ("more than"); a run
exactly ``speeding_min_duration_ms`` long is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from contracts.map_matching import DEFAULT_RADIUS_M, segment_distance_m
from contracts.rules.thresholds import THRESHOLDS
from device_sim.driving import DrivenVehicle
from device_sim.effects import Effect, Emission
from device_sim.observers import RunObserver, VehicleReport
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["SPEEDING_EFFECTS", "Speeding", "SpeedingRuns", "SpeedingTruth"]

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
    first: tuple[int, int]  # (seq, ts) of its first report
    last: tuple[int, int]
    max_kmh: float
    limit_kmh: int
    messages: int


class SpeedingRuns:
    """The speeding runs of a fleet, one report at a time (see the module docstring)."""

    def __init__(
        self, tolerance_kmh: float = _TOLERANCE_KMH, min_duration_ms: int = _MIN_DURATION_MS
    ) -> None:
        self.tolerance_kmh = tolerance_kmh
        self.min_duration_ms = min_duration_ms
        self._runs: dict[str, _Run] = {}
        self._events: list[WarningTruth] = []

    def report(
        self,
        device: str,
        seq: int,
        ts: int,
        speed_kmh: float | None,
        limit_kmh: int,
        scenario: str | None = None,
    ) -> None:
        """The vehicle's report ``seq`` at ``ts``: its true speed and the limit of its road
        (``speed_kmh`` None: analytics cannot judge this report, which ends a run)."""
        run = self._runs.get(device)
        if speed_kmh is None or speed_kmh <= limit_kmh + self.tolerance_kmh:
            if run is not None:
                self._close(device, self._runs.pop(device))
            return
        if run is None:
            self._runs[device] = _Run(scenario, (seq, ts), (seq, ts), speed_kmh, limit_kmh, 1)
            return
        run.last = (seq, ts)
        run.messages += 1
        if speed_kmh - limit_kmh > run.max_kmh - run.limit_kmh:
            run.max_kmh, run.limit_kmh = speed_kmh, limit_kmh

    def _close(self, device: str, run: _Run) -> None:
        (from_seq, from_ts), (to_seq, to_ts) = run.first, run.last
        if to_ts - from_ts < self.min_duration_ms:
            return
        self._events.append(
            WarningTruth(
                type="speeding",
                device=device,
                scenario=run.scenario or "natural",
                from_ts=from_ts,
                to_ts=to_ts,
                from_seq=from_seq,
                to_seq=to_seq,
                messages=run.messages,
                detail={"max_speed_kmh": round(run.max_kmh, 1), "limit_kmh": run.limit_kmh},
            )
        )

    def events(self) -> list[WarningTruth]:
        """Every run, those still under way included (the run is over)."""
        for device in list(self._runs):
            self._close(device, self._runs.pop(device))
        return sorted(self._events, key=lambda e: (e.from_ts, e.device))


class SpeedingTruth(RunObserver):
    """Every speeding run of every vehicle (see the module docstring)."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(simulation)
        self._links = simulation.network.links
        self._runs = SpeedingRuns()

    def vehicle_report(self, report: VehicleReport) -> None:
        segment = self._links[report.driven.link].segment
        reading = report.reading
        judged = (
            report.stored
            and segment_distance_m(segment, reading.lat_e7, reading.lon_e7) <= DEFAULT_RADIUS_M
        )
        self._runs.report(
            report.device,
            report.seq,
            reading.ts,
            report.driven.speed_mps * 3.6 if judged else None,
            segment.speed_limit_kmh,
            next(iter(report.labels), None),
        )

    def warnings(self) -> list[WarningTruth]:
        return self._runs.events()


SPEEDING_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.SPEEDING: Speeding}
