"""TimescaleDB mode of the telemetry tables: hypertables, compression, retention policy, and
``segment_speed_5m`` as a continuous aggregate.

Hypertables on ``ts`` (1-day chunks), compression segmented by device (RSU) and ordered by
``seq`` after 7 days, a retention policy, and the aggregate real-time and refreshed every
minute. :mod:`roadledger.db.telemetry_schema` decides when this mode is used.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from roadledger.db.telemetry_tables import (
    BUCKET,
    DEFAULT_RETENTION_DAYS,
    create_missing_indexes,
    qualified,
    telemetry_ddl,
)

__all__ = [
    "HYPERTABLES",
    "create_timescaledb_tables",
    "drop_old_chunks",
    "drop_timescaledb_tables",
    "set_retention_policy",
]

COMPRESS_AFTER: Final = "7 days"
# How far back the aggregate refresh looks for late rows: the verifier's maximum message age
# (30 days by default) plus a margin. Refreshing only recomputes buckets that changed.
AGGREGATE_REFRESH_WINDOW: Final = "32 days"
HYPERTABLES: Final = ("telemetry", "rsu_observations")


async def create_timescaledb_tables(
    conn: asyncpg.Connection, ext: str, retention_days: int | None
) -> None:
    """Create what is missing of TimescaleDB mode (``ext``: the extension's quoted schema);
    ``retention_days`` as :func:`set_retention_policy`."""
    for statement in telemetry_ddl(""):
        await conn.execute(statement)
    for table, segment_by, order_by in (
        ("telemetry", "device_id", "seq"),
        ("rsu_observations", "rsu_id", "seq, obs_index"),
    ):
        relation = await qualified(conn, table)
        compressed = await conn.fetchval(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = $1",
            table,
        )
        if compressed is None:  # not a hypertable yet
            await conn.execute(
                f"SELECT {ext}.create_hypertable($1::regclass, 'ts', "
                "chunk_time_interval => INTERVAL '1 day')",
                relation,
            )
        if not compressed:
            # Constants only: ALTER TABLE takes no parameters.
            await conn.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{segment_by}', "
                f"timescaledb.compress_orderby = '{order_by}')"
            )
        await conn.execute(
            f"SELECT {ext}.add_compression_policy($1::regclass, INTERVAL '{COMPRESS_AFTER}', "
            "if_not_exists => TRUE)",
            relation,
        )
    await create_missing_indexes(conn)
    await set_retention_policy(conn, ext, retention_days)
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = current_schema() AND view_name = 'segment_speed_5m')"
    )
    if not exists:
        await conn.execute(
            f"""
            CREATE MATERIALIZED VIEW segment_speed_5m
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT {ext}.time_bucket(INTERVAL '{BUCKET}', ts) AS bucket,
                   segment_id,
                   sum(spd_cms)::bigint AS speed_sum,
                   count(*) AS samples,
                   count(DISTINCT device_id) AS vehicles,
                   sum(spd_cms)::double precision / count(*) AS avg_spd_cms
              FROM telemetry
             WHERE segment_id IS NOT NULL AND spd_cms IS NOT NULL
             GROUP BY {ext}.time_bucket(INTERVAL '{BUCKET}', ts), segment_id
            WITH NO DATA
            """  # noqa: S608 - constants only
        )
    await conn.execute(
        f"SELECT {ext}.add_continuous_aggregate_policy($1::regclass, "
        f"start_offset => INTERVAL '{AGGREGATE_REFRESH_WINDOW}', "
        f"end_offset => INTERVAL '{BUCKET}', schedule_interval => INTERVAL '1 minute', "
        "if_not_exists => TRUE)",
        await qualified(conn, "segment_speed_5m"),
    )


async def set_retention_policy(
    conn: asyncpg.Connection, ext: str, retention_days: int | None
) -> None:
    """Make the retention policy of both hypertables ``retention_days``.

    None keeps an existing policy (or creates one of
    :data:`~roadledger.db.telemetry_tables.DEFAULT_RETENTION_DAYS`).
    """
    for table in HYPERTABLES:
        relation = await qualified(conn, table)
        current = await conn.fetchval(
            "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_schema = current_schema() "
            "AND hypertable_name = $1",
            table,
        )
        if current is not None and (retention_days is None or current == timedelta(retention_days)):
            continue
        if current is not None:
            await conn.execute(f"SELECT {ext}.remove_retention_policy($1::regclass)", relation)
        days = DEFAULT_RETENTION_DAYS if retention_days is None else retention_days
        await conn.execute(
            f"SELECT {ext}.add_retention_policy($1::regclass, $2::interval)",
            relation,
            timedelta(days=days),
        )


# drop_chunks takes its locks in an order TimescaleDB's own background jobs (aggregate
# refresh, compression) can take the other way round; PostgreSQL then aborts one of the two.
# The aborted drop changed nothing, so it is simply tried again.
_DROP_CHUNKS_ATTEMPTS: Final = 5


async def _drop_chunks(
    conn: asyncpg.Connection, ext: str | None, relation: str | None, cutoff: datetime
) -> list[asyncpg.Record]:
    """``drop_chunks`` of ``relation`` older than ``cutoff``, tried again after a deadlock."""
    for attempt in range(1, _DROP_CHUNKS_ATTEMPTS + 1):
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                f"SELECT {ext}.drop_chunks($1::regclass, older_than => $2::timestamptz)",
                relation,
                cutoff,
            )
            return rows
        except (asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError):
            if attempt == _DROP_CHUNKS_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def drop_old_chunks(conn: asyncpg.Connection, ext: str, cutoff: datetime) -> list[str]:
    """Drop the chunks of both hypertables older than ``cutoff`` (what the retention policy
    runs on its own); return their names."""
    dropped: list[str] = []
    for table in HYPERTABLES:
        rows = await _drop_chunks(conn, ext, await qualified(conn, table), cutoff)
        dropped.extend(str(row[0]) for row in rows)
    return dropped


async def drop_timescaledb_tables(conn: asyncpg.Connection, ext: str) -> None:
    """Drop the telemetry tables of TimescaleDB mode, their jobs and chunks first."""
    await conn.execute(
        f"SELECT {ext}.delete_job(job_id) FROM timescaledb_information.jobs "  # noqa: S608
        "WHERE hypertable_schema = current_schema()"
    )
    await conn.execute("DROP MATERIALIZED VIEW IF EXISTS segment_speed_5m")
    for table in HYPERTABLES:
        await conn.execute(
            f"SELECT {ext}.drop_chunks($1::regclass, older_than => $2::timestamptz)",
            await qualified(conn, table),
            datetime(9999, 12, 31, tzinfo=UTC),
        )
    await conn.execute("DROP TABLE IF EXISTS telemetry, rsu_observations")
