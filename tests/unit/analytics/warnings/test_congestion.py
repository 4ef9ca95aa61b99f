"""analytics.warnings.congestion: slow samples, windows, vehicles, out of order, idempotent ids."""

from __future__ import annotations

import random

from analytics.warnings.congestion import CongestionCheck, is_slow, slow_sample, window_start
from analytics.warnings.detectors import Point
from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from contracts.roads import RoadClass, RoadSegment
from contracts.rules.model import RuleBook, RuleVersion, SpeedLimit

WINDOW_START = 1_790_000_010_000  # a multiple of 30 s
T0 = WINDOW_START + 10_000
LAT, LON = 525_200_000, 134_050_000
# Northwards, 20,000e-7 degrees of latitude: about 222 m.
ROAD = RoadSegment(7, "Main St", RoadClass.ARTERIAL, 50, LAT, LON, LAT + 20_000, LON)
OTHER = RoadSegment(8, "Side St", RoadClass.LOCAL, 30, LAT, LON + 3_000, LAT + 20_000, LON + 3_000)
CRAWL = 200  # cm/s: 7.2 km/h, 14 % of 50 km/h
MID = 10_000  # half way along ROAD (in 1e-7 degrees)


def point(dev: str, seq: int, *, dt_ms: int = 0, spd_cms: int = CRAWL, along: int = MID,
          segment: RoadSegment | None = ROAD, vclass: str | None = "M1") -> Point:  # fmt: skip
    ts = T0 + seq * 400 + dt_ms
    base = segment or ROAD
    return Point(dev, seq, ts, ts + 50, 10_000 + seq, base.a_lat_e7 + along, base.a_lon_e7,
                 bytes([seq % 256]) * 32, f"raw:0:{seq}", spd_cms, 0, segment, vclass)  # fmt: skip


def run(points: list[Point], book: RuleBook | None = None) -> list[Warning]:
    check = CongestionCheck(book or RuleBook.default())
    found = [w for p in points for w in check.on_point(p)]
    return found + check.on_batch_end()


def jam(vehicles: int = 3, **kwargs: object) -> list[Point]:
    return [point(f"veh-{v}", s, **kwargs) for s in range(1, 4) for v in range(vehicles)]  # type: ignore[arg-type]


def test_slow_means_moving_below_the_share_of_the_limit_exactly() -> None:
    assert not is_slow(0, 50, 40)  # standing: a red light, not a crawl
    assert is_slow(1, 50, 40)
    assert is_slow(555, 50, 40)  # 19.98 km/h
    assert not is_slow(556, 50, 40)  # 20.016 km/h
    assert window_start(T0, 30_000) == WINDOW_START


def test_samples_near_either_end_of_the_segment_do_not_count() -> None:
    # 1e-7 degrees of latitude is 0.0111 m: 20 m is 1,799 units.
    assert not slow_sample(ROAD, LAT + 1_700, LON, CRAWL, 50, 40)  # 18.9 m: a queue at a light
    assert slow_sample(ROAD, LAT + 1_850, LON, CRAWL, 50, 40)
    assert slow_sample(ROAD, LAT + 20_000 - 1_850, LON, CRAWL, 50, 40)
    assert not slow_sample(ROAD, LAT - 500, LON, CRAWL, 50, 40)  # before the start


def test_three_crawling_vehicles_make_one_warning_as_soon_as_the_third_is_seen() -> None:
    points = jam(3)
    check = CongestionCheck(RuleBook.default())
    found = [(p, check.on_point(p)) for p in points]
    firing = [(p, w) for p, ws in found for w in ws]
    assert len(firing) == 1
    trigger, w = firing[0]
    assert trigger == points[2]  # the third vehicle's first point, not the window's end
    assert w.type is WarningType.CONGESTION
    assert w.severity is Severity.WARNING
    assert (w.device_id, w.segment_id) == (None, 7)
    assert w.warning_id == warning_id(WarningType.CONGESTION, "segment:7", f"window:{WINDOW_START}")
    assert w.rule_version == "builtin@0"
    assert {e.device_id for e in w.evidence} == {"veh-0", "veh-1", "veh-2"}
    assert (w.from_ts_ms, w.to_ts_ms) == (points[0].ts_ms, points[2].ts_ms)
    assert w.detail["vehicles"] == 3
    assert w.detail["limit_kmh"] == 50
    assert w.detail["median_speed_kmh"] == 7
    assert w.detail["window_ms"] == 30_000


