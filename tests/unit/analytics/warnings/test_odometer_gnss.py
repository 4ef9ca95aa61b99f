"""analytics.warnings.odometer_gnss: legs, the span, exclusions, seq order and idempotent ids."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from analytics.warnings.detectors import DEFAULT_THRESHOLDS, Point
from analytics.warnings.model import Severity, Warning, WarningType
from analytics.warnings.odometer_gnss import (
    DistanceSpan,
    OdometerGnssCheck,
    Span,
    counted_too_little,
)
from contracts.roads import RoadClass, RoadSegment
from tests.unit.analytics.warnings.test_detectors import LAT, LON, Rules

T0 = 1_790_000_000_000
E7_PER_M = 89.932  # 1 m of latitude in 1e-7 degrees (approximately)
ROAD = RoadSegment(1, "Nordstrasse", RoadClass.ARTERIAL, 50, LAT, LON, LAT + 900_000, LON)
STEP_M = 5.0  # metres driven between reports: 10 m/s, two reports a second
SPD_CMS = 1000


def drive(
    seqs: range,
    *,
    counted: float = 1.0,
    blocked_from: int = 10**9,
    dev: str = "veh-1",
    spd_cms: int = SPD_CMS,
) -> list[Point]:
    """Points of a vehicle driving north at 10 m/s; from seq ``blocked_from`` on its odometer
    counts ``counted`` of each step."""
    points, odo = [], 10_000.0
    for seq in range(1, seqs.stop):
        if seq > 1:
            odo += STEP_M * (counted if seq > blocked_from else 1.0)
        if seq not in seqs:
            continue
        ts = T0 + seq * 500
        lat = LAT + round((seq - 1) * STEP_M * E7_PER_M)
        points.append(Point(dev, seq, ts, ts + 50, int(odo), lat, LON, bytes([seq % 256]) * 32,
                            f"raw:0:{seq}", spd_cms, 0, ROAD))  # fmt: skip
    return points


def run(points: list[Point], rules: Rules | None = None) -> list[Warning]:
    check = OdometerGnssCheck(rules or Rules())
    return [w for p in points for w in check.on_point(p)]


def test_an_honest_odometer_raises_nothing() -> None:
    assert run(drive(range(1, 400))) == []


def test_a_blocked_odometer_is_reported_once_per_run_of_mismatch() -> None:
    points = drive(range(1, 400), counted=0.5, blocked_from=100)
    (warning,) = run(points)
    assert warning.type is WarningType.ODO_GNSS_MISMATCH
    assert warning.severity is Severity.CRITICAL
    assert warning.device_id == "veh-1"
    assert warning.rule_version == "test@1"
    first, last = warning.evidence
    assert first.seq is not None
    assert last.seq is not None
    # The span is the latest 200 m of GNSS distance (40 steps of 5 m), ending inside the block.
    assert 100 < last.seq < 100 + 40
    assert 195 <= (last.seq - first.seq) * STEP_M <= 240
    assert int(warning.detail["gnss_m"]) >= 200
    assert int(warning.detail["counted_pct"]) < 80
    assert warning.detail["min_counted_pct"] == 80
    assert (warning.from_ts_ms, warning.to_ts_ms) == (T0 + first.seq * 500, T0 + last.seq * 500)


def test_a_second_blocking_after_honest_driving_is_a_second_warning() -> None:
    blocked = drive(range(1, 400), counted=0.5, blocked_from=100)
    odo_at_300 = blocked[299].odo_m
    honest_again = [p for p in drive(range(300, 700)) if p.seq < 550]
    shift = odo_at_300 - honest_again[0].odo_m
    points = blocked[:299] + [replace(p, odo_m=p.odo_m + shift) for p in honest_again]
    points += [  # blocked again: a third of each step counted
        replace(p, odo_m=points[-1].odo_m + (p.seq - 549) * 5 // 3) for p in drive(range(550, 800))
    ]
    first, second = run(points)
    assert first.warning_id != second.warning_id
    assert second.evidence[0].seq is not None
    assert second.evidence[0].seq > 300


@pytest.mark.parametrize(("counted", "warned"), [(160, False), (159, True)])
def test_the_limit_is_the_share_of_the_smaller_distance(counted: int, warned: bool) -> None:
    # GNSS 250 m, speed 200 m: 80 % of 200 m is the least an honest odometer counts.
    span = Span(250.0, 200.0, counted, 1, 2)
    assert counted_too_little(span, 20) is warned
    assert counted_too_little(Span(200.0, 250.0, counted, 1, 2), 20) is warned


def test_the_span_is_the_latest_minimum_distance_with_its_first_leg_in_part() -> None:
    span: DistanceSpan[int] = DistanceSpan()
    assert span.add(120.0, 120.0, 120, 0, 1, 200) is None
    assert span.add(79.0, 79.0, 79, 1, 2, 200) is None  # 199 m: not yet
    # 240 m of legs: the first counts for the 80 m of it that complete 200 m (two thirds).
    assert span.add(41.0, 45.0, 10, 2, 3, 200) == Span(200.0, 204.0, 169.0, 0, 3)
    # Once the others cover 200 m without it, the first leg is gone; the next counts 69/79.
    latest = span.add(90.0, 90.0, 20, 3, 4, 200)
    assert latest is not None
    assert (latest.first, latest.last, latest.distance_m) == (1, 4, 200.0)
    assert latest.speed_m == pytest.approx(204.0)
    assert latest.counted_m == pytest.approx(99.0)


def test_a_gnss_distance_the_speeds_do_not_confirm_is_not_judged() -> None:
    assert counted_too_little(Span(200.0, 160.0, 0.0, 1, 2), 20)
    assert not counted_too_little(Span(200.0, 159.0, 0.0, 1, 2), 20)
    assert not counted_too_little(Span(200.0, 0.0, 0.0, 1, 2), 20)


def test_the_minimum_distance_comes_from_the_rules() -> None:
    points = drive(range(1, 400), counted=0.5, blocked_from=100)
    longer = Rules(version=2, values={**DEFAULT_THRESHOLDS, "odo_gnss_min_distance_m": 1000})
    (short,) = run(points)
    (long,) = run(points, longer)
    assert long.rule_version == "test@2"
    assert long.evidence[1].seq is not None
    assert short.evidence[1].seq is not None
    assert long.evidence[1].seq > short.evidence[1].seq  # needs more blocked distance
    assert int(long.detail["gnss_m"]) >= 1000
    stricter = Rules(values={**DEFAULT_THRESHOLDS, "odo_gnss_mismatch_pct": 60})
    assert run(points, stricter) == []  # 50 % counted is within 60 %


def test_gnss_noise_while_parked_adds_no_distance() -> None:
    rng = random.Random(4)
    points = []
    for seq in range(1, 2000):
        ts = T0 + seq * 500
        lat = LAT + round(rng.gauss(0, 4) * E7_PER_M)
        lon = LON + round(rng.gauss(0, 4) * E7_PER_M * 1.6)
        points.append(Point("veh-1", seq, ts, ts + 50, 10_000, lat, lon, b"x" * 32, None, 0, 0,
                            ROAD))  # fmt: skip
    assert run(points) == []


def test_off_road_positions_do_not_count() -> None:
    # From seq 100 on the position is off the road network (spoofed): nothing to compare with.
    points = drive(range(1, 400), counted=0.0, blocked_from=100)
    assert len(run(points)) == 1
    assert run([replace(p, segment=None) if p.seq >= 100 else p for p in points]) == []


def test_gnss_noise_does_not_lengthen_the_span() -> None:
    # 3 m of noise per fix on 5 m steps: summed step by step it would double the distance,
    # and a span of "200 m" would cover half of that on the road.
    rng = random.Random(7)
    points = [
        replace(
            p,
            lat_e7=p.lat_e7 + round(rng.gauss(0, 3) * E7_PER_M),
            lon_e7=p.lon_e7 + round(rng.gauss(0, 3) * E7_PER_M * 1.6),
        )
        for p in drive(range(1, 400), counted=0.5, blocked_from=100)
    ]
    (warning,) = run(points)
    first, last = (e.seq for e in warning.evidence)
    assert first is not None
    assert last is not None
    assert (last - first) * STEP_M >= 180


def test_gnss_moving_while_the_speed_says_standing_is_not_counted() -> None:
    # A drifting position that the map still matches: the vehicle's own speed says 0.
    points = drive(range(1, 400), counted=0.0, blocked_from=1, spd_cms=0)
    assert run(points) == []


def test_jumps_and_odometer_decreases_are_left_out() -> None:
    points = drive(range(1, 400))
    jumped = []
    for p in points:
        if 100 <= p.seq < 110:  # a teleport 5 km away (still matched to a road)
            p = replace(p, lat_e7=p.lat_e7 + 450_000)
        if p.seq >= 200:  # a rollback by 1 km (odometer_rollback reports it)
            p = replace(p, odo_m=p.odo_m - 1000)
        jumped.append(p)
    assert run(jumped) == []


def test_shuffled_arrival_is_judged_in_seq_order_with_the_same_id() -> None:
    points = drive(range(1, 400), counted=0.5, blocked_from=100)
    # An offline buffer: seqs 81-300 arrive at once, shuffled, when the device is back.
    burst = [replace(p, recv_ms=points[300].recv_ms) for p in points[80:300]]
    shuffled = points[:80] + random.Random(2).sample(burst, 220) + points[300:]
    (in_order,) = run(points)
    (late,) = run(shuffled)
    assert late == in_order


def test_reprocessing_gives_the_same_id_and_duplicates_nothing() -> None:
    points = drive(range(1, 400), counted=0.5, blocked_from=100)
    check = OdometerGnssCheck(Rules())
    first = [w for p in points for w in check.on_point(p)]
    again = [w for p in points for w in check.on_point(p)]  # re-delivered: already judged
    assert len(first) == 1
    assert again == []
    assert run(points)[0].warning_id == first[0].warning_id


def test_a_seq_that_never_arrives_is_given_up_after_a_minute() -> None:
    points = [p for p in drive(range(1, 400), counted=0.5, blocked_from=100) if p.seq != 50]
    # Everything after the gap waits while it may still arrive ...
    assert run([p for p in points if p.recv_ms - points[0].recv_ms < 60_000 + 25_000]) == []
    # ... and is judged without it once the points after it span a minute of arrivals.
    late = [replace(p, recv_ms=p.recv_ms + 60_000) if p.seq > 300 else p for p in points]
    (warning,) = run(late)
    assert warning.evidence[0].seq is not None
    assert warning.evidence[0].seq > 50


def test_devices_are_judged_apart() -> None:
    blocked = drive(range(1, 400), counted=0.5, blocked_from=100, dev="veh-2")
    honest = drive(range(1, 400), dev="veh-1")
    warnings = run([p for pair in zip(honest, blocked, strict=True) for p in pair])
    assert [w.device_id for w in warnings] == ["veh-2"]
