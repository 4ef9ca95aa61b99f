"""A scratch schema is sealed: tables in ``public`` (e.g. left by ``roadledger demo``) are not
reachable from it, so a test can never read or write the real data by falling through."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from roadledger.db.scratch import scratch_schema_pool
from roadledger.settings import Settings

pytestmark = pytest.mark.postgres


async def test_public_tables_do_not_show_through(postgres: Settings) -> None:
    name = f"scratch_probe_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(postgres.database_url)
    try:
        await conn.execute(f"CREATE TABLE public.{name} (x integer)")
        async with scratch_schema_pool(postgres) as pool:
            assert await pool.fetchval("SELECT to_regclass($1)", name) is None
            with pytest.raises(asyncpg.UndefinedTableError):
                await pool.execute(f"INSERT INTO {name} VALUES (1)")  # noqa: S608 - a name we made
            # The project's own tables are the scratch schema's.
            schema = await pool.fetchval("SELECT current_schema()")
            assert schema.startswith("scratch_")
            home = await pool.fetchval(
                "SELECT relnamespace::regnamespace::text FROM pg_class "
                "WHERE oid = to_regclass('telemetry')"
            )
            assert home == schema
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS public.{name}")
        await conn.close()
