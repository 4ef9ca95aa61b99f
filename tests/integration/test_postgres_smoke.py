"""PostgreSQL is real and usable from Python through asyncpg; the storage mode is reported."""

from __future__ import annotations

import asyncpg
import pytest

from roadledger.settings import Settings
from runtime.services.postgres import database_mode

pytestmark = pytest.mark.postgres


async def test_asyncpg_round_trip_with_parameters(postgres: Settings) -> None:
    conn = await asyncpg.connect(postgres.database_url)
    try:
        await conn.execute("CREATE TEMP TABLE smoke (id bigint PRIMARY KEY, body bytea, note text)")
        rows = [(i, bytes([i % 256]) * 3, f"row {i}'; DROP TABLE smoke; --") for i in range(500)]
        await conn.copy_records_to_table("smoke", records=rows)
        assert await conn.fetchval("SELECT count(*) FROM smoke") == 500
        row = await conn.fetchrow("SELECT body, note FROM smoke WHERE id = $1", 258)
        assert row is not None
        assert row["body"] == b"\x02\x02\x02"
        assert row["note"] == "row 258'; DROP TABLE smoke; --"
    finally:
        await conn.close()


async def test_storage_mode_matches_the_extension_catalog(postgres: Settings) -> None:
    conn = await asyncpg.connect(postgres.database_url)
    try:
        version = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        available = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        )
    finally:
        await conn.close()
    mode = await database_mode(postgres)
    print(f"storage mode: {mode}")
    if version is None:
        assert mode.startswith("plain PostgreSQL"), mode
        if postgres.timescaledb != "off":  # off: plain PostgreSQL asked for, even if installed
            assert available == 0, "timescaledb is installed on the server but was not created"
    else:
        assert mode.startswith(f"timescaledb {version}"), mode


async def test_application_role_is_not_superuser(postgres: Settings) -> None:
    conn = await asyncpg.connect(postgres.database_url)
    try:
        assert (
            await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
    finally:
        await conn.close()
