"""The sequencer over both stores (in memory, PostgreSQL): one contract, same answers.

Roots and proofs are checked against the independent in-memory Merkle log of chain.log and
verified with chain.merkle's verifiers.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from chain.blocks import verify_block_chain
from chain.checkpoint import SignedCheckpoint
from chain.errors import FencingError
from chain.hashing import leaf_hash
from chain.log import InMemoryMerkleLog
from chain.merkle import compute_root, verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Signer
from chain.sequencer import InMemoryLedgerStore, Integration, LedgerStore, Sequencer
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

ORIGIN = "roadledger.test/telemetry/0"


@pytest.fixture
def signer() -> Ed25519Signer:
    return Ed25519Signer.generate(ORIGIN)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LedgerStore]:
    if request.param == "memory":
        yield InMemoryLedgerStore()
        return
    settings: Settings = request.getfixturevalue("postgres")
    async with scratch_schema_pool(settings) as pool:
        yield PostgresLedgerStore(pool)


def entries(start: int, count: int) -> list[bytes]:
    return [f"entry {i:08d} {'x' * (i % 17)}".encode() for i in range(start, start + count)]


async def test_roots_and_proofs_match_the_reference_log(
    store: LedgerStore, signer: Ed25519Signer
) -> None:
    sequencer = await Sequencer.open(store, ORIGIN, signer)
    reference = InMemoryMerkleLog()
    rng = random.Random(9162)
    sizes = []
    for batch in [1, 1, 2, 3, 8, 1, 31, 64, 5, 100, 17, 256, 3]:
        result = await sequencer.append(entries(reference.size, batch))
        reference.append_many(entries(reference.size, batch))
        assert result.checkpoint is not None
        assert result.checkpoint.checkpoint.size == reference.size
        assert result.checkpoint.checkpoint.root_hash == reference.root()
        sizes.append(reference.size)
    size = reference.size
    root = reference.root()
    for index in [0, 1, size // 2, size - 1, *rng.sample(range(size), 40)]:
        proof = await sequencer.inclusion_proof(index)
        assert proof == reference.inclusion_proof(index)
        verify_inclusion(index, size, reference.leaf_hash(index), root, proof)
    for size1 in [0, 1, *sizes]:
        proof = await sequencer.consistency_proof(size1)
        assert proof == reference.consistency_proof(size1, size)
        verify_consistency(size1, size, reference.root_at(size1), root, proof)


async def test_duplicates_keep_their_first_index(store: LedgerStore, signer: Ed25519Signer) -> None:
    sequencer = await Sequencer.open(store, ORIGIN, signer)
    first = await sequencer.append([b"a", b"b", b"c"])
    assert first.leaf_indices == (0, 1, 2)
    second = await sequencer.append([b"b", b"d", b"a", b"d"])
    assert second.leaf_indices == (1, 3, 0, 3)
    assert second.block is not None
    assert second.block.leaf_count == 1
    assert sequencer.size == 4
    again = await sequencer.append([b"a", b"d"])
    assert again.leaf_indices == (0, 3)
    assert again.block is None
    assert again.checkpoint is None
    assert sequencer.size == 4


async def test_stale_sequencer_is_fenced_and_writes_nothing(
    store: LedgerStore, signer: Ed25519Signer
) -> None:
    old = await Sequencer.open(store, ORIGIN, signer)
    durable = await old.append(entries(0, 10))
    new = await Sequencer.open(store, ORIGIN, signer)
    assert new.head.epoch == old.head.epoch + 1
    with pytest.raises(FencingError, match="is stale"):
        await old.append(entries(10, 5))
    with pytest.raises(FencingError, match="fenced off; reopen"):
        await old.append(entries(10, 5))
    result = await new.append(entries(10, 5))
    assert result.leaf_indices == tuple(range(10, 15))
    assert result.block is not None
    assert result.block.height == 1
    assert durable.block is not None
    assert result.block.prev_block_hash == durable.block.block_hash


async def test_blocks_chain_and_checkpoints_verify(
    store: LedgerStore, signer: Ed25519Signer
) -> None:
    sequencer = await Sequencer.open(store, ORIGIN, signer)
    blocks = []
    written = 0
    for batch in [4, 1, 9, 16, 2]:
        batch_entries = entries(written, batch)
        result = await sequencer.append(batch_entries)
        written += batch
        assert result.block is not None
        assert result.checkpoint is not None
        assert result.block.entries_root == compute_root([leaf_hash(e) for e in batch_entries])
        opened = SignedCheckpoint.from_text(result.checkpoint.to_text())
        opened.verify_log_signature(signer.verifier())
        blocks.append(result.block)
    verify_block_chain(blocks)
    if isinstance(store, PostgresLedgerStore):
        assert await store.blocks(ORIGIN) == blocks
        assert await store.entry(ORIGIN, 5) == entries(5, 1)[0]


async def test_reopened_sequencer_continues_the_same_tree(
    store: LedgerStore, signer: Ed25519Signer
) -> None:
    first = await Sequencer.open(store, ORIGIN, signer)
    await first.append(entries(0, 13))
    reopened = await Sequencer.open(store, ORIGIN, signer)
    assert reopened.head.size == 13
    assert reopened.head.root == first.head.root
    assert reopened.head.last_block == first.head.last_block
    result = await reopened.append(entries(13, 6))
    reference = InMemoryMerkleLog()
    reference.append_many(entries(0, 19))
    assert result.checkpoint is not None
    assert result.checkpoint.checkpoint.root_hash == reference.root()


class _FailingStore(InMemoryLedgerStore):
    """Fails the next write after storing it, like a connection lost before the commit ack."""

    fail_next = False

    async def integrate(self, work: Integration) -> None:
        await super().integrate(work)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionResetError("connection lost")


async def test_failed_write_stops_the_sequencer_until_reopened(signer: Ed25519Signer) -> None:
    store = _FailingStore()
    sequencer = await Sequencer.open(store, ORIGIN, signer)
    await sequencer.append(entries(0, 3))
    store.fail_next = True
    with pytest.raises(ConnectionResetError):
        await sequencer.append(entries(3, 2))
    with pytest.raises(FencingError, match=r"a write failed \(ConnectionResetError\)"):
        await sequencer.append(entries(5, 1))
    reopened = await Sequencer.open(store, ORIGIN, signer)
    assert reopened.size == 5, "the write that landed before the failure is kept"
    result = await reopened.append(entries(3, 3))
    assert result.leaf_indices == (3, 4, 5)


async def test_pipelined_submits_resolve_in_order_and_dedupe_in_flight(
    store: LedgerStore, signer: Ed25519Signer
) -> None:
    sequencer = await Sequencer.open(store, ORIGIN, signer)
    first = await sequencer.submit(entries(0, 50))
    second = await sequencer.submit([*entries(50, 10), *entries(0, 3)])  # 3 still in flight
    third = await sequencer.submit(entries(0, 2))  # nothing new: waits for the writes
    results = [await first, await second, await third]
    assert results[0].leaf_indices == tuple(range(50))
    assert results[1].leaf_indices == (*range(50, 60), 0, 1, 2)
    assert results[2].leaf_indices == (0, 1)
    assert results[2].block is None
    assert [r.block.height for r in results[:2] if r.block] == [0, 1]
    reopened = await Sequencer.open(store, ORIGIN, signer)
    assert reopened.size == 60
    reference = InMemoryMerkleLog()
    reference.append_many(entries(0, 60))
    assert reopened.head.root == reference.root()


async def test_failed_write_fails_every_later_submit(signer: Ed25519Signer) -> None:
    store = _FailingStore()
    sequencer = await Sequencer.open(store, ORIGIN, signer)
    store.fail_next = True
    failing = await sequencer.submit(entries(0, 4))
    later = await sequencer.submit(entries(4, 4))
    with pytest.raises(ConnectionResetError):
        await failing
    with pytest.raises(FencingError, match="an earlier write failed"):
        await later
    assert store.logs[ORIGIN].entries == entries(0, 4), "the later batch was never written"
