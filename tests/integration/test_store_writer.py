"""The store writer on the real PostgreSQL, in both storage modes.

Every test runs in a scratch schema of its own, once in partitioned mode (always) and once in
TimescaleDB mode (skipped, saying why, when the database has no timescaledb extension).
``scratch_pool`` and ``drive`` are also used by the Kafka test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from chain.note import Ed25519Signer
from chain.sequencer import Sequencer
from chain.telemetry import Observation, TelemetryMessage
from contracts.roads import RoadSegment, save_segments
from ingest.batch_writer import BatchWriter, WriteCounts
from ingest.store_writer import StoreWriter
from ingest.telemetry_rows import MS_PER_DAY
from roadledger.db import telemetry_partitions, telemetry_schema, telemetry_tables
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.db.pool import create_pool
from roadledger.db.schema import apply_schema
from roadledger.db.telemetry_schema import MODE_PARTITIONED, MODE_TIMESCALEDB
from roadledger.settings import Settings
from roadledger.stream import StreamRecord, TopicPartition
from roadledger.stream.memory import MemoryStream
from tests.unit.ingest.test_map_matching import grid_city, heading_of, point_on
from tests.unit.ingest.test_store_rows import Signer, verified_record

pytestmark = pytest.mark.postgres

SEGMENTS = grid_city(5)
ORIGIN = "roadledger.test/telemetry/0"


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


@pytest.fixture(params=[MODE_PARTITIONED, MODE_TIMESCALEDB])
async def pool(request: pytest.FixtureRequest, postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A scratch schema in each mode."""
    timescaledb = request.param == MODE_TIMESCALEDB
    if timescaledb:
        await require_timescaledb(postgres)
    async with scratch_pool(postgres, timescaledb=timescaledb) as scratch:
        yield scratch


@pytest.fixture
async def partitioned_pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool(postgres, timescaledb=False) as scratch:
        yield scratch


@pytest.fixture
async def timescaledb_pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    await require_timescaledb(postgres)
    async with scratch_pool(postgres, timescaledb=True) as scratch:
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


# --- writing ----------------------------------------------------------------------------------


async def test_the_same_batch_twice_stores_rows_and_aggregates_once(pool: asyncpg.Pool) -> None:
    cars = [Signer(f"veh-{i:03d}") for i in range(12)]
    start = now_ms() - 3_600_000
    first = drive(cars, 30, start)
    second = drive(cars, 30, start + 30_000)  # the same buckets, new rows
    counts = await write(pool, first)
    assert (counts.telemetry, counts.telemetry_inserted, counts.duplicates) == (360, 360, 0)
    async with pool.acquire() as conn:
        expected = await aggregate_from_rows(conn)
        assert await aggregate_rows(conn) == expected
        again = await write(pool, first)
        assert (again.telemetry_inserted, again.duplicates) == (0, 360)
        assert await aggregate_rows(conn) == expected
        # overlapping redelivery: half old, half new, in one batch
        mixed = await write(pool, first[::2] + second)
        assert (mixed.telemetry_inserted, mixed.duplicates) == (360, 180)
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 720
        aggregates = await aggregate_rows(conn)
        assert aggregates == await aggregate_from_rows(conn)
        assert sum(row[3] for row in aggregates) == 720  # type: ignore[misc]


async def test_concurrent_writers_of_the_same_records_store_them_once(pool: asyncpg.Pool) -> None:
    cars = [Signer(f"veh-{i:03d}") for i in range(20)]
    raws = drive(cars, 25, now_ms() - 7_200_000)
    batches = [records(raws[i::3]) for i in range(3)]

    async def writer(order: list[int]) -> WriteCounts:
        total = WriteCounts()
        async with pool.acquire() as conn:
            batch_writer = await BatchWriter.open(conn)
            for index in order:
                total += await batch_writer.write_batch(conn, batches[index])
        return total

    totals = await asyncio.gather(writer([0, 1, 2]), writer([2, 0, 1]), writer([1, 2, 0]))
    assert sum(t.telemetry_inserted for t in totals) == len(raws)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == len(raws)
        assert await aggregate_rows(conn) == await aggregate_from_rows(conn)


