"""Numbered migrations on the real PostgreSQL: upgrading a released schema with rows in it, a
fresh database, concurrent callers, and a database from a newer RoadLedger.

The released schema 5 is test data (``data/schema_v5.sql``, the DDL of commit f858541), not
old code imported: it is what a deployed database holds, whatever this code says now.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from roadledger.db.migrations import SchemaTooNewError, applied_numbers, recorded_number
from roadledger.db.schema import MIGRATIONS, SCHEMA_VERSION, apply_schema
from roadledger.db.telemetry_schema import MODE_PARTITIONED
from roadledger.db.warnings_feed_schema import WARNINGS_CHANNEL
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

SCHEMA_V5 = Path(__file__).parent / "data" / "schema_v5.sql"
NEW_COLUMNS = {"prev", "key_id", "signed_ts"}
FEED_INDEXES = {"warnings_stored", "warnings_start", "warnings_end", "warnings_span",
                "warnings_segment"}  # fmt: skip


@pytest.fixture
async def empty_schema(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh, empty scratch schema (no apply_schema)."""
    async with scratch_schema_pool(postgres, with_tables=False) as pool:
        yield pool


async def columns(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1",
        table,
    )
    return {row[0] for row in rows}


async def indexes(conn: asyncpg.Connection, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
        table,
    )
    return {row[0] for row in rows}


async def triggers(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal",
        table,
    )
    return [row[0] for row in rows]


async def fill_v5(conn: asyncpg.Connection) -> None:
    """Rows as a schema-5 deployment has them: a device, its messages, a warning, telemetry."""
    await conn.execute(
        "INSERT INTO organisations (org_id, name, kind) VALUES ('org-1', 'Fleet One', 'fleet')"
    )
    await conn.execute(
        "INSERT INTO devices (device_id, owner_org, kind, vin) "
        "VALUES ('veh-1', 'org-1', 'vehicle', 'VIN0000000000001')"
    )
    await conn.executemany(
        "INSERT INTO device_messages (device_id, seq, message_hash, source_partition, "
        "source_offset) VALUES ('veh-1', $1, $2, 0, $3)",
        [(seq, bytes([seq]) * 32, 100 + seq) for seq in (1, 2, 3)],
    )
    await conn.execute(
        "INSERT INTO warnings (warning_id, type, severity, device_id, from_ts, to_ts, "
        "rule_version, evidence, detail) VALUES ('w-1', 'speeding', 'high', 'veh-1', "
        "'2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'rules-1', $1, $2)",
        json.dumps({"seqs": [1, 2, 3]}),
        json.dumps({"max_kmh": 97}),
    )
    await conn.execute(
        "INSERT INTO telemetry (device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, leaf_hash) "
        "VALUES ('veh-1', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', 10, 1, 2, $1)",
        bytes(32),
    )


