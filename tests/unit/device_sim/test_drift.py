"""The drift scenario: a slow, continuous drift, an event only once it is off every road."""

from __future__ import annotations

import itertools

import pytest

from chain.telemetry import parse
from contracts.map_matching import SegmentIndex
from contracts.roads import haversine_m
from contracts.rules.thresholds import THRESHOLDS
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import SimulationConfig

from .conftest import SMALL_CITY, START_MS, Run, generate

OFF_ROAD_M = THRESHOLDS["drift_off_road_m"].default


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    flags = [
        "drift_off_road:name=away,at=2,duration=20,rate_mps=6,bearing_deg=45",
        "drift_off_road:name=short,at=2,duration=20,rate_mps=1,bearing_deg=45",  # 20 m at most
    ]
    config = SimulationConfig(
        vehicles=20, rsus=0, rate=200.0, duration_s=30.0, seed=8, start_ms=START_MS,
        network=SMALL_CITY,
        scenarios=tuple(s for flag in flags for s in parse_scenario_flag(flag)),
    )  # fmt: skip
    return generate(config, tmp_path_factory.mktemp("drift"))


def positions(run: Run, device: str) -> list[tuple[int, int, int]]:
    return [
        (line.seq or 0, t.lat_e7, t.lon_e7)
        for line, m in zip(run.truth.messages, run.messages, strict=True)
        if line.device == device
        for t in [parse(m.payload).telemetry]
    ]


def test_only_a_drift_that_leaves_the_road_is_an_event(drift_run: Run) -> None:
    (event,) = [w for w in drift_run.truth.warnings if w.type == "drift_off_road"]
    assert event.scenario == "away"
    roads = SegmentIndex(drift_run.simulation.network.segments, radius_m=OFF_ROAD_M)
    track = {seq: (lat, lon) for seq, lat, lon in positions(drift_run, event.device)}
    assert event.from_seq is not None
    needed = THRESHOLDS["drift_min_messages"].default
    for seq in range(event.from_seq, event.from_seq + needed):  # the run that made it visible
        assert roads.nearest(*track[seq]) is None
    assert roads.nearest(*track[event.from_seq - 1]) is not None


def test_the_drift_moves_slowly_and_snaps_back_once(drift_run: Run) -> None:
    (event,) = [w for w in drift_run.truth.warnings if w.type == "drift_off_road"]
    assert event.detail["max_offset_m"] == pytest.approx(6 * 20, abs=6)
    steps = positions(drift_run, event.device)
    jumps = [haversine_m(a[1], a[2], b[1], b[2]) for a, b in itertools.pairwise(steps)]
    assert sorted(jumps)[-2] < 40  # 100 ms apart: only the snap back is large
    assert max(jumps) == pytest.approx(event.detail["max_offset_m"], abs=40)
