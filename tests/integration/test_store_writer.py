"""The store writer on the real PostgreSQL, in both storage modes: batches written once,
matched to road segments and joined to the ledger, and the stream loop's commits.

Every test runs in a scratch schema of its own, once in partitioned mode (always) and once in
TimescaleDB mode (skipped, saying why, when the database has no timescaledb extension). The
schemas and records: ``store_support.py``; the storage modes themselves:
``test_telemetry_schema.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

import asyncpg
import pytest

from chain.note_signers import Ed25519Signer
from chain.sequencer import Sequencer
from chain.telemetry import Observation, TelemetryMessage
from contracts.roads import RoadSegment
from ingest.batch_writer import BatchWriter, WriteCounts
from ingest.store_writer import StoreWriter
from ingest.telemetry_rows import MS_PER_DAY
from roadledger.db import telemetry_partitions, telemetry_schema
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.db.telemetry_schema import MODE_PARTITIONED, MODE_TIMESCALEDB
from roadledger.settings import Settings
from roadledger.stream import TopicPartition
from roadledger.stream.memory import MemoryStream
from tests.integration.store_support import (
    SEGMENTS,
    aggregate_from_rows,
    aggregate_rows,
    drive,
    mode_of,
    now_ms,
    pool_in_mode,
    produce,
    records,
    write,
)
from tests.unit.ingest.test_map_matching import heading_of, point_on
from tests.unit.ingest.test_store_rows import Signer

pytestmark = pytest.mark.postgres

ORIGIN = "roadledger.test/telemetry/0"


@pytest.fixture(params=[MODE_PARTITIONED, MODE_TIMESCALEDB])
async def pool(request: pytest.FixtureRequest, postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A scratch schema in each mode."""
    async with pool_in_mode(postgres, request.param) as scratch:
        yield scratch


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


# --- the stream loop (in-process stream) ------------------------------------------------------


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