async def test_a_released_schema_5_with_rows_is_upgraded_in_place(
    empty_schema: asyncpg.Pool,
) -> None:
    async with empty_schema.acquire() as conn:
        await conn.execute(SCHEMA_V5.read_text())
        await fill_v5(conn)
        assert not NEW_COLUMNS & await columns(conn, "device_messages")
        assert await recorded_number(conn) == 5

        assert await apply_schema(conn) == MODE_PARTITIONED

        assert await columns(conn, "device_messages") >= NEW_COLUMNS
        messages = await conn.fetch(
            "SELECT seq, message_hash, source_offset, prev, key_id, signed_ts "
            "FROM device_messages ORDER BY seq"
        )
        assert [(r["seq"], bytes(r["message_hash"]), r["source_offset"]) for r in messages] == [
            (seq, bytes([seq]) * 32, 100 + seq) for seq in (1, 2, 3)
        ]
        assert all(r["prev"] is None and r["key_id"] is None for r in messages)
        assert all(r["signed_ts"] is None for r in messages)
        assert await conn.fetchval("SELECT owner_org FROM devices WHERE device_id = 'veh-1'") == (
            "org-1"
        )
        warning = await conn.fetchrow("SELECT type, evidence FROM warnings")
        assert (warning["type"], json.loads(warning["evidence"])) == (
            "speeding",
            {"seqs": [1, 2, 3]},
        )
        assert await conn.fetchval("SELECT count(*) FROM telemetry") == 1

        # Migration 7 (identity and access) altered organisations and kept its row.
        org = await conn.fetchrow("SELECT kind, parent_id, jurisdiction FROM organisations")
        assert tuple(org) == ("fleet_owner", None, None)  # the legacy 'fleet', renamed
        assert await conn.fetchval("SELECT count(*) FROM members") == 0

        # Migration 8 (the audit log) created its tables with an empty tree.
        assert await conn.fetchval("SELECT tree_size FROM audit_head") == 0
        # Migration 11 left it to the API to make it a ledger log (the origin is a setting).
        assert await conn.fetchval("SELECT log_id FROM audit_head") is None

        # Migration 10: the warnings feed's notification and the reads' indexes, on old rows.
        assert await indexes(conn, "warnings") >= FEED_INDEXES
        assert await triggers(conn, "warnings") == ["warnings_notify"]
        assert "devices_owner" in await indexes(conn, "devices")

        # Migration 12 made credential changes notify the API processes.
        for table in ("api_keys", "api_sessions", "members", "organisations"):
            assert await triggers(conn, table) == [f"{table}_credentials_changed"]

        # Only migrations after 5 ran; 5 is what the legacy version said, date unknown.
        assert await applied_numbers(conn) == [
            (5, MIGRATIONS[0].description, False),
            *((m.number, m.description, True) for m in MIGRATIONS[1:]),
        ]
        assert [m.number for m in MIGRATIONS] == [5, 6, 7, 8, 9, 10, 11, 12]
        assert await recorded_number(conn) == SCHEMA_VERSION == 12
        assert await conn.fetchval("SELECT max(version) FROM roadledger_schema") == 12

        # A second call finds it current and changes nothing, not even the records' dates.
        dates = await conn.fetch("SELECT number, applied_at FROM roadledger_migrations")
        assert await apply_schema(conn) == MODE_PARTITIONED
        assert await conn.fetch("SELECT number, applied_at FROM roadledger_migrations") == dates


async def test_a_legacy_6_gets_only_the_migrations_after_it(empty_schema: asyncpg.Pool) -> None:
    """A legacy 6 (the old apply_schema's last version) runs 7 and on, never 6 again."""
    async with empty_schema.acquire() as conn:
        await conn.execute(SCHEMA_V5.read_text())
        for statement in (
            "ALTER TABLE device_messages ADD COLUMN prev bytea CHECK (length(prev) IN (0, 32))",
            "ALTER TABLE device_messages ADD COLUMN key_id text",
            "ALTER TABLE device_messages ADD COLUMN signed_ts bigint",
            "UPDATE roadledger_schema SET version = 6",
            # What `roadledger sim` registered its traffic authority as before kinds were fixed.
            "INSERT INTO organisations (org_id, name, kind) "
            "VALUES ('city-traffic-authority', 'City Traffic Authority', 'traffic_authority')",
        ):
            await conn.execute(statement)
        assert await apply_schema(conn) == MODE_PARTITIONED
        assert [(n, fresh) for n, _, fresh in await applied_numbers(conn)] == [
            (5, False),
            (6, False),
            *((m.number, True) for m in MIGRATIONS[2:]),
        ]
        # Migration 7: an authority now, which may publish the simulation's zones.
        assert (
            await conn.fetchval(
                "SELECT kind FROM organisations WHERE org_id = 'city-traffic-authority'"
            )
            == "authority"
        )


async def test_a_fresh_database_runs_every_migration_in_order(empty_schema: asyncpg.Pool) -> None:
    async with empty_schema.acquire() as conn:
        assert await recorded_number(conn) == 0
        assert await apply_schema(conn) == MODE_PARTITIONED
        rows = await conn.fetch(
            "SELECT number, description, applied_at FROM roadledger_migrations ORDER BY number"
        )
        assert [(r["number"], r["description"]) for r in rows] == [
            (m.number, m.description) for m in MIGRATIONS
        ]
        assert all(r["applied_at"] is not None for r in rows)
        stamps = [r["applied_at"] for r in rows]
        assert stamps == sorted(stamps)
        assert await columns(conn, "device_messages") >= NEW_COLUMNS
        assert await recorded_number(conn) == SCHEMA_VERSION


