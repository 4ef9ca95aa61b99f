"""The telemetry storage on the real PostgreSQL, in both modes: a database keeps its mode,
day partitions, retention, and TimescaleDB's policies and compressed chunks.

Every test runs in a scratch schema of its own (``store_support.py``), once in partitioned mode
(always) and once in TimescaleDB mode (skipped, saying why, when the database has no
timescaledb extension).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from ingest.batch_writer import BatchWriter
from ingest.telemetry_rows import MS_PER_DAY
from roadledger.db import telemetry_partitions, telemetry_schema, telemetry_tables
from roadledger.db.schema import apply_schema
from roadledger.db.telemetry_schema import MODE_PARTITIONED, MODE_TIMESCALEDB
from roadledger.settings import Settings
from tests.integration.store_support import (
    drive,
    mode_of,
    now_ms,
    pool_in_mode,
    records,
    require_timescaledb,
    scratch_pool,
    timescaledb_installed,
    write,
)
from tests.unit.ingest.test_store_rows import Signer

pytestmark = pytest.mark.postgres


@pytest.fixture(params=[MODE_PARTITIONED, MODE_TIMESCALEDB])
async def pool(request: pytest.FixtureRequest, postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A scratch schema in each mode."""
    async with pool_in_mode(postgres, request.param) as scratch:
        yield scratch


@pytest.fixture
async def partitioned_pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with pool_in_mode(postgres, MODE_PARTITIONED) as scratch:
        yield scratch


@pytest.fixture
async def timescaledb_pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with pool_in_mode(postgres, MODE_TIMESCALEDB) as scratch:
        yield scratch


# --- schema -----------------------------------------------------------------------------------


async def test_apply_is_idempotent_and_an_existing_database_keeps_its_mode(
    pool: asyncpg.Pool,
) -> None:
    mode = await mode_of(pool)
    async with pool.acquire() as conn:
        assert await apply_schema(conn) == mode
        assert await apply_schema(conn, timescaledb=mode == MODE_TIMESCALEDB) == mode
        with pytest.raises(telemetry_schema.TelemetrySchemaError, match="keeps its mode"):
            await apply_schema(conn, timescaledb=mode != MODE_TIMESCALEDB)


