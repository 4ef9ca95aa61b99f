"""app.scoring: double reporting, types on one side only, span overlap; `roadledger score`
argument checks."""

from __future__ import annotations

import argparse

import pytest

from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from app.cli import build_parser
from app.scoring import score_warnings
from device_sim.truth import WarningTruth


def event(kind: str, device: str, start: int, end: int) -> WarningTruth:
    return WarningTruth(kind, device, kind, start, end, None, None, 1)


def found(kind: WarningType, device: str, start: int, end: int) -> Warning:
    return Warning(warning_id(kind, device, f"{start}"), kind, Severity.WARNING, device,
                   None, start, end, "test@1", ())  # fmt: skip


def test_one_event_reported_many_times_counts_once_for_recall() -> None:
    truth = [event("forged_signature", "a", 1000, 3000)]
    warnings = [found(WarningType.FORGED_SIGNATURE, "a", t, t) for t in (1000, 2000, 3000)]
    (score,) = score_warnings(truth, warnings, tolerance_ms=0).scores
    assert (score.events_found, score.warnings, score.warnings_matching) == (1, 3, 3)
    assert score.recall == 1.0
    assert score.precision == 1.0


def test_warning_of_a_type_the_truth_never_has_is_a_false_positive() -> None:
    report = score_warnings([], [found(WarningType.TELEPORT, "a", 0, 0)])
    (score,) = report.scores
    assert score.recall is None
    assert score.precision == 0.0
    assert report.below(0.95) == ["teleport"]


def test_event_without_any_warning_has_recall_zero() -> None:
    report = score_warnings([event("replay", "a", 0, 0)], [])
    (score,) = report.scores
    assert score.recall == 0.0
    assert score.precision is None
    assert report.below(0.95) == ["replay"]


def test_warning_spanning_the_event_matches_and_one_before_it_does_not() -> None:
    truth = [event("drift_off_road", "a", 50_000, 60_000)]
    spanning = found(WarningType.DRIFT_OFF_ROAD, "a", 40_000, 70_000)
    before = found(WarningType.DRIFT_OFF_ROAD, "a", 10_000, 39_999)
    (score,) = score_warnings(truth, [spanning, before], tolerance_ms=10_000).scores
    assert (score.events_found, score.warnings_matching) == (1, 1)
    assert score.precision == 0.5


def test_same_type_other_device_does_not_match() -> None:
    truth = [event("conflict", "a", 0, 0)]
    (score,) = score_warnings(truth, [found(WarningType.CONFLICT, "b", 0, 0)]).scores
    assert score.events_found == 0
    assert score.warnings_matching == 0


@pytest.mark.parametrize("floor", ["1.5", "-0.1", "high"])
def test_score_command_refuses_a_bad_floor_naming_it(
    floor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["score", "--floor", floor])
    assert exc.value.code == 2
    assert "--floor" in capsys.readouterr().err


def test_score_command_defaults_to_plain_progress_and_the_issue_floor() -> None:
    args = build_parser().parse_args(["score"])
    assert isinstance(args, argparse.Namespace)
    assert args.floor == 0.95
    assert args.no_dashboard is True
    assert build_parser().parse_args(["score", "--dashboard"]).no_dashboard is False
