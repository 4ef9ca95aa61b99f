"""Speeds: rush hours slow traffic, and so do other vehicles on the same link."""

from __future__ import annotations

import pytest

from device_sim.network import generate_network
from device_sim.traffic import RoadState, congestion_factor, expected_stop_s, time_of_day_factor

HOUR_MS = 3_600_000
MIDNIGHT_UTC = 1_767_225_600_000


def local(hour: float) -> int:
    return MIDNIGHT_UTC + round((hour - 1.0) * HOUR_MS)  # the city is UTC+1


def test_rush_hours_are_slower_than_the_night() -> None:
    night = time_of_day_factor(local(3), 1.0)
    assert night == pytest.approx(1.0)
    assert time_of_day_factor(local(8), 1.0) < 0.7
    assert time_of_day_factor(local(17.5), 1.0) < 0.7
    assert 0.7 < time_of_day_factor(local(12), 1.0) < 1.0
    assert time_of_day_factor(local(7.5), 1.0) == pytest.approx(0.6)


def test_more_vehicles_on_a_link_is_slower_down_to_a_floor() -> None:
    link = generate_network().links[0]
    factors = [congestion_factor(n, link) for n in (0, 5, 10, 20, 1000)]
    assert factors[0] == 1.0
    assert factors == sorted(factors, reverse=True)
    assert factors[-1] == 0.1


def test_speed_combines_limit_driver_cap_time_and_congestion() -> None:
    network = generate_network()
    roads: RoadState[str] = RoadState(network, utc_offset_h=1.0)
    motorway = next(link for link in network.links if link.segment.road_class == "motorway")
    limit = motorway.segment.speed_limit_kmh
    night = local(3)
    assert roads.speed_mps(motorway, 1.0, 200, night) == pytest.approx(limit / 3.6)
    assert roads.speed_mps(motorway, 1.0, 80, night) == pytest.approx(80 / 3.6)
    for k in range(30):
        roads.enter(motorway.index, f"v{k}", "v")
    jammed = roads.speed_mps(motorway, 1.0, 200, night)
    assert jammed < limit / 3.6 * 0.9
    roads.park(motorway.index)
    assert roads.speed_mps(motorway, 1.0, 200, night) > jammed


def test_lights_cost_time_in_routing() -> None:
    network = generate_network()
    into_lights = [link for link in network.links if network.nodes[link.to_node].signalised]
    assert all(expected_stop_s(network, link) == pytest.approx(0.45 * 22) for link in into_lights)
