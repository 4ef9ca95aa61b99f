"""The telemetry tables as both storage modes create them: their DDL, indexes, catalog look-ups.

:mod:`roadledger.db.telemetry_schema` picks the mode; :mod:`~roadledger.db.telemetry_timescaledb`
and :mod:`~roadledger.db.telemetry_partitions` build on what is here, so that readers see the
same tables and columns in either mode.
"""

from __future__ import annotations

from typing import Final

import asyncpg

__all__ = [
    "AGGREGATE_COLUMNS",
    "BUCKET",
    "BUCKET_ORIGIN",
    "DEFAULT_RETENTION_DAYS",
    "create_missing_indexes",
    "qualified",
    "relation_exists",
    "telemetry_ddl",
]

DEFAULT_RETENTION_DAYS: Final = 365
BUCKET: Final = "5 minutes"
# time_bucket's origin for sub-month buckets; date_bin with it gives the same buckets.
BUCKET_ORIGIN: Final = "2000-01-03 00:00:00+00"
AGGREGATE_COLUMNS: Final = (
    "bucket", "segment_id", "speed_sum", "samples", "vehicles", "avg_spd_cms",
)  # fmt: skip


def telemetry_ddl(partition_by: str) -> tuple[str, ...]:
    """``CREATE TABLE`` of ``telemetry`` and ``rsu_observations``; ``partition_by`` is appended
    to each (``{column}`` standing for the partitioning column), empty for none."""
    return (
        f"""
        CREATE TABLE IF NOT EXISTS telemetry (
            device_id   text        NOT NULL,
            seq         bigint      NOT NULL,
            ts          timestamptz NOT NULL,
            recv_ts     timestamptz NOT NULL,
            odo_m       bigint,
            lat_e7      integer     NOT NULL,
            lon_e7      integer     NOT NULL,
            spd_cms     integer,
            hdg_cdeg    integer,
            segment_id  integer,
            leaf_hash   bytea       NOT NULL CHECK (length(leaf_hash) = 32),
            PRIMARY KEY (device_id, seq, ts)
        ){partition_by.format(column="ts")}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS rsu_observations (
            rsu_id      text        NOT NULL,
            seq         bigint      NOT NULL,
            obs_index   smallint    NOT NULL,
            ts          timestamptz NOT NULL,
            vehicle_id  text        NOT NULL,
            obs_ts      timestamptz NOT NULL,
            lat_e7      integer     NOT NULL,
            lon_e7      integer     NOT NULL,
            segment_id  integer,
            leaf_hash   bytea       NOT NULL CHECK (length(leaf_hash) = 32),
            PRIMARY KEY (rsu_id, seq, obs_index, ts)
        ){partition_by.format(column="ts")}
        """,
    )


# (name, DDL). Created only when missing: CREATE INDEX IF NOT EXISTS would still take a SHARE
# lock on the table first, stalling every writer whenever a component starts.
_INDEXES: Final = (
    # Hash: 4-byte codes for 32 random bytes, cheaper to maintain than a B-tree, and the only
    # question asked of it is equality (the join to ledger_entries.leaf_hash).
    (
        "telemetry_leaf_hash",
        "CREATE INDEX IF NOT EXISTS telemetry_leaf_hash ON telemetry USING hash (leaf_hash)",
    ),
    # BRIN: rows arrive nearly in time order, so a few pages of summaries find the latest
    # minutes of a day's partition (analytics' warm-up) without a B-tree to maintain per row.
    (
        "telemetry_ts_brin",
        "CREATE INDEX IF NOT EXISTS telemetry_ts_brin ON telemetry USING brin (ts)",
    ),
    (
        "rsu_observations_vehicle",
        "CREATE INDEX IF NOT EXISTS rsu_observations_vehicle "
        "ON rsu_observations (vehicle_id, obs_ts)",
    ),
)


async def qualified(conn: asyncpg.Connection, table: str) -> str:
    """``table`` of the current schema, quoted and qualified for SQL."""
    name: str = await conn.fetchval("SELECT format('%I.%I', current_schema(), $1::text)", table)
    return name


async def relation_exists(conn: asyncpg.Connection, relation: str) -> bool:
    """Whether a table, index or view of this name exists in the current schema."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = $1)",
        relation,
    )
    return found


async def create_missing_indexes(conn: asyncpg.Connection) -> None:
    """Create the indexes of the telemetry tables that do not exist yet."""
    for name, statement in _INDEXES:
        if not await relation_exists(conn, name):
            await conn.execute(statement)
