"""analytics.warnings.detectors: each check, its boundaries, out-of-order input, idempotent ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from analytics.warnings.detectors import (
    DEFAULT_THRESHOLDS,
    GeofenceInForce,
    Point,
    QuarantinedRecord,
    TelemetryDetector,
    quarantine_warning,
)
from analytics.warnings.model import Severity, Warning, WarningType
from contracts.roads import RoadSegment

T0 = 1_790_000_000_000
LAT, LON = 522_516_100, 133_777_200
E7_PER_KM_LAT = 89_932  # 1 km of latitude in 1e-7 degrees (approximately)


@dataclass
class Rules:
    """Fixed thresholds, cited as ``test@<version>``."""

    version: int = 1
    values: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    @property
    def label(self) -> str:
        return f"test@{self.version}"

    def threshold(self, name: str) -> tuple[int, str]:
        return self.values[name], self.label

    def speed_limit_kmh(self, segment: RoadSegment, vehicle_class: str | None) -> tuple[int, str]:
        return segment.speed_limit_kmh, self.label

    def geofences(self, ts_ms: int, vehicle_class: str | None) -> Sequence[GeofenceInForce]:
        return ()

    def in_force(self, ts_ms: int) -> Rules:
        return self

    def at(self, lat_e7: int, lon_e7: int) -> Rules:
        return self


def point(seq: int, *, odo: int | None = None, lat: int = LAT, dev: str = "veh-1",
          delay_ms: int = 50) -> Point:  # fmt: skip
    ts = T0 + seq * 1000
    odo_m = 10_000 + seq * 15 if odo is None else odo
    return Point(dev, seq, ts, ts + delay_ms, odo_m, lat, LON, bytes([seq]) * 32, f"raw:0:{seq}")


def run(points: list[Point], rules: Rules | None = None) -> list[Warning]:
    detector = TelemetryDetector(rules or Rules())
    return [w for p in points for w in detector.observe(p)]


def types(warnings: list[Warning]) -> list[WarningType]:
    return [w.type for w in warnings]


def test_normal_driving_raises_nothing() -> None:
    assert run([point(s) for s in range(1, 50)]) == []


def test_odometer_rollback_is_reported_once_at_the_step() -> None:
    points = [point(s) for s in range(1, 6)] + [point(s, odo=5_000 + s) for s in range(6, 12)]
    (warning,) = run(points)
    assert warning.type is WarningType.ODOMETER_ROLLBACK
    assert warning.severity is Severity.CRITICAL
    assert [e.seq for e in warning.evidence] == [5, 6]
    assert warning.detail["drop_m"] == 10_075 - 5_006
    assert warning.rule_version == "test@1"
    assert warning.evidence[1].leaf_hash == bytes([6]) * 32


def test_rollback_within_the_tolerance_is_not_reported() -> None:
    rules = Rules(values={**DEFAULT_THRESHOLDS, "rollback_tolerance_m": 30})
    points = [point(1, odo=1000), point(2, odo=971), point(3, odo=969)]
    assert run(points, rules) == []
    assert types(run(points, Rules())) == [WarningType.ODOMETER_ROLLBACK]


def test_out_of_order_arrival_is_judged_in_seq_order() -> None:
    # Buffered messages arrive shuffled: nothing is wrong with the odometer.
    order = [1, 2, 3, 7, 5, 4, 6, 8]  # 3 and 7, 3 and 5 meet before their neighbours
    assert run([point(s) for s in order]) == []
    # A real rollback still shows however the points arrive.
    rolled = {s: point(s, odo=(10_000 if s < 5 else 100) + s) for s in range(1, 9)}
    warnings = run([rolled[s] for s in order])
    assert [(w.type, w.evidence[0].seq, w.evidence[1].seq) for w in warnings] == [
        (WarningType.ODOMETER_ROLLBACK, 4, 5)
    ]


def test_teleport_is_reported_at_both_edges_of_the_excursion() -> None:
    far = LAT + 20 * E7_PER_KM_LAT
    points = [point(s, lat=far if 5 <= s < 8 else LAT) for s in range(1, 11)]
    warnings = run(points)
    assert types(warnings) == [WarningType.TELEPORT, WarningType.TELEPORT]
    assert [(w.evidence[0].seq, w.evidence[1].seq) for w in warnings] == [(4, 5), (7, 8)]
    assert 19_000 < int(warnings[0].detail["distance_m"]) < 21_000


def test_a_short_jump_below_the_minimum_distance_is_noise() -> None:
    near = LAT + E7_PER_KM_LAT // 2  # 500 m in one second: fast, but under 1 km
    assert run([point(1), point(2, lat=near), point(3)]) == []


def test_late_delivery_is_a_silent_device_once_per_arrival_minute() -> None:
    late = [point(s, delay_ms=20_000 - s * 1000) for s in range(1, 6)]  # a buffer flushed
    warnings = run(late)
    assert {w.type for w in warnings} == {WarningType.SILENT_DEVICE}
    assert len({w.warning_id for w in warnings}) == 1
    assert run([point(1, delay_ms=9_999)]) == []


def test_the_same_point_twice_and_a_rerun_give_the_same_ids() -> None:
    points = [point(s) for s in range(1, 5)] + [point(5, odo=1)]
    first = run(points + points)
    again = run(points)
    assert [w.warning_id for w in first] == [w.warning_id for w in again]
    assert len(first) == 1


def quarantined(reason: str, seq: int | None = 3, dev: str = "veh-1") -> QuarantinedRecord:
    ts = None if seq is None else T0 + seq * 1000
    digest = hashlib.sha256(f"{reason}{seq}".encode()).digest()
    return QuarantinedRecord(dev, reason, seq, ts, T0 + 60_000, digest, "raw:1:9")


def judge(record: QuarantinedRecord, *, accepted: bool = False, newest: int | None = 10
          ) -> Warning | None:  # fmt: skip
    return quarantine_warning(
        record, Rules(), seq_accepted=lambda d, s: accepted, newest_seq=lambda d, r: newest
    )


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("conflict", WarningType.CONFLICT),
        ("unknown_device", WarningType.UNKNOWN_DEVICE),
        ("revoked_key", WarningType.REVOKED_KEY_USE),
        ("clock_skew", WarningType.CLOCK_SKEW),
    ],
)
def test_quarantine_reasons_that_always_warn(reason: str, expected: WarningType) -> None:
    warning = judge(quarantined(reason))
    assert warning is not None
    assert warning.type is expected
    assert warning.evidence[0].src == "raw:1:9"
    assert warning.evidence[0].leaf_hash is None, "quarantined records are not in the ledger"


def test_clock_skew_is_placed_at_arrival_not_at_the_device_clock() -> None:
    warning = judge(quarantined("clock_skew", seq=3))
    assert warning is not None
    assert warning.from_ts_ms == T0 + 60_000
    assert warning.detail["skew_ms"] == 3000 - 60_000


def test_bad_signature_is_forged_when_the_genuine_seq_was_accepted() -> None:
    forged = judge(quarantined("bad_signature"), accepted=True)
    tampered = judge(quarantined("bad_signature"), accepted=False)
    assert forged is not None
    assert tampered is not None
    assert (forged.type, tampered.type) == (
        WarningType.FORGED_SIGNATURE,
        WarningType.TAMPERED_PAYLOAD,
    )
    assert judge(quarantined("bad_signature", seq=None)) is None, "unparseable: no seq to judge"


def test_duplicate_is_a_replay_only_well_behind_the_newest_seq() -> None:
    replay = judge(quarantined("duplicate", seq=3), newest=10)
    assert replay is not None
    assert replay.from_ts_ms == T0 + 60_000, "placed when the old message came again"
    assert judge(quarantined("duplicate", seq=8), newest=10) is None  # lag 2 < 3
    assert judge(quarantined("duplicate", seq=3), newest=None) is None


def test_malformed_and_schema_do_not_warn() -> None:
    assert judge(quarantined("malformed", seq=None)) is None
    assert judge(quarantined("schema")) is None


ROAD_EDGE = LAT + 100 * 90  # "roads" run south of this latitude (about 100 m north of LAT)


def off_road(lat: int, lon: int) -> bool:
    return lat > ROAD_EDGE


def run_with_roads(points: list[Point]) -> list[Warning]:
    detector = TelemetryDetector(Rules(), off_road=off_road)
    return [w for p in points for w in detector.observe(p)]


def test_drift_off_road_after_enough_points_in_a_row_once_per_run() -> None:
    drifting = [point(s, lat=LAT + s * 20 * 90) for s in range(1, 12)]  # 20 m north a second
    warnings = run_with_roads(drifting)
    assert types(warnings) == [WarningType.DRIFT_OFF_ROAD]
    assert [e.seq for e in warnings[0].evidence] == [6, 7, 8]  # the first three off the road


def test_two_points_off_the_road_are_not_yet_a_drift() -> None:
    lats = [LAT, ROAD_EDGE + 900, ROAD_EDGE + 900, LAT, ROAD_EDGE + 900, LAT]
    assert run_with_roads([point(s + 1, lat=lat) for s, lat in enumerate(lats)]) == []


def test_a_teleport_off_the_road_is_not_a_drift() -> None:
    far = LAT + 20 * E7_PER_KM_LAT
    warnings = run_with_roads([point(s, lat=far if 4 <= s < 9 else LAT) for s in range(1, 12)])
    assert set(types(warnings)) == {WarningType.TELEPORT}


def test_standing_conditions_warn_once_per_device_and_window() -> None:
    ids = set()
    for seq in range(1, 40):
        record = QuarantinedRecord(
            "veh-9", "revoked_key", seq, T0 + seq * 1000, T0 + seq * 1000 + 50, bytes(32), None
        )
        warning = judge(record)
        assert warning is not None
        ids.add(warning.warning_id)
    assert len(ids) <= 2, "39 s of rejected messages: one window, or two across a boundary"


def test_replay_lag_counts_only_what_had_arrived_before_the_copy() -> None:
    detector = TelemetryDetector(Rules())
    for seq in range(1, 11):
        detector.observe(point(seq))  # arrive at T0 + seq * 1000 + 50
    assert detector.newest_seq("veh-1", T0 + 4_050) == 4
    assert detector.newest_seq("veh-1", T0 + 60_000) == 10
    assert detector.newest_seq("veh-1", T0) is None
    assert detector.newest_seq("veh-2", T0 + 60_000) is None