async def test_out_of_order_and_old_timestamps_are_all_stored(pool: asyncpg.Pool) -> None:
    today = now_ms() // MS_PER_DAY
    car = Signer("veh-late")
    # device days relative to today: buffered for weeks, clock far off, one beyond retention
    offsets = [0, -1, -20, 3, -400, -2, 0, -20, 1]
    raws = [car.vehicle((today + d) * MS_PER_DAY + 3_600_000 + i) for i, d in enumerate(offsets)]
    raws.reverse()  # newest seq first: out of order
    counts = await write(pool, raws)
    assert counts.telemetry_inserted == len(raws)
    async with pool.acquire() as conn:
        stored = await conn.fetch(
            "SELECT seq, tableoid::regclass::text AS part FROM telemetry ORDER BY seq"
        )
        assert [row["seq"] for row in stored] == list(range(1, len(raws) + 1))
        if await telemetry_schema.storage_mode(conn) != MODE_PARTITIONED:
            return
        # In the window (365 days back, one ahead): a day partition each; else DEFAULT.
        for row, d in zip(stored, offsets, strict=True):
            day = date(1970, 1, 1) + timedelta(days=today + d)
            want = f"telemetry_p{day:%Y%m%d}" if -365 <= d <= 1 else "telemetry_default"
            assert row["part"] == want, (d, row["part"])
        # A partition created later takes its rows out of DEFAULT (nothing lost, no error).
        old = date(1970, 1, 1) + timedelta(days=today - 400)
        assert await telemetry_partitions.ensure_day_partitions(conn, [old]) == 3
        assert await telemetry_partitions.ensure_day_partitions(conn, [old]) == 0
        moved = await conn.fetchval(
            "SELECT count(*) FROM telemetry WHERE tableoid::regclass::text = $1",
            f"telemetry_p{old:%Y%m%d}",
        )
        assert moved == 1
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == len(raws)


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


async def test_device_key_entries_are_skipped_and_counted(pool: asyncpg.Pool) -> None:
    car = Signer("veh-1")
    raws = [car.key_entry(), *drive([car], 3, now_ms()), Signer("veh-2").key_entry()]
    counts = await write(pool, raws)
    assert (counts.records, counts.device_key_entries, counts.telemetry_inserted) == (5, 2, 3)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 3


