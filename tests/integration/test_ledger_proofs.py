"""The API's proofs (roadledger.db.ledger_proofs over ledger_tiles) against the reference log
of chain.log, the log cache that spares a route its query while the tree only grows, and the
tile cache: bounded, never stale, re-reading a partial tile only when the log has grown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chain.log import InMemoryMerkleLog
from chain.merkle import verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Signer
from chain.sequencer import Sequencer
from roadledger.db.ledger_proofs import KnownLogs, LedgerProofs
from roadledger.db.ledger_reads import LedgerLog, ProofRequestInvalid
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

ORIGIN = "roadledger.test/telemetry/proofs"
MB = 1 << 20


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres) as scratch:
        yield scratch


class Grower:
    """A log in PostgreSQL and the reference log of the same entries."""

    def __init__(self, sequencer: Sequencer) -> None:
        self.sequencer = sequencer
        self.reference = InMemoryMerkleLog()

    @classmethod
    async def open(cls, pool: asyncpg.Pool) -> Grower:
        signer = Ed25519Signer.generate(ORIGIN)
        return cls(await Sequencer.open(PostgresLedgerStore(pool), ORIGIN, signer))

    async def grow(self, *batches: int) -> list[int]:
        sizes = []
        for batch in batches:
            start = self.reference.size
            entries = [f"entry {i:06d}".encode() for i in range(start, start + batch)]
            await self.sequencer.append(entries)
            self.reference.append_many(entries)
            sizes.append(self.reference.size)
        return sizes


async def latest(pool: asyncpg.Pool) -> LedgerLog:
    log_id = await pool.fetchval("SELECT log_id FROM ledger_logs WHERE origin = $1", ORIGIN)
    return await KnownLogs().covering(pool, int(log_id), None)


async def test_every_proof_matches_the_reference_log(pool: asyncpg.Pool) -> None:
    log = await Grower.open(pool)
    sizes = await log.grow(1, 2, 5, 8, 13, 21, 9)
    reference, row = log.reference, await latest(pool)
    assert row.tree_size == reference.size == 59
    proofs = LedgerProofs(MB)
    for size in range(1, reference.size + 1):
        for index in range(size):
            answer = await proofs.inclusion(pool, row, index, size)
            assert answer.proof == reference.inclusion_proof(index, size)
            assert answer.root == reference.root_at(size)
            assert answer.leaf_hash == reference.leaf_hash(index)
            verify_inclusion(index, size, answer.leaf_hash, answer.root, answer.proof)
    for second in [0, *sizes, 33]:
        for first in range(second + 1):
            both = await proofs.consistency(pool, row, first, second)
            assert both.proof == reference.consistency_proof(first, second)
            assert both.first_root == reference.root_at(first)
            assert both.second_root == reference.root_at(second)
            verify_consistency(first, second, both.first_root, both.second_root, both.proof)
    assert proofs.tiles.reads == 1  # one partial tile of 59 leaves answered everything


async def test_proofs_across_tile_levels_read_each_tile_once(pool: asyncpg.Pool) -> None:
    # 70,000 leaves: tile levels 0 (leaves) and 1 (level-8 nodes), full and partial tiles.
    log = await Grower.open(pool)
    await log.grow(30_000, 40_000)
    reference, row = log.reference, await latest(pool)
    proofs = LedgerProofs(64 * MB)
    cases = [(0, 70_000), (69_999, 70_000), (65_535, 65_536), (65_536, 69_000), (300, 513)]
    cases += [(i * 997 % 70_000, 70_000) for i in range(1, 40)]
    for index, size in cases:
        answer = await proofs.inclusion(pool, row, index, size)
        assert answer.proof == reference.inclusion_proof(index, size)
        assert answer.root == reference.root_at(size)
    reads = proofs.tiles.reads
    for index, size in cases:  # all held now: no query
        assert (await proofs.inclusion(pool, row, index, size)).root == reference.root_at(size)
    assert proofs.tiles.reads == reads
    for first, second in [(1, 70_000), (65_536, 70_000), (256, 65_537), (12_345, 67_891)]:
        both = await proofs.consistency(pool, row, first, second)
        assert both.proof == reference.consistency_proof(first, second)


async def test_a_partial_tile_is_read_again_only_when_the_log_grew(pool: asyncpg.Pool) -> None:
    log = await Grower.open(pool)
    await log.grow(100)
    known = KnownLogs()
    log_id = (await latest(pool)).log_id
    proofs = LedgerProofs(MB)
    row = await known.covering(pool, log_id, None)
    await proofs.inclusion(pool, row, 99, 100)
    assert proofs.tiles.reads == 1
    await log.grow(200)  # the tile of leaves 0..255 fills; 256..299 start the next
    row = await known.covering(pool, log_id, None)
    await proofs.inclusion(pool, row, 50, 100)  # the old prefix still answers
    assert proofs.tiles.reads == 1
    answer = await proofs.inclusion(pool, row, 299, 300)
    assert answer.proof == log.reference.inclusion_proof(299, 300)
    assert answer.root == log.reference.root()
    assert proofs.tiles.reads == 2


async def test_the_tile_cache_stays_within_its_bound(pool: asyncpg.Pool) -> None:
    log = await Grower.open(pool)
    await log.grow(4096)
    row = await latest(pool)
    proofs = LedgerProofs(40_000)  # about two full leaf tiles
    for index in range(0, 4096, 256):
        answer = await proofs.inclusion(pool, row, index, 4096)
        assert answer.proof == log.reference.inclusion_proof(index, 4096)
    assert 1 <= len(proofs.tiles) <= 2
    assert proofs.tiles.reads == 16


@pytest.mark.parametrize(
    ("kind", "a", "b", "field"),
    [
        ("inclusion", 3, 3, "leaf_index"),
        ("inclusion", 0, 4, "tree_size"),
        ("consistency", 2, 1, "first"),
        ("consistency", 1, 4, "second"),
    ],
)
async def test_sizes_the_log_never_had_name_the_field(
    pool: asyncpg.Pool, kind: str, a: int, b: int, field: str
) -> None:
    await (await Grower.open(pool)).grow(3)
    row, proofs = await latest(pool), LedgerProofs(MB)
    call = proofs.inclusion if kind == "inclusion" else proofs.consistency
    with pytest.raises(ProofRequestInvalid, match=f"^{field}:"):
        await call(pool, row, a, b)


async def test_the_log_cache_reads_again_only_for_sizes_it_does_not_know(
    pool: asyncpg.Pool,
) -> None:
    log = await Grower.open(pool)
    await log.grow(10)
    known = KnownLogs()
    log_id = (await latest(pool)).log_id
    first = await known.covering(pool, log_id, 10)
    assert first.tree_size == 10
    await log.grow(6)
    # Sizes it knows: the same row, no query (the log really has 16 leaves now).
    assert await known.covering(pool, log_id, 4, 10) is first
    # A larger size, or the latest: read again, and the latest root is the row's.
    grown = await known.covering(pool, log_id, 12)
    assert grown.tree_size == 16
    assert grown is not first
    assert await known.covering(pool, log_id, None) is not grown
    answer = await LedgerProofs(MB).inclusion(pool, grown, 15, 16)
    assert answer.root == log.reference.root() == grown.root_hash


async def test_concurrent_misses_of_one_tile_read_it_once(pool: asyncpg.Pool) -> None:
    log = await Grower.open(pool)
    await log.grow(200)
    row, proofs = await latest(pool), LedgerProofs(MB)
    answers = await asyncio.gather(*(proofs.inclusion(pool, row, i, 200) for i in range(50)))
    assert [a.proof for a in answers] == [log.reference.inclusion_proof(i, 200) for i in range(50)]
    assert proofs.tiles.reads == 1
