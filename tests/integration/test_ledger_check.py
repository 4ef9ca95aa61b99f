"""``check_ledger`` on the real PostgreSQL: a stored row without a leaf, and a log that lost an
entry, are reported; a complete ledger is consistent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from chain.hashing import leaf_hash
from chain.note_signers import Ed25519Signer
from chain.sequencer import Sequencer
from roadledger.db.ledger_check import check_ledger
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

ORIGIN = "roadledger.test/telemetry/0"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres) as pool:
        yield pool


def message(seq: int) -> bytes:
    return f"jws of veh-1 seq {seq}".encode()


async def store_rows(pool: asyncpg.Pool, seqs: range, recv: datetime = NOW) -> None:
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO telemetry (device_id, seq, ts, recv_ts, lat_e7, lon_e7, leaf_hash) "
            "VALUES ('veh-1', $1, $2, $3, 0, 0, $4)",
            [(s, NOW + timedelta(seconds=s), recv, leaf_hash(message(s))) for s in seqs],
        )


async def test_a_complete_ledger_is_consistent(pool: asyncpg.Pool) -> None:
    sequencer = await Sequencer.open(
        PostgresLedgerStore(pool), ORIGIN, Ed25519Signer.generate(ORIGIN)
    )
    await sequencer.append([message(s) for s in range(1, 11)])
    await store_rows(pool, range(1, 11))
    report = await check_ledger(pool)
    assert report.ok, report
    assert report.telemetry_rows == 10
    assert [(log.origin, log.tree_size, log.problems) for log in report.logs] == [(ORIGIN, 10, [])]


async def test_stored_rows_without_a_leaf_are_named(pool: asyncpg.Pool) -> None:
    sequencer = await Sequencer.open(
        PostgresLedgerStore(pool), ORIGIN, Ed25519Signer.generate(ORIGIN)
    )
    await sequencer.append([message(s) for s in range(1, 8)])
    await store_rows(pool, range(1, 11))
    report = await check_ledger(pool)
    assert not report.ok
    assert [(row.device_id, row.seq) for row in report.missing] == [
        ("veh-1", s) for s in (8, 9, 10)
    ]
    # Rows received after the settle point are not judged yet.
    assert (await check_ledger(pool, settled_before=NOW)).ok


async def test_a_log_missing_an_entry_is_broken(pool: asyncpg.Pool) -> None:
    sequencer = await Sequencer.open(
        PostgresLedgerStore(pool), ORIGIN, Ed25519Signer.generate(ORIGIN)
    )
    await sequencer.append([message(s) for s in range(1, 11)])
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM ledger_entries WHERE leaf_index = 4")
    await store_rows(pool, range(1, 11))
    report = await check_ledger(pool)
    assert not report.ok
    assert [(row.seq) for row in report.missing] == [5]
    (log,) = report.logs
    assert log.problems == [
        "9 entries for tree size 10",
        "leaf indices run to 9 over 9 entries",
        "the root of the stored tree is not the latest checkpoint's",
    ]
