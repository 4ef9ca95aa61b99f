"""analytics.warnings.speeding: the limit in force, runs by seq, once per run, out of order."""

from __future__ import annotations

import itertools
import random

from analytics.warnings.detectors import Point
from analytics.warnings.model import Warning, WarningType
from analytics.warnings.speeding import SpeedingCheck, is_over_limit
from contracts.roads import RoadClass, RoadSegment
from contracts.rules.model import Geofence, RuleBook, RuleVersion, SpeedLimit

T0 = 1_790_000_000_000
LAT, LON = 525_200_000, 134_050_000
ROAD = RoadSegment(7, "Main St", RoadClass.ARTERIAL, 50, LAT, LON, LAT + 20_000, LON)
CMS_60_KMH = 1667  # 60.01 km/h


def point(seq: int, spd_cms: int = CMS_60_KMH, *, segment: RoadSegment | None = ROAD,
          vclass: str | None = "M1", dev: str = "veh-1") -> Point:  # fmt: skip
    ts = T0 + seq * 1000
    return Point(dev, seq, ts, ts + 50, 10_000 + seq * 17, LAT + seq * 10, LON,
                 bytes([seq % 256]) * 32, f"raw:0:{seq}", spd_cms, 0, segment, vclass)  # fmt: skip


def run(points: list[Point], book: RuleBook | None = None) -> list[Warning]:
    check = SpeedingCheck(book or RuleBook.default())
    return [w for p in points for w in check.on_point(p)]


def test_over_the_limit_means_more_than_the_tolerance() -> None:
    assert not is_over_limit(1527, 50, 5)  # 54.97 km/h
    assert is_over_limit(1528, 50, 5)  # 55.008 km/h: compared exactly, no rounding
    assert is_over_limit(1389, 0, 50)  # 50.004 km/h


def test_a_run_of_ten_seconds_is_warned_once_with_its_span() -> None:
    warnings = run([point(s) for s in range(1, 21)])
    assert [w.type for w in warnings] == [WarningType.SPEEDING]
    (w,) = warnings
    assert (w.from_ts_ms, w.to_ts_ms) == (T0 + 1000, T0 + 11_000)  # warned when long enough
    assert w.device_id == "veh-1"
    assert w.rule_version == "builtin@0"
    assert w.detail["limit_kmh"] == 50
    assert w.detail["max_speed_kmh"] == 60
    assert w.evidence[0].seq == 1
    assert w.evidence[-1].seq == 11


def test_a_run_shorter_than_the_minimum_is_not_warned() -> None:
    assert run([point(s) for s in range(1, 11)]) == []  # 9 s
    assert run([point(s) for s in range(1, 12)]) != []  # 10 s


def test_a_slow_point_a_missing_seq_or_no_road_ends_the_run() -> None:
    slow = [point(s, 1300 if s == 6 else CMS_60_KMH) for s in range(1, 12)]
    gap = [point(s) for s in range(1, 12) if s != 6]
    off_road = [point(s, segment=None if s == 6 else ROAD) for s in range(1, 12)]
    assert run(slow) == run(gap) == run(off_road) == []


def test_shuffled_arrival_finds_the_run_and_warns_no_point_twice() -> None:
    """A buffer flushed shuffled: the run is found whatever the order; before the missing
    middle arrives two halves may each be long enough (two warnings), never more."""
    points = [point(s) for s in range(1, 31)]
    for seed in range(20):
        shuffled = points[:]
        random.Random(seed).shuffle(shuffled)
        warnings = run(shuffled)
        assert 1 <= len(warnings) <= 2, seed
        spans = sorted((w.evidence[0].seq or 0, w.evidence[-1].seq or 0) for w in warnings)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans)), seed


def test_reprocessing_gives_the_same_warning_id() -> None:
    points = [point(s) for s in range(1, 21)]
    assert [w.warning_id for w in run(points)] == [w.warning_id for w in run(points)]


def test_published_limits_by_vehicle_class_apply_from_their_effective_time() -> None:
    trucks_40 = RuleVersion(
        "metro-police", "city", 2, T0 + 100_000,
        speed_limits=(SpeedLimit(40, road_class="arterial", vehicle_class="N3"),),
    )  # fmt: skip
    book = RuleBook((trucks_40,))
    at_48 = 1334  # 48.02 km/h: within the 50 km/h limit, over the trucks' 40 + 5
    before = [point(s, at_48, vclass="N3") for s in range(1, 21)]
    after = [point(s, at_48, vclass="N3") for s in range(101, 121)]
    cars = [point(s, at_48, vclass="M1") for s in range(101, 121)]
    assert run(before, book) == []
    assert run(cars, book) == []
    (w,) = run(after, book)
    assert w.rule_version == "metro-police/city@2"
    assert w.detail["limit_kmh"] == 40


def test_an_active_speed_zone_lowers_the_limit_inside_it() -> None:
    zone = Geofence(
        "school", "speed_zone",
        ((LAT - 1000, LON - 1000), (LAT - 1000, LON + 1000), (LAT + 5000, LON + 1000),
         (LAT + 5000, LON - 1000)),
        max_speed_kmh=20, label="metro-police/city@3",
    )  # fmt: skip
    book = RuleBook((RuleVersion("metro-police", "city", 3, 0, geofences=(zone,)),))
    at_30 = 834  # 30.02 km/h
    inside = [point(s, at_30) for s in range(1, 21)]  # LAT + seq * 10 stays in the zone
    (w,) = run(inside, book)
    assert w.detail["limit_kmh"] == 20
    assert w.rule_version == "metro-police/city@3"
    outside = [point(s, at_30, segment=ROAD) for s in range(1000, 1020)]  # north of it
    assert run(outside, book) == []
