"""The evaluation protocol on tiny series whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.forecast.baselines import last_value, window_mean
from analytics.forecast.evaluation import (
    BASELINE_LAST,
    BASELINE_MEAN,
    MODEL,
    evaluate,
    floor_checks,
    score,
)
from analytics.forecast.grid import GridError, SeriesGrid
from analytics.forecast.windows import (
    check_horizons,
    input_windows,
    targets,
    time_split,
    window_ends,
)


def test_time_split_keeps_the_first_80_percent_for_training() -> None:
    assert time_split(10) == 8
    assert time_split(2016) == 1612
    with pytest.raises(GridError, match="train_fraction"):
        time_split(10, 1.0)


def test_window_ends_keep_inputs_and_every_target_inside() -> None:
    # 10 rows, 3 inputs, horizons up to 2: the first end is row 2 (inputs 0-2), the last is
    # row 7 (target 9 = the last row).
    assert window_ends(10, 3, 2).tolist() == [2, 3, 4, 5, 6, 7]
    assert window_ends(4, 3, 2).tolist() == []


def test_windows_and_targets_are_the_right_rows() -> None:
    values = np.arange(20, dtype=np.float64).reshape(10, 2)  # row t = (2t, 2t+1)
    ends = np.array([2, 5])
    inputs = input_windows(values, ends, 3)
    assert inputs.shape == (2, 3, 2)
    assert inputs[0, :, 0].tolist() == [0, 2, 4]
    assert inputs[1, :, 1].tolist() == [7, 9, 11]
    with pytest.raises(GridError, match="ends"):
        input_windows(values, np.array([1]), 3)  # would wrap round to the last rows
    truth = targets(values, ends, (1, 3))
    assert truth.shape == (2, 2, 2)  # (windows, series, horizons)
    assert truth[0, 0].tolist() == [6, 10]
    assert truth[1, 1].tolist() == [13, 17]


def test_baselines_by_hand() -> None:
    inputs = np.array([[[1.0], [2.0], [6.0]], [[1.0], [np.nan], [5.0]]])
    assert last_value(inputs, (1, 2))[:, 0].tolist() == [[6, 6], [5, 5]]
    assert window_mean(inputs, (1, 2))[:, 0].tolist() == [[3, 3], [3, 3]]


def test_score_by_hand_skips_missing_targets() -> None:
    result = score(np.array([1.0, 2.0, 7.0]), np.array([2.0, 4.0, np.nan]))
    assert result.mae == pytest.approx(1.5)
    assert result.rmse == pytest.approx(math.sqrt(2.5))
    assert result.count == 2


def test_horizons_are_checked() -> None:
    assert check_horizons([6, 3]) == (3, 6)
    with pytest.raises(GridError, match="horizons"):
        check_horizons([0, 3])
    with pytest.raises(GridError, match="horizons"):
        check_horizons([3, 3])


def test_evaluate_on_a_ramp() -> None:
    """x_t = t: last value is off by h, the 12-step window mean by h + 5.5, both exactly."""
    values = np.arange(200, dtype=np.float64)[:, None]
    grid = SeriesGrid(values, ("ramp",))
    evaluation = evaluate(grid, (1, 2))
    assert evaluation.train_steps == 160
    # 40 test rows, 12 inputs, horizon 2: ends 11 .. 37 of the test part.
    assert evaluation.test_windows == 27
    for h in (1, 2):
        assert evaluation.scores[BASELINE_LAST][h].mae == pytest.approx(h)
        assert evaluation.scores[BASELINE_LAST][h].rmse == pytest.approx(h)
        assert evaluation.scores[BASELINE_MEAN][h].mae == pytest.approx(h + 5.5)
        assert evaluation.scores[MODEL][h].mae < 0.05  # a constant change: learnt exactly
        assert evaluation.scores[MODEL][h].count == 27
    assert all(check.passed for check in floor_checks(evaluation))


def test_evaluate_refuses_a_test_part_too_short() -> None:
    grid = SeriesGrid(np.ones((40, 1)), ("short",))
    with pytest.raises(GridError, match="too short"):
        evaluate(grid, (3, 6))