async def test_positions_are_matched_to_road_segments(pool: asyncpg.Pool) -> None:
    car, rsu = Signer("veh-1"), Signer("rsu-1")
    start = now_ms()
    streets: list[RoadSegment] = SEGMENTS[:: len(SEGMENTS) // 6]
    raws = []
    for i, street in enumerate(streets):
        raws.append(car.vehicle(start + i, *point_on(street, 0.5, 3.0), heading_of(street)))
    sightings = tuple(
        Observation("veh-1", start + i, *point_on(s, 0.5)) for i, s in enumerate(streets)
    )
    far = (SEGMENTS[0].a_lat_e7 - 100_000, SEGMENTS[0].a_lon_e7)  # 1 km south of the grid
    raws.append(rsu.rsu(start, *far, sightings))
    counts = await write(pool, raws)
    assert counts.unmatched == 1  # the RSU itself stands off the grid
    async with pool.acquire() as conn:
        matched = await conn.fetch(
            "SELECT segment_id FROM telemetry WHERE device_id = 'veh-1' ORDER BY seq"
        )
        observed = await conn.fetch(
            "SELECT segment_id, vehicle_id FROM rsu_observations ORDER BY obs_index"
        )
        rsu_row = await conn.fetchrow(
            "SELECT segment_id, odo_m, spd_cms FROM telemetry WHERE device_id = 'rsu-1'"
        )
    assert [row["segment_id"] for row in matched] == [s.segment_id for s in streets]
    # no heading in a sighting: a two-way street's lower id
    assert [row["segment_id"] for row in observed] == [
        min(s.segment_id, twin.segment_id)
        for s in streets
        for twin in SEGMENTS
        if (twin.a_lat_e7, twin.a_lon_e7, twin.b_lat_e7, twin.b_lon_e7)
        == (s.b_lat_e7, s.b_lon_e7, s.a_lat_e7, s.a_lon_e7)
    ]
    assert tuple(rsu_row) == (None, None, None)


async def test_every_stored_row_joins_to_its_leaf_in_the_ledger(pool: asyncpg.Pool) -> None:
    cars = [Signer(f"veh-{i}") for i in range(4)]
    raws = [cars[0].key_entry(), *drive(cars, 10, now_ms() - 60_000)]
    raws.append(Signer("rsu-1").rsu(now_ms(), 0, 0, (Observation("veh-0", now_ms(), 0, 0),)))
    sequencer = await Sequencer.open(
        PostgresLedgerStore(pool), ORIGIN, Ed25519Signer.generate(ORIGIN)
    )
    appended = await sequencer.append(raws)
    counts = await write(pool, raws)
    assert counts.telemetry_inserted == len(raws) - 1
    async with pool.acquire() as conn:
        joined = await conn.fetch(
            """
            SELECT t.device_id, t.seq, e.leaf_index, e.entry
              FROM telemetry t
              JOIN ledger_entries e ON e.leaf_hash = t.leaf_hash
              JOIN ledger_logs l ON l.log_id = e.log_id AND l.origin = $1
            """,
            ORIGIN,
        )
        observed = await conn.fetchval(
            "SELECT e.leaf_index FROM rsu_observations o "
            "JOIN ledger_entries e ON e.leaf_hash = o.leaf_hash"
        )
    index_of = dict(zip(raws, appended.leaf_indices, strict=True))
    assert len(joined) == counts.telemetry_inserted
    for row in joined:
        t = TelemetryMessage.from_bytes(row["entry"]).telemetry
        assert (t.dev, t.seq) == (row["device_id"], row["seq"])
        assert index_of[row["entry"]] == row["leaf_index"]
    assert observed == index_of[raws[-1]]


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


# --- the stream loop (in-process stream) ------------------------------------------------------


async def produce(stream: MemoryStream, topic: str, raws: Sequence[bytes]) -> None:
    producer = stream.producer(client_id="test")
    await producer.start()
    for raw in raws:
        key = TelemetryMessage.from_bytes(raw).telemetry.dev.encode() if raw[:1] == b"e" else None
        await producer.send(topic, raw, key=key, headers=[("recv_ms", str(now_ms()).encode())])
    await producer.stop()


async def test_store_writer_stores_everything_then_commits(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    stream, topic = MemoryStream(partitions=3), "test.verified"
    cars = [Signer(f"veh-{i:02d}") for i in range(9)]
    raws = [car.key_entry() for car in cars] + drive(cars, 40, now_ms() - 600_000)
    await produce(stream, topic, raws)
    settings = postgres.model_copy(update={"batch_size": 100})
    writer = StoreWriter(settings, stream, pool, topic=topic, group_id="store-test")
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    async with asyncio.timeout(60):
        totals = await writer.wait_for(lambda t: t.records >= len(raws))
    stop.set()
    await task
    assert (totals.telemetry_inserted, totals.device_key_entries) == (360, 9)
    assert writer.mode == await mode_of(pool)
    for tp, end in stream.end_offsets(topic).items():
        assert stream.committed("store-test", tp) == end
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 360
        assert await conn.fetchval("SELECT count(*) FROM telemetry WHERE recv_ts IS NULL") == 0

    # A restarted writer (same group) finds nothing new; another group re-reads everything
    # and inserts nothing: redelivery is harmless.
    again = StoreWriter(settings, stream, pool, topic=topic, group_id="store-test-2")
    stop = asyncio.Event()
    task = asyncio.create_task(again.run(stop))
    async with asyncio.timeout(60):
        totals = await again.wait_for(lambda t: t.records >= len(raws))
    stop.set()
    await task
    assert (totals.telemetry_inserted, totals.duplicates) == (0, 360)


async def test_offsets_are_not_committed_when_the_write_fails(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    stream, topic = MemoryStream(partitions=3), "test.verified"
    await produce(stream, topic, drive([Signer("veh-1")], 5, now_ms()))
    writer = StoreWriter(postgres, stream, pool, topic=topic, group_id="store-fail")
    await writer.start()
    async with pool.acquire() as conn:  # break the write after the schema was checked
        await conn.execute("ALTER TABLE telemetry RENAME TO telemetry_gone")
    with pytest.raises(asyncpg.UndefinedTableError):
        async with asyncio.timeout(60):
            await writer.run(asyncio.Event())
    for tp in stream.end_offsets(topic):
        assert stream.committed("store-fail", TopicPartition(tp.topic, tp.partition)) is None
