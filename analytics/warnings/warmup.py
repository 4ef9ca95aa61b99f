"""Warm-up: rebuild the detectors' memory from stored telemetry when analytics (re)starts.

The detectors keep state in memory: each vehicle's latest points, runs under way (speeding,
zone stays, odometer spans, congestion windows, RSU passes). A restarted engine resumes at the
committed offsets with none of it, so an event spanning the restart (a rollback between the
last point before and the first after, a speeding run half done) would be missed or reported
twice. Each engine therefore records how far its consumer group got (the arrival time of the
newest record it committed, :func:`save_progress`), and before it consumes again it replays
the telemetry the store writer holds from ``analytics_warmup_s`` seconds before that point, in
arrival order, through the same detectors (:func:`recent_telemetry`). A group with no progress
(its first start) reads the stream from its beginning and needs no warm-up.

What the replay finds is sorted by :func:`fresh_warnings`:

- already stored (same deterministic id): found before the restart, nothing to do;
- overlapping a stored warning of the same type and subject in time, under another id: the
  same event seen from the middle (the replay began after it did), dropped;
- anything else: an event in records stored before the restart but not yet analysed (the
  engine was behind the store writer); stored and published like any warning.

Records replayed here and delivered again by the stream are then skipped by the engine, so
each is judged once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import asyncpg

from analytics.warnings.checks import RsuReport, Sighting
from analytics.warnings.detectors import Point
from analytics.warnings.model import Warning
from analytics.warnings.store import ms_of, timestamp_of
from contracts.topics import Source

__all__ = ["fresh_warnings", "load_progress", "recent_telemetry", "save_progress"]

# A device's clock may run ahead of arrival; rows are found by ``ts`` (the partition key, so
# old partitions are skipped) this much before the window, then kept by arrival time.
_TS_MARGIN_MS: Final = 3_600_000

_VEHICLE_ROWS: Final = """
    SELECT t.device_id, t.seq, t.ts, t.recv_ts, t.odo_m, t.lat_e7, t.lon_e7,
           coalesce(t.spd_cms, 0) AS spd_cms, coalesce(t.hdg_cdeg, 0) AS hdg_cdeg, t.leaf_hash,
           m.source_partition, m.source_offset
    FROM telemetry AS t
    LEFT JOIN device_messages AS m ON m.device_id = t.device_id AND m.seq = t.seq
    WHERE t.ts >= $1 AND t.recv_ts BETWEEN $2 AND $3 AND t.odo_m IS NOT NULL
    ORDER BY t.recv_ts DESC, t.device_id, t.seq DESC
    LIMIT $4
"""
_RSU_ROWS: Final = """
    SELECT t.device_id, t.seq, t.ts, t.recv_ts, t.lat_e7, t.lon_e7, t.leaf_hash,
           m.source_partition, m.source_offset,
           array_agg(o.vehicle_id ORDER BY o.obs_index) AS vehicles,
           array_agg(o.obs_ts ORDER BY o.obs_index) AS seen_at,
           array_agg(o.lat_e7 ORDER BY o.obs_index) AS lats,
           array_agg(o.lon_e7 ORDER BY o.obs_index) AS lons
    FROM telemetry AS t
    JOIN rsu_observations AS o ON o.rsu_id = t.device_id AND o.seq = t.seq AND o.ts = t.ts
    LEFT JOIN device_messages AS m ON m.device_id = t.device_id AND m.seq = t.seq
    WHERE t.ts >= $1 AND o.ts >= $1 AND t.recv_ts BETWEEN $2 AND $3 AND t.odo_m IS NULL
    GROUP BY t.device_id, t.seq, t.ts, t.recv_ts, t.lat_e7, t.lon_e7, t.leaf_hash,
             m.source_partition, m.source_offset
    ORDER BY t.recv_ts DESC, t.device_id, t.seq DESC
    LIMIT $4
"""
_FRESH: Final = """
    SELECT c.warning_id
    FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::timestamptz[],
                $6::timestamptz[]) AS c (warning_id, type, device_id, segment_id, from_ts, to_ts)
    WHERE NOT EXISTS (SELECT 1 FROM warnings AS s WHERE s.warning_id = c.warning_id)
      AND NOT EXISTS (
          SELECT 1 FROM warnings AS s
          WHERE s.type = c.type
            AND s.device_id IS NOT DISTINCT FROM c.device_id
            AND s.segment_id IS NOT DISTINCT FROM c.segment_id
            AND s.from_ts <= c.to_ts AND s.to_ts >= c.from_ts
      )
