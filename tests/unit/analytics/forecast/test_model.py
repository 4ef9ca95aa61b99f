"""The lag-ridge model on synthetic traffic: a daily cycle, a travelling slowdown, noise."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.forecast.evaluation import BASELINE_LAST, BASELINE_MEAN, MODEL, evaluate
from analytics.forecast.grid import GridError, SeriesGrid
from analytics.forecast.ridge import LagRidgeForecaster, RidgeConfig
from analytics.forecast.windows import input_windows


def periodic_grid(days: int = 7, series: int = 6, seed: int = 5) -> SeriesGrid:
    """Speeds around 60 with a rush-hour dip, AR(1) noise and a dip passed down a chain."""
    rng = np.random.default_rng(seed)
    steps = days * 288
    slot = np.arange(steps) % 288
    daily = (
        60 - 20 * np.exp(-(((slot - 100) / 15.0) ** 2)) - 15 * np.exp(-(((slot - 210) / 20.0) ** 2))
    )
    values = np.empty((steps, series))
    for j in range(series):
        noise = np.zeros(steps)
        for t in range(1, steps):
            noise[t] = 0.9 * noise[t - 1] + rng.normal(0, 1.5)
        values[:, j] = daily + noise + rng.normal(0, 1.0, steps)
    # Series j-1 sees a slowdown 2 steps before series j (a queue travelling upstream).
    for start in rng.integers(0, steps - 40, size=days * 3):
        for j in range(series):
            values[start + 2 * j : start + 2 * j + 12, j] -= 15
    neighbours = tuple(tuple(k for k in (j - 1, j + 1) if 0 <= k < series) for j in range(series))
    return SeriesGrid(values, tuple(f"s{j}" for j in range(series)), neighbours=neighbours)


def test_model_beats_both_baselines_at_every_horizon() -> None:
    evaluation = evaluate(periodic_grid(), (3, 6, 9, 12))
    for h in evaluation.horizons:
        model = evaluation.scores[MODEL][h]
        for name in (BASELINE_LAST, BASELINE_MEAN):
            assert model.mae < evaluation.scores[name][h].mae, (h, name)
            assert model.rmse < evaluation.scores[name][h].rmse, (h, name)
    ratio = evaluation.scores[MODEL][3].mae / evaluation.scores[BASELINE_LAST][3].mae
    assert ratio < 0.9


def test_fit_uses_only_the_rows_it_is_given() -> None:
    grid = periodic_grid(days=3)
    train = grid.head(600)
    changed = grid.values.copy()
    changed[600:] += 50.0
    model_a = LagRidgeForecaster.fit(train, (3,))
    model_b = LagRidgeForecaster.fit(
        SeriesGrid(changed, grid.ids, neighbours=grid.neighbours).head(600), (3,)
    )
    assert np.array_equal(model_a.coefficients[3], model_b.coefficients[3])


def test_predict_marks_unfitted_series_and_empty_windows() -> None:
    grid = periodic_grid(days=2, series=3)
    values = grid.values.copy()
    values[:, 2] = np.nan
    values[-200:, 2] = 50.0  # too few complete windows with min_windows = 400
    sparse = SeriesGrid(values, grid.ids, neighbours=grid.neighbours)
    model = LagRidgeForecaster.fit(sparse, (3, 6), RidgeConfig(min_windows=400))
    assert model.fitted.tolist() == [True, True, False]
    ends = np.array([300, 301])
    inputs = input_windows(values, ends, 12)
    inputs[1, :, 0] = np.nan
    predicted = model.predict(inputs, sparse, ends, (3, 6))
    assert np.isfinite(predicted[0, :2]).all()
    assert np.isnan(predicted[:, 2]).all()
    assert np.isnan(predicted[1, 0]).all()
    with pytest.raises(GridError, match="horizons"):
        model.predict(inputs, sparse, ends, (12,))
    with pytest.raises(GridError, match="inputs"):
        model.predict(inputs[:, :6], sparse, ends, (3,))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"input_steps": 1}, "input_steps"),
        ({"min_windows": 0}, "min_windows"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(GridError, match=field):
        RidgeConfig(**kwargs)  # type: ignore[arg-type]
