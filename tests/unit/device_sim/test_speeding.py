"""The speeding scenario and the speeding truth: every event is a real run over the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain.telemetry import parse
from contracts.rules.thresholds import THRESHOLDS
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import SimulationConfig

from .conftest import SMALL_CITY, START_MS, Run, generate

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
