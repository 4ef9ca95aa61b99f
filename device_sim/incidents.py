"""Incidents: an accident makes a road crawl; and the truth of every congested segment.

The ``incident`` scenario blocks one arterial link for its window: traffic on it moves at
``speed_pct`` % of its normal speed (:meth:`~device_sim.traffic.RoadState.slow_down`), for
every vehicle that is on it or drives onto it. A jam is only observable with several reporting
vehicles on the link (``congestion_min_vehicles``, 3), which a small fleet never gives by
chance, so the scenario's ``count`` vehicles are caught in it (use ``count`` >= 3):

- the link is an arterial (at least 150 m, entered straight from the same street) drawn by
  the seed and the scenario's name, the same for all its vehicles;
- each vehicle *starts the run* waiting at the end of the link before it (a junction; before
  its first report, so nothing jumps), then sets off onto the incident link, one after the
  other, so that at the window start all of them are on it, spread over its first half, the
  first selected vehicle leading: the accident happens on the road it is on;
- they drive physically all the time (their odometers count exactly the distance driven),
  crawl through the window and go on at normal speed afterwards.

The truth does not come from the scenario. :class:`CongestionTruth` states the event on its
own, from what the simulator knows of every vehicle at each stored report:

    Time is cut into windows of ``congestion_window_ms`` from the epoch (the window of ``ts``
    is ``ts // congestion_window_ms``). A vehicle crawls on a segment at a report when it is
    truly on that segment, truly moving (speed > 0) but slower than ``congestion_speed_pct`` %
    of the segment's limit (the simulator publishes no rules: the segment's own limit), and
    truly at least :data:`~contracts.rules.thresholds.CONGESTION_END_MARGIN_M` (20 m) from
    either end of it. A segment is congested in a window when ``congestion_min_vehicles`` or
    more distinct vehicles crawl on it at some report in that window: one event per (segment,
    window), spanning those reports.

Only the published thresholds and the end margin (:mod:`contracts.rules.thresholds`) are shared
with the detector. A jam that happens without any incident (rush hour, trucks capped below a
motorway's limit) is an event too; a jam that lasts across a window boundary is one event per
window, each needing its own vehicles. A report the pipeline will not store says nothing, and
neither does one whose position is further from its road than map matching reaches (a spoofed
position: analytics cannot place it on the road).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from contracts.map_matching import DEFAULT_RADIUS_M, segment_distance_m
from contracts.roads import RoadClass
from contracts.rules.thresholds import CONGESTION_END_MARGIN_M, THRESHOLDS
from device_sim.assignment import ResolvedScenario
from device_sim.driving import DrivenVehicle
from device_sim.effects import Effect, EffectContext, Emission
from device_sim.network import Link, RoadNetwork
from device_sim.observers import RunObserver, VehicleReport
from device_sim.rand import seeded
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = ["INCIDENT_EFFECTS", "CongestionTruth", "Incident", "crawling", "incident_link"]

_SPEED_PCT: Final = THRESHOLDS["congestion_speed_pct"].default
_MIN_VEHICLES: Final = THRESHOLDS["congestion_min_vehicles"].default
_WINDOW_MS: Final = THRESHOLDS["congestion_window_ms"].default
_MIN_LINK_M: Final = 150.0


def incident_link(network: RoadNetwork, seed: int, name: str) -> tuple[Link, Link]:
    """(the link before, the incident link) of the incident scenario ``name``."""
    candidates = []
    for link in network.links:
        if link.segment.road_class is not RoadClass.ARTERIAL or link.length_m < _MIN_LINK_M:
            continue
        feeders = [
            network.links[i]
            for i in network.in_links[link.from_node]
            if network.links[i].segment.name == link.segment.name
            and network.links[i].from_node != link.to_node
        ]
        if feeders:
            candidates.append((feeders[0], link))
    if not candidates:  # a network without arterials: any link with a way in
        candidates = [
            (network.links[network.in_links[link.from_node][0]], link)
            for link in network.links
            if network.in_links[link.from_node]
        ]
    return seeded(seed, "incident", name).choice(candidates)


class Incident(Effect):
    """Stages its vehicle before the incident link, slows the link for the window."""

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        self._staged = False

    def steer(self, driven: DrivenVehicle, t: int) -> None:
        if self._staged:
            return
        self._staged = True
        network = driven.network
        before, link = incident_link(network, self.context.seed, self.name)
        factor = self.scenario.param("speed_pct") / 100.0
        driven.roads.slow_down(link.index, factor, self.scenario.from_ms, self.scenario.to_ms)
        # The first selected vehicle enters first and leads; all are on the link by the
        # window start, within the first half of it at free-flow speed.
        devices = self.scenario.devices
        half_s = link.length_m / 2 / (link.segment.speed_limit_kmh / 3.6)
        lead_ms = round(1000 * half_s * (len(devices) - devices.index(self.device)) / len(devices))
        wait_s = max(0.0, (self.scenario.from_ms - lead_ms - driven.t_ms) / 1000.0)
        route: list[int] = []
        while not route:
            destination = self.rng.randrange(len(network.nodes))
            route = driven.router.route(link.to_node, destination)
        driven.start_on(before.index, before.length_m, [link.index, *route], wait_s)

    def before(self, emission: Emission) -> None:
        if self.active(emission.t):
            self.touch(emission)


def crawling(speed_mps: float, limit_kmh: int) -> bool:
    """Truly moving, but slower than ``congestion_speed_pct`` % of ``limit_kmh``."""
    return 0.0 < speed_mps * 3.6 < limit_kmh * _SPEED_PCT / 100


@dataclass(slots=True)
class _Window:
    """The slow samples of one segment in one window, per vehicle."""

    samples: dict[str, list[VehicleReport]] = field(default_factory=dict)


class CongestionTruth(RunObserver):
    """Every congested (segment, window) of the run (see the module docstring)."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(simulation)
        self._links = simulation.network.links
        self._incidents = {s.name for s in simulation.scenarios if s.type is ScenarioType.INCIDENT}
        self._windows: dict[tuple[int, int], _Window] = {}

    def vehicle_report(self, report: VehicleReport) -> None:
        reading, driven = report.reading, report.driven
        if not report.stored:
            return
        link = self._links[driven.link]
        if segment_distance_m(link.segment, reading.lat_e7, reading.lon_e7) > DEFAULT_RADIUS_M:
            return
        if not crawling(driven.speed_mps, link.segment.speed_limit_kmh):
            return
        if not CONGESTION_END_MARGIN_M <= driven.pos_m <= link.length_m - CONGESTION_END_MARGIN_M:
            return
        key = (link.segment.segment_id, reading.ts // _WINDOW_MS)
        window = self._windows.setdefault(key, _Window())
        window.samples.setdefault(report.device, []).append(report)

    def warnings(self) -> list[WarningTruth]:
        events = []
        for (segment_id, index), window in sorted(self._windows.items()):
            if len(window.samples) < _MIN_VEHICLES:
                continue
            reports = [r for samples in window.samples.values() for r in samples]
            names = sorted({n for r in reports for n in r.labels if n in self._incidents})
            limit = self._links[segment_id - 1].segment.speed_limit_kmh
            events.append(
                WarningTruth(
                    type="congestion",
                    device=f"segment:{segment_id}",
                    scenario="+".join(names) or "natural",
                    from_ts=min(r.reading.ts for r in reports),
                    to_ts=max(r.reading.ts for r in reports),
                    from_seq=None,
                    to_seq=None,
                    messages=len(reports),
                    detail={
                        "vehicles": len(window.samples),
                        "median_speed_kmh": round(
                            statistics.median(r.reading.spd_cms for r in reports) * 0.036
                        ),
                        "limit_kmh": limit,
                        "window_from_ms": index * _WINDOW_MS,
                    },
                )
            )
        return sorted(events, key=lambda e: (e.from_ts, e.device))


INCIDENT_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.INCIDENT: Incident}
