"""The audit log's store on the real PostgreSQL: its tree is the RFC 9162 tree of its leaves
(checked against chain's in-memory log), an append shares the caller's transaction, and
proofs verify at every size."""

from __future__ import annotations

import asyncpg
import pytest

from chain.log import InMemoryMerkleLog
from chain.merkle import verify_inclusion
from roadledger.audit.events import AuditEvent, EventKind
from roadledger.audit.log import append_events, head, inclusion_proof

pytestmark = [pytest.mark.postgres]


def _event(n: int) -> AuditEvent:
    return AuditEvent(EventKind.DATA_ACCESS, f"m_{n}", "fleet-a", device_id=f"veh-{n}")


async def test_the_stored_tree_is_the_rfc9162_tree_of_its_leaves(api_pool: asyncpg.Pool) -> None:
    reference = InMemoryMerkleLog()
    async with api_pool.acquire() as conn:
        for batch in (1, 1, 3, 8, 2, 17):  # single leaves and batches across subtree edges
            first = (await head(conn)).size
            assert await append_events(conn, [_event(first + i) for i in range(batch)]) == list(
                range(first, first + batch)
            )
            entries = await conn.fetch(
                "SELECT entry FROM audit_entries WHERE leaf_index >= $1 ORDER BY leaf_index", first
            )
            reference.append_many(bytes(row[0]) for row in entries)
            current = await head(conn)
            assert (current.size, current.root_hash) == (reference.size, reference.root())
    size = reference.size
    for index in range(size):
        proof = await inclusion_proof(api_pool, index, size)
        assert proof == reference.inclusion_proof(index, size)
        verify_inclusion(index, size, reference.leaf_hash(index), reference.root(), proof)


async def test_an_append_rolls_back_with_the_callers_transaction(api_pool: asyncpg.Pool) -> None:
    async with api_pool.acquire() as conn:
        await append_events(conn, [_event(0)])
        before = await head(conn)
        transaction = conn.transaction()
        await transaction.start()
        await append_events(conn, [_event(1), _event(2)])
        await transaction.rollback()  # the change the entries record failed
        assert await head(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM audit_entries") == 1
        assert await conn.fetchval("SELECT count(*) FROM audit_nodes WHERE level = 0") == 1
        assert await append_events(conn, [_event(3)]) == [1]  # no gap where the rollback was
