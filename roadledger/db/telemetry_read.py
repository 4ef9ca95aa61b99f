"""Reading one device's stored telemetry over a time window: its track, its odometer history
and every row for export. The tables are those of :mod:`roadledger.db.telemetry_schema`;
access control is the caller's (the API asks ``authorize`` first).

Windows are half-open, ``from <= ts < to`` in device time. Pages are ordered by a unique key
and continue strictly after the last item of the previous page, so rows arriving meanwhile
never make a page repeat or skip one: the track and the export by ``(ts, seq)`` (``ts`` in
whole microseconds, as stored), the mileage by bucket start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import asyncpg

__all__ = [
    "BUCKET_MS",
    "EXPORT_COLUMNS",
    "MileageBucket",
    "TrackPoint",
    "at_us",
    "export_batches",
    "mileage_page",
    "track_page",
    "us_of",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
Resolution = Literal["day", "hour"]
BUCKET_MS: Final[dict[str, int]] = {"day": 86_400_000, "hour": 3_600_000}


def us_of(value: datetime) -> int:
    """Whole microseconds since the epoch (exact: PostgreSQL stores microseconds)."""
    return (value - EPOCH) // timedelta(microseconds=1)


def at_us(us: int) -> datetime:
    """The instant ``us`` microseconds after the epoch."""
    return EPOCH + timedelta(microseconds=us)


def _at_ms(ms: int) -> datetime:
    return at_us(ms * 1000)


@dataclass(frozen=True, slots=True)
class TrackPoint:
    """One stored message's position and motion (``odo_m``, speed and heading are None for an
    RSU). ``ts_us`` is the exact stored time, for the cursor."""

    seq: int
    ts_us: int
    lat_e7: int
    lon_e7: int
    odo_m: int | None
    spd_cms: int | None
    hdg_cdeg: int | None
    segment_id: int | None

    @property
    def ts_ms(self) -> int:
        return self.ts_us // 1000


async def track_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    device_id: str,
    from_ms: int,
    to_ms: int,
    *,
    after: tuple[int, int] | None,
    limit: int,
) -> list[TrackPoint]:
    """Up to ``limit`` positions of ``device_id`` in the window, by ``(ts, seq)``, after the
    ``(ts_us, seq)`` of ``after``."""
    after_ts, after_seq = (at_us(after[0]), after[1]) if after is not None else (None, None)
    rows = await conn.fetch(
        "SELECT seq, ts, lat_e7, lon_e7, odo_m, spd_cms, hdg_cdeg, segment_id FROM telemetry "
        "WHERE device_id = $1 AND ts >= $2 AND ts < $3 "
        "AND ($4::timestamptz IS NULL OR (ts, seq) > ($4::timestamptz, $5::bigint)) "
        "ORDER BY ts, seq LIMIT $6",
        device_id,
        _at_ms(from_ms),
        _at_ms(to_ms),
        after_ts,
        after_seq,
        limit,
    )
    return [
        TrackPoint(
            row["seq"], us_of(row["ts"]), row["lat_e7"], row["lon_e7"], row["odo_m"],
            row["spd_cms"], row["hdg_cdeg"], row["segment_id"],
        )
        for row in rows
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class MileageBucket:
    """The odometer over one UTC day or hour: first, last, lowest and highest reading, the
    distance driven (the sum of increases from each message to the one before it, the first
    compared with the last reading before the bucket, even one before the window), the sum of
    decreases (an odometer never goes back: a rollback), and how many messages carried one."""

    start_ms: int
    first_odo_m: int
    last_odo_m: int
    min_odo_m: int
    max_odo_m: int
    distance_m: int
    rollback_m: int
    messages: int


async def mileage_page(
    conn: asyncpg.Connection | asyncpg.Pool,
    device_id: str,
    from_ms: int,
    to_ms: int,
    resolution: Resolution,
    *,
    after_start_ms: int | None,
    limit: int,
) -> list[MileageBucket]:
    """Up to ``limit`` buckets with odometer readings in the window, oldest first, each
    starting after ``after_start_ms``. UTC days and hours are whole multiples from the epoch,
    so the page after a bucket starts where that bucket ends."""
    start = from_ms
    if after_start_ms is not None:
        start = max(start, after_start_ms + BUCKET_MS[resolution])
    rows = await conn.fetch(
        """
        WITH before AS (
            SELECT odo_m FROM telemetry
             WHERE device_id = $1 AND ts < $2 AND odo_m IS NOT NULL
             ORDER BY ts DESC, seq DESC LIMIT 1
        ), readings AS (
            SELECT date_trunc($4, ts, 'UTC') AS bucket, ts, seq, odo_m,
                   odo_m - coalesce(lag(odo_m) OVER (ORDER BY ts, seq),
                                    (SELECT odo_m FROM before)) AS delta
              FROM telemetry
             WHERE device_id = $1 AND ts >= $2 AND ts < $3 AND odo_m IS NOT NULL
        )
        SELECT bucket,
               (array_agg(odo_m ORDER BY ts, seq))[1] AS first_odo_m,
               (array_agg(odo_m ORDER BY ts DESC, seq DESC))[1] AS last_odo_m,
               min(odo_m) AS min_odo_m, max(odo_m) AS max_odo_m,
               coalesce(sum(greatest(delta, 0)), 0)::bigint AS distance_m,
               coalesce(sum(greatest(-delta, 0)), 0)::bigint AS rollback_m,
               count(*) AS messages
          FROM readings GROUP BY bucket ORDER BY bucket LIMIT $5
        """,
        device_id,
        _at_ms(start),
        _at_ms(to_ms),
        resolution,
        limit,
    )
    return [
        MileageBucket(
            us_of(row["bucket"]) // 1000, row["first_odo_m"], row["last_odo_m"],
            row["min_odo_m"], row["max_odo_m"], row["distance_m"], row["rollback_m"],
            row["messages"],
        )
        for row in rows
    ]  # fmt: skip


# What an export holds per message, in this order: every stored column, times as ms since the
# epoch (device time, and when the bridge received it), the leaf hash as hex.
EXPORT_COLUMNS: Final = (
    "device_id", "seq", "ts_ms", "recv_ms", "odo_m", "lat_e7", "lon_e7", "spd_cms",
    "hdg_cdeg", "segment_id", "leaf_hash",
)  # fmt: skip
ExportRow = tuple[str, int, int, int, int | None, int, int, int | None, int | None, int | None, str]


async def export_batches(
    pool: asyncpg.Pool, device_id: str, from_ms: int, to_ms: int, *, batch: int = 5000
) -> AsyncIterator[list[ExportRow]]:
    """Every row of ``device_id`` in the window as :data:`EXPORT_COLUMNS`, by ``(ts, seq)``,
    ``batch`` rows at a time from a server-side cursor (memory stays one batch, whatever the
    window holds). One snapshot: rows arriving meanwhile are not half in."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        cursor = await conn.cursor(
            "SELECT device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, spd_cms, hdg_cdeg, "
            "segment_id, leaf_hash FROM telemetry WHERE device_id = $1 AND ts >= $2 AND ts < $3 "
            "ORDER BY ts, seq",
            device_id,
            _at_ms(from_ms),
            _at_ms(to_ms),
        )
        while rows := await cursor.fetch(batch):
            yield [
                (
                    r["device_id"], r["seq"], us_of(r["ts"]) // 1000, us_of(r["recv_ts"]) // 1000,
                    r["odo_m"], r["lat_e7"], r["lon_e7"], r["spd_cms"], r["hdg_cdeg"],
                    r["segment_id"], bytes(r["leaf_hash"]).hex(),
                )
                for r in rows
            ]  # fmt: skip
