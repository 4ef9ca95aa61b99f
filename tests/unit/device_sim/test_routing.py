"""Dijkstra by expected travel time, checked against an independent Bellman-Ford."""

from __future__ import annotations

import math
import random

import pytest

from device_sim.network import NetworkSpec, RoadNetwork, generate_network
from device_sim.routing import Router, route_seconds


@pytest.fixture(scope="module")
def network() -> RoadNetwork:
    return generate_network(NetworkSpec(streets=8))


def bellman_ford(network: RoadNetwork, origin: int) -> list[float]:
    best = [math.inf] * len(network.nodes)
    best[origin] = 0.0
    for _ in range(len(network.nodes)):
        changed = False
        for link in network.links:
            candidate = best[link.from_node] + route_seconds(network, link)
            if candidate < best[link.to_node] - 1e-9:
                best[link.to_node] = candidate
                changed = True
        if not changed:
            break
    return best


def test_routes_are_connected_paths_from_origin_to_destination(network: RoadNetwork) -> None:
    router = Router(network)
    rng = random.Random(3)
    for _ in range(200):
        origin, destination = rng.randrange(len(network.nodes)), rng.randrange(len(network.nodes))
        route = router.route(origin, destination)
        node = origin
        for index in route:
            assert network.links[index].from_node == node
            node = network.links[index].to_node
        assert node == destination
        assert sum(route_seconds(network, network.links[i]) for i in route) == pytest.approx(
            router.travel_seconds(origin, destination)
        )


def test_routes_are_fastest(network: RoadNetwork) -> None:
    router = Router(network)
    for origin in (0, 17, len(network.nodes) - 1):
        reference = bellman_ford(network, origin)
        for destination in range(len(network.nodes)):
            assert router.travel_seconds(origin, destination) == pytest.approx(
                reference[destination]
            )


def test_the_ring_motorway_carries_some_cross_town_trips() -> None:
    network = generate_network()  # 12 x 12 grid nodes, ids 0..143
    router = Router(network)
    rng = random.Random(5)
    trips = [(rng.randrange(144), rng.randrange(144)) for _ in range(500)]
    via_ring = [
        trip
        for trip in trips
        if any(network.links[i].segment.name == "Ring A100" for i in router.route(*trip))
    ]
    assert 0.02 < len(via_ring) / len(trips) < 0.5


def test_same_node_is_an_empty_route(network: RoadNetwork) -> None:
    assert Router(network).route(5, 5) == []
