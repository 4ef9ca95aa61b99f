"""Partitioned mode of the telemetry tables (plain PostgreSQL): day partitions, retention.

Native range partitions of one UTC day (``<table>_pYYYYMMDD``) plus a DEFAULT partition, so
no row is ever refused; the writer creates the days it needs first
(:func:`ensure_day_partitions`). ``segment_speed_5m`` is a table the writer updates in the same
transaction as the rows, counting only rows actually inserted; the distinct vehicles are kept
in ``segment_vehicles_5m`` (bucket, segment, device), day-partitioned like the rows.
:func:`drop_old_partitions` drops whole days older than the window.
:mod:`roadledger.db.telemetry_schema` decides when this mode is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Final

import asyncpg

from roadledger.db.telemetry_tables import create_missing_indexes, telemetry_ddl

__all__ = [
    "DAY_PARTITIONED",
    "create_partitioned_tables",
    "drop_old_partitions",
    "drop_partitioned_tables",
    "ensure_day_partitions",
]

# (table, partitioning column) of every day-partitioned table of partitioned mode.
DAY_PARTITIONED: Final = (
    ("telemetry", "ts"),
    ("rsu_observations", "ts"),
    ("segment_vehicles_5m", "bucket"),
)
_DROP_TABLE: Final = "DROP TABLE %I.%I"
_DELETE_OLDER: Final = "DELETE FROM %I.%I WHERE %I < $1"
_PARTITION_NAME: Final = re.compile(r"^(?P<parent>[a-z_0-9]+)_p(?P<day>\d{8})$")

_PARTITIONED_DDL: Final = (
    *telemetry_ddl(" PARTITION BY RANGE ({column})"),
    "CREATE TABLE IF NOT EXISTS telemetry_default PARTITION OF telemetry DEFAULT",
    "CREATE TABLE IF NOT EXISTS rsu_observations_default PARTITION OF rsu_observations DEFAULT",
    """
    CREATE TABLE IF NOT EXISTS segment_vehicles_5m (
        bucket      timestamptz NOT NULL,
        segment_id  integer     NOT NULL,
        device_id   text        NOT NULL,
        PRIMARY KEY (bucket, segment_id, device_id)
    ) PARTITION BY RANGE (bucket)
    """,
    "CREATE TABLE IF NOT EXISTS segment_vehicles_5m_default PARTITION OF segment_vehicles_5m "
    "DEFAULT",
    """
    CREATE TABLE IF NOT EXISTS segment_speed_5m (
        bucket       timestamptz NOT NULL,
        segment_id   integer     NOT NULL,
        speed_sum    bigint      NOT NULL,
        samples      bigint      NOT NULL,
        vehicles     bigint      NOT NULL,
        avg_spd_cms  double precision
                     GENERATED ALWAYS AS (speed_sum::double precision / nullif(samples, 0)) STORED,
        PRIMARY KEY (bucket, segment_id)
    )
    """,
    # One day partition of one table, created idempotently: serialised per (schema, table,
    # day) by a transaction advisory lock, rows of that day moved out of the DEFAULT
    # partition (which is locked first, so no insert slips in between), then attached.
    # ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent: inserts and reads go on.
    """
    CREATE OR REPLACE FUNCTION roadledger_attach_day_partition(parent text, day date)
    RETURNS boolean LANGUAGE plpgsql AS $fn$
    DECLARE
        sch   text := current_schema();
        col   text;
        part  text := parent || '_p' || to_char(day, 'YYYYMMDD');
        lo    timestamptz := day::timestamp AT TIME ZONE 'UTC';
        hi    timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    BEGIN
        col := CASE parent WHEN 'telemetry' THEN 'ts' WHEN 'rsu_observations' THEN 'ts'
                           WHEN 'segment_vehicles_5m' THEN 'bucket' END;
        IF col IS NULL THEN
            RAISE EXCEPTION 'not a day-partitioned telemetry table: %', parent;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext(sch || '.' || part));
        IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = sch AND c.relname = part) THEN
            RETURN false;
        END IF;
        EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', sch, parent || '_default');
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       sch, part, sch, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       sch, parent || '_default', col, col, sch, part) USING lo, hi;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, parent, sch, part, lo, hi);
        RETURN true;
    END
    $fn$
    """,
)


async def create_partitioned_tables(conn: asyncpg.Connection) -> None:
    """Create what is missing of partitioned mode, with the partitions of today and tomorrow."""
    for statement in _PARTITIONED_DDL:
        await conn.execute(statement)
    await create_missing_indexes(conn)
    today = datetime.now(UTC).date()
    await ensure_day_partitions(conn, (today, today + timedelta(days=1)))


async def ensure_day_partitions(conn: asyncpg.Connection, days: Iterable[date]) -> int:
    """Partitioned mode: create the day partitions of ``days`` that are missing.

    Idempotent and safe to run concurrently (see ``roadledger_attach_day_partition``). Each
    (table, day) is its own statement: outside a transaction, its locks last only as long
    as it does. Returns how many partitions were created.
    """
    created = 0
    for day in sorted(set(days)):
        for table, _ in DAY_PARTITIONED:
            if await conn.fetchval("SELECT roadledger_attach_day_partition($1, $2)", table, day):
                created += 1
    return created


async def drop_old_partitions(conn: asyncpg.Connection, cutoff: datetime) -> list[str]:
    """Drop every day partition that ends at or before ``cutoff`` and delete older rows from
    the DEFAULT partitions (``segment_speed_5m`` is kept); return the dropped partitions."""
    parents = [table for table, _ in DAY_PARTITIONED]
    children = await conn.fetch(
        """
        SELECT c.relname AS child
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace n ON n.oid = p.relnamespace
         WHERE n.nspname = current_schema() AND p.relname = ANY($1::text[])
         ORDER BY c.relname
        """,
        parents,
    )
    dropped: list[str] = []
    for row in children:
        match = _PARTITION_NAME.match(row["child"])
        if match is None or match["parent"] not in parents:
            continue
        day = datetime.strptime(match["day"], "%Y%m%d").replace(tzinfo=UTC)
        if day + timedelta(days=1) > cutoff:
            continue
        statement = await conn.fetchval(
            "SELECT format($1::text, current_schema(), $2::text)", _DROP_TABLE, row["child"]
        )
        try:
            async with conn.transaction():
                # Dropping a partition locks its parent exclusively: give up rather than
                # queue behind a long reader (every writer would queue behind us); next time.
                await conn.execute("SET LOCAL lock_timeout = '5s'")
                await conn.execute(statement)
        except asyncpg.LockNotAvailableError:
            continue
        dropped.append(row["child"])
    for table, column in DAY_PARTITIONED:
        statement = await conn.fetchval(
            "SELECT format($1::text, current_schema(), $2::text, $3::text)",
            _DELETE_OLDER,
            table + "_default",
            column,
        )
        await conn.execute(statement, cutoff)
    return dropped


async def drop_partitioned_tables(conn: asyncpg.Connection) -> None:
    """Drop the telemetry tables of partitioned mode and their partition function."""
    await conn.execute(
        "DROP TABLE IF EXISTS telemetry, rsu_observations, segment_vehicles_5m, segment_speed_5m"
    )
    await conn.execute("DROP FUNCTION IF EXISTS roadledger_attach_day_partition(text, date)")
