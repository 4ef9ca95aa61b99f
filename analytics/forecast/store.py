"""Reading forecast inputs from PostgreSQL and writing the forecasts back.

Reads ``segment_speed_5m`` (either storage mode: same columns), ``road_segments`` (for
neighbours: segments sharing an endpoint) and per-day odometer extremes from ``telemetry``.
Writes ``segment_forecasts`` and ``vehicle_mileage_forecasts`` with upserts on their primary
keys, so a refresh repeated for the same issue time replaces its rows instead of adding more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime

import asyncpg

from analytics.forecast.mileage import DayReading, MileageProjection
from analytics.forecast.segments import AggregateRow, SegmentForecast

__all__ = [
    "fetch_aggregates",
    "fetch_day_readings",
    "fetch_neighbours",
    "save_mileage_forecasts",
    "save_segment_forecasts",
]


async def fetch_aggregates(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> list[AggregateRow]:
    """``segment_speed_5m`` rows with ``start <= bucket < end``."""
    records = await conn.fetch(
        "SELECT bucket, segment_id, avg_spd_cms, vehicles FROM segment_speed_5m "
        "WHERE bucket >= $1 AND bucket < $2 AND segment_id IS NOT NULL",
        start,
        end,
    )
    return [
        AggregateRow(r["bucket"], int(r["segment_id"]), r["avg_spd_cms"], int(r["vehicles"]))
        for r in records
    ]


async def fetch_neighbours(conn: asyncpg.Connection) -> dict[int, list[int]]:
    """Per segment, the segments that share one of its endpoints (either direction)."""
    records = await conn.fetch(
        "SELECT segment_id, a_lat_e7, a_lon_e7, b_lat_e7, b_lon_e7 FROM road_segments"
    )
    by_point: dict[tuple[int, int], set[int]] = defaultdict(set)
    for r in records:
        by_point[(r["a_lat_e7"], r["a_lon_e7"])].add(r["segment_id"])
        by_point[(r["b_lat_e7"], r["b_lon_e7"])].add(r["segment_id"])
    linked: dict[int, set[int]] = defaultdict(set)
    for segments in by_point.values():
        for segment in segments:
            linked[segment] |= segments - {segment}
    return {segment: sorted(others) for segment, others in linked.items()}


async def fetch_day_readings(
    conn: asyncpg.Connection, start: datetime, end: datetime
) -> dict[str, list[DayReading]]:
    """Per vehicle, its lowest and highest odometer per UTC day, ``start <= ts < end``."""
    records = await conn.fetch(
        "SELECT device_id, (ts AT TIME ZONE 'UTC')::date AS day, "
        "min(odo_m) AS lo, max(odo_m) AS hi FROM telemetry "
        "WHERE odo_m IS NOT NULL AND ts >= $1 AND ts < $2 GROUP BY 1, 2",
        start,
        end,
    )
    result: dict[str, list[DayReading]] = defaultdict(list)
    for r in records:
        result[r["device_id"]].append(DayReading(r["day"], int(r["lo"]), int(r["hi"])))
    return dict(result)


async def save_segment_forecasts(
    conn: asyncpg.Connection, issued_at: datetime, forecasts: Sequence[SegmentForecast]
) -> int:
    """Upsert the forecasts issued at ``issued_at``; returns how many rows were written."""
    await conn.executemany(
        """
        INSERT INTO segment_forecasts (segment_id, issued_at, horizon_min, target_at, speed_kmh,
                                       flow_vehicles, speed_method, flow_method)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (segment_id, issued_at, horizon_min) DO UPDATE SET
            target_at = EXCLUDED.target_at, speed_kmh = EXCLUDED.speed_kmh,
            flow_vehicles = EXCLUDED.flow_vehicles, speed_method = EXCLUDED.speed_method,
            flow_method = EXCLUDED.flow_method, created_at = now()
        """,
        [
            (
                f.segment_id,
                issued_at,
                f.horizon_min,
                f.target_at,
                f.speed_kmh,
                f.flow_vehicles,
                f.speed_method,
                f.flow_method,
            )
            for f in forecasts
        ],
    )
    return len(forecasts)


async def save_mileage_forecasts(
    conn: asyncpg.Connection, issued_on: date, projections: Mapping[str, MileageProjection]
) -> int:
    """Upsert one projection per vehicle for ``issued_on``; returns how many were written."""
    await conn.executemany(
        """
        INSERT INTO vehicle_mileage_forecasts (device_id, issued_on, first_day, last_day, days,
            mean_daily_km, annual_km, annual_low_km, annual_high_km, interval_level, method)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        ON CONFLICT (device_id, issued_on) DO UPDATE SET
            first_day = EXCLUDED.first_day, last_day = EXCLUDED.last_day, days = EXCLUDED.days,
            mean_daily_km = EXCLUDED.mean_daily_km, annual_km = EXCLUDED.annual_km,
            annual_low_km = EXCLUDED.annual_low_km, annual_high_km = EXCLUDED.annual_high_km,
            interval_level = EXCLUDED.interval_level, method = EXCLUDED.method,
            created_at = now()
        """,
        [
            (
                device,
                issued_on,
                p.first_day,
                p.last_day,
                p.days,
                p.mean_daily_km,
                p.annual_km,
                p.annual_low_km,
                p.annual_high_km,
                p.level,
                p.method,
            )
            for device, p in sorted(projections.items())
        ],
    )
    return len(projections)
