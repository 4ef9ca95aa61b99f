"""The incident scenario and the congestion truth: a real jam, seen as analytics sees it."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from analytics.warnings.congestion import CongestionCheck
from analytics.warnings.detectors import Point
from analytics.warnings.model import Warning
from app.scoring import score_warnings
from chain.telemetry import Telemetry, parse
from contracts.map_matching import SegmentIndex
from contracts.roads import haversine_m
from contracts.rules.model import RuleBook
from contracts.rules.thresholds import CONGESTION_END_MARGIN_M, THRESHOLDS
from device_sim.incidents import CongestionTruth, crawling, incident_link
from device_sim.network import Link, generate_network
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import SimulationConfig
from device_sim.traffic import RoadState
from device_sim.truth import WarningTruth

from .conftest import SMALL_CITY, START_MS, Run, generate
from .crafted import T0, long_link, simulation
from .crafted import report as crafted_report

SCENARIO = "incident:count=4,at=6,duration=15,speed_pct=15"


def config(scenarios: str = SCENARIO, start_ms: int = START_MS) -> SimulationConfig:
    return SimulationConfig(
        vehicles=40, rsus=2, rate=126.0, duration_s=36.0, seed=4, start_ms=start_ms,
        network=SMALL_CITY, scenarios=tuple(parse_scenario_flag(scenarios)),
    )  # fmt: skip


@pytest.fixture(scope="module")
def incident_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return generate(config(), tmp_path_factory.mktemp("incident"))


def reports(run: Run, device: str) -> list[Telemetry]:
    return [
        parse(m.payload).telemetry
        for line, m in zip(run.truth.messages, run.messages, strict=True)
        if line.device == device
    ]


def analysed(run: Run) -> list[Warning]:
    """What analytics makes of the stored vehicle messages: map matched, in publish order."""
    segments = run.simulation.network.segments
    index, by_id = SegmentIndex(segments), {s.segment_id: s for s in segments}
    check = CongestionCheck(RuleBook.default())
    found = []
    for line, m in zip(run.truth.messages, run.messages, strict=True):
        t = parse(m.payload).telemetry
        if line.expected != "stored" or t.odo_m is None:
            continue
        spd = t.spd_cms or 0
        matched = index.nearest(t.lat_e7, t.lon_e7, t.hdg_cdeg if spd > 0 else None)
        segment = by_id[matched] if matched is not None else None
        point = Point(t.dev, t.seq, t.ts, line.publish_at_ms, t.odo_m, t.lat_e7, t.lon_e7,
                      b"", None, spd, t.hdg_cdeg or 0, segment, None)  # fmt: skip
        found += check.on_point(point)
    return found + check.on_batch_end()


def test_an_incident_slows_its_link_only_during_its_window() -> None:
    network = generate_network(SMALL_CITY)
    roads: RoadState[str] = RoadState(network)
    link, night = network.links[5], START_MS - 6 * 3_600_000  # 03:00: no rush hour
    free = roads.speed_mps(link, 1.0, 200, night)
    roads.slow_down(link.index, 0.2, night + 1000, night + 2000)
    roads.slow_down(link.index, 0.2, night + 1000, night + 2000)  # the same, again
    roads.slow_down(link.index, 0.5, night + 1500, night + 3000)
    assert roads.speed_mps(link, 1.0, 200, night + 999) == free
    assert roads.speed_mps(link, 1.0, 200, night + 1000) == pytest.approx(free * 0.2)
    assert roads.speed_mps(link, 1.0, 200, night + 1600) == pytest.approx(free * 0.2)
    assert roads.speed_mps(link, 1.0, 200, night + 2500) == pytest.approx(free * 0.5)
    assert roads.speed_mps(link, 1.0, 200, night + 3000) == free
    assert roads.speed_mps(network.links[6], 1.0, 200, night + 1500) == free


def test_the_selected_vehicles_crawl_on_the_incident_link_through_the_window(
    incident_run: Run,
) -> None:
    (scenario,) = incident_run.truth.run["scenarios"]
    _, link = incident_link(incident_run.simulation.network, 4, scenario["name"])
    segment, limit = link.segment, link.segment.speed_limit_kmh
    for device in scenario["devices"]:
        inside = [
            t for t in reports(incident_run, device)
            if scenario["from_ms"] + 1000 <= t.ts < scenario["to_ms"]
        ]  # fmt: skip
        assert len(inside) > 30
        for t in inside:
            assert t.spd_cms is not None
            assert 0 < t.spd_cms * 0.036 <= limit * 0.15 * 1.2, device
            distance = haversine_m(
                t.lat_e7, t.lon_e7, (segment.a_lat_e7 + segment.b_lat_e7) // 2,
                (segment.a_lon_e7 + segment.b_lon_e7) // 2,
            )  # fmt: skip
            assert distance < link.length_m / 2 + 15, device


def test_they_move_continuously_and_their_odometers_count_the_distance(
    incident_run: Run,
) -> None:
    (scenario,) = incident_run.truth.run["scenarios"]
    _, link = incident_link(incident_run.simulation.network, 4, scenario["name"])
    for device in scenario["devices"]:
        track = reports(incident_run, device)
        # Each starts the run at the junction before the incident link (GNSS error, and at
        # most one report interval of driving).
        start = haversine_m(
            track[0].lat_e7, track[0].lon_e7, link.segment.a_lat_e7, link.segment.a_lon_e7
        )
        assert start < 15 + 8
        for a, b in itertools.pairwise(track):
            assert a.odo_m is not None
            assert b.odo_m is not None
            assert 0 <= b.odo_m - a.odo_m <= 20
            moved = haversine_m(a.lat_e7, a.lon_e7, b.lat_e7, b.lon_e7)
            assert moved <= b.odo_m - a.odo_m + 1 + 2 * 15  # GNSS error both ends


def test_the_jam_is_a_congestion_event_on_the_incident_segment(incident_run: Run) -> None:
    (scenario,) = incident_run.truth.run["scenarios"]
    _, link = incident_link(incident_run.simulation.network, 4, scenario["name"])
    events = [w for w in incident_run.truth.warnings if w.type == "congestion"]
    mine = [e for e in events if e.scenario == scenario["name"]]
    assert mine
    assert {e.device for e in mine} == {f"segment:{link.segment.segment_id}"}
    assert all(e.detail["vehicles"] >= 4 for e in mine)
    assert min(e.from_ts for e in mine) < scenario["from_ms"] + 2000
    assert max(e.to_ts for e in mine) > scenario["to_ms"] - 2000
    assert all(scenario["from_ms"] <= e.from_ts and e.to_ts < scenario["to_ms"] for e in mine)


@pytest.mark.parametrize("hour", [0, 9])  # 08:00 (rush hour) and 17:00 UTC (evening rush)
def test_analytics_finds_exactly_the_truth(tmp_path: Path, hour: int) -> None:
    start = START_MS + hour * 3_600_000 + 17_000  # windows not aligned with the run
    run = generate(config(f"{SCENARIO},at=10", start), tmp_path)
    events = [w for w in run.truth.warnings if w.type == "congestion"]
    report = score_warnings(events, analysed(run))
    (score,) = report.scores
    assert score.events >= 1
    assert (score.events_found, score.warnings_matching) == (score.events, score.warnings)


def test_the_run_is_the_same_for_the_same_seed(incident_run: Run, tmp_path: Path) -> None:
    assert generate(config(), tmp_path).truth_text == incident_run.truth_text


# The truth's own statement of congestion, on the boundaries of its definition.

WINDOW = THRESHOLDS["congestion_window_ms"].default
CRAWL = 2.0  # m/s: 7.2 km/h, well under 40 % of any limit


def crawl(truth: CongestionTruth, device: str, ts: int, pos_m: float, **kw: Any) -> Link:
    link = long_link()
    truth.vehicle_report(crafted_report(device, 0, ts, link, pos_m, CRAWL, **kw))
    return link


def test_crawling_is_moving_slower_than_the_share_of_the_limit() -> None:
    share = THRESHOLDS["congestion_speed_pct"].default / 100  # 40 %
    assert crawling(0.1, 50)
    assert crawling(50 * share / 3.6 - 0.01, 50)
    assert not crawling(50 * share / 3.6 + 0.01, 50)
    assert not crawling(0.0, 50)  # standing in a queue is not crawling


def test_a_jam_across_a_window_boundary_is_judged_in_each_window_on_its_own() -> None:
    truth = CongestionTruth(simulation())
    boundary = T0 + 10 * WINDOW  # windows start at multiples of the window from the epoch
    for device in ("veh-1", "veh-2", "veh-3"):
        link = crawl(truth, device, boundary - 1, 60.0)  # the last ms of a window
    crawl(truth, "veh-1", boundary, 61.0)  # the first ms of the next one
    crawl(truth, "veh-2", boundary + WINDOW - 1, 62.0)
    (event,) = truth.warnings()  # the later window has only two vehicles
    assert event.device == f"segment:{link.segment.segment_id}"
    assert event.detail["window_from_ms"] == boundary - WINDOW
    assert (event.from_ts, event.to_ts, event.detail["vehicles"]) == (
        boundary - 1, boundary - 1, 3,
    )  # fmt: skip
    crawl(truth, "veh-3", boundary + 5, 63.0)
    assert [e.detail["window_from_ms"] for e in truth.warnings()] == [
        boundary - WINDOW, boundary,
    ]  # fmt: skip


def test_only_vehicles_clear_of_the_segments_ends_count() -> None:
    margin = CONGESTION_END_MARGIN_M
    length = long_link().length_m

    def events(last_pos_m: float) -> list[WarningTruth]:
        truth = CongestionTruth(simulation())
        crawl(truth, "veh-1", T0, 60.0)
        crawl(truth, "veh-2", T0, length - margin)  # exactly the margin from the end: counts
        crawl(truth, "veh-3", T0, last_pos_m)
        return truth.warnings()

    assert len(events(margin)) == 1
    assert events(margin - 1) == []  # a queue at the junction
    assert events(length - margin + 1) == []


def test_a_report_analytics_cannot_place_on_the_road_or_never_sees_says_nothing() -> None:
    for kw in ({"across_m": 40.0}, {"stored": False}):
        truth = CongestionTruth(simulation())
        crawl(truth, "veh-1", T0, 60.0)
        crawl(truth, "veh-2", T0, 60.0)
        crawl(truth, "veh-3", T0, 60.0, **kw)
        assert truth.warnings() == []