async def test_concurrent_callers_on_a_fresh_database_apply_each_migration_once(
    empty_schema: asyncpg.Pool,
) -> None:
    async def apply() -> str:
        async with empty_schema.acquire() as conn:
            return await apply_schema(conn)

    modes = await asyncio.gather(*(apply() for _ in range(3)))
    assert modes == [MODE_PARTITIONED] * 3
    numbers = await empty_schema.fetch("SELECT number FROM roadledger_migrations ORDER BY number")
    assert [r[0] for r in numbers] == [m.number for m in MIGRATIONS]


@pytest.mark.parametrize("bookkeeping", ["migrations", "legacy"])
async def test_a_database_from_a_newer_roadledger_is_refused(
    empty_schema: asyncpg.Pool, bookkeeping: str
) -> None:
    future = SCHEMA_VERSION + 3
    async with empty_schema.acquire() as conn:
        if bookkeeping == "migrations":
            await apply_schema(conn)
            await conn.execute(
                "INSERT INTO roadledger_migrations (number, description) VALUES ($1, 'later')",
                future,
            )
        else:
            await conn.execute(SCHEMA_V5.read_text())
            await conn.execute("UPDATE roadledger_schema SET version = $1", future)
        before = await conn.fetch("SELECT * FROM roadledger_schema")
        with pytest.raises(SchemaTooNewError) as refused:
            await apply_schema(conn)
        assert (refused.value.recorded, refused.value.supported) == (future, SCHEMA_VERSION)
        message = str(refused.value)
        assert f"migration {future}" in message
        assert f"up to {SCHEMA_VERSION}" in message
        assert await recorded_number(conn) == future  # nothing migrated down
        assert await conn.fetch("SELECT * FROM roadledger_schema") == before
        # Asking for a mode does not get round it either.
        with pytest.raises(SchemaTooNewError):
            await apply_schema(conn, timescaledb=False)


async def test_an_insert_into_warnings_notifies_its_schema_and_newest_row_at_commit(
    postgres: Settings, empty_schema: asyncpg.Pool
) -> None:
    """Migration 10's trigger: one notification per inserting statement, sent at commit,
    whoever inserts (here plain SQL, not the store); none for a statement that inserted
    nothing, none for a transaction rolled back."""
    async with empty_schema.acquire() as conn:
        await apply_schema(conn)
        schema = await conn.fetchval("SELECT current_schema()")
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(postgres.database_url)
    try:
        await listener.add_listener(WARNINGS_CHANNEL, lambda *args: heard.put_nowait(args[3]))
        insert = (
            "INSERT INTO warnings (warning_id, type, severity, device_id, from_ts, to_ts, "
            "rule_version, evidence, detail) SELECT id, 'speeding', 'high', 'veh-1', "
            "'2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z', 'rules-1', '[]', '{}' "
            "FROM unnest($1::text[]) id ON CONFLICT (warning_id) DO NOTHING"
        )
        async with empty_schema.acquire() as conn:
            async with conn.transaction():
                await conn.execute(insert, ["w-1", "w-2"])
                await conn.execute(insert, ["w-1"])  # nothing new: no notification
                newest = await conn.fetchval("SELECT max(stored_at) FROM warnings")
                assert heard.empty()  # not before the commit
            payload = await asyncio.wait_for(heard.get(), 10)
            micros = int((newest - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
            assert payload == f"{schema} {micros}"
            try:
                async with conn.transaction():
                    await conn.execute(insert, ["w-4"])
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            await conn.execute(insert, ["w-2"])  # a statement that inserted nothing
            await conn.execute("SELECT pg_notify($1, 'end')", WARNINGS_CHANNEL)
            assert await asyncio.wait_for(heard.get(), 10) == "end"
    finally:
        await listener.close()
