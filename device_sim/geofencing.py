"""Geofences in the simulated city: the authority's no-entry zone, the breach scenario, truth.

With the fleet the simulator publishes one signed rules version of the traffic authority,
``city-traffic-authority/sim-zones``: a ``no_entry`` zone for heavy goods vehicles (UNECE class
N3, every day and hour) covering the 3 x 3 blocks around the intersection nearest the centre,
its edges mid-block so that no street runs along one. Analytics picks it up from the ledger
like any published rules (see :mod:`analytics.warnings.geofencing`).

Trucks route through the centre like everyone else, so breaches happen without any scenario:
:class:`GeofenceTruth` records every run of a restricted vehicle's stored reports, consecutive
by seq, whose reported position lies inside the zone (the position analytics judges), fewer
than ``geofence_exit_points`` reports in a row outside not ending it (GNSS noise at the
edge). The
``geofence_breach`` scenario (its vehicle is drawn among the trucks) makes a breach certain:
the truck starts the run on a road into the zone about 60 m from its edge and drives to the
zone's centre, whatever the scenario's window.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from chain.keys import Ed25519PrivateKey
from contracts.rules.model import Geofence, RuleVersion
from contracts.rules.parse import to_json
from contracts.rules.signing import sign_rules
from contracts.rules.thresholds import THRESHOLDS
from device_sim.assignment import ResolvedScenario
from device_sim.driving import DrivenVehicle
from device_sim.effects import Effect, EffectContext, Emission
from device_sim.fleet import AUTHORITY, VehicleType
from device_sim.network import RoadNetwork
from device_sim.observers import RunObserver, VehicleReport
from device_sim.scenarios import ScenarioType
from device_sim.truth import WarningTruth

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

__all__ = [
    "GEOFENCE_EFFECTS",
    "RESTRICTED_CLASSES",
    "RULES_KEY_ID",
    "RULE_SET",
    "GeofenceBreach",
    "GeofenceTruth",
    "city_rules",
    "city_zone",
    "rules_key",
    "signed_city_rules",
]

RULE_SET: Final = "sim-zones"
RULES_KEY_ID: Final = "sim-rules-1"
ZONE_ID: Final = "centre-no-trucks"
RESTRICTED_CLASSES: Final = frozenset({VehicleType.TRUCK.unece_class})
_ZONE_HALF_BLOCKS: Final = 1.5
_START_BEFORE_EDGE_M: Final = 60.0
_EXIT_POINTS: Final = THRESHOLDS["geofence_exit_points"].default


def rules_key() -> Ed25519PrivateKey:
    """The authority's rule-signing key in simulations (fixed: every run publishes with it)."""
    material = f"roadledger-sim/rules-key/{AUTHORITY.org_id}/{RULES_KEY_ID}".encode()
    return Ed25519PrivateKey.from_bytes(hashlib.sha256(material).digest())


def _centre_node(network: RoadNetwork) -> int:
    frame = network.frame
    return min(
        network.nodes,
        key=lambda n: sum(c * c for c in frame.to_local(n.lat_e7, n.lon_e7)),
    ).node_id


def city_zone(network: RoadNetwork) -> Geofence:
    """The no-entry zone of ``network`` (see the module docstring)."""
    frame = network.frame
    centre = network.nodes[_centre_node(network)]
    x0, y0 = frame.to_local(centre.lat_e7, centre.lon_e7)
    half = _ZONE_HALF_BLOCKS * network.spec.block_m
    corners = ((-half, -half), (half, -half), (half, half), (-half, half))
    polygon = tuple(frame.to_e7(x0 + dx, y0 + dy) for dx, dy in corners)
    return Geofence(ZONE_ID, "no_entry", polygon, vehicle_classes=RESTRICTED_CLASSES)


def city_rules(network: RoadNetwork, version: int = 1) -> RuleVersion:
    """The rules version the simulator publishes (in force from the epoch on)."""
    return RuleVersion(AUTHORITY.org_id, RULE_SET, version, 0, geofences=(city_zone(network),))


