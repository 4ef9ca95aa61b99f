"""The Los-loop evaluation protocol (T-GCN): time split, sliding windows, MAE and RMSE.

- Split by time: the first 80% of rows train, the last 20% test; no shuffling.
- Windows of 12 input steps; horizons 3, 6, 9 and 12 steps (15/30/45/60 minutes).
- Test windows lie wholly inside the test part (inputs and every horizon's target), so all
  horizons are scored on the same windows; the model is fitted on training windows only.
- MAE and RMSE over every test window and series (NaN targets skipped), in the data's unit.
- Baselines in the same run: last value and mean of the input window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.forecast.baselines import last_value, window_mean
from analytics.forecast.grid import FloatArray, GridError, SeriesGrid
from analytics.forecast.ridge import LagRidgeForecaster, ProgressCallback, RidgeConfig
from analytics.forecast.windows import (
    check_horizons,
    input_windows,
    targets,
    time_split,
    window_ends,
)

__all__ = [
    "BASELINE_LAST",
    "BASELINE_MEAN",
    "MODEL",
    "Evaluation",
    "FloorCheck",
    "Score",
    "evaluate",
    "floor_checks",
    "score",
]

MODEL = "lag-ridge"
BASELINE_LAST = "last value"
BASELINE_MEAN = "window mean"
DEFAULT_HORIZONS = (3, 6, 9, 12)


@dataclass(frozen=True)
class Score:
    """Errors of one method at one horizon, over ``count`` (window, series) pairs."""

    mae: float
    rmse: float
    count: int


def score(predicted: FloatArray, actual: FloatArray) -> Score:
    """MAE and RMSE over the pairs where both are numbers."""
    both = ~np.isnan(predicted) & ~np.isnan(actual)
    if not both.any():
        raise GridError("no (prediction, target) pair to score")
    error = predicted[both] - actual[both]
    return Score(float(np.abs(error).mean()), float(np.sqrt((error**2).mean())), int(both.sum()))


@dataclass(frozen=True)
class Evaluation:
    """Scores per method and horizon (in steps), plus what the run was made of."""

    horizons: tuple[int, ...]
    step_minutes: int
    scores: dict[str, dict[int, Score]]
    train_steps: int
    test_windows: int
    series: int


def evaluate(
    grid: SeriesGrid,
    horizons: Sequence[int] = DEFAULT_HORIZONS,
    *,
    config: RidgeConfig | None = None,
    train_fraction: float = 0.8,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Fit the model on the training part and score it and both baselines on the test part."""
    config = config or RidgeConfig()
    chosen = check_horizons(horizons)
    train_steps = time_split(grid.steps, train_fraction)
    test = grid.values[train_steps:]
    ends = window_ends(test.shape[0], config.input_steps, chosen[-1])
    if ends.size == 0:
        raise GridError(
            f"values: the test part ({test.shape[0]} steps) is too short for "
            f"{config.input_steps} inputs and a horizon of {chosen[-1]}"
        )
    model = LagRidgeForecaster.fit(grid.head(train_steps), chosen, config, progress)
    inputs = input_windows(test, ends, config.input_steps)
    actual = targets(test, ends, chosen)
    predictions = {
        MODEL: model.predict(inputs, grid, ends + train_steps, chosen),
        BASELINE_LAST: last_value(inputs, chosen),
        BASELINE_MEAN: window_mean(inputs, chosen),
    }
    scores = {
        name: {h: score(p[:, :, i], actual[:, :, i]) for i, h in enumerate(chosen)}
        for name, p in predictions.items()
    }
    return Evaluation(chosen, grid.step_minutes, scores, train_steps, int(ends.size), grid.width)


@dataclass(frozen=True)
class FloorCheck:
    """One acceptance floor: ``ratio`` (model / baseline) must be at most ``limit``."""

    description: str
    ratio: float
    limit: float

    @property
    def passed(self) -> bool:
        return self.ratio <= self.limit


def floor_checks(evaluation: Evaluation) -> list[FloorCheck]:
    """Issue 5's floors: first-horizon MAE 10% below last value and 25% below window mean,
    and a lower MAE and RMSE than both baselines at every horizon (ratio < 1)."""
    first = evaluation.horizons[0]
    minutes = first * evaluation.step_minutes
    model = evaluation.scores[MODEL]
    checks = [
        FloorCheck(
            f"{minutes}-min MAE vs {name}",
            model[first].mae / evaluation.scores[name][first].mae,
            limit,
        )
        for name, limit in ((BASELINE_LAST, 0.90), (BASELINE_MEAN, 0.75))
    ]
    for h in evaluation.horizons:
        for name in (BASELINE_LAST, BASELINE_MEAN):
            base = evaluation.scores[name][h]
            worst = max(model[h].mae / base.mae, model[h].rmse / base.rmse)
            checks.append(
                FloorCheck(
                    f"{h * evaluation.step_minutes}-min MAE and RMSE below {name}",
                    worst,
                    1.0 - 1e-12,
                )
            )
    return checks
