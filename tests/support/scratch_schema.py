"""Scratch schemas: a private PostgreSQL schema with the project's tables, dropped afterwards.

Tests and benchmarks use one each, so they never see each other's rows nor the real data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from roadledger.db import telemetry_schema
from roadledger.db.pool import create_pool
from roadledger.db.schema import apply_schema
from roadledger.settings import Settings

__all__ = ["scratch_schema_pool"]


async def _ddl(settings: Settings, template: str, schema: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(await conn.fetchval("SELECT format($1, $2::text)", template, schema))
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_schema_pool(
    settings: Settings,
    max_size: int = 4,
    *,
    timescaledb: bool | None = None,
    with_tables: bool = True,
) -> AsyncIterator[asyncpg.Pool]:
    """A pool whose search_path is a fresh schema holding the project's tables, and only it.

    ``public`` is not on the path: a table missing from the scratch schema must be an error,
    not a fall-through to whatever ``roadledger demo`` left in ``public`` (TimescaleDB's
    functions are called schema-qualified, so they need no path). ``timescaledb`` chooses the
    telemetry storage mode as :func:`apply_schema` does. ``with_tables=False``: the schema is
    left empty (tests of the migrations build older schemas in it).
    """
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    await _ddl(settings, "CREATE SCHEMA %I", schema)
    pool = await create_pool(settings, max_size=max_size, server_settings={"search_path": schema})
    try:
        if with_tables:
            async with pool.acquire() as conn:
                await apply_schema(conn, timescaledb=timescaledb)
        yield pool
    finally:
        # TimescaleDB keeps compressed chunks in its own schema: drop the hypertables through
        # it first, or DROP SCHEMA ... CASCADE leaves them behind.
        async with pool.acquire() as conn:
            await telemetry_schema.drop(conn)
        await pool.close()
        await _ddl(settings, "DROP SCHEMA %I CASCADE", schema)
