"""Telemetry tables, in TimescaleDB or plain-PostgreSQL form (the store writer's schema).

Both modes have the same tables and columns, so readers never ask which one they are on:

- ``telemetry``: one row per verified message (vehicles and RSUs; an RSU's row has no
  odometer, speed or heading), primary key ``(device_id, seq, ts)``, hash index on
  ``leaf_hash`` (RFC 9162 leaf hash of the verbatim JWS) for the join to ``ledger_entries``.
- ``rsu_observations``: one row per vehicle an RSU message observed, primary key
  ``(rsu_id, seq, obs_index, ts)``.
- ``segment_speed_5m``: per road segment and 5-minute bucket, ``speed_sum``, ``samples``,
  ``vehicles`` (distinct) and ``avg_spd_cms``, counting vehicle messages matched to a segment.

This module decides the mode and is the entry point for both (:func:`apply`,
:func:`apply_retention`, :func:`drop`). The modes themselves:

- TimescaleDB mode (:mod:`roadledger.db.telemetry_timescaledb`): hypertables, compression, a
  retention policy, and ``segment_speed_5m`` as a continuous aggregate;
- partitioned mode, plain PostgreSQL (:mod:`roadledger.db.telemetry_partitions`): day
  partitions plus a DEFAULT partition, ``segment_speed_5m`` a table the writer updates.

The tables both modes share: :mod:`roadledger.db.telemetry_tables`.

An existing database keeps its mode: :func:`apply` never converts one into the other, and
refuses an explicit request for the other mode. ``docs/storage.md`` has the details.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from roadledger.db.telemetry_partitions import (
    create_partitioned_tables,
    drop_old_partitions,
    drop_partitioned_tables,
)
from roadledger.db.telemetry_timescaledb import (
    create_timescaledb_tables,
    drop_old_chunks,
    drop_timescaledb_tables,
    set_retention_policy,
)

__all__ = [
    "MODE_PARTITIONED",
    "MODE_TIMESCALEDB",
    "TelemetrySchemaError",
    "apply",
    "apply_retention",
    "drop",
    "ensure_retention_policy",
    "storage_mode",
    "timescaledb_schema",
]

MODE_TIMESCALEDB: Final = "timescaledb"
MODE_PARTITIONED: Final = "partitioned"


class TelemetrySchemaError(Exception):
    """The telemetry storage cannot be created in the mode asked for (the message says why)."""


async def timescaledb_schema(conn: asyncpg.Connection) -> str | None:
    """The (quoted) schema of the timescaledb extension in this database, or None."""
    schema: str | None = await conn.fetchval(
        "SELECT format('%I', n.nspname) FROM pg_extension e "
        "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'"
    )
    return schema


async def storage_mode(conn: asyncpg.Connection) -> str | None:
    """The mode of the telemetry tables in the current schema, or None before :func:`apply`."""
    relkind = await conn.fetchval(
        "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = 'telemetry'"
    )
    if relkind is None:
        return None
    if relkind == "p":
        return MODE_PARTITIONED
    if await timescaledb_schema(conn) is not None and await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry')"
    ):
        return MODE_TIMESCALEDB
    raise TelemetrySchemaError(
        "telemetry exists but is neither partitioned nor a TimescaleDB hypertable "
        "(was the timescaledb extension dropped?)"
    )


async def apply(
    conn: asyncpg.Connection, *, timescaledb: bool | None, retention_days: int | None = None
) -> str:
    """Create the telemetry tables that do not exist yet; return the mode in use.

    ``timescaledb``: None uses TimescaleDB when the extension is installed in this database
    (``CREATE EXTENSION`` is the services scripts' job); False never uses it; True requires it.
    Tables that already exist keep their mode whatever is asked: ``None`` follows them,
    and an explicit request for the other mode raises :class:`TelemetrySchemaError`.

    ``retention_days`` (TimescaleDB mode): the retention policy; None keeps an existing
    policy or creates one of
    :data:`~roadledger.db.telemetry_tables.DEFAULT_RETENTION_DAYS`. Partitioned mode has no policy:
    the store writer calls :func:`apply_retention`.

    Runs in one transaction (a savepoint inside ``apply_schema``'s, whose advisory lock
    serialises concurrent callers).
    """
    async with conn.transaction():
        extension = await timescaledb_schema(conn)
        existing = await storage_mode(conn)
        if existing is not None:
            wanted = None
            if timescaledb is not None:
                wanted = MODE_TIMESCALEDB if timescaledb else MODE_PARTITIONED
            if wanted is not None and wanted != existing:
                raise TelemetrySchemaError(
                    f"telemetry storage is {existing} here and an existing database keeps its "
                    f"mode; {wanted} was asked for (see docs/storage.md, 'Switching modes')"
                )
            mode = existing
        elif timescaledb is True and extension is None:
            raise TelemetrySchemaError(
                "TimescaleDB was asked for but the timescaledb extension is not installed in "
                "this database (scripts/services runs CREATE EXTENSION when the server has it)"
            )
        else:
            use = extension is not None and timescaledb is not False
            mode = MODE_TIMESCALEDB if use else MODE_PARTITIONED
        if mode == MODE_TIMESCALEDB:
            assert extension is not None  # storage_mode says timescaledb only when installed
            await create_timescaledb_tables(conn, extension, retention_days)
        else:
            await create_partitioned_tables(conn)
        return mode


async def ensure_retention_policy(conn: asyncpg.Connection, retention_days: int | None) -> None:
    """TimescaleDB mode: make the retention policy of both hypertables ``retention_days``.

    None keeps an existing policy (or creates the default one). Partitioned mode: nothing to
    do here, retention is :func:`apply_retention`, called by the store writer.
    """
    ext = await timescaledb_schema(conn)
    if ext is None or await storage_mode(conn) != MODE_TIMESCALEDB:
        return
    await set_retention_policy(conn, ext, retention_days)


async def apply_retention(
    conn: asyncpg.Connection, retention_days: int, *, now: datetime | None = None
) -> list[str]:
    """Drop the telemetry older than ``retention_days`` that fills whole days (or chunks).

    Partitioned mode: drops every day partition that ends at or before the cutoff, and
    deletes older rows from the DEFAULT partitions; ``segment_speed_5m`` is kept (as the
    continuous aggregate is in TimescaleDB mode). TimescaleDB mode: ``drop_chunks`` (what
    the retention policy runs on its own). Returns the dropped tables or chunks.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    mode = await storage_mode(conn)
    if mode == MODE_TIMESCALEDB:
        ext = await timescaledb_schema(conn)
        assert ext is not None  # storage_mode says timescaledb only when installed
        return await drop_old_chunks(conn, ext, cutoff)
    if mode != MODE_PARTITIONED:
        return []
    return await drop_old_partitions(conn, cutoff)


async def drop(conn: asyncpg.Connection) -> None:
    """Drop the telemetry tables of the current schema, whichever mode (scratch teardown).

    TimescaleDB mode first deletes the schema's jobs and drops the chunks: ``DROP SCHEMA ...
    CASCADE`` alone leaves compressed chunks behind in ``_timescaledb_internal`` (seen with
    TimescaleDB 2.28). A job already running when it is deleted can still make a statement
    fail with "tuple concurrently deleted"; the drop is then tried again, a few times.
    """
    for attempt in range(_DROP_ATTEMPTS):
        try:
            await _drop(conn)
            return
        except (asyncpg.InternalServerError, asyncpg.LockNotAvailableError) as exc:
            if attempt == _DROP_ATTEMPTS - 1 or (
                isinstance(exc, asyncpg.InternalServerError) and "concurrently" not in str(exc)
            ):
                raise
            await asyncio.sleep(0.2 * (attempt + 1))  # let the background job finish


_DROP_ATTEMPTS: Final = 10


async def _drop(conn: asyncpg.Connection) -> None:
    mode = await storage_mode(conn)
    if mode == MODE_TIMESCALEDB:
        ext = await timescaledb_schema(conn)
        assert ext is not None  # storage_mode says timescaledb only when installed
        await drop_timescaledb_tables(conn, ext)
    elif mode == MODE_PARTITIONED:
        await drop_partitioned_tables(conn)
