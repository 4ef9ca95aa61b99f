"""analytics.warnings.rsu_contradiction: pairing by (vehicle, ts) in either order, the
threshold boundary, the arrival window, bounded memory and idempotent ids."""

from __future__ import annotations

import math
from pathlib import Path

from analytics.warnings.checks import RsuReport, Sighting
from analytics.warnings.detectors import Point
from analytics.warnings.model import Severity, Warning, WarningType
from analytics.warnings.rsu_contradiction import RsuContradictionCheck
from app.scoring import score_warnings
from chain.telemetry import parse
from contracts.roads import haversine_m
from contracts.rules.model import RuleBook
from device_sim.network import NetworkSpec
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import Simulation, SimulationConfig
from device_sim.truth import TruthWriter, read_truth

from .test_detectors import E7_PER_KM_LAT, LAT, LON, T0, Rules

WINDOW_MS = 30_000


def vehicle(ts_s: int, *, dev: str = "veh-1", recv_s: float | None = None) -> Point:
    ts = T0 + ts_s * 1000
    recv = ts + 50 if recv_s is None else T0 + round(recv_s * 1000)
    return Point(dev, ts_s, ts, recv, 10_000, LAT, LON, bytes([ts_s]) * 32, f"raw:0:{ts_s}")


def rsu(seq: int, *seen: tuple[str, int, float], dev: str = "rsu-1",
        recv_s: float | None = None) -> RsuReport:  # fmt: skip
    """An RSU report at ``seq`` s of its sightings (vehicle, ts in s, km north of it)."""
    ts = T0 + seq * 1000
    recv = ts + 50 if recv_s is None else T0 + round(recv_s * 1000)
    sightings = tuple(
        Sighting(veh, T0 + at * 1000, LAT + round(km * E7_PER_KM_LAT), LON) for veh, at, km in seen
    )
    return RsuReport(dev, seq, ts, recv, LAT, LON, sightings, bytes([seq]) * 32, f"raw:1:{seq}")


def feed(check: RsuContradictionCheck, *records: Point | RsuReport) -> list[Warning]:
    found = []
    for record in records:
        found += check.on_point(record) if isinstance(record, Point) else check.on_rsu(record)
        found += check.on_batch_end()
    return found


def test_a_sighting_far_from_the_reported_position_is_a_critical_warning_about_the_vehicle() -> (
    None
):
    check = RsuContradictionCheck(Rules())
    (warning,) = feed(check, vehicle(5), rsu(6, ("veh-1", 5, 2.0)))
    assert warning.type is WarningType.RSU_CONTRADICTION
    assert warning.severity is Severity.CRITICAL
    assert warning.device_id == "veh-1"
    assert (warning.from_ts_ms, warning.to_ts_ms) == (T0 + 5000, T0 + 6000)
    assert [(e.device_id, e.seq, e.leaf_hash) for e in warning.evidence] == [
        ("rsu-1", 6, bytes([6]) * 32),
        ("veh-1", 5, bytes([5]) * 32),
    ]
    assert warning.detail["rsu"] == "rsu-1"
    assert warning.detail["distance_m"] == 2000
    assert warning.rule_version == "test@1"


def test_sightings_close_to_the_reported_position_or_of_other_reports_are_quiet() -> None:
    check = RsuContradictionCheck(Rules())
    found = feed(
        check,
        vehicle(5),
        vehicle(6),
        rsu(7, ("veh-1", 5, 0.02), ("veh-1", 4, 9.0), ("veh-2", 6, 9.0)),
    )
    assert found == []


def test_the_distance_must_exceed_the_threshold() -> None:
    report = rsu(6, ("veh-1", 5, 0.6))
    distance = haversine_m(report.sightings[0].lat_e7, LON, LAT, LON)
    rules = Rules()
    rules.values["rsu_contradiction_m"] = math.ceil(distance)
    assert feed(RsuContradictionCheck(rules), vehicle(5), report) == []
    rules.values["rsu_contradiction_m"] = math.floor(distance)
    assert len(feed(RsuContradictionCheck(rules), vehicle(5), report)) == 1


def test_a_sighting_waits_for_a_vehicle_point_delivered_late_and_shuffled() -> None:
    check = RsuContradictionCheck(Rules())
    early = [rsu(s + 1, ("veh-1", s, 2.0)) for s in range(10, 20)]
    assert feed(check, *early) == []
    burst = [vehicle(s, recv_s=29) for s in (14, 11, 19, 10, 17, 12, 16, 13, 18, 15)]
    (warning,) = feed(check, *burst)  # one pass of one RSU: one warning
    assert warning.evidence[1].seq == 14  # at the first pair to complete


def test_one_warning_per_pass_a_new_one_after_a_gap() -> None:
    check = RsuContradictionCheck(Rules())
    first = [rsu(s + 1, ("veh-1", s, 2.0)) for s in range(10, 20)]
    again = [rsu(s + 1, ("veh-1", s, 2.0)) for s in range(31, 35)]  # 12 s later
    points = [vehicle(s) for s in [*range(10, 20), *range(31, 35)]]
    found = feed(check, *points, *first, *again)
    assert [w.evidence[1].seq for w in found] == [10, 31]