def test_two_vehicles_or_fast_or_stopped_or_unmatched_ones_are_not_congestion() -> None:
    assert run(jam(2)) == []
    assert run(jam(3, spd_cms=556)) == []  # 20.02 km/h: 40 % of 50 km/h, not below
    assert run(jam(3, spd_cms=0)) == []  # a queue standing at a light
    assert run(jam(3, along=100)) == []  # at the end of the segment
    assert run(jam(3, segment=None)) == []  # off the road network
    assert run(jam(3, spd_cms=555)) != []


def test_vehicles_on_different_segments_or_windows_are_not_pooled() -> None:
    spread = [point("veh-0", 1), point("veh-1", 1), point("veh-2", 1, segment=OTHER)]
    assert run(spread) == []
    later = [point("veh-0", 1), point("veh-1", 1), point("veh-2", 1, dt_ms=20_000)]
    assert run(later) == []  # the third is in the next window
    warnings = run(jam(3) + jam(3, dt_ms=30_000))
    assert len({w.warning_id for w in warnings}) == 2


def test_the_limit_for_the_vehicle_class_is_the_rules_limit() -> None:
    trucks = RuleVersion(
        "city",
        "limits",
        2,
        T0 - 1000,
        speed_limits=(SpeedLimit(20, vehicle_class="N3", segment_id=7),),
    )
    book = RuleBook((trucks,))
    slow_trucks = jam(3, spd_cms=400, vclass="N3")  # 14.4 km/h: 72 % of 20, 29 % of 50
    assert run(slow_trucks, book) == []
    (w,) = run(jam(3, spd_cms=400, vclass="M1"), book)
    assert w.rule_version == "builtin@0"
    (w,) = run(jam(3, spd_cms=100, vclass="N3"), book)  # 3.6 km/h: 18 % of 20
    assert (w.rule_version, w.detail["limit_kmh"]) == (trucks.label, 20)
    thresholds = RuleVersion(
        "city", "thresholds", 3, T0 - 1000, thresholds=(("congestion_min_vehicles", 2),)
    )
    (w,) = run(jam(2), RuleBook((thresholds,)))
    assert w.rule_version == thresholds.label


def test_shuffled_arrival_and_reprocessing_give_the_same_single_warning() -> None:
    points = jam(4)
    expected = run(points)
    assert len(expected) == 1
    for k in range(5):
        shuffled = random.Random(k).sample(points, len(points))
        (w,) = run(shuffled)
        assert w.warning_id == expected[0].warning_id
    check = CongestionCheck(RuleBook.default())
    first = [w for p in points for w in check.on_point(p)]
    again = [w for p in points for w in check.on_point(p)]  # the same window, seen again
    assert len(first) == 1
    assert again == []


def test_a_late_point_joins_its_window_but_forgotten_windows_stay_forgotten() -> None:
    late = point("veh-2", 1)
    check = CongestionCheck(RuleBook.default())
    for p in (point("veh-0", 1), point("veh-1", 1), point("veh-9", 1, dt_ms=60_000, spd_cms=1400)):
        assert check.on_point(p) == []
    assert len(check.on_point(late)) == 1  # a minute behind: still judged
    check = CongestionCheck(RuleBook.default())
    for p in (point("veh-0", 1), point("veh-1", 1)):
        check.on_point(p)
    check.on_point(point("veh-9", 1, dt_ms=700_000, spd_cms=1400))
    check.on_batch_end()
    assert check.on_point(late) == []  # over ten minutes behind the newest point
