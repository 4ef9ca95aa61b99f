"""app.scoring: matching warnings to truth events; precision and recall per type."""

from __future__ import annotations

from dataclasses import replace

from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from app.scoring import score_warnings
from device_sim.truth import WarningTruth


def event(kind: str, device: str, start: int, end: int) -> WarningTruth:
    return WarningTruth(kind, device, kind, start, end, None, None, 1)


def found(kind: WarningType, device: str, start: int, end: int, key: str = "") -> Warning:
    return Warning(warning_id(kind, device, key or f"{start}"), kind, Severity.WARNING, device,
                   None, start, end, "test@1", ())  # fmt: skip


def test_true_positive_false_positive_and_miss() -> None:
    truth = [event("teleport", "a", 1000, 5000), event("teleport", "b", 1000, 5000)]
    warnings = [
        found(WarningType.TELEPORT, "a", 2000, 3000),
        found(WarningType.TELEPORT, "a", 5500, 6500, "edge"),  # the second edge: still right
        found(WarningType.TELEPORT, "c", 2000, 3000),  # nothing happened to c
    ]
    (score,) = score_warnings(truth, warnings, tolerance_ms=1000).scores
    assert (score.events, score.events_found, score.warnings, score.warnings_matching) == (
        2, 1, 3, 2,
    )  # fmt: skip
    assert score.recall == 0.5
    assert score.precision == 2 / 3


def test_time_tolerance_and_type_must_agree() -> None:
    truth = [event("replay", "a", 10_000, 10_000)]
    late = [found(WarningType.REPLAY, "a", 10_999, 10_999)]
    assert score_warnings(truth, late, tolerance_ms=1000).scores[0].recall == 1.0
    assert score_warnings(truth, late, tolerance_ms=998).scores[0].recall == 0.0
    other = [found(WarningType.CONFLICT, "a", 10_000, 10_000)]
    report = score_warnings(truth, other, tolerance_ms=1000)
    assert report.below(0.95) == ["conflict", "replay"]


def test_table_and_floor() -> None:
    truth = [event("conflict", "a", 0, 0)]
    report = score_warnings(truth, [found(WarningType.CONFLICT, "a", 0, 0)])
    assert report.below(0.95) == []
    assert "conflict" in report.table()
    assert "1.00" in report.table()


def test_an_optional_event_makes_its_warning_right_but_is_no_miss() -> None:
    # A blocker whose vehicle drove too little to be judged: injected, never observable.
    unseen = replace(event("odo_gnss_mismatch", "a", 1000, 5000), required=False)
    required = [event("odo_gnss_mismatch", "b", 1000, 5000)]
    warnings = [
        found(WarningType.ODO_GNSS_MISMATCH, "a", 2000, 3000),
        found(WarningType.ODO_GNSS_MISMATCH, "b", 2000, 3000),
    ]
    (score,) = score_warnings(required, warnings, optional=[unseen]).scores
    assert (score.events, score.events_found, score.warnings, score.warnings_matching) == (
        1, 1, 2, 2,
    )  # fmt: skip
    (without,) = score_warnings(required, warnings).scores
    assert without.precision == 0.5  # without it, the warning about a is a false positive
    (unwarned,) = score_warnings(required, warnings[1:], optional=[unseen]).scores
    assert unwarned.recall == 1.0
