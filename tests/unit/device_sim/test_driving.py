"""Driving: the odometer is exactly the distance driven, GNSS error stays realistic."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from contracts.roads import haversine_m
from device_sim.driving import GNSS_MAX_ERROR_M, DrivenVehicle, VehicleReading
from device_sim.fleet import build_fleet
from device_sim.network import NetworkSpec, RoadNetwork, generate_network
from device_sim.rand import seeded
from device_sim.routing import Router
from device_sim.traffic import RoadState

from .conftest import START_MS


class RecordingRoads(RoadState[DrivenVehicle]):
    """Remembers every link each vehicle enters, in order."""

    def __init__(self, network: RoadNetwork) -> None:
        super().__init__(network)
        self.entered: dict[str, list[int]] = {}

    def enter(self, link: int, key: str, vehicle: DrivenVehicle) -> None:
        super().enter(link, key, vehicle)
        self.entered.setdefault(key, []).append(link)


@dataclass
class Track:
    """Every report of one vehicle with its true state at that moment."""

    readings: list[VehicleReading] = field(default_factory=list)
    true: list[tuple[float, float]] = field(default_factory=list)
    state: list[tuple[int, float, float, int]] = field(
        default_factory=list
    )  # link, pos, dist, entered


Drive = tuple[RoadNetwork, RecordingRoads, dict[str, DrivenVehicle], dict[str, Track]]


@pytest.fixture(scope="module")
def drive() -> Drive:
    """80 vehicles reporting every second for 15 minutes of rush hour."""
    network = generate_network(NetworkSpec(streets=6))
    roads = RecordingRoads(network)
    router = Router(network)
    fleet = build_fleet(4, 80, 0, network)
    vehicles = {
        v.device_id: DrivenVehicle(
            v, network, router, roads, seeded(4, "drive", v.device_id), START_MS
        )
        for v in fleet.vehicles
    }
    tracks = {device_id: Track() for device_id in vehicles}
    for step in range(1, 901):
        for device_id, vehicle in vehicles.items():
            track = tracks[device_id]
            track.readings.append(vehicle.report(START_MS + step * 1000))
            track.true.append((vehicle.true_lat_e7, vehicle.true_lon_e7))
            entered = len(roads.entered.get(device_id, []))
            track.state.append((vehicle.link, vehicle.pos_m, vehicle.distance_m, entered))
    return network, roads, vehicles, tracks


def test_odometer_is_the_exact_distance_along_the_segments(drive: Drive) -> None:
    network, roads, vehicles, tracks = drive
    for device_id, track in tracks.items():
        log = roads.entered[device_id]
        previous = track.state[0]
        for (link, pos, distance, entered), reading in zip(
            track.state[1:], track.readings[1:], strict=True
        ):
            old_link, old_pos, old_distance, old_entered = previous
            new_links = log[old_entered:entered]
            if not new_links:
                expected = pos - old_pos
                assert link == old_link
            else:
                assert new_links[-1] == link
                expected = network.links[old_link].length_m - old_pos + pos
                expected += sum(network.links[i].length_m for i in new_links[:-1])
            assert distance - old_distance == pytest.approx(expected, abs=1e-6)
            assert reading.odo_m == vehicles[device_id].vehicle.initial_odo_m + int(distance)
            previous = (link, pos, distance, entered)
    driven = [track.state[-1][2] for track in tracks.values()]
    assert sum(d > 1000 for d in driven) > len(driven) / 2  # most vehicles got somewhere


def test_odometer_never_runs_backwards_or_faster_than_the_vehicle(drive: Drive) -> None:
    _, _, vehicles, tracks = drive
    for device_id, track in tracks.items():
        top_mps = vehicles[device_id].vehicle.vehicle_type.max_kmh / 3.6
        for a, b in zip(track.readings, track.readings[1:], strict=False):
            assert 0 <= b.odo_m - a.odo_m <= top_mps * 1.0 + 1


def test_gnss_error_is_a_few_metres_and_bounded(drive: Drive) -> None:
    _, _, _, tracks = drive
    errors = [
        haversine_m(r.lat_e7, r.lon_e7, round(lat), round(lon))
        for track in tracks.values()
        for r, (lat, lon) in zip(track.readings, track.true, strict=True)
    ]
    assert max(errors) <= GNSS_MAX_ERROR_M + 0.05
    rms = math.sqrt(sum(e * e for e in errors) / len(errors))
    assert 3.0 < rms < 5.0
    assert sum(e < 0.5 for e in errors) < len(errors) / 50  # noise is really there


def test_speed_and_heading_follow_the_road(drive: Drive) -> None:
    network, _, vehicles, tracks = drive
    moving = stopped = 0
    for device_id, track in tracks.items():
        vehicle = vehicles[device_id].vehicle
        for reading, (link, _, _, _) in zip(track.readings, track.state, strict=True):
            road = network.links[link]
            top_kmh = min(vehicle.vehicle_type.max_kmh, road.segment.speed_limit_kmh * 1.08 * 1.03)
            assert reading.spd_cms <= top_kmh / 3.6 * 100 + 1
            if reading.spd_cms > 0:
                moving += 1
                off = abs((reading.hdg_cdeg - road.heading_cdeg + 18_000) % 36_000 - 18_000)
                assert off < 1000  # within 10 degrees
            else:
                stopped += 1
    assert moving > stopped > 0  # traffic lights and parking happen, but most report moving


def test_rush_hour_slows_everyone_down() -> None:
    network = generate_network(NetworkSpec(streets=6))
    fleet = build_fleet(9, 30, 0, network)

    def mean_speed(start_ms: int) -> float:
        roads: RoadState[DrivenVehicle] = RoadState(network)
        router = Router(network)
        driven = [
            DrivenVehicle(v, network, router, roads, seeded(9, "drive", v.device_id), start_ms)
            for v in fleet.vehicles
        ]
        speeds = [d.report(start_ms + s * 1000).spd_cms for s in range(1, 301) for d in driven]
        moving = [s for s in speeds if s > 0]
        return sum(moving) / len(moving)

    night = START_MS - 6 * 3_600_000  # 03:00 local
    assert mean_speed(START_MS) < 0.8 * mean_speed(night)
