"""The odometer_blocker scenario: the odometer it signs, and the events its truth claims."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from analytics.warnings.detectors import Point
from analytics.warnings.odometer_gnss import OdometerGnssCheck
from chain.telemetry import parse
from contracts.map_matching import SegmentIndex
from contracts.rules.thresholds import THRESHOLDS
from device_sim.odometer_blocker import counted_too_little
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import SimulationConfig
from device_sim.truth import MessageTruth
from tests.unit.analytics.warnings.test_detectors import Rules

from .conftest import SMALL_CITY, START_MS, Run, generate

WINDOW = (START_MS + 20_000, START_MS + 60_000)
MIN_M = THRESHOLDS["odo_gnss_min_distance_m"].default
BASE = SimulationConfig(
    vehicles=12, rsus=0, rate=48.0, duration_s=90.0, seed=3, start_ms=START_MS, network=SMALL_CITY
)


def blocked(fraction: float) -> SimulationConfig:
    flag = f"odometer_blocker:count=12,at=20,duration=40,counted_fraction={fraction}"
    return replace(BASE, scenarios=tuple(parse_scenario_flag(flag)))


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return generate(BASE, tmp_path_factory.mktemp("honest"))


@pytest.fixture(scope="module")
def blocked_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return generate(blocked(0.3), tmp_path_factory.mktemp("blocked"))


def odometers(run: Run) -> dict[str, list[tuple[int, int]]]:
    """Per vehicle, (ts, odometer) of every message in seq order."""
    found: dict[str, list[tuple[int, int]]] = {}
    for message in run.messages:
        telemetry = parse(message.payload).telemetry
        assert telemetry.odo_m is not None
        found.setdefault(telemetry.dev, []).append((telemetry.ts, telemetry.odo_m))
    return found


def driven_in_window(series: list[tuple[int, int]]) -> int:
    inside = [odo for ts, odo in series if WINDOW[0] <= ts < WINDOW[1]]
    before = [odo for ts, odo in series if ts < WINDOW[0]]
    return inside[-1] - before[-1]


def test_the_odometer_counts_the_fraction_in_the_window_and_keeps_the_loss(
    honest_run: Run, blocked_run: Run
) -> None:
    honest, reported = odometers(honest_run), odometers(blocked_run)
    assert honest.keys() == reported.keys()
    lost_somewhere = False
    for device, true_series in honest.items():
        series = reported[device]
        assert [ts for ts, _ in series] == [ts for ts, _ in true_series]
        steps = zip(true_series, true_series[1:], series, series[1:], strict=False)
        lost = 0
        for (_, t0), (ts, t1), (_, r0), (_, r1) in steps:
            assert r1 >= r0  # never back: no rollback
            if WINDOW[0] <= ts < WINDOW[1]:
                assert abs((r1 - r0) - 0.3 * (t1 - t0)) <= 1
            else:
                assert r1 - r0 == t1 - t0  # counts normally outside the window
            lost = t1 - r1
        assert lost == pytest.approx(0.7 * driven_in_window(true_series), abs=1)
        lost_somewhere = lost_somewhere or lost > 0
    assert lost_somewhere


def test_an_event_only_where_the_distance_driven_lets_the_detector_see_it(
    honest_run: Run, blocked_run: Run
) -> None:
    driven = {d: driven_in_window(s) for d, s in odometers(honest_run).items()}
    events = {w.device for w in blocked_run.truth.warnings}
    far = {d for d, m in driven.items() if m >= 2 * MIN_M}
    parked = {d for d, m in driven.items() if m == 0}
    assert far, "the run should have vehicles that drove far in the window"
    assert parked, "and vehicles parked throughout it"
    assert far <= events
    assert not parked & events


def test_the_event_spans_the_window_and_says_what_was_counted(blocked_run: Run) -> None:
    windows: dict[str, list[MessageTruth]] = {}
    for line in blocked_run.truth.messages:
        if line.scenario == "odometer_blocker":
            windows.setdefault(line.device, []).append(line)
    assert blocked_run.truth.warnings
    for event in blocked_run.truth.warnings:
        touched = windows[event.device]
        assert event.type == "odo_gnss_mismatch"
        assert event.scenario == "odometer_blocker"
        assert (event.from_seq, event.to_seq) == (touched[0].seq, touched[-1].seq)
        assert (event.from_ts, event.to_ts) == (touched[0].ts, touched[-1].ts)
        assert event.messages == len(touched)
        assert event.detail["counted_m"] == pytest.approx(0.3 * event.detail["driven_m"], abs=2)


def test_a_blocker_counting_most_of_the_distance_is_no_event(tmp_path: Path) -> None:
    run = generate(blocked(0.9), tmp_path)
    assert any(line.scenario for line in run.truth.messages)
    assert run.truth.warnings == []
    # Injected all the same: a warning about it would be right, its absence is no miss.
    assert run.truth.optional
    assert {e.type for e in run.truth.optional} == {"odo_gnss_mismatch"}
    assert not any(e.required for e in run.truth.optional)


def test_the_detector_warns_exactly_the_vehicles_the_truth_names(blocked_run: Run) -> None:
    segments = {s.segment_id: s for s in blocked_run.simulation.network.segments}
    index = SegmentIndex(segments.values())
    check = OdometerGnssCheck(Rules())
    warnings = []
    for message in blocked_run.messages:
        t = parse(message.payload).telemetry
        assert t.odo_m is not None
        assert t.spd_cms is not None
        assert t.hdg_cdeg is not None
        matched = index.nearest(t.lat_e7, t.lon_e7, t.hdg_cdeg if t.spd_cms else None)
        segment = segments[matched] if matched is not None else None
        point = Point(t.dev, t.seq, t.ts, message.publish_at_ms, t.odo_m, t.lat_e7, t.lon_e7,
                      b"\0" * 32, None, t.spd_cms, t.hdg_cdeg, segment)  # fmt: skip
        warnings.extend(check.on_point(point))
    events = {w.device: w for w in blocked_run.truth.warnings}
    assert sorted(str(w.device_id) for w in warnings) == sorted(events)
    for warning in warnings:
        event = events[str(warning.device_id)]
        assert warning.from_ts_ms <= event.to_ts
        assert event.from_ts <= warning.to_ts_ms


# The truth's own statement of a blocker event, on the boundaries of its thresholds.

SHARE_PCT = 100 - THRESHOLDS["odo_gnss_mismatch_pct"].default  # 80 %


def test_a_blocker_is_an_event_over_the_minimum_distance_truly_driven() -> None:
    assert counted_too_little(MIN_M, MIN_M * SHARE_PCT // 100 - 1)
    assert not counted_too_little(MIN_M - 1, 0)  # one metre short of the distance it needs


def test_counting_exactly_the_share_is_no_event() -> None:
    assert not counted_too_little(MIN_M, MIN_M * SHARE_PCT // 100)  # "less than" the share
    assert not counted_too_little(1000, 800)
    assert counted_too_little(1000, 799)


def test_the_events_are_the_vehicles_that_truly_drove_the_distance_in_the_window(
    honest_run: Run, blocked_run: Run
) -> None:
    # The honest twin run drives the same trips: its odometers are the true distances.
    driven = {d: driven_in_window(s) for d, s in odometers(honest_run).items()}
    required = {w.device for w in blocked_run.truth.warnings}
    optional = {w.device for w in blocked_run.truth.optional}
    assert required == {d for d, m in driven.items() if m >= MIN_M}
    assert optional == {d for d, m in driven.items() if m < MIN_M}
