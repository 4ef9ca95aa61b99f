"""The speeding scenario and the speeding truth: every event is a real run over the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

import analytics.warnings.speeding as speeding_check
from analytics.warnings.model import Warning
from analytics.warnings.speeding import SpeedingCheck
from app.scoring import score_warnings
from chain.telemetry import parse
from contracts.rules.thresholds import THRESHOLDS
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import SimulationConfig
from device_sim.speeding import SpeedingRuns, SpeedingTruth
from device_sim.truth import WarningTruth
from tests.unit.analytics.warnings.test_detectors import Rules

from .conftest import SMALL_CITY, START_MS, Run, generate
from .crafted import T0, long_link, point, report, simulation

NIGHT_MS = START_MS - 6 * 3_600_000  # 03:00 in Berlin: free flow, ordinary drivers speed too


@pytest.fixture(scope="module")
def speeding_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    config = SimulationConfig(
        vehicles=40, rsus=2, rate=420.0, duration_s=40.0, seed=3, start_ms=NIGHT_MS,
        network=SMALL_CITY,
        scenarios=tuple(parse_scenario_flag("speeding:count=2,at=5,duration=20,factor=1.5")),
    )  # fmt: skip
    return generate(config, tmp_path_factory.mktemp("speeding"))


def speeds_kmh(run: Run, device: str, from_seq: int | None, to_seq: int | None) -> list[float]:
    assert from_seq is not None
    assert to_seq is not None
    out = []
    for line, message in zip(run.truth.messages, run.messages, strict=True):
        if line.device == device and line.seq is not None and from_seq <= line.seq <= to_seq:
            spd = parse(message.payload).telemetry.spd_cms
            assert spd is not None
            out.append(spd * 0.036)
    return out


def test_a_reckless_driver_speeds_through_the_whole_window(speeding_run: Run) -> None:
    scenarios = [s for s in speeding_run.truth.run["scenarios"] if s["type"] == "speeding"]
    events = [w for w in speeding_run.truth.warnings if w.type == "speeding"]
    assert len(scenarios[0]["devices"]) == 2
    for device in scenarios[0]["devices"]:
        mine = [e for e in events if e.device == device and e.scenario == scenarios[0]["name"]]
        assert len(mine) == 1, device  # never stops: one run for the window
        (event,) = mine
        assert event.to_ts - event.from_ts >= 19_000
        assert min(speeds_kmh(speeding_run, device, event.from_seq, event.to_seq)) > 30 * 1.4


def test_every_event_is_a_run_over_the_limit_for_long_enough(speeding_run: Run) -> None:
    tolerance = THRESHOLDS["speeding_tolerance_kmh"].default
    minimum = THRESHOLDS["speeding_min_duration_ms"].default
    events = [w for w in speeding_run.truth.warnings if w.type == "speeding"]
    natural = [e for e in events if e.scenario == "natural"]
    assert natural, "at night some ordinary drivers speed"
    for event in events:
        assert event.to_ts - event.from_ts >= minimum
        assert event.from_seq is not None
        assert event.to_seq is not None
        assert event.messages == event.to_seq - event.from_seq + 1
        speeds = speeds_kmh(speeding_run, event.device, event.from_seq, event.to_seq)
        assert len(speeds) >= event.messages
        assert min(speeds) > 30 + tolerance  # 30 km/h: the lowest limit in the city


def test_the_truth_is_deterministic(speeding_run: Run, tmp_path: Path) -> None:
    again = generate(speeding_run.simulation.config, tmp_path)
    assert again.truth.warnings == speeding_run.truth.warnings


# The truth's own statement of speeding, on the boundaries of its thresholds.

TOLERANCE = THRESHOLDS["speeding_tolerance_kmh"].default
MIN_DURATION = THRESHOLDS["speeding_min_duration_ms"].default


def one_run(speed_kmh: float, reports: int, every_ms: int = 1000) -> list[WarningTruth]:
    runs = SpeedingRuns()
    for seq in range(reports):
        runs.report("veh-1", seq, T0 + seq * every_ms, speed_kmh, 50)
    return runs.events()


def test_a_run_exactly_at_the_tolerance_is_no_speeding() -> None:
    assert one_run(50 + TOLERANCE, 30) == []  # "more than" the tolerance
    (event,) = one_run(50 + TOLERANCE + 0.01, 30)
    assert (event.from_seq, event.to_seq, event.messages) == (0, 29, 30)


def test_a_run_lasting_exactly_the_minimum_is_one_and_a_report_shorter_is_none() -> None:
    reports = MIN_DURATION // 1000 + 1  # first to last: exactly the minimum duration
    (event,) = one_run(70.0, reports)
    assert event.to_ts - event.from_ts == MIN_DURATION
    assert one_run(70.0, reports - 1) == []


def test_a_report_analytics_never_judges_splits_the_run() -> None:
    runs = SpeedingRuns()
    for seq in range(25):
        runs.report("veh-1", seq, T0 + seq * 1000, None if seq == 12 else 70.0, 50)
    assert [(e.from_seq, e.to_seq) for e in runs.events()] == [(0, 11), (13, 24)]


def test_the_truth_reads_the_true_speed_and_the_true_road() -> None:
    link = long_link(300.0)
    limit = link.segment.speed_limit_kmh
    truth = SpeedingTruth(simulation())
    fast = (limit + 2 * TOLERANCE) / 3.6
    for seq in range(15):  # 14 s over the limit, but the report at 7 s is spoofed off the road
        spoofed = 50.0 if seq == 7 else 0.0
        truth.vehicle_report(report("veh-1", seq, T0 + seq * 1000, link, 10 + seq, fast,
                                    across_m=spoofed))  # fmt: skip
    for seq in range(15):  # 14 s over the limit
        truth.vehicle_report(report("veh-2", seq, T0 + seq * 1000, link, 10 + seq, fast))
    (event,) = truth.warnings()
    assert event.device == "veh-2"
    assert event.detail == {"max_speed_kmh": limit + 2 * TOLERANCE, "limit_kmh": limit}


def test_a_detector_with_a_wrong_definition_loses_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scoring catches a wrong definition of speeding: the truth does not share it."""
    link = long_link(300.0)
    limit = link.segment.speed_limit_kmh
    reports = [
        report(device, seq, T0 + seq * 1000, link, 10 + seq, (limit + over) / 3.6)
        for device, over in (("veh-a", 2 * TOLERANCE), ("veh-b", TOLERANCE / 2))
        for seq in range(20)
    ]
    truth = SpeedingTruth(simulation())
    for r in reports:
        truth.vehicle_report(r)
    events = truth.warnings()
    assert [e.device for e in events] == ["veh-a"]

    def detected() -> list[Warning]:
        check = SpeedingCheck(Rules())
        return [w for r in reports for w in check.on_point(point(r))]

    (right,) = score_warnings(events, detected()).scores
    assert (right.precision, right.recall) == (1.0, 1.0)
    # A detector that forgets the tolerance warns veh-b too, which only went 2.5 km/h over.
    monkeypatch.setattr(
        speeding_check, "is_over_limit", lambda spd, limit, _: spd * 36 > limit * 1000
    )
    (wrong,) = score_warnings(events, detected()).scores
    assert (wrong.precision, wrong.recall) == (0.5, 1.0)
