"""One million leaves sequenced into the real PostgreSQL; random proofs verify.

Proofs are read back from the database and checked with chain.merkle's verifiers against the
signed checkpoints that the sequencer produced, never against values computed by the store.
"""

from __future__ import annotations

import os
import random

import pytest

from chain.checkpoint import SignedCheckpoint
from chain.hashing import leaf_hash
from chain.merkle import verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Signer
from chain.sequencer import Sequencer
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEAVES = 1_000_000
BATCH = 10_000
ORIGIN = "roadledger.test/million"


def entry(index: int, payload: bytes) -> bytes:
    return b"%d." % index + payload


async def test_million_leaves_random_proofs_verify(postgres: Settings) -> None:
    rng = random.Random(1_000_000)
    payload = os.urandom(200)
    signer = Ed25519Signer.generate(ORIGIN)
    async with scratch_schema_pool(postgres) as pool:
        store = PostgresLedgerStore(pool)
        sequencer = await Sequencer.open(store, ORIGIN, signer)
        checkpoints: dict[int, SignedCheckpoint] = {}
        for start in range(0, LEAVES, BATCH):
            result = await sequencer.append(
                [entry(i, payload) for i in range(start, start + BATCH)]
            )
            assert result.checkpoint is not None
            checkpoints[result.checkpoint.checkpoint.size] = result.checkpoint
        assert sequencer.size == LEAVES

        final = SignedCheckpoint.from_text(checkpoints[LEAVES].to_text())
        final.verify_log_signature(signer.verifier())
        root = final.checkpoint.root_hash
        for index in [0, LEAVES - 1, *rng.sample(range(LEAVES), 300)]:
            proof = await store.inclusion_proof(ORIGIN, index, LEAVES)
            verify_inclusion(index, LEAVES, leaf_hash(entry(index, payload)), root, proof)
            assert await store.entry(ORIGIN, index) == entry(index, payload)

        sizes = sorted(checkpoints)
        for _ in range(100):
            size1, size2 = sorted(rng.sample(sizes, 2))
            proof = await store.consistency_proof(ORIGIN, size1, size2)
            verify_consistency(
                size1,
                size2,
                checkpoints[size1].checkpoint.root_hash,
                checkpoints[size2].checkpoint.root_hash,
                proof,
            )
        # Inclusion in an older checkpoint, and a wrong leaf is refused.
        size = sizes[len(sizes) // 3]
        index = rng.randrange(size)
        proof = await store.inclusion_proof(ORIGIN, index, size)
        old_root = checkpoints[size].checkpoint.root_hash
        verify_inclusion(index, size, leaf_hash(entry(index, payload)), old_root, proof)
        with pytest.raises(Exception, match="mismatch"):
            verify_inclusion(index, size, leaf_hash(entry(index + 1, payload)), old_root, proof)
