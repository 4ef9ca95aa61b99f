"""analytics.warnings.geofencing: no-entry zones by vehicle class and time, once per run."""

from __future__ import annotations

import random

from analytics.warnings.detectors import Point
from analytics.warnings.geofencing import GeofenceCheck
from analytics.warnings.model import Severity, Warning, WarningType
from contracts.rules.model import Geofence, RuleBook, RuleVersion, TimeWindow

T0 = 1_790_000_000_000  # a Monday, 14:13 UTC
LAT, LON = 525_200_000, 134_050_000
ZONE = Geofence(
    "old-town", "no_entry",
    ((LAT, LON), (LAT, LON + 10_000), (LAT + 10_000, LON + 10_000), (LAT + 10_000, LON)),
    vehicle_classes=frozenset({"N3"}), label="metro-police/city@4",
)  # fmt: skip
BOOK = RuleBook((RuleVersion("metro-police", "city", 4, 0, geofences=(ZONE,)),))


def point(seq: int, inside: bool, vclass: str | None = "N3") -> Point:
    ts = T0 + seq * 1000
    lat = LAT + 5_000 if inside else LAT - 5_000
    return Point("veh-9", seq, ts, ts + 40, 1000 + seq, lat, LON + 5_000, bytes([seq]) * 32,
                 f"raw:0:{seq}", 500, 0, None, vclass)  # fmt: skip


def run(points: list[Point], book: RuleBook = BOOK) -> list[Warning]:
    check = GeofenceCheck(book)
    return [w for p in points for w in check.on_point(p)]


def test_a_truck_entering_is_warned_once_per_stay() -> None:
    path = [point(s, 5 <= s <= 9 or 15 <= s <= 16) for s in range(1, 21)]
    warnings = run(path)
    assert [w.evidence[0].seq for w in warnings] == [5, 15]  # 5 points out: it had left
    first = warnings[0]
    assert first.type is WarningType.GEOFENCE
    assert first.severity is Severity.CRITICAL
    assert first.rule_version == "metro-police/city@4"
    assert first.detail == {"zone": "old-town", "vehicle_class": "N3"}
    assert first.from_ts_ms == T0 + 5000


def test_flicker_at_the_edge_is_one_stay_a_missing_seq_is_not() -> None:
    inside = {3, 5, 6, 9, 10, 11}  # 1 and 2 points outside between: GNSS noise at the edge
    assert len(run([point(s, s in inside) for s in range(1, 15)])) == 1
    gap = [point(s, s in inside) for s in range(1, 15) if s != 7]  # seq 7 never arrives
    assert [w.evidence[0].seq for w in run(gap)] == [3, 9]


def test_other_classes_and_unknown_classes_may_enter() -> None:
    assert run([point(s, True, "M1") for s in range(1, 6)]) == []
    assert run([point(s, True, None) for s in range(1, 6)]) == []


def test_outside_its_time_window_the_zone_does_not_apply() -> None:
    weekends = Geofence(
        ZONE.id, ZONE.kind, ZONE.polygon, vehicle_classes=ZONE.vehicle_classes,
        windows=(TimeWindow(frozenset({5, 6}), 0, 1440),), label=ZONE.label,
    )  # fmt: skip
    book = RuleBook((RuleVersion("metro-police", "city", 4, 0, geofences=(weekends,)),))
    assert run([point(s, True) for s in range(1, 6)], book) == []  # weekends only; T0 is a Monday


def test_a_speed_zone_is_not_a_no_entry_zone() -> None:
    zone = Geofence("school", "speed_zone", ZONE.polygon, max_speed_kmh=20)
    book = RuleBook((RuleVersion("metro-police", "city", 4, 0, geofences=(zone,)),))
    assert run([point(s, True) for s in range(1, 6)], book) == []


def test_shuffled_points_of_one_stay_warn_once_unless_a_gap_splits_it() -> None:
    stay = [point(s, True) for s in range(1, 13)]
    for seed in range(10):
        shuffled = stay[:]
        random.Random(seed).shuffle(shuffled)
        assert len(run(shuffled)) >= 1
        # A warned run absorbs every later point that joins it.
        assert len(run(sorted(shuffled, key=lambda p: p.seq))) == 1


def test_reprocessing_gives_the_same_ids() -> None:
    path = [point(s, s > 3) for s in range(1, 8)]
    assert [w.warning_id for w in run(path)] == [w.warning_id for w in run(path)]
