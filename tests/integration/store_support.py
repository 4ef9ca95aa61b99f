"""Scratch schemas in a chosen telemetry storage mode, and the records to fill them: shared by
the store writer's tests (``test_store_writer.py``, ``test_store_writer_kafka.py``), the
telemetry schema's (``test_telemetry_schema.py``) and the scratch schema's."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
import pytest

from chain.telemetry import TelemetryMessage
from contracts.roads import save_segments
from ingest.batch_writer import BatchWriter, WriteCounts
from roadledger.db import telemetry_schema
from roadledger.db.pool import create_pool
from roadledger.db.schema import apply_schema
from roadledger.db.telemetry_schema import MODE_PARTITIONED, MODE_TIMESCALEDB
from roadledger.settings import Settings
from roadledger.stream import StreamRecord
from roadledger.stream.memory import MemoryStream
from tests.unit.ingest.test_map_matching import grid_city, heading_of, point_on
from tests.unit.ingest.test_store_rows import Signer, verified_record

__all__ = [
    "SEGMENTS",
    "aggregate_from_rows",
    "aggregate_rows",
    "drive",
    "mode_of",
    "now_ms",
    "pool_in_mode",
    "produce",
    "records",
    "require_timescaledb",
    "scratch_pool",
    "timescaledb_installed",
    "write",
]

SEGMENTS = grid_city(5)


@asynccontextmanager
async def scratch_pool(settings: Settings, *, timescaledb: bool) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh schema whose telemetry tables are in the mode asked for.

    (``tests.support.scratch_schema.scratch_schema_pool`` always lets the database decide the mode.)
    """
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(settings.database_url)
    try:
        await admin.execute(
            await admin.fetchval("SELECT format('CREATE SCHEMA %I', $1::text)", schema)
        )
        pool = await create_pool(settings, max_size=6, server_settings={"search_path": schema})
        try:
            async with pool.acquire() as conn:
                mode = await apply_schema(conn, timescaledb=timescaledb)
                assert mode == (MODE_TIMESCALEDB if timescaledb else MODE_PARTITIONED)
                if timescaledb:  # tests refresh the aggregate themselves
                    # TimescaleDB's functions are not on the scratch schema's search_path.
                    ext = await telemetry_schema.timescaledb_schema(conn)
                    await conn.execute(
                        f"SELECT {ext}.alter_job(job_id, scheduled => false) "  # noqa: S608 - ext: format('%I')
                        "FROM timescaledb_information.jobs WHERE hypertable_schema = $1 "
                        "AND proc_name = 'policy_refresh_continuous_aggregate'",
                        schema,
                    )
                await save_segments(conn, SEGMENTS)
            yield pool
        finally:
            try:
                async with pool.acquire() as conn:
                    await telemetry_schema.drop(conn)
            finally:
                await pool.close()
            await admin.execute(
                await admin.fetchval("SELECT format('DROP SCHEMA %I CASCADE', $1::text)", schema)
            )
    finally:
        await admin.close()


async def timescaledb_installed(settings: Settings) -> bool:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await telemetry_schema.timescaledb_schema(conn) is not None
    finally:
        await conn.close()


async def require_timescaledb(settings: Settings) -> None:
    if not await timescaledb_installed(settings):
        pytest.skip(
            f"TimescaleDB mode: the timescaledb extension is not installed in database "
            f"{settings.database_name!r} (plain PostgreSQL; scripts/services creates it when "
            "the server has it)"
        )


@asynccontextmanager
async def pool_in_mode(settings: Settings, mode: str) -> AsyncIterator[asyncpg.Pool]:
    """:func:`scratch_pool` in ``mode``; TimescaleDB mode skips the test, saying why, when the
    database has no timescaledb extension."""
    timescaledb = mode == MODE_TIMESCALEDB
    if timescaledb:
        await require_timescaledb(settings)
    async with scratch_pool(settings, timescaledb=timescaledb) as scratch:
        yield scratch


def now_ms() -> int:
    return int(time.time() * 1000)


def drive(
    cars: Sequence[Signer], messages: int, start_ms: int, *, step_ms: int = 1000
) -> list[bytes]:
    """Each car's next ``messages`` messages, driving its own streets of SEGMENTS."""
    raws = []
    for v, car in enumerate(cars):
        for i in range(messages):
            street = SEGMENTS[(v * 7 + i // 4) % len(SEGMENTS)]
            lat, lon = point_on(street, 0.1 + 0.2 * (i % 4), 2.0)
            speed = 500 + 37 * ((v + car.seq) % 20)
            raws.append(
                car.vehicle(start_ms + i * step_ms, lat, lon, heading_of(street), spd_cms=speed)
            )
    return raws


def records(raws: Sequence[bytes], first_offset: int = 0) -> list[StreamRecord]:
    return [verified_record(raw, first_offset + i) for i, raw in enumerate(raws)]


async def write(pool: asyncpg.Pool, raws: Sequence[bytes], **kw: int) -> WriteCounts:
    async with pool.acquire() as conn:
        writer = await BatchWriter.open(conn, **kw)
        return await writer.write_batch(conn, records(raws))


async def mode_of(pool: asyncpg.Pool) -> str | None:
    async with pool.acquire() as conn:
        return await telemetry_schema.storage_mode(conn)


async def aggregate_rows(conn: asyncpg.Connection) -> set[tuple[object, ...]]:
    """segment_speed_5m as readers see it (refreshed first in TimescaleDB mode)."""
    if await telemetry_schema.storage_mode(conn) == MODE_TIMESCALEDB:
        for attempt in range(100):
            try:
                await conn.execute(
                    f"CALL {await telemetry_schema.timescaledb_schema(conn)}"
                    ".refresh_continuous_aggregate('segment_speed_5m', NULL, NULL)"
                )
                break
            except asyncpg.LockNotAvailableError:  # the policy's own refresh is running
                if attempt == 99:
                    raise
                await asyncio.sleep(0.1)  # retry after a lock conflict, as a client would
    rows = await conn.fetch(
        "SELECT bucket, segment_id, speed_sum, samples, vehicles, avg_spd_cms FROM segment_speed_5m"
    )
    return {tuple(row) for row in rows}


async def aggregate_from_rows(conn: asyncpg.Connection) -> set[tuple[object, ...]]:
    """What segment_speed_5m must hold, computed from the stored rows."""
    rows = await conn.fetch(
        """
        SELECT date_bin('5 minutes', ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') AS bucket,
               segment_id, sum(spd_cms)::bigint, count(*), count(DISTINCT device_id),
               sum(spd_cms)::double precision / count(*)
          FROM telemetry WHERE segment_id IS NOT NULL AND spd_cms IS NOT NULL
         GROUP BY 1, 2
        """
    )
    return {tuple(row) for row in rows}


async def produce(stream: MemoryStream, topic: str, raws: Sequence[bytes]) -> None:
    producer = stream.producer(client_id="test")
    await producer.start()
    for raw in raws:
        key = TelemetryMessage.from_bytes(raw).telemetry.dev.encode() if raw[:1] == b"e" else None
        await producer.send(topic, raw, key=key, headers=[("recv_ms", str(now_ms()).encode())])
    await producer.stop()
