"""The detectors on the RULES engineer's RuleBook: published thresholds apply from their
effective time and warnings cite the version that set them."""

from __future__ import annotations

from analytics.warnings.detectors import DEFAULT_THRESHOLDS, Point, TelemetryDetector
from analytics.warnings.model import Warning, WarningType
from contracts.rules.model import RuleBook, RuleVersion
from contracts.rules.thresholds import THRESHOLDS

T0 = 1_790_000_000_000
LAT, LON = 522_516_100, 133_777_200


def point(seq: int, odo_m: int) -> Point:
    ts = T0 + seq * 1000
    return Point("veh-1", seq, ts, ts + 50, odo_m, LAT, LON, bytes([seq]) * 32, f"raw:0:{seq}")


def small_drop() -> list[Point]:
    """An odometer that goes back 8 m at seq 3: inside the default 10 m tolerance."""
    return [point(1, 10_000), point(2, 10_015), point(3, 10_007), point(4, 10_022)]


def run(book: RuleBook) -> list[Warning]:
    detector = TelemetryDetector(book)
    return [w for p in small_drop() for w in detector.observe(p)]


def version(effective_from_ms: int) -> RuleVersion:
    return RuleVersion(
        "metro-police", "city", 3, effective_from_ms, thresholds=(("rollback_tolerance_m", 5),)
    )


# The defaults as published in docs/warnings.md ("threshold (default)"), written out here so a
# wrong change to the table fails instead of being compared with a copy of itself.
PUBLISHED_DEFAULTS = {
    "rollback_tolerance_m": 10,
    "odo_gnss_mismatch_pct": 20,
    "odo_gnss_min_distance_m": 200,
    "teleport_max_speed_kmh": 300,
    "teleport_min_distance_m": 1_000,
    "drift_off_road_m": 30,
    "drift_min_messages": 3,
    "speeding_tolerance_kmh": 5,
    "speeding_min_duration_ms": 10_000,
    "rsu_contradiction_m": 500,
    "rsu_match_window_ms": 30_000,
    "congestion_speed_pct": 40,
    "congestion_min_vehicles": 3,
    "congestion_window_ms": 30_000,
    "geofence_exit_points": 5,
    "silent_after_ms": 10_000,
    "replay_min_seq_lag": 3,
}


def test_rules_defaults_are_the_published_defaults() -> None:
    assert {name: t.default for name, t in THRESHOLDS.items()} == PUBLISHED_DEFAULTS


def test_detector_defaults_are_the_published_defaults() -> None:
    assert DEFAULT_THRESHOLDS == PUBLISHED_DEFAULTS


def test_builtin_rulebook_keeps_the_default_tolerance() -> None:
    assert run(RuleBook.default()) == []


def test_published_tolerance_fires_and_is_cited() -> None:
    (warning,) = run(RuleBook((version(T0),)))
    assert warning.type is WarningType.ODOMETER_ROLLBACK
    assert warning.rule_version == "metro-police/city@3"
    assert warning.detail["drop_m"] == 8


def test_a_version_effective_after_the_event_does_not_apply() -> None:
    assert run(RuleBook((version(T0 + 3_500),))) == []
