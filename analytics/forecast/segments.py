"""Speed and flow forecasts for RoadLedger's own road segments, from 5-minute aggregates.

Input: rows of ``segment_speed_5m`` (bucket, segment, mean speed, distinct vehicles) over a
history window ending at the issue time. Two grids are built, one row per 5-minute bucket:
speed in km/h (NaN where a bucket had no sample) and flow in vehicles per 5 minutes (0 where a
bucket had none: no matched vehicle means no traffic seen). The lag-ridge model is fitted on
the whole history and predicts from the last 12 buckets.

Each forecast says which method produced it, since short or gappy histories cannot feed the
model (see :data:`METHODS`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from analytics.forecast.baselines import window_mean
from analytics.forecast.grid import FloatArray, GridError, SeriesGrid
from analytics.forecast.profile import DailyProfile
from analytics.forecast.ridge import LagRidgeForecaster, ProgressCallback, RidgeConfig
from analytics.forecast.windows import input_windows, window_ends

__all__ = [
    "DEFAULT_HORIZONS_MIN",
    "METHODS",
    "STEP",
    "AggregateRow",
    "SegmentForecast",
    "forecast_segments",
    "series_grids",
]

STEP = timedelta(minutes=5)
DEFAULT_HORIZONS_MIN = (15, 30, 60)
CMS_TO_KMH = 0.036

METHOD_MODEL = "lag-ridge"
METHOD_WINDOW_MEAN = "window-mean"
METHOD_PROFILE = "profile"
METHODS: Mapping[str, str] = {
    METHOD_MODEL: "the lag-ridge model (enough complete training windows, recent data)",
    METHOD_WINDOW_MEAN: "mean of the last hour's buckets (too little history for the model)",
    METHOD_PROFILE: "time-of-day mean of the history, else the segment's mean (no data in "
    "the last hour)",
}


@dataclass(frozen=True)
class AggregateRow:
    """One ``segment_speed_5m`` row: a segment's bucket."""

    bucket: datetime
    segment_id: int
    avg_spd_cms: float | None
    vehicles: int


@dataclass(frozen=True)
class SegmentForecast:
    """Speed (km/h) and flow (vehicles per 5 minutes) of one segment's target bucket."""

    segment_id: int
    horizon_min: int
    target_at: datetime  # start of the predicted bucket (same boundaries as segment_speed_5m)
    speed_kmh: float | None
    flow_vehicles: float
    speed_method: str
    flow_method: str


