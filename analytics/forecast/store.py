"""Reading forecast inputs from PostgreSQL and writing the forecasts back.

Reads ``segment_speed_5m`` (either storage mode: same columns), ``road_segments`` (for
neighbours: segments sharing an endpoint) and per-day odometer extremes from ``telemetry``.
Writes ``segment_forecasts`` and ``vehicle_mileage_forecasts`` with upserts on their primary
keys, so a refresh repeated for the same issue time replaces its rows instead of adding more.

The API reads segments through it too: :func:`load_segments_in` (static data, optionally only
those whose midpoint lies in given areas), :func:`recent_traffic` (speed and vehicles over a
recent window, from ``telemetry``), :func:`segment_buckets` and :func:`latest_forecasts`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from analytics.forecast.mileage import DayReading, MileageProjection
from analytics.forecast.segments import AggregateRow, SegmentForecast
from contracts.roads import RoadClass, RoadSegment

__all__ = [
    "StoredForecast",
    "Traffic",
    "fetch_aggregates",
    "fetch_day_readings",
    "fetch_neighbours",
    "latest_forecasts",
    "load_segments_in",
    "recent_traffic",
    "save_mileage_forecasts",
    "save_segment_forecasts",
    "segment_buckets",
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


# A segment lies in an area when its midpoint does (so a segment on a border between two
# districts belongs to exactly one). Points are (lat_e7, lon_e7); float8: the sum of two
# longitudes overflows integer.
_IN_AREAS = """
    (SELECT bool_or(a.area @> point((s.a_lat_e7::float8 + s.b_lat_e7) / 2,
                                    (s.a_lon_e7::float8 + s.b_lon_e7) / 2))
       FROM unnest($1::text[]::polygon[]) AS a (area))
"""


def _polygons(areas: Sequence[Sequence[tuple[int, int]]]) -> list[str]:
    """Polygon literals, ``((lat,lon),...)``: asyncpg reads nested lists as array levels."""
    return ["(" + ",".join(f"({lat},{lon})" for lat, lon in area) + ")" for area in areas]


async def load_segments_in(
    conn: asyncpg.Connection | asyncpg.Pool,
    areas: Sequence[Sequence[tuple[int, int]]] | None,
    *,
    segment_id: int | None = None,
    after: int | None = None,
    limit: int = 1000,
) -> list[RoadSegment]:
    """Segments by id (only ``segment_id``; those after ``after``), only those lying in
    ``areas`` unless it is None (every segment)."""
    rows = await conn.fetch(
        "SELECT s.* FROM road_segments s "  # noqa: S608 - constants only
        f"WHERE ($2::boolean OR {_IN_AREAS}) "
        "AND ($3::int IS NULL OR s.segment_id = $3) AND ($4::int IS NULL OR s.segment_id > $4) "
        "ORDER BY s.segment_id LIMIT $5",
        _polygons(areas or ()),
        areas is None,
        segment_id,
        after,
        limit,
    )
    return [
        RoadSegment(r["segment_id"], r["name"], RoadClass(r["road_class"]), r["speed_limit_kmh"],
                    r["a_lat_e7"], r["a_lon_e7"], r["b_lat_e7"], r["b_lon_e7"])
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Traffic:
    """Vehicle messages matched to a segment over a span: mean speed (None: no sample),
    samples and distinct vehicles. ``start`` is the bucket start for a 5-minute bucket."""

    start: datetime
    mean_speed_kmh: float | None
    samples: int
    vehicles: int


def _kmh(speed_sum: float | None, samples: int) -> float | None:
    """Mean km/h of a sum of cm/s, to 0.01 km/h (finer would be float noise)."""
    return round(speed_sum * 0.036 / samples, 2) if speed_sum is not None and samples else None


async def recent_traffic(
    conn: asyncpg.Connection | asyncpg.Pool,
    segment_ids: Sequence[int],
    start: datetime,
    end: datetime,
) -> dict[int, Traffic]:
    """Per segment (of ``segment_ids`` with any), its messages with ``start < ts <= end``."""
    rows = await conn.fetch(
        "SELECT segment_id, sum(spd_cms)::float8 AS speed_sum, count(*) AS samples, "
        "count(DISTINCT device_id) AS vehicles FROM telemetry "
        "WHERE ts > $2 AND ts <= $3 AND segment_id = ANY ($1::int[]) AND spd_cms IS NOT NULL "
        "GROUP BY segment_id",
        list(segment_ids),
        start,
        end,
    )
    return {
        r["segment_id"]: Traffic(start, _kmh(r["speed_sum"], r["samples"]), r["samples"],
                                 r["vehicles"])
        for r in rows
    }  # fmt: skip


async def segment_buckets(
    conn: asyncpg.Connection | asyncpg.Pool, segment_id: int, start: datetime, end: datetime
) -> list[Traffic]:
    """The segment's ``segment_speed_5m`` buckets with ``start <= bucket < end``, in order."""
    rows = await conn.fetch(
        "SELECT bucket, speed_sum::float8 AS speed_sum, samples, vehicles FROM segment_speed_5m "
        "WHERE segment_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket",
        segment_id,
        start,
        end,
    )
    return [
        Traffic(r["bucket"], _kmh(r["speed_sum"], r["samples"]), r["samples"], r["vehicles"])
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class StoredForecast:
    """One row of ``segment_forecasts``."""

    issued_at: datetime
    horizon_min: int
    target_at: datetime
    speed_kmh: float | None
    flow_vehicles: float | None
    speed_method: str
    flow_method: str


async def latest_forecasts(
    conn: asyncpg.Connection | asyncpg.Pool, segment_id: int
) -> list[StoredForecast]:
    """The segment's forecasts of its latest issue time, by horizon (empty: none yet)."""
    rows = await conn.fetch(
        "SELECT issued_at, horizon_min, target_at, speed_kmh, flow_vehicles, speed_method, "
        "flow_method FROM segment_forecasts WHERE segment_id = $1 AND issued_at = "
        "(SELECT max(issued_at) FROM segment_forecasts WHERE segment_id = $1) "
        "ORDER BY horizon_min",
        segment_id,
    )
    return [StoredForecast(*r) for r in rows]