async def test_dropped_storage_can_be_recreated_in_the_other_mode(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    mode = await mode_of(pool)
    other = MODE_PARTITIONED if mode == MODE_TIMESCALEDB else MODE_TIMESCALEDB
    if other == MODE_TIMESCALEDB:
        await require_timescaledb(postgres)
    await write(pool, drive([Signer("veh-1")], 5, now_ms()))
    async with pool.acquire() as conn:
        await telemetry_schema.drop(conn)
        assert await telemetry_schema.storage_mode(conn) is None
        assert await apply_schema(conn, timescaledb=other == MODE_TIMESCALEDB) == other
    counts = await write(pool, drive([Signer("veh-1")], 5, now_ms()))
    assert counts.telemetry_inserted == 5


async def test_segment_speed_5m_has_the_same_columns_in_both_modes(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        columns = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'segment_speed_5m' "
            "ORDER BY ordinal_position"
        )
    assert [tuple(c) for c in columns] == [
        ("bucket", "timestamp with time zone"),
        ("segment_id", "integer"),
        ("speed_sum", "bigint"),
        ("samples", "bigint"),
        ("vehicles", "bigint"),
        ("avg_spd_cms", "double precision"),
    ]
    assert tuple(c["column_name"] for c in columns) == telemetry_tables.AGGREGATE_COLUMNS


async def test_timescaledb_asked_for_without_the_extension_is_refused(postgres: Settings) -> None:
    if await timescaledb_installed(postgres):
        pytest.skip("the timescaledb extension is installed here: nothing to refuse")
    with pytest.raises(telemetry_schema.TelemetrySchemaError, match="not installed"):
        async with scratch_pool(postgres, timescaledb=True):
            pass


# --- day partitions ---------------------------------------------------------------------------


async def test_partitions_are_created_once_by_concurrent_callers(
    partitioned_pool: asyncpg.Pool,
) -> None:
    pool = partitioned_pool
    days = [date(2025, 3, d) for d in range(1, 6)]

    async def create() -> int:
        async with pool.acquire() as conn:
            return await telemetry_partitions.ensure_day_partitions(conn, reversed(days))

    created = await asyncio.gather(*(create() for _ in range(6)))
    assert sum(created) == len(days) * len(telemetry_partitions.DAY_PARTITIONED)
    async with pool.acquire() as conn:
        names = await conn.fetchval(
            "SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = 'telemetry' AND p.relnamespace = current_schema()::regnamespace"
        )
    assert [n for n in names if n.startswith("telemetry_p2025")] == [
        f"telemetry_p{d:%Y%m%d}" for d in days
    ]


# --- retention --------------------------------------------------------------------------------


async def test_retention_drops_only_whole_days_older_than_the_window(pool: asyncpg.Pool) -> None:
    mode = await mode_of(pool)
    today = date.today()
    now = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    days_back = [12, 11, 10, 9, 0]  # with 10 days kept, the cutoff falls inside day -10
    car = Signer("veh-old")
    raws = []
    for back in days_back:
        day_ms = int((now - timedelta(days=back)).timestamp() * 1000)
        raws += drive([car], 3, day_ms - 6 * 3_600_000)  # 06:00-ish UTC of that day
    async with pool.acquire() as conn:
        if mode == MODE_PARTITIONED:
            await telemetry_partitions.ensure_day_partitions(
                conn, [today - timedelta(days=b) for b in days_back]
            )
        writer = await BatchWriter.open(conn, retention_days=10)
        await writer.write_batch(conn, records(raws))
        buckets = await conn.fetchval("SELECT count(*) FROM segment_speed_5m")
        dropped = await telemetry_schema.apply_retention(conn, 10, now=now)
        remaining = await conn.fetch(
            "SELECT ts::date AS day, count(*) FROM telemetry GROUP BY 1 ORDER BY 1"
        )
        assert await telemetry_schema.apply_retention(conn, 10, now=now) == []
        if mode == MODE_PARTITIONED:  # the aggregate is kept, as the continuous one is
            assert await conn.fetchval("SELECT count(*) FROM segment_speed_5m") == buckets
    assert [(row["day"], row["count"]) for row in remaining] == [
        (today - timedelta(days=b), 3) for b in (10, 9, 0)
    ]
    if mode == MODE_PARTITIONED:
        assert sorted(dropped) == sorted(
            f"{table}_p{today - timedelta(days=b):%Y%m%d}"
            for table, _ in telemetry_partitions.DAY_PARTITIONED
            for b in (12, 11)
        )
    else:
        assert len(dropped) == 2  # the two telemetry chunks; rsu_observations has none


async def test_retention_also_clears_old_rows_from_the_default_partition(
    partitioned_pool: asyncpg.Pool,
) -> None:
    pool = partitioned_pool
    car = Signer("veh-ancient")
    today = now_ms() // MS_PER_DAY
    raws = [car.vehicle((today - 500) * MS_PER_DAY), car.vehicle((today + 30) * MS_PER_DAY)]
    await write(pool, raws)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM telemetry_default") == 2
        await telemetry_schema.apply_retention(conn, 365)
        assert await conn.fetchval("SELECT seq FROM telemetry_default") == 2  # the future one


# --- TimescaleDB ------------------------------------------------------------------------------


async def test_timescaledb_policies_and_compressed_chunks(timescaledb_pool: asyncpg.Pool) -> None:
    pool = timescaledb_pool
    async with pool.acquire() as conn:
        jobs = await conn.fetch(
            "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
            "WHERE hypertable_schema = current_schema() ORDER BY proc_name, hypertable_name"
        )
        interval = await conn.fetchval(
            "SELECT time_interval FROM timescaledb_information.dimensions "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'"
        )
        settings = await conn.fetch(
            "SELECT attname, segmentby_column_index, orderby_column_index "
            "FROM timescaledb_information.compression_settings "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry'"
        )
        await telemetry_schema.ensure_retention_policy(conn, 30)
        await telemetry_schema.ensure_retention_policy(conn, None)  # keeps 30
        retention = await conn.fetchval(
            "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_schema = current_schema() "
            "AND hypertable_name = 'telemetry'"
        )
    kinds = {(row["proc_name"], row["hypertable_name"]) for row in jobs}
    assert {
        ("policy_compression", "telemetry"),
        ("policy_compression", "rsu_observations"),
        ("policy_retention", "telemetry"),
        ("policy_retention", "rsu_observations"),
    } <= kinds
    assert any(proc == "policy_refresh_continuous_aggregate" for proc, _ in kinds)
    assert interval == timedelta(days=1)
    by_column = {row["attname"]: row for row in settings}
    assert by_column["device_id"]["segmentby_column_index"] == 1
    assert by_column["seq"]["orderby_column_index"] == 1
    assert retention == timedelta(days=30)

    # Redelivery into compressed chunks: nothing duplicated; a new row still goes in.
    car = Signer("veh-compressed")
    start = now_ms() - 10 * MS_PER_DAY
    raws = drive([car], 20, start)
    await write(pool, raws)
    async with pool.acquire() as conn:
        ext = await telemetry_schema.timescaledb_schema(conn)
        compressed = await conn.fetch(
            f"SELECT {ext}.compress_chunk(c) FROM {ext}.show_chunks($1::regclass) c",  # noqa: S608 - ext is quoted by format('%I')
            await conn.fetchval("SELECT format('%I.telemetry', current_schema())"),
        )
        assert compressed
        late = [car.vehicle(start + 500)]
        counts = await BatchWriter(MODE_TIMESCALEDB).write_batch(conn, records(raws + late))
        assert (counts.telemetry_inserted, counts.duplicates) == (1, 20)
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 21
