"""One forecast refresh: read the history, forecast segments and mileage, store both.

The issue time is the start of the current 5-minute bucket (``now`` floored): the last input
bucket is the one that just closed, so two refreshes within the same 5 minutes issue the same
forecasts under the same keys (the second replaces the first). Mileage is issued per UTC day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from analytics.forecast.mileage import MileageError, MileageProjection, project_mileage
from analytics.forecast.ridge import ProgressCallback, RidgeConfig
from analytics.forecast.segments import DEFAULT_HORIZONS_MIN, STEP, forecast_segments
from analytics.forecast.store import (
    fetch_aggregates,
    fetch_day_readings,
    fetch_neighbours,
    save_mileage_forecasts,
    save_segment_forecasts,
)

__all__ = ["RefreshConfig", "RefreshSummary", "issue_time", "refresh_forecasts"]

_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # the buckets' origin (telemetry_tables.BUCKET_ORIGIN)


@dataclass(frozen=True)
class RefreshConfig:
    """How much history feeds a refresh and what it forecasts."""

    segment_history: timedelta = timedelta(days=14)
    mileage_history: timedelta = timedelta(days=90)
    horizons_min: tuple[int, ...] = DEFAULT_HORIZONS_MIN
    interval_level: float = 0.9
    model: RidgeConfig = field(default_factory=RidgeConfig)


@dataclass(frozen=True)
class RefreshSummary:
    """What one refresh wrote, and which methods the segment forecasts used."""

    issued_at: datetime
    segments: int
    segment_rows: int
    speed_methods: dict[str, int]
    flow_methods: dict[str, int]
    vehicles: int
    skipped_vehicles: dict[str, str]


def issue_time(now: datetime) -> datetime:
    """``now`` floored to its 5-minute bucket."""
    if now.tzinfo is None:
        raise ValueError("now: a timezone-aware datetime is required")
    return now - (now - _EPOCH) % STEP


async def refresh_forecasts(
    conn: asyncpg.Connection,
    now: datetime,
    config: RefreshConfig | None = None,
    progress: ProgressCallback | None = None,
) -> RefreshSummary:
    """Forecast every segment and vehicle with history before ``now``; store the results."""
    config = config or RefreshConfig()
    issued_at = issue_time(now)
    start = issued_at - config.segment_history
    rows = await fetch_aggregates(conn, start, issued_at)
    neighbours = await fetch_neighbours(conn)
    forecasts = forecast_segments(
        rows,
        start=start,
        issued_at=issued_at,
        neighbours=neighbours,
        horizons_min=config.horizons_min,
        config=config.model,
        progress=progress,
    )
    readings = await fetch_day_readings(conn, issued_at - config.mileage_history, issued_at)
    projections: dict[str, MileageProjection] = {}
    skipped: dict[str, str] = {}
    for device, days in readings.items():
        try:
            projections[device] = project_mileage(days, config.interval_level)
        except MileageError as exc:
            skipped[device] = str(exc)
    async with conn.transaction():
        written = await save_segment_forecasts(conn, issued_at, forecasts)
        await save_mileage_forecasts(conn, issued_at.date(), projections)
    speed_methods: dict[str, int] = {}
    flow_methods: dict[str, int] = {}
    for f in forecasts:
        if f.horizon_min == config.horizons_min[0]:
            speed_methods[f.speed_method] = speed_methods.get(f.speed_method, 0) + 1
            flow_methods[f.flow_method] = flow_methods.get(f.flow_method, 0) + 1
    return RefreshSummary(
        issued_at=issued_at,
        segments=len({f.segment_id for f in forecasts}),
        segment_rows=written,
        speed_methods=speed_methods,
        flow_methods=flow_methods,
        vehicles=len(projections),
        skipped_vehicles=skipped,
    )
