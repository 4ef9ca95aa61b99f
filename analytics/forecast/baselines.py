"""The two baselines every model must beat: last value (persistence) and window mean."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analytics.forecast.grid import FloatArray

__all__ = ["last_value", "window_mean"]


def last_value(inputs: FloatArray, horizons: Sequence[int]) -> FloatArray:
    """``(windows, series, horizons)``: each window's last input, for every horizon."""
    last = inputs[:, -1, :]
    return np.repeat(last[:, :, None], len(horizons), axis=2)


def window_mean(inputs: FloatArray, horizons: Sequence[int]) -> FloatArray:
    """``(windows, series, horizons)``: the mean of each window's inputs (NaNs ignored)."""
    counts = np.sum(~np.isnan(inputs), axis=1)
    sums = np.nansum(inputs, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return np.repeat(mean[:, :, None], len(horizons), axis=2)
