"""The design matrix of the lag-ridge model, for many windows and all series at once.

For series ``j`` and a window ending at ``t`` (inputs ``x[t-L+1..t]``), horizon ``h``:

- level: ``x[t]`` minus the series' training mean (lets the model pull back towards normal);
- own lags: ``x[t-k] - x[t]`` for ``k = 1 .. L-1`` (the recent trend and its shape);
- neighbours: the mean of the neighbouring series at ``t-k`` minus ``x[t]``, ``k = 0 .. L-1``
  (congestion travels along the road), 0 where no neighbour has data;
- the closest neighbours one by one (``top`` of them, most strongly linked first), their last
  ``NEAR_LAGS`` steps minus ``x[t]``: the mean blurs upstream and downstream together;
- profile: the time-of-day profile at ``t + h`` and at ``t``, each minus ``x[t]`` (how the
  day usually goes from here);
- a constant.

Gaps inside a window are filled from the nearest earlier (else later) input, so one
missing bucket does not throw the window away; a window with no input at all gives NaN rows.
Every feature is relative to the series' own level, so one set of coefficients per series
does not have to learn its absolute speed.
"""

from __future__ import annotations

import numpy as np

from analytics.forecast.grid import FloatArray

__all__ = ["NEAR_LAGS", "design", "feature_count", "fill_window_gaps", "nearest", "neighbour_mean"]


NEAR_LAGS = 3


def feature_count(input_steps: int, top: int) -> int:
    """How many columns :func:`design` produces for ``input_steps`` inputs."""
    return 1 + (input_steps - 1) + input_steps + top * NEAR_LAGS + 2 + 1


def nearest(inputs: FloatArray, neighbours: tuple[tuple[int, ...], ...], top: int) -> FloatArray:
    """``(windows, NEAR_LAGS, series, top)``: the last steps of each series' ``top`` nearest
    neighbours (NaN where a series has fewer)."""
    windows, _, width = inputs.shape
    result = np.full((windows, NEAR_LAGS, width, top), np.nan)
    recent = inputs[:, -NEAR_LAGS:, :]
    for j, linked in enumerate(neighbours):
        chosen = list(linked[:top])
        if chosen:
            result[:, :, j, : len(chosen)] = recent[:, :, chosen]
    return result


def fill_window_gaps(inputs: FloatArray) -> FloatArray:
    """Forward-fill NaNs along each window's time axis, then back-fill the leading ones."""
    filled = inputs.copy()
    for k in range(1, filled.shape[1]):
        gap = np.isnan(filled[:, k])
        filled[:, k][gap] = filled[:, k - 1][gap]
    for k in range(filled.shape[1] - 2, -1, -1):
        gap = np.isnan(filled[:, k])
        filled[:, k][gap] = filled[:, k + 1][gap]
    return filled


def neighbour_mean(inputs: FloatArray, neighbours: tuple[tuple[int, ...], ...]) -> FloatArray:
    """``(windows, steps, series)``: the mean over each series' neighbours (NaN if none)."""
    result = np.full_like(inputs, np.nan)
    present = ~np.isnan(inputs)
    filled = np.where(present, inputs, 0.0)
    for j, linked in enumerate(neighbours):
        if not linked:
            continue
        index = list(linked)
        count = present[:, :, index].sum(axis=2)
        total = filled[:, :, index].sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            result[:, :, j] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return result


def design(
    inputs: FloatArray,
    neighbours_mean: FloatArray,
    nearest_recent: FloatArray,
    profile_now: FloatArray,
    profile_target: FloatArray,
    level_mean: FloatArray,
) -> FloatArray:
    """``(series, windows, features)`` for one horizon.

    ``inputs`` and ``neighbours_mean``: ``(windows, steps, series)``, gaps already filled;
    ``nearest_recent``: from :func:`nearest` (gaps filled);
    ``profile_now`` / ``profile_target``: ``(windows, series)``; ``level_mean``: ``(series,)``.
    """
    windows, steps, width = inputs.shape
    last = inputs[:, -1, :]
    columns = [last - level_mean[None, :]]
    columns += [inputs[:, -1 - k, :] - last for k in range(1, steps)]
    nbr = np.where(np.isnan(neighbours_mean), last[:, None, :], neighbours_mean)
    columns += [nbr[:, -1 - k, :] - last for k in range(steps)]
    near = np.where(np.isnan(nearest_recent), last[:, None, :, None], nearest_recent)
    for n in range(near.shape[3]):
        columns += [near[:, -1 - k, :, n] - last for k in range(near.shape[1])]
    columns += [profile_target - last, profile_now - last, np.ones((windows, width))]
    stacked = np.stack(columns, axis=2)  # (windows, series, features)
    return np.ascontiguousarray(np.moveaxis(stacked, 1, 0))
