"""The rsu_displaced scenario and the rsu_contradiction truth, checked against the bytes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from analytics.warnings.checks import RsuReport
from analytics.warnings.checks import Sighting as AnalyticsSighting
from analytics.warnings.rsu_contradiction import RsuContradictionCheck
from app.scoring import score_warnings
from chain.telemetry import parse
from contracts.roads import haversine_m
from contracts.rules.thresholds import RSU_PASS_GAP_MS, THRESHOLDS
from device_sim.observing import Sighting
from device_sim.rsu_contradiction import RSU_CONTRADICTION_M, RsuContradictionTruth
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import SimulationConfig
from device_sim.truth import WarningTruth
from tests.unit.analytics.warnings.test_detectors import Rules

from .conftest import SMALL_CITY, START_MS, Run, generate
from .crafted import T0, long_link, point, simulation
from .crafted import report as crafted_report

FLAGS = (
    "rsu_displaced:at=5,duration=20",
    # Lying vehicles: some of them pass an RSU, which then contradicts them.
    "teleport:count=15,at=5,duration=20,distance_m=600",
    "drift_off_road:count=15,at=2,duration=25,rate_mps=30",
)


@pytest.fixture(scope="module")
def rsu_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    config = SimulationConfig(
        vehicles=60, rsus=4, rate=640.0, duration_s=30.0, seed=2, start_ms=START_MS,
        network=SMALL_CITY, scenarios=tuple(s for f in FLAGS for s in parse_scenario_flag(f)),
    )  # fmt: skip
    return generate(config, tmp_path_factory.mktemp("rsu"))


@dataclass(frozen=True)
class Pair:
    """A stored sighting and the stored vehicle message it names."""

    rsu: str
    rsu_ts: int
    vehicle: str
    vehicle_seq: int
    ts: int
    distance_m: float


def stored_pairs(run: Run) -> Iterator[Pair]:
    """Every stored sighting whose vehicle message was stored, from the bytes themselves."""
    positions: dict[tuple[str, int], tuple[int, int, int]] = {}
    reports = []
    for line, message in zip(run.truth.messages, run.messages, strict=True):
        if line.expected != "stored":
            continue
        t = parse(message.payload).telemetry
        if t.obs is None:
            positions[(t.dev, t.ts)] = (t.seq, t.lat_e7, t.lon_e7)
        else:
            reports.append(t)
    for report in reports:
        for o in report.obs or ():
            if (own := positions.get((o.veh, o.ts))) is not None:
                seq, lat, lon = own
                distance = haversine_m(o.lat_e7, o.lon_e7, lat, lon)
                yield Pair(report.dev, report.ts, o.veh, seq, o.ts, distance)


def scenario(run: Run, kind: str) -> dict[str, Any]:
    return next(s for s in run.truth.run["scenarios"] if s["type"] == kind)


def test_the_threshold_is_the_analytics_default() -> None:
    assert THRESHOLDS["rsu_contradiction_m"].default == RSU_CONTRADICTION_M


def test_a_displaced_rsu_reports_its_sightings_far_away_during_its_window(rsu_run: Run) -> None:
    displaced = scenario(rsu_run, "rsu_displaced")
    (rsu,) = displaced["devices"]
    lying = {
        *scenario(rsu_run, "teleport")["devices"],
        *scenario(rsu_run, "drift_off_road")["devices"],
    }
    inside: list[float] = []
    outside: list[float] = []
    for pair in stored_pairs(rsu_run):
        if pair.rsu == rsu and pair.vehicle not in lying:
            window = displaced["from_ms"] <= pair.rsu_ts < displaced["to_ms"]
            (inside if window else outside).append(pair.distance_m)
    assert len(inside) > 10
    assert len(outside) > 10
    assert all(2000 - 40 < d < 2000 + 40 for d in inside)  # GNSS error up to 15 m
    assert all(d < 40 for d in outside)


def test_the_truth_is_every_contradiction_and_nothing_else(rsu_run: Run) -> None:
    contradictions = [p for p in stored_pairs(rsu_run) if p.distance_m > RSU_CONTRADICTION_M]
    events = [w for w in rsu_run.truth.warnings if w.type == "rsu_contradiction"]
    assert sum(e.messages for e in events) == len(contradictions)
    for pair in contradictions:
        (event,) = [
            e
            for e in events
            if e.device == pair.vehicle
            and e.detail["rsu"] == pair.rsu
            and e.from_ts <= pair.ts <= pair.rsu_ts <= e.to_ts
        ]
        assert event.from_seq is not None
        assert event.to_seq is not None
        assert event.from_seq <= pair.vehicle_seq <= event.to_seq
        assert event.detail["distance_m"] >= round(pair.distance_m)


def test_rsus_catch_lying_vehicles_and_are_caught_lying(rsu_run: Run) -> None:
    causes = {e.scenario for e in rsu_run.truth.warnings if e.type == "rsu_contradiction"}
    assert {"rsu_displaced", "teleport", "drift_off_road"} <= causes
    # A slow drift is no contradiction yet: every drifted event is over 500 m of drift.
    drift = scenario(rsu_run, "drift_off_road")
    for event in rsu_run.truth.warnings:
        if event.type == "rsu_contradiction" and event.scenario == "drift_off_road":
            assert (event.from_ts - drift["from_ms"]) * 30 / 1000 > 500 - 40


def test_the_displaced_rsu_messages_are_labelled(rsu_run: Run) -> None:
    rsu = scenario(rsu_run, "rsu_displaced")["devices"][0]
    labelled = [m for m in rsu_run.truth.messages if m.scenario == "rsu_displaced"]
    assert labelled
    assert {m.device for m in labelled} == {rsu}


# The truth's own statement of a contradiction and of a pass, on their boundaries.

KM_E7 = round(1000 / 0.011_119_5)  # about 1 km north, in degrees x 1e7


def sightings(*seen: tuple[int, float]) -> list[WarningTruth]:
    """One vehicle on a link reporting every second for a minute; an RSU sighting it at the
    given seconds (``seen``: (s, km north of the vehicle's own position))."""
    truth = RsuContradictionTruth(simulation())
    link, at = long_link(), dict(seen)
    for s in range(60):
        vehicle = crafted_report("veh-1", s, T0 + s * 1000, link, 20.0, 0.0)
        truth.vehicle_report(vehicle)
        if s in at:
            lat, lon = vehicle.reading.lat_e7 + round(at[s] * KM_E7), vehicle.reading.lon_e7
            sighting = Sighting("veh-1", vehicle.reading.ts, lat, lon)
            truth.rsu_report("rsu-1", T0 + s * 1000 + 100, s, [sighting], True)
    return truth.warnings()


def test_a_sighting_contradicts_only_beyond_the_threshold() -> None:
    limit_km = RSU_CONTRADICTION_M / 1000
    assert sightings((5, limit_km * 0.99)) == []
    (event,) = sightings((5, limit_km * 1.01))
    assert (event.device, event.detail["rsu"], event.from_seq, event.messages) == (
        "veh-1", "rsu-1", 5, 1,
    )  # fmt: skip


def test_sightings_less_than_the_pass_gap_apart_are_one_pass_and_the_gap_itself_two() -> None:
    gap_s = RSU_PASS_GAP_MS // 1000
    (one,) = sightings((5, 2.0), (5 + gap_s - 1, 2.0))
    assert (one.from_seq, one.to_seq, one.messages) == (5, 5 + gap_s - 1, 2)
    two = sightings((5, 2.0), (5 + gap_s, 2.0))
    assert [(e.from_seq, e.messages) for e in two] == [(5, 1), (5 + gap_s, 1)]


def test_an_agreeing_sighting_does_not_end_a_pass() -> None:
    (event,) = sightings((5, 2.0), (7, 0.0), (9, 2.0))
    assert (event.from_seq, event.to_seq, event.messages) == (5, 9, 2)


def test_the_detector_and_the_truth_agree_at_the_pass_gap() -> None:
    gap_s = RSU_PASS_GAP_MS // 1000
    events = sightings((5, 2.0), (5 + gap_s, 2.0), (5 + 2 * gap_s - 1, 2.0))
    check = RsuContradictionCheck(Rules())
    found = []
    for s in range(60):
        vehicle = crafted_report("veh-1", s, T0 + s * 1000, long_link(), 20.0, 0.0)
        found += check.on_point(point(vehicle))
        if s in (5, 5 + gap_s, 5 + 2 * gap_s - 1):
            lat = vehicle.reading.lat_e7 + 2 * KM_E7
            seen = (AnalyticsSighting("veh-1", vehicle.reading.ts, lat, vehicle.reading.lon_e7),)
            rsu = RsuReport("rsu-1", s, T0 + s * 1000 + 100, T0 + s * 1000 + 150,
                            0, 0, seen, bytes(32), None)  # fmt: skip
            found += check.on_rsu(rsu)
    assert len(events) == len(found) == 2
    (score,) = score_warnings(events, found).scores
    assert (score.precision, score.recall) == (1.0, 1.0)
