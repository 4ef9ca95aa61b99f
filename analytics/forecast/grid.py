"""A panel of segment time series on a regular grid: the one input every forecaster takes.

Rows are time steps (5 minutes by default), columns are segments (road segments, loop
detectors). Missing observations are NaN. ``first_slot`` places row 0 in the day, so a
model can use the time of day without timestamps, and ``first_weekday`` (0 = Monday, None
when unknown) tells working days from weekends; ``neighbours`` lists, per column, the
columns of the segments that touch it (up- or downstream), the most strongly linked first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "GridError", "SeriesGrid", "neighbours_from_adjacency"]

FloatArray = npt.NDArray[np.float64]
MINUTES_PER_DAY = 24 * 60


class GridError(ValueError):
    """A grid or its inputs are malformed; the message names the field."""


def neighbours_from_adjacency(adjacency: npt.ArrayLike) -> tuple[tuple[int, ...], ...]:
    """Per column, the other columns non-zero in a square adjacency matrix, strongest first."""
    matrix = np.asarray(adjacency, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise GridError(f"adjacency: expected a square matrix, got shape {matrix.shape}")
    strength = np.maximum(np.abs(matrix), np.abs(matrix.T))
    np.fill_diagonal(strength, 0.0)
    result = []
    for row in strength:
        linked = np.flatnonzero(row)
        order = np.argsort(-row[linked], kind="stable")
        result.append(tuple(int(j) for j in linked[order]))
    return tuple(result)


@dataclass(frozen=True)
class SeriesGrid:
    """``values[t, j]``: series ``j`` at step ``t`` (NaN when missing)."""

    values: FloatArray
    ids: tuple[str, ...]
    step_minutes: int = 5
    first_slot: int = 0
    neighbours: tuple[tuple[int, ...], ...] = field(default=())
    first_weekday: int | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 2:
            raise GridError(f"values: expected 2 dimensions (steps, series), got {values.ndim}")
        if len(self.ids) != values.shape[1]:
            raise GridError(f"ids: {len(self.ids)} ids for {values.shape[1]} columns of values")
        if self.step_minutes <= 0 or MINUTES_PER_DAY % self.step_minutes:
            raise GridError(f"step_minutes: {self.step_minutes} does not divide a day")
        if not 0 <= self.first_slot < self.slots_per_day:
            raise GridError(f"first_slot: {self.first_slot} outside 0-{self.slots_per_day - 1}")
        if self.first_weekday is not None and not 0 <= self.first_weekday <= 6:
            raise GridError(f"first_weekday: {self.first_weekday} outside 0 (Monday) - 6")
        if self.neighbours and len(self.neighbours) != values.shape[1]:
            count = values.shape[1]
            raise GridError(f"neighbours: {len(self.neighbours)} lists for {count} series")
        for j, linked in enumerate(self.neighbours):
            if any(not 0 <= k < values.shape[1] or k == j for k in linked):
                raise GridError(f"neighbours[{j}]: indices must be other columns, got {linked}")
        if len(set(self.ids)) != len(self.ids):
            raise GridError("ids: duplicate series ids")
        object.__setattr__(self, "values", values)

    @property
    def steps(self) -> int:
        return int(self.values.shape[0])

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    @property
    def slots_per_day(self) -> int:
        return MINUTES_PER_DAY // self.step_minutes

    def slots(self, rows: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """The time-of-day slot (0 .. slots_per_day-1) of each row index."""
        return (np.asarray(rows, dtype=np.int64) + self.first_slot) % self.slots_per_day

    def day_kinds(self, rows: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Per row index: 1 on a Saturday or Sunday, else 0 (always 0 when weekdays are unknown)."""
        days = (np.asarray(rows, dtype=np.int64) + self.first_slot) // self.slots_per_day
        if self.first_weekday is None:
            return np.zeros_like(days)
        return ((days + self.first_weekday) % 7 >= 5).astype(np.int64)

    def head(self, steps: int) -> SeriesGrid:
        """The first ``steps`` rows (the training part of a time split)."""
        return self._rows(self.values[:steps], self.first_slot, self.first_weekday)

    def tail_from(self, start: int) -> SeriesGrid:
        """Rows from ``start`` on, with the time of day kept right."""
        weekday = None
        if self.first_weekday is not None:
            days = (start + self.first_slot) // self.slots_per_day
            weekday = (self.first_weekday + days) % 7
        return self._rows(self.values[start:], int(self.slots(start)), weekday)

    def _rows(self, values: FloatArray, first_slot: int, weekday: int | None) -> SeriesGrid:
        return SeriesGrid(values, self.ids, self.step_minutes, first_slot, self.neighbours, weekday)