"""


def _src(partition: int | None, offset: int | None) -> str | None:
    return str(Source(partition, offset)) if partition is not None and offset is not None else None


def _point(row: asyncpg.Record) -> Point:
    return Point(
        device_id=row["device_id"],
        seq=row["seq"],
        ts_ms=ms_of(row["ts"]),
        recv_ms=ms_of(row["recv_ts"]),
        odo_m=row["odo_m"],
        lat_e7=row["lat_e7"],
        lon_e7=row["lon_e7"],
        leaf_hash=bytes(row["leaf_hash"]),
        src=_src(row["source_partition"], row["source_offset"]),
        spd_cms=row["spd_cms"],
        hdg_cdeg=row["hdg_cdeg"],
    )


def _report(row: asyncpg.Record) -> RsuReport:
    sightings = zip(row["vehicles"], row["seen_at"], row["lats"], row["lons"], strict=True)
    return RsuReport(
        device_id=row["device_id"],
        seq=row["seq"],
        ts_ms=ms_of(row["ts"]),
        recv_ms=ms_of(row["recv_ts"]),
        lat_e7=row["lat_e7"],
        lon_e7=row["lon_e7"],
        sightings=tuple(Sighting(veh, ms_of(seen), lat, lon) for veh, seen, lat, lon in sightings),
        leaf_hash=bytes(row["leaf_hash"]),
        src=_src(row["source_partition"], row["source_offset"]),
    )


async def load_progress(pool: asyncpg.Pool, group_id: str) -> int | None:
    """The arrival time (ms) of the newest record ``group_id`` committed (None: never ran)."""
    value: int | None = await pool.fetchval(
        "SELECT recv_ms FROM analytics_progress WHERE group_id = $1", group_id
    )
    return value


async def save_progress(pool: asyncpg.Pool, group_id: str, recv_ms: int) -> None:
    """Record that ``group_id`` committed records that arrived up to ``recv_ms``."""
    await pool.execute(
        "INSERT INTO analytics_progress (group_id, recv_ms) VALUES ($1, $2) "
        "ON CONFLICT (group_id) DO UPDATE SET recv_ms = greatest(analytics_progress.recv_ms, "
        "excluded.recv_ms), updated_at = clock_timestamp()",
        group_id,
        recv_ms,
    )


async def recent_telemetry(
    pool: asyncpg.Pool, *, since_ms: int, until_ms: int, limit: int
) -> list[Point | RsuReport]:
    """Vehicle points and RSU reports stored with an arrival time in ``[since_ms, until_ms]``,
    in arrival order (at most the newest ``limit`` of each kind)."""
    args = (
        timestamp_of(since_ms - _TS_MARGIN_MS),
        timestamp_of(since_ms),
        timestamp_of(until_ms),
        limit,
    )
    async with pool.acquire() as conn:
        vehicle_rows = await conn.fetch(_VEHICLE_ROWS, *args)
        rsu_rows = await conn.fetch(_RSU_ROWS, *args)
    records: list[Point | RsuReport] = [_point(row) for row in vehicle_rows]
    records.extend(_report(row) for row in rsu_rows)
    records.sort(key=lambda record: (record.recv_ms, record.device_id, record.seq))
    return records


async def fresh_warnings(pool: asyncpg.Pool, warnings: Sequence[Warning]) -> list[Warning]:
    """The replay's warnings that are neither stored nor the same event as a stored one."""
    unique = list({w.warning_id: w for w in warnings}.values())
    if not unique:
        return []
    rows = await pool.fetch(
        _FRESH,
        [w.warning_id for w in unique],
        [w.type.value for w in unique],
        [w.device_id for w in unique],
        [w.segment_id for w in unique],
        [timestamp_of(w.from_ts_ms) for w in unique],
        [timestamp_of(w.to_ts_ms) for w in unique],
    )
    fresh = {row["warning_id"] for row in rows}
    return [w for w in unique if w.warning_id in fresh]
