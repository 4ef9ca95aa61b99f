"""A scratch schema is sealed: the project's tables in ``public`` (what ``roadledger demo``
leaves behind) are not reachable from it, so a test never reads or writes them by falling
through ``search_path``.

The tables in ``public`` are made in a private PostgreSQL instance: the shared database's
``public`` may hold another engineer's data and is left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contracts.roads import save_segments
from ingest.store_writer import StoreWriter
from roadledger.db.schema import apply_schema
from roadledger.settings import Settings
from roadledger.stream.memory import MemoryStream
from tests.integration.private_services import private_services
from tests.integration.store_support import SEGMENTS, drive, now_ms, produce
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.test_store_rows import Signer

pytestmark = pytest.mark.postgres


@pytest.fixture
async def demo_database(postgres: Settings) -> AsyncIterator[Settings]:
    """A private PostgreSQL whose ``public`` holds the project's tables with a row in
    ``telemetry``, as after ``roadledger demo``."""
    async with private_services(postgres, postgres=True) as private:
        conn = await asyncpg.connect(private.settings.database_url)
        try:
            assert await conn.fetchval("SELECT current_schema()") == "public"
            await apply_schema(conn)
            await save_segments(conn, SEGMENTS)
            await conn.execute(
                "INSERT INTO telemetry (device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, "
                "leaf_hash) VALUES ('veh-demo', 1, now(), now(), 0, 0, 0, $1)",
                bytes(32),
            )
        finally:
            await conn.close()
        yield private.settings


async def public_telemetry(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT device_id FROM public.telemetry ORDER BY device_id")
        return [r["device_id"] for r in rows]
    finally:
        await conn.close()


async def test_a_scratch_pipeline_never_touches_public(demo_database: Settings) -> None:
    async with scratch_schema_pool(demo_database) as pool:
        assert await pool.fetchval("SELECT current_setting('search_path')") == (
            await pool.fetchval("SELECT current_schema()")
        )
        await save_segments(pool, SEGMENTS)
        stream, topic = MemoryStream(partitions=3), "test.verified"
        await produce(stream, topic, drive([Signer("veh-scratch")], 5, now_ms()))
        writer = StoreWriter(demo_database, stream, pool, topic=topic, group_id="scratch")
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        async with asyncio.timeout(60):
            await writer.wait_for(lambda t: t.records >= 5)
        stop.set()
        await task
        assert await pool.fetchval("SELECT count(*) FROM telemetry") == 5
        assert await public_telemetry(demo_database) == ["veh-demo"]

        # The failure this guards against: with the scratch table gone, a write must fail,
        # not land in public.telemetry (it did with search_path '<schema>,public', and the
        # store writer then waited for an error that never came).
        again = StoreWriter(demo_database, stream, pool, topic=topic, group_id="scratch")
        await again.start()  # its start-up would create the table again
        await pool.execute("ALTER TABLE telemetry RENAME TO telemetry_gone")
        before = {tp: stream.committed("scratch", tp) for tp in stream.end_offsets(topic)}
        await produce(stream, topic, drive([Signer("veh-late")], 3, now_ms()))
        with pytest.raises(asyncpg.UndefinedTableError):
            async with asyncio.timeout(60):
                await again.run(asyncio.Event())
        assert {tp: stream.committed("scratch", tp) for tp in before} == before
    assert await public_telemetry(demo_database) == ["veh-demo"]