def test_a_sighting_exactly_the_pass_gap_after_the_last_begins_a_new_pass() -> None:
    # "Less than 10 s apart" is one pass: 9 s apart is the same, 10 s apart a new one. (The
    # check used to merge sightings exactly 10 s apart, against its own documented rule.)
    check = RsuContradictionCheck(Rules())
    found = feed(
        check,
        *(vehicle(s) for s in (10, 19, 29)),
        rsu(11, ("veh-1", 10, 2.0)),
        rsu(20, ("veh-1", 19, 2.0)),
        rsu(30, ("veh-1", 29, 2.0)),
    )
    assert [w.evidence[1].seq for w in found] == [10, 29]


def test_pairs_further_apart_than_the_window_in_arrival_are_not_judged() -> None:
    check = RsuContradictionCheck(Rules())
    assert feed(check, rsu(6, ("veh-1", 5, 2.0)), vehicle(5, recv_s=6 + 30.1)) == []
    assert check._waiting == {}
    check = RsuContradictionCheck(Rules())
    assert feed(check, vehicle(5), rsu(6, ("veh-1", 5, 2.0), recv_s=5 + 30.1)) == []
    assert len(check._points) == 1
    feed(check, rsu(7, recv_s=5 + 60.1))
    assert len(check._points) == 0  # forgotten two windows later
    check = RsuContradictionCheck(Rules())
    assert len(feed(check, vehicle(5), rsu(6, ("veh-1", 5, 2.0), recv_s=5 + 29.9))) == 1
    check = RsuContradictionCheck(Rules())
    feed(check, rsu(6, ("veh-1", 5, 2.0)), rsu(70))
    assert check._waiting == {}  # a sighting waits two windows at most


def test_a_point_waits_when_the_rsu_report_is_late() -> None:
    check = RsuContradictionCheck(Rules())
    points = [vehicle(s) for s in range(1, 20)]
    assert feed(check, *points) == []
    (warning,) = feed(check, rsu(3, ("veh-1", 2, 2.0), recv_s=20))
    assert warning.evidence[1].seq == 2


def test_reprocessing_and_redelivery_yield_the_same_warning_once() -> None:
    records: list[Point | RsuReport] = [
        rsu(6, ("veh-1", 5, 2.0)),
        rsu(6, ("veh-1", 5, 2.0)),
        vehicle(5),
    ]
    first = feed(RsuContradictionCheck(Rules()), *records)
    assert len(first) == 1  # the re-delivered RSU report waited once
    again = feed(RsuContradictionCheck(Rules()), *reversed(records))
    assert {w.warning_id for w in again} == {first[0].warning_id}


def test_two_rsus_contradicting_one_report_are_two_warnings() -> None:
    check = RsuContradictionCheck(Rules())
    found = feed(
        check,
        rsu(6, ("veh-1", 5, 2.0)),
        rsu(6, ("veh-1", 5, -3.0), dev="rsu-2"),
        vehicle(5),
    )
    assert sorted(w.detail["rsu"] for w in found) == ["rsu-1", "rsu-2"]
    assert len({w.warning_id for w in found}) == 2


def test_memory_is_bounded() -> None:
    check = RsuContradictionCheck(Rules(), max_points=5, max_waiting=3)
    feed(check, *(vehicle(s) for s in range(1, 11)))
    assert len(check._points) == 5
    feed(check, *(rsu(s, ("veh-9", s, 2.0)) for s in range(11, 21)))
    assert sum(len(w) for w in check._waiting.values()) == 3
    # The newest waiting sightings are kept.
    assert feed(check, vehicle(20, dev="veh-9")) != []
    assert feed(check, vehicle(11, dev="veh-9")) == []


def test_the_simulators_contradictions_are_found_one_warning_per_pass(tmp_path: Path) -> None:
    flags = (
        "rsu_displaced:count=2,at=0,duration=30",
        "offline_burst:count=25,at=5,duration=15",  # their points arrive after the sightings
        "teleport:count=10,at=5,duration=20,distance_m=600",
    )
    config = SimulationConfig(
        vehicles=60, rsus=4, rate=640.0, duration_s=30.0, seed=2, start_ms=T0,
        network=NetworkSpec(streets=6),
        scenarios=tuple(s for f in flags for s in parse_scenario_flag(f)),
    )  # fmt: skip
    with TruthWriter(tmp_path / "truth.jsonl") as writer:
        messages = list(Simulation(config).messages(writer))
        writer.summary(None, None)
    truth = read_truth(tmp_path / "truth.jsonl")
    check = RsuContradictionCheck(RuleBook.default())
    found, late = [], 0
    for line, message in zip(truth.messages, messages, strict=True):
        if line.expected != "stored":
            continue
        t = parse(message.payload).telemetry
        recv = line.publish_at_ms + 20
        if t.obs is None:
            assert t.odo_m is not None
            point = Point(t.dev, t.seq, t.ts, recv, t.odo_m, t.lat_e7, t.lon_e7, b"", None)
            late += len(new := check.on_point(point))
        else:
            seen = tuple(Sighting(o.veh, o.ts, o.lat_e7, o.lon_e7) for o in t.obs)
            report = RsuReport(t.dev, t.seq, t.ts, recv, t.lat_e7, t.lon_e7, seen, b"", None)
            new = check.on_rsu(report)
        found += new + check.on_batch_end()
    events = [e for e in truth.warnings if e.type == "rsu_contradiction"]
    assert len(events) > 3
    assert late > 0
    (score,) = score_warnings(events, found).scores
    assert (score.recall, score.precision) == (1.0, 1.0)
    assert len(found) == len({w.warning_id for w in found}) == len(events)