def series_grids(
    rows: Iterable[AggregateRow],
    start: datetime,
    issued_at: datetime,
    neighbours: Mapping[int, Sequence[int]],
) -> tuple[SeriesGrid, SeriesGrid]:
    """The speed (km/h) and flow grids of buckets ``start <= bucket < issued_at``."""
    if start.tzinfo is None or issued_at.tzinfo is None:
        raise GridError("start/issued_at: timezone-aware datetimes required")
    if (issued_at - start) % STEP or issued_at <= start:
        raise GridError(f"start: {start} must be a whole number of 5 minutes before issued_at")
    kept = [r for r in rows if start <= r.bucket < issued_at]
    ids = sorted({r.segment_id for r in kept})
    column = {segment: j for j, segment in enumerate(ids)}
    steps = (issued_at - start) // STEP
    speed = np.full((steps, len(ids)), np.nan)
    flow = np.zeros((steps, len(ids)))
    for r in kept:
        t = (r.bucket - start) // STEP
        if r.avg_spd_cms is not None and math.isfinite(r.avg_spd_cms):
            speed[t, column[r.segment_id]] = r.avg_spd_cms * CMS_TO_KMH
        flow[t, column[r.segment_id]] = r.vehicles
    linked = tuple(
        tuple(column[n] for n in neighbours.get(segment, ()) if n in column and n != segment)
        for segment in ids
    )
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)

    def grid(values: FloatArray) -> SeriesGrid:
        return SeriesGrid(
            values,
            ids=tuple(str(s) for s in ids),
            step_minutes=5,
            first_slot=int((start - midnight) // STEP),
            neighbours=linked,
            first_weekday=start.weekday(),
        )

    return grid(speed), grid(flow)


def _predict(
    grid: SeriesGrid,
    horizons: Sequence[int],
    config: RidgeConfig,
    progress: ProgressCallback | None,
) -> tuple[FloatArray, np.ndarray]:
    """``(series, horizons)`` forecasts and per series the method code (0 model, 1 window
    mean, 2 profile)."""
    end = np.array([grid.steps - 1], dtype=np.int64)
    # A history shorter than one window: the missing older steps are simply missing.
    pad = np.full((max(0, config.input_steps - grid.steps), grid.width), np.nan)
    padded = np.vstack([pad, grid.values])
    inputs = input_windows(padded, np.array([padded.shape[0] - 1]), config.input_steps)
    result = np.full((grid.width, len(horizons)), np.nan)
    method = np.full(grid.width, 2)
    enough = window_ends(grid.steps, config.input_steps, max(horizons)).size >= config.min_windows
    if enough:
        model = LagRidgeForecaster.fit(grid, horizons, config, progress)
        predicted = model.predict(inputs, grid, end, horizons)[0]
        use = ~np.isnan(predicted).any(axis=1)
        result[use], method[use] = predicted[use], 0
    recent = window_mean(inputs, horizons)[0]
    use = np.isnan(result).any(axis=1) & ~np.isnan(recent).any(axis=1)
    result[use], method[use] = recent[use], 1
    rest = np.isnan(result).any(axis=1)
    if rest.any():
        profile = DailyProfile.fit(grid, config.profile_half_width)
        targets = end + np.asarray(horizons, dtype=np.int64)
        typical = profile.at(grid.slots(targets), grid.day_kinds(targets)).T
        result[rest] = typical[rest]
    return result, method


def forecast_segments(
    rows: Iterable[AggregateRow],
    *,
    start: datetime,
    issued_at: datetime,
    neighbours: Mapping[int, Sequence[int]] | None = None,
    horizons_min: Sequence[int] = DEFAULT_HORIZONS_MIN,
    config: RidgeConfig | None = None,
    progress: ProgressCallback | None = None,
) -> list[SegmentForecast]:
    """Forecasts of every segment seen in ``rows`` for buckets ``horizons_min`` after
    ``issued_at`` (the last input bucket is the one ending at ``issued_at``)."""
    config = config or RidgeConfig()
    if any(h <= 0 or h % 5 for h in horizons_min):
        raise GridError(f"horizons_min: {list(horizons_min)} must be positive multiples of 5")
    speed_grid, flow_grid = series_grids(rows, start, issued_at, neighbours or {})
    if speed_grid.width == 0:
        return []
    steps = [h // 5 for h in horizons_min]
    speed, speed_method = _predict(speed_grid, steps, config, progress)
    # Flow is a count: its mean is what a planner wants, and on a quiet segment the median
    # (what the absolute-error fit aims at) is 0 vehicles. Least squares for flow.
    flow_config = replace(config, robust_iterations=0)
    flow, flow_method = _predict(flow_grid, steps, flow_config, progress)
    codes = (METHOD_MODEL, METHOD_WINDOW_MEAN, METHOD_PROFILE)
    result = []
    for j, segment in enumerate(speed_grid.ids):
        for i, (h, s) in enumerate(zip(horizons_min, steps, strict=True)):
            value = float(speed[j, i])
            result.append(
                SegmentForecast(
                    segment_id=int(segment),
                    horizon_min=h,
                    target_at=issued_at + (s - 1) * STEP,
                    speed_kmh=max(0.0, value) if math.isfinite(value) else None,
                    flow_vehicles=max(0.0, float(flow[j, i])),
                    speed_method=codes[int(speed_method[j])],
                    flow_method=codes[int(flow_method[j])],
                )
            )
    return result
