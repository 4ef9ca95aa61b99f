"""The real evaluation: Los-loop, the T-GCN protocol, and issue 5's floors."""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.forecast.evaluation import (
    BASELINE_LAST,
    BASELINE_MEAN,
    MODEL,
    evaluate,
    floor_checks,
)
from analytics.forecast.losloop import load_los_loop, los_loop_dir
from app.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def los_loop(shared_dir: Path) -> Path:
    path = los_loop_dir(shared_dir)
    if not (path / "los_speed.csv").is_file():
        pytest.skip(f"Los-loop data not found at {path} (set ROADLEDGER_SHARED_DIR)")
    return path


def test_los_loop_shape(los_loop: Path) -> None:
    grid = load_los_loop(los_loop)
    assert (grid.steps, grid.width) == (2016, 207)
    assert grid.first_weekday == 3  # Thursday 1 March 2012
    # One sensor of 207 is linked to no other in los_adj.csv.
    assert sum(1 for linked in grid.neighbours if linked) == 206


def test_model_meets_the_floors_on_los_loop(los_loop: Path) -> None:
    evaluation = evaluate(load_los_loop(los_loop))
    model, last, mean = (evaluation.scores[n] for n in (MODEL, BASELINE_LAST, BASELINE_MEAN))
    assert model[3].mae <= 0.90 * last[3].mae
    assert model[3].mae <= 0.75 * mean[3].mae
    for h in evaluation.horizons:
        assert model[h].mae < min(last[h].mae, mean[h].mae)
        assert model[h].rmse < min(last[h].rmse, mean[h].rmse)
    assert all(check.passed for check in floor_checks(evaluation))


def test_evaluate_command_prints_the_table_and_passes(
    los_loop: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["forecast", "evaluate", "--quiet", "--data", str(los_loop)]) == 0
    out = capsys.readouterr().out
    for name in (MODEL, BASELINE_LAST, BASELINE_MEAN):
        assert name in out
    assert "MAE 15m" in out
    assert "RMSE 60m" in out
    assert "10 passed, 0 failed" in out


def test_evaluate_command_names_a_missing_data_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["forecast", "evaluate", "--quiet", "--data", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
