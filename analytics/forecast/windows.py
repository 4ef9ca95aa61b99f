"""Sliding windows over a grid: the input/target layout of the evaluation protocol.

A window is named by its *end*: the index ``t`` of its last input step. Its inputs are rows
``t - input_steps + 1 .. t`` and its target for horizon ``h`` is row ``t + h``. A forecaster
sees only the inputs (and the time of day of ``t``), so it cannot look ahead by construction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from analytics.forecast.grid import FloatArray, GridError

__all__ = ["IntArray", "check_horizons", "input_windows", "targets", "time_split", "window_ends"]

IntArray = npt.NDArray[np.int64]


def time_split(steps: int, train_fraction: float = 0.8) -> int:
    """How many leading rows form the training part (the rest is the test part)."""
    if not 0 < train_fraction < 1:
        raise GridError(f"train_fraction: {train_fraction} must be strictly between 0 and 1")
    return int(steps * train_fraction)


def check_horizons(horizons: Sequence[int]) -> tuple[int, ...]:
    """Horizons as a tuple of distinct positive step counts, in increasing order."""
    result = tuple(sorted(set(int(h) for h in horizons)))
    if not result or result[0] < 1 or len(result) != len(horizons):
        raise GridError(f"horizons: expected distinct positive step counts, got {list(horizons)}")
    return result


def window_ends(steps: int, input_steps: int, max_horizon: int) -> IntArray:
    """Every end ``t`` whose inputs and targets up to ``max_horizon`` lie within ``steps`` rows."""
    if input_steps < 1:
        raise GridError(f"input_steps: {input_steps} must be >= 1")
    last = steps - 1 - max_horizon
    first = input_steps - 1
    return np.arange(first, max(first, last + 1), dtype=np.int64)


def input_windows(values: FloatArray, ends: IntArray, input_steps: int) -> FloatArray:
    """``(windows, input_steps, series)``: the inputs of each window, oldest step first."""
    if ends.size and (ends.min() < input_steps - 1 or ends.max() >= values.shape[0]):
        raise GridError(
            f"ends: windows must end at rows {input_steps - 1}..{values.shape[0] - 1}, "
            f"got {ends.min()}..{ends.max()}"
        )
    offsets = np.arange(-input_steps + 1, 1, dtype=np.int64)
    windows: FloatArray = values[ends[:, None] + offsets[None, :]]
    return windows


def targets(values: FloatArray, ends: IntArray, horizons: Sequence[int]) -> FloatArray:
    """``(windows, series, horizons)``: the true value ``h`` steps after each window's end."""
    rows = ends[:, None] + np.asarray(horizons, dtype=np.int64)[None, :]
    return np.moveaxis(values[rows], 1, 2)
