"""Time-of-day profiles: each series' typical value at each slot of the day, from training rows.

Working days and weekends get separate profiles when the grid knows its weekdays (a Tuesday
evening peak is not a Sunday's); a kind of day without training data falls back to the other,
and a slot without data to the series' training mean. Profiles are smoothed over neighbouring
slots (sums and counts separately, so sparse series are weighted by what they have).

For the training rows themselves :meth:`DailyProfile.loo` leaves the row's own day out: a model
fitted on profile features that contain its own target would learn to trust the profile more
than it deserves on unseen days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.forecast.grid import FloatArray, SeriesGrid
from analytics.forecast.windows import IntArray

__all__ = ["DAY_KINDS", "DailyProfile"]

DAY_KINDS = 2  # 0 working day, 1 weekend


def _circular_window_sum(per_slot: FloatArray, half_width: int) -> FloatArray:
    """Sum over slots ``s - half_width .. s + half_width`` (wrapping round midnight)."""
    total = np.zeros_like(per_slot)
    for shift in range(-half_width, half_width + 1):
        total += np.roll(per_slot, shift, axis=-2)
    return total


def _window_sum(values: FloatArray, half_width: int) -> FloatArray:
    """Sum over rows ``r - half_width .. r + half_width`` (clipped at the ends), per column."""
    padded = np.pad(values, ((half_width + 1, half_width), (0, 0)))
    cumulative = np.cumsum(padded, axis=0)
    width = 2 * half_width + 1
    return cumulative[width:] - cumulative[:-width]


@dataclass(frozen=True)
class DailyProfile:
    """Per kind of day, slot and series: smoothed sums and counts of the training values."""

    sums: FloatArray  # (DAY_KINDS, slots_per_day, series)
    counts: FloatArray
    fallback: FloatArray  # (series,): the training mean, where a slot has no data
    half_width: int
    train: SeriesGrid

    @classmethod
    def fit(cls, train: SeriesGrid, half_width: int = 1) -> DailyProfile:
        """Profiles of every series of ``train`` (smoothed over ``2*half_width+1`` slots)."""
        present = ~np.isnan(train.values)
        filled = np.where(present, train.values, 0.0)
        rows = np.arange(train.steps)
        slots, kinds = train.slots(rows), train.day_kinds(rows)
        sums = np.zeros((DAY_KINDS, train.slots_per_day, train.width))
        counts = np.zeros_like(sums)
        np.add.at(sums, (kinds, slots), filled)
        np.add.at(counts, (kinds, slots), present.astype(np.float64))
        total = present.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            fallback = np.where(total > 0, filled.sum(axis=0) / np.maximum(total, 1), np.nan)
        sums = _circular_window_sum(sums, half_width)
        counts = _circular_window_sum(counts, half_width)
        # A kind of day never seen in training borrows the other kind's profile.
        for kind in range(DAY_KINDS):
            if not counts[kind].any():
                sums[kind], counts[kind] = sums.sum(axis=0), counts.sum(axis=0)
        return cls(sums, counts, fallback, half_width, train)

    def at(self, slots: IntArray, kinds: IntArray) -> FloatArray:
        """``(len(slots), series)``: the profile at each (slot, kind of day)."""
        return self._ratio(self.sums[kinds, slots], self.counts[kinds, slots])

    def loo(self, rows: IntArray) -> FloatArray:
        """``(len(rows), series)``: the profile at training rows, leaving each row's day out."""
        values = self.train.values
        present = ~np.isnan(values)
        all_kinds = self.train.day_kinds(np.arange(self.train.steps))
        slots, kinds = self.train.slots(rows), self.train.day_kinds(rows)
        own_sums = np.zeros((len(rows), self.train.width))
        own_counts = np.zeros_like(own_sums)
        for kind in range(DAY_KINDS):
            same = present & (all_kinds == kind)[:, None]
            pick = kinds == kind
            own_sums[pick] = _window_sum(np.where(same, values, 0.0), self.half_width)[rows[pick]]
            own_counts[pick] = _window_sum(same.astype(np.float64), self.half_width)[rows[pick]]
        return self._ratio(
            self.sums[kinds, slots] - own_sums, self.counts[kinds, slots] - own_counts
        )

    def _ratio(self, sums: FloatArray, counts: FloatArray) -> FloatArray:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0.5, sums / np.maximum(counts, 1.0), np.nan)
        return np.where(np.isnan(mean), self.fallback[None, :], mean)
