"""roadledger.signer_pool: the worker's answers are find_signers', and a worker that cannot
answer leaves the signatures to the verifier (None), then starts afresh."""

from __future__ import annotations

from chain.certificate_signers import find_signers, key_order
from roadledger.signer_pool import SignerPool
from tests.unit.chain.test_certificate_scenario import make_scenario


async def test_the_workers_answers_and_its_failures() -> None:
    rotated = make_scenario(rotate_at_seq=15)
    order = key_order([(k.entry, k.leaf_index) for k in rotated.certificate.device_keys])
    raws = [m.raw for m in rotated.certificate.messages]
    pool = SignerPool()
    try:
        known = await pool.find(raws, order)
        assert known is not None
        assert known.keys == order
        assert [known.signers[raw] for raw in raws] == find_signers(raws, order)
        assert await pool.find(raws, (b"not a key",)) is None  # raised in the worker
        assert await pool.find([], order) is None
        again = await pool.find(raws[:3], order)
        assert again is not None
        assert pool.answered == 2
    finally:
        await pool.close()