def signed_city_rules(rules: RuleVersion) -> bytes:
    """``rules`` as a signed rules document (the authority's simulation key)."""
    return sign_rules(rules_key(), RULES_KEY_ID, to_json(rules))


class GeofenceBreach(Effect):
    """The truck starts on a road into the zone and drives to the zone's centre."""

    def __init__(self, scenario: ResolvedScenario, device: str, context: EffectContext) -> None:
        super().__init__(scenario, device, context)
        assert context.network is not None
        self._zone = city_zone(context.network)
        self._placed = False

    def steer(self, driven: DrivenVehicle, t: int) -> None:
        if self._placed or driven.last_report_ms is not None:
            return  # placed before its first report only: it never jumps
        self._placed = True
        network, zone = driven.network, self._zone
        entries = [
            link
            for link in network.links
            if not _inside(zone, network, link.from_node)
            and _inside(zone, network, link.to_node)
            and link.length_m > _START_BEFORE_EDGE_M
        ]
        link = entries[self.rng.randrange(len(entries))]
        edge_m = link.length_m / 2  # edges are mid-block
        centre = _centre_node(network)
        route = driven.router.route(link.to_node, centre) if link.to_node != centre else []
        driven.start_on(link.index, max(0.0, edge_m - _START_BEFORE_EDGE_M), route)
        self.detail = {"zone": zone.id, "entry_segment_id": link.segment.segment_id}

    def before(self, emission: Emission) -> None:
        reading = emission.reading
        if reading is not None and self._zone.contains(reading.lat_e7, reading.lon_e7):
            self.touch(emission)


def _inside(zone: Geofence, network: RoadNetwork, node_id: int) -> bool:
    node = network.nodes[node_id]
    return zone.contains(node.lat_e7, node.lon_e7)


@dataclass(slots=True)
class _Stay:
    scenario: str | None
    first: VehicleReport
    last: VehicleReport  # the last report inside
    messages: int
    outside: int = 0  # reports outside since ``last``


class GeofenceTruth(RunObserver):
    """Every stay of a restricted vehicle in the zone (see the module docstring)."""

    def __init__(self, simulation: Simulation) -> None:
        super().__init__(simulation)
        self._zone = city_zone(simulation.network)
        self._restricted = {
            v.device_id
            for v in simulation.fleet.vehicles
            if v.registered and v.vehicle_type.unece_class in RESTRICTED_CLASSES
        }
        self._stays: dict[str, _Stay] = {}
        self._events: list[WarningTruth] = []

    def vehicle_report(self, report: VehicleReport) -> None:
        if report.device not in self._restricted:
            return
        stay = self._stays.get(report.device)
        if not report.stored:  # analytics never sees it: a missing seq ends the stay
            if stay is not None:
                self._close(self._stays.pop(report.device))
        elif not self._zone.contains(report.reading.lat_e7, report.reading.lon_e7):
            if stay is not None:
                stay.outside += 1
                if stay.outside >= _EXIT_POINTS:
                    self._close(self._stays.pop(report.device))
        elif stay is None:
            scenario = next(iter(report.labels), None)
            self._stays[report.device] = _Stay(scenario, report, report, 1)
        else:
            stay.last, stay.messages, stay.outside = report, stay.messages + 1, 0

    def _close(self, stay: _Stay) -> None:
        self._events.append(
            WarningTruth(
                type="geofence",
                device=stay.first.device,
                scenario=stay.scenario or "natural",
                from_ts=stay.first.reading.ts,
                to_ts=stay.last.reading.ts,
                from_seq=stay.first.seq,
                to_seq=stay.last.seq,
                messages=stay.messages,
                detail={"zone": self._zone.id},
            )
        )

    def warnings(self) -> list[WarningTruth]:
        for device in list(self._stays):
            self._close(self._stays.pop(device))
        return sorted(self._events, key=lambda e: (e.from_ts, e.device))


GEOFENCE_EFFECTS: dict[ScenarioType, type[Effect]] = {ScenarioType.GEOFENCE_BREACH: GeofenceBreach}
