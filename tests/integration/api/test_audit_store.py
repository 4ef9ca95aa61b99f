"""The audit log's store on the real PostgreSQL: a ledger log whose tree is the RFC 9162 tree
of its leaves (checked against chain's in-memory log), an append shares the caller's
transaction, proofs verify at every size, and a legacy (migration 8) tree moves into the
ledger tables unchanged."""

from __future__ import annotations

import asyncpg
import pytest

from chain.log import InMemoryMerkleLog
from chain.merkle import verify_inclusion
from chain.note_signers import Ed25519Signer
from roadledger.audit.events import AuditEvent, EventKind
from roadledger.audit.log import append_events, audit_ledger_log, head, open_log, sign_head
from roadledger.db.ledger_check import check_ledger
from roadledger.db.ledger_reads import inclusion_proofs

pytestmark = [pytest.mark.postgres]

SIGNER = Ed25519Signer("audit.test/audit", bytes(range(32)))


def _event(n: int) -> AuditEvent:
    return AuditEvent(EventKind.DATA_ACCESS, f"m_{n}", "fleet-a", device_id=f"veh-{n}")


async def _leaves(conn: asyncpg.Connection, first: int) -> list[bytes]:
    rows = await conn.fetch(
        "SELECT entry FROM ledger_entries WHERE log_id = (SELECT log_id FROM audit_head) "
        "AND leaf_index >= $1 ORDER BY leaf_index",
        first,
    )
    return [bytes(row[0]) for row in rows]


async def test_the_stored_tree_is_the_rfc9162_tree_of_its_leaves(api_pool: asyncpg.Pool) -> None:
    reference = InMemoryMerkleLog()
    async with api_pool.acquire() as conn:
        await open_log(conn, SIGNER)
        for batch in (1, 1, 3, 8, 2, 17):  # single leaves and batches across subtree edges
            first = (await head(conn)).size
            assert await append_events(conn, [_event(first + i) for i in range(batch)]) == list(
                range(first, first + batch)
            )
            reference.append_many(await _leaves(conn, first))
            current = await head(conn)
            assert (current.size, current.root_hash) == (reference.size, reference.root())
        await sign_head(conn, SIGNER)
    size = reference.size
    log = await audit_ledger_log(api_pool)
    assert (log.tree_size, log.root_hash) == (size, reference.root())
    proofs = await inclusion_proofs(api_pool, log, range(size), size)
    for index in range(size):
        assert proofs[index] == reference.inclusion_proof(index, size)
        verify_inclusion(index, size, reference.leaf_hash(index), reference.root(), proofs[index])


async def test_an_append_rolls_back_with_the_callers_transaction(api_pool: asyncpg.Pool) -> None:
    async with api_pool.acquire() as conn:
        await open_log(conn, SIGNER)
        await append_events(conn, [_event(0)])
        before = await head(conn)
        transaction = conn.transaction()
        await transaction.start()
        await append_events(conn, [_event(1), _event(2)])
        await transaction.rollback()  # the change the entries record failed
        assert await head(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM audit_entries") == 1
        assert len(await _leaves(conn, 0)) == 1
        assert await append_events(conn, [_event(3)]) == [1]  # no gap where the rollback was


async def test_an_unopened_log_refuses_appends(api_pool: asyncpg.Pool) -> None:
    async with api_pool.acquire() as conn:
        with pytest.raises(Exception, match="not open"):
            await append_events(conn, [_event(0)])


async def test_a_legacy_tree_moves_into_the_ledger_as_it_is(api_pool: asyncpg.Pool) -> None:
    # Migration 8's tables as an older API left them: 20 leaves, every node stored.
    reference = InMemoryMerkleLog()
    legacy = [_event(n).encode(1_780_000_000_000, n) for n in range(20)]
    reference.append_many(legacy)
    async with api_pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO audit_entries (leaf_index, leaf_hash, entry, at, event, actor) "
            "VALUES ($1, $2, $3, now(), 'data_access', 'm')",
            [(i, reference.leaf_hash(i), e) for i, e in enumerate(legacy)],
        )
        nodes = [(0, i, reference.leaf_hash(i)) for i in range(20)]
        nodes += [(4, 0, reference.read_nodes([(4, 0)])[0])]
        await conn.executemany(
            "INSERT INTO audit_nodes (level, node_index, hash) VALUES ($1, $2, $3)", nodes
        )
        await conn.execute("UPDATE audit_head SET tree_size = 20, root_hash = $1", reference.root())
        await open_log(conn, SIGNER)
        assert await _leaves(conn, 0) == legacy
        assert await conn.fetchval("SELECT count(*) FROM audit_nodes") == 0
        assert await append_events(conn, [_event(20)]) == [20]
        reference.append_many(await _leaves(conn, 20))
        await sign_head(conn, SIGNER)
    log = await audit_ledger_log(api_pool)
    assert (log.tree_size, log.root_hash) == (21, reference.root())


async def test_the_ledger_check_counts_the_audit_log_up_to_its_checkpoint(
    api_pool: asyncpg.Pool,
) -> None:
    async with api_pool.acquire() as conn:
        await open_log(conn, SIGNER)
        await append_events(conn, [_event(n) for n in range(5)])
        await sign_head(conn, SIGNER)
        await append_events(conn, [_event(5)])  # the next checkpoint's: no fault
    report = await check_ledger(api_pool)
    assert [(log.origin, log.tree_size, log.entries, log.problems) for log in report.logs] == [
        (SIGNER.name, 5, 5, [])
    ]
    await api_pool.execute("DELETE FROM ledger_entries WHERE leaf_index = 2")
    [log] = (await check_ledger(api_pool)).logs
    assert log.problems  # a leaf under the checkpoint is gone: that is one
