"""The lag-ridge forecaster: one ridge regression per series and horizon.

Each series gets its own coefficients (roads differ: a motorway recovers from a dip unlike an
arterial), fitted on the training rows only, on the features of :mod:`features`, to predict
the *change* ``x[t+h] - x[t]``. Columns are standardised per series and the penalty scales
with the number of windows, so ``alpha`` means the same for a long and a short history.

The loss is absolute error, not squared: speeds jump (an incident, a queue reaching the
detector) and a least-squares fit bends towards those few jumps at the expense of the many
ordinary steps. Iteratively reweighted least squares (weights ``1 / max(|residual|, floor)``)
turns the ridge into a penalised median regression in a few closed-form solves, batched over
series: seconds on a CPU for hundreds of series.

The penalty does not pull coefficients towards zero (persistence) but towards one pooled fit
over the series solved together (up to :data:`SERIES_PER_SOLVE`, in column order): a few days
of one noisy detector are a weak basis for 39 coefficients, the same days of 64 are not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analytics.forecast.features import design, fill_window_gaps, nearest, neighbour_mean
from analytics.forecast.grid import FloatArray, GridError, SeriesGrid
from analytics.forecast.profile import DailyProfile
from analytics.forecast.windows import (
    IntArray,
    check_horizons,
    input_windows,
    window_ends,
)

__all__ = ["SERIES_PER_SOLVE", "LagRidgeForecaster", "ProgressCallback", "RidgeConfig"]

SERIES_PER_SOLVE = 64  # series per batched solve: bounds the design matrix's memory
POOLED_ALPHA = 1e-3  # the pooled fit has data enough: barely penalised

ProgressCallback = Callable[[int, int, str], None]
"""Called as ``(done, total, what)`` while fitting."""


@dataclass(frozen=True)
class RidgeConfig:
    """Knobs of the lag-ridge model (defaults chosen on Los-loop's training part)."""

    input_steps: int = 12
    alpha: float = 0.1  # pull of each series towards the pooled coefficients
    profile_half_width: int = 4
    top_neighbours: int = 4  # nearest neighbours also taken one by one
    min_windows: int = 48  # fewer complete training windows: the series is not fitted
    max_windows: int = 4032  # only the most recent (two weeks of 5 minutes): bounded memory
    robust_iterations: int = 8  # IRLS rounds towards absolute-error loss; 0 = least squares
    robust_floor: float = 2.0  # residuals below this (data units) weigh as if this large

    def __post_init__(self) -> None:
        if self.input_steps < 2:
            raise GridError(f"input_steps: {self.input_steps} must be >= 2")
        if not self.alpha > 0:
            raise GridError(f"alpha: {self.alpha} must be > 0")
        if self.robust_iterations < 0:
            raise GridError(f"robust_iterations: {self.robust_iterations} must be >= 0")
        if not self.robust_floor > 0:
            raise GridError(f"robust_floor: {self.robust_floor} must be > 0")
        if self.max_windows < self.min_windows:
            raise GridError(f"max_windows: {self.max_windows} must be >= min_windows")
        if self.top_neighbours < 0:
            raise GridError(f"top_neighbours: {self.top_neighbours} must be >= 0")
        if self.min_windows < 1:
            raise GridError(f"min_windows: {self.min_windows} must be >= 1")


@dataclass(frozen=True)
class _Inputs:
    filled: FloatArray
    neighbours: FloatArray
    nearest: FloatArray
    empty: np.ndarray  # (windows, series): no input at all


def _prepare(inputs: FloatArray, neighbours: tuple[tuple[int, ...], ...], top: int) -> _Inputs:
    if not neighbours:
        neighbours = ((),) * inputs.shape[2]
    filled = fill_window_gaps(inputs)
    near = nearest(filled, neighbours, top)
    return _Inputs(
        filled,
        fill_window_gaps(neighbour_mean(inputs, neighbours)),
        near,
        np.asarray(np.isnan(inputs).all(axis=1)),
    )


@dataclass(frozen=True)
class LagRidgeForecaster:
    """A fitted model: coefficients per horizon ``(series, features)`` plus its scaling."""

    config: RidgeConfig
    horizons: tuple[int, ...]
    profile: DailyProfile
    neighbours: tuple[tuple[int, ...], ...]
    coefficients: dict[int, FloatArray]
    centres: dict[int, FloatArray]
    scales: dict[int, FloatArray]
    fitted: np.ndarray  # (series,) bool: enough training windows for every horizon

    @classmethod
    def fit(
        cls,
        train: SeriesGrid,
        horizons: Sequence[int],
        config: RidgeConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> LagRidgeForecaster:
        """Fit on every window of ``train`` (the training part only)."""
        config = config or RidgeConfig()
        chosen = check_horizons(horizons)
        profile = DailyProfile.fit(train, config.profile_half_width)
        ends = window_ends(train.steps, config.input_steps, chosen[-1])[-config.max_windows :]
        raw = input_windows(train.values, ends, config.input_steps)
        prepared = _prepare(raw, train.neighbours, config.top_neighbours)
        profile_now = profile.loo(ends)
        coefficients: dict[int, FloatArray] = {}
        centres: dict[int, FloatArray] = {}
        scales: dict[int, FloatArray] = {}
        fitted = np.ones(train.width, dtype=bool)
        chunks = range(0, train.width, SERIES_PER_SOLVE)
        total = len(chosen) * len(chunks)
        for i, h in enumerate(chosen):
            profile_target = profile.loo(ends + h)
            change = train.values[ends + h] - prepared.filled[:, -1, :]  # (windows, series)
            parts: list[tuple[FloatArray, FloatArray, FloatArray]] = []
            for k, lo in enumerate(chunks):
                if progress is not None:
                    progress(i * len(chunks) + k, total, f"fitting horizon {h}")
                cols = slice(lo, lo + SERIES_PER_SOLVE)
                x = design(
                    prepared.filled[:, :, cols],
                    prepared.neighbours[:, :, cols],
                    prepared.nearest[:, :, cols],
                    profile_now[:, cols],
                    profile_target[:, cols],
                    profile.fallback[cols],
                )
                y = change[:, cols].T  # (series, windows)
                valid = ~np.isnan(y) & ~np.isnan(x).any(axis=2) & ~prepared.empty[:, cols].T
                parts.append(_robust_ridge(x, y, valid, config))
                fitted[cols] &= valid.sum(axis=1) >= config.min_windows
            coefficients[h] = np.concatenate([p[0] for p in parts])
            centres[h] = np.concatenate([p[1] for p in parts])
            scales[h] = np.concatenate([p[2] for p in parts])
        if progress is not None:
            progress(total, total, "fitted")
        return cls(config, chosen, profile, train.neighbours, coefficients, centres, scales, fitted)

    def predict(
        self, inputs: FloatArray, timeline: SeriesGrid, ends: IntArray, horizons: Sequence[int]
    ) -> FloatArray:
        """``(windows, series, horizons)`` from ``(windows, input_steps, series)`` inputs.

        ``ends``: the row of each window's last input on ``timeline``, a grid used only for
        its clock (time of day and weekday of a row; rows past its end are fine). NaN for
        series that were not fitted and windows with no input at all.
        """
        if inputs.ndim != 3 or inputs.shape[1] != self.config.input_steps:
            raise GridError(
                f"inputs: expected (windows, {self.config.input_steps}, series), got {inputs.shape}"
            )
        missing = [h for h in horizons if h not in self.coefficients]
        if missing:
            raise GridError(f"horizons: {missing} were not fitted (fitted: {list(self.horizons)})")
        prepared = _prepare(inputs, self.neighbours, self.config.top_neighbours)
        ends = np.asarray(ends, dtype=np.int64)
        profile_now = self.profile.at(timeline.slots(ends), timeline.day_kinds(ends))
        last = prepared.filled[:, -1, :]
        result = np.empty((inputs.shape[0], inputs.shape[2], len(horizons)))
        for i, h in enumerate(horizons):
            x = design(
                prepared.filled,
                prepared.neighbours,
                prepared.nearest,
                profile_now,
                self.profile.at(timeline.slots(ends + h), timeline.day_kinds(ends + h)),
                self.profile.fallback,
            )
            z = (x - self.centres[h][:, None, :]) / self.scales[h][:, None, :]
            change = np.einsum("swf,sf->ws", z, self.coefficients[h])
            result[:, :, i] = last + change
        result[:, ~self.fitted, :] = np.nan
        result[prepared.empty] = np.nan
        return result


def _robust_ridge(
    x: FloatArray, y: FloatArray, valid: np.ndarray, config: RidgeConfig
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per series: standardise the non-constant columns, then IRLS on the ridge equations,
    the penalty pulling each series' coefficients towards the batch's pooled ones.

    ``x``: (series, windows, features) whose last column is the constant; ``y``: (series,
    windows); ``valid``: (series, windows). The constant column is left unpenalised.
    Returns coefficients, column centres and scales, each (series, features).
    """
    mask = valid.astype(np.float64)
    x = np.where(valid[:, :, None], x, 0.0)
    y = np.where(valid, y, 0.0)
    n = np.maximum(mask.sum(axis=1, keepdims=True), 1.0)  # (series, 1)
    centre = (x * mask[:, :, None]).sum(axis=1) / n
    spread = np.sqrt((((x - centre[:, None, :]) * mask[:, :, None]) ** 2).sum(axis=1) / n)
    centre[:, -1] = 0.0
    spread[:, -1] = 1.0
    scale = np.where(spread > 1e-9, spread, 1.0)
    z = (x - centre[:, None, :]) / scale[:, None, :] * mask[:, :, None]
    eye = np.eye(x.shape[2])
    penalty = config.alpha * n[:, :, None] * eye[None, :, :]
    penalty[:, -1, -1] = 1e-9 * n[:, 0]
    weight = mask
    beta = np.zeros((x.shape[0], x.shape[2]))
    for _ in range(config.robust_iterations + 1):
        weighted = z * weight[:, :, None]
        gram = np.matmul(weighted.transpose(0, 2, 1), z)  # batched BLAS, unlike einsum
        rhs = np.matmul(weighted.transpose(0, 2, 1), y[:, :, None])[:, :, 0]
        # The prior: one set of coefficients for every series of the batch (penalised lightly),
        # so a series' own fit departs from what roads in general do only as its data insists.
        pooled = np.linalg.solve(
            gram.sum(axis=0) + POOLED_ALPHA * float(n.sum()) * eye, rhs.sum(axis=0)
        )
        pooled[-1] = 0.0  # each series keeps its own constant
        prior = np.matmul(penalty, np.broadcast_to(pooled, rhs.shape)[:, :, None])[:, :, 0]
        beta = np.linalg.solve(gram + penalty, (rhs + prior)[:, :, None])[:, :, 0]
        residual = np.abs(y - np.matmul(z, beta[:, :, None])[:, :, 0])
        weight = mask / np.maximum(residual, config.robust_floor)
        # Keep the weights' total at the window count, so alpha keeps its meaning.
        weight *= n / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    return beta, centre, scale
