"""The generated city: deterministic, both directions of every road, classes and limits."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from contracts.roads import RoadClass
from device_sim.errors import ConfigError
from device_sim.geo import LocalFrame, bearing_cdeg
from device_sim.network import NetworkSpec, generate_network
from device_sim.routing import Router

LIMITS = {
    RoadClass.LOCAL: {30, 50},
    RoadClass.COLLECTOR: {50},
    RoadClass.ARTERIAL: {60, 70},
    RoadClass.MOTORWAY: {100, 120},
}


def test_same_spec_same_segments_other_seed_other_city() -> None:
    assert generate_network().segments == generate_network(NetworkSpec()).segments
    assert generate_network(NetworkSpec(seed=1)).segments != generate_network().segments


def test_segment_ids_are_one_to_n_and_match_links() -> None:
    network = generate_network()
    assert [s.segment_id for s in network.segments] == list(range(1, len(network.links) + 1))
    for link in network.links:
        assert link.segment.segment_id == link.index + 1
        assert link.length_m == pytest.approx(link.segment.length_m)
        node_a, node_b = network.nodes[link.from_node], network.nodes[link.to_node]
        assert (link.segment.a_lat_e7, link.segment.a_lon_e7) == (node_a.lat_e7, node_a.lon_e7)
        assert (link.segment.b_lat_e7, link.segment.b_lon_e7) == (node_b.lat_e7, node_b.lon_e7)
        assert link.index in network.out_links[link.from_node]
        assert link.index in network.in_links[link.to_node]


def test_every_road_is_drivable_both_ways_with_the_same_class_and_limit() -> None:
    network = generate_network()
    by_ends = {(link.from_node, link.to_node): link.segment for link in network.links}
    for (a, b), segment in by_ends.items():
        back = by_ends[b, a]
        assert (back.name, back.road_class, back.speed_limit_kmh) == (
            segment.name,
            segment.road_class,
            segment.speed_limit_kmh,
        )


def test_classes_limits_and_lengths_are_plausible() -> None:
    network = generate_network()
    classes = {link.segment.road_class for link in network.links}
    assert classes == set(RoadClass)
    for link in network.links:
        assert link.segment.speed_limit_kmh in LIMITS[link.segment.road_class]
        assert 150 < link.length_m < 800
    arterial_streets = {
        s.name
        for s in network.segments
        if s.road_class is RoadClass.ARTERIAL and "ramp" not in s.name
    }
    assert arterial_streets == {
        "Street 3",
        "Street 7",
        "Street 11",
        "Avenue 3",
        "Avenue 7",
        "Avenue 11",
    }
    ramps = [s for s in network.segments if s.name.endswith("ramp")]
    assert len(ramps) == 2 * 12  # 6 arterials x 2 ends x 2 directions


def test_headings_point_along_the_segment() -> None:
    network = generate_network()
    frame = network.frame
    for link in network.links:
        s = link.segment
        ax, ay = frame.to_local(s.a_lat_e7, s.a_lon_e7)
        bx, by = frame.to_local(s.b_lat_e7, s.b_lon_e7)
        assert link.heading_cdeg == bearing_cdeg(bx - ax, by - ay)
    street = next(link for link in network.links if link.segment.name == "Street 1")
    assert street.heading_cdeg in range(8500, 9500) or street.heading_cdeg in range(26500, 27500)


def test_the_city_is_around_its_centre_and_strongly_connected() -> None:
    spec = NetworkSpec(centre_lat=48.137, centre_lon=11.575, streets=5, ring=False)
    network = generate_network(spec)
    frame = LocalFrame(spec.centre_lat, spec.centre_lon)
    xs, ys = zip(*(frame.to_local(n.lat_e7, n.lon_e7) for n in network.nodes), strict=True)
    assert abs(sum(xs) / len(xs)) < 10
    assert abs(sum(ys) / len(ys)) < 10
    assert not any(s.road_class is RoadClass.MOTORWAY for s in network.segments)
    router = Router(network)
    for node in network.nodes:
        assert router.travel_seconds(node.node_id, 0) < float("inf")
        assert router.travel_seconds(0, node.node_id) < float("inf")


def test_signals_where_two_main_streets_cross() -> None:
    network = generate_network()
    signalised = [n for n in network.nodes if n.signalised]
    assert signalised
    assert all(RoadClass.LOCAL not in n.classes or len(n.classes) > 1 for n in signalised)
    ring_nodes = [n for n in network.nodes if RoadClass.MOTORWAY in n.classes]
    assert ring_nodes
    assert not any(n.signalised for n in ring_nodes)


@pytest.mark.parametrize(
    "changes",
    [
        {"streets": 2},
        {"block_m": 50.0},
        {"centre_lat": 89.0},
        {"arterial_every": 1},
        {"jitter_m": 100.0},
        {"ring_offset_m": 10.0},
    ],
)
def test_invalid_specs_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        replace(NetworkSpec(), **changes)
