"""chain.merkle_batch.InclusionChecker: for every proof in any order, exactly what
verify_inclusion says (the same exception and message), while hashing less."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chain.hashing
from chain.errors import ProofError
from chain.hashing import node_hash
from chain.merkle import compute_root, verify_inclusion
from chain.merkle_batch import InclusionChecker
from tests.unit.chain.test_merkle import HASHES, MAX_LEAVES, flip, plan_inclusion


def _outcome(check: object, *args: object) -> str:
    try:
        check(*args)  # type: ignore[operator]
    except ProofError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


@st.composite
def _requests(draw: st.DrawFn) -> tuple[int, list[tuple[int, int, int]]]:
    """A size and (leaf, tampering, bit) requests: 0 honest, 1 proof hash flipped, 2 leaf
    hash of another leaf, 3 a hash dropped, 4 index out of range."""
    size = draw(st.integers(1, MAX_LEAVES))
    requests = draw(
        st.lists(
            st.tuples(st.integers(0, size - 1), st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
                      st.integers(0, 63)),
            max_size=40,
        )
    )  # fmt: skip
    return size, requests


@settings(max_examples=300, deadline=None)
@given(_requests(), st.booleans())
def test_every_answer_is_verify_inclusions(
    case: tuple[int, list[tuple[int, int, int]]], in_order: bool
) -> None:
    size, requests = case
    if in_order:
        requests = sorted(requests)
    root = compute_root(HASHES[:size])
    checker = InclusionChecker(size, root)
    for index, tampering, bit in requests:
        leaf, proof = HASHES[index], plan_inclusion(index, size)
        if tampering == 1 and proof:
            position = bit % len(proof)
            proof[position] = flip(proof[position], bit % 8)
        elif tampering == 2:
            leaf = HASHES[(index + 1) % MAX_LEAVES]
        elif tampering == 3 and proof:
            proof.pop(bit % len(proof))
        elif tampering == 4:
            index += size
        expected = _outcome(verify_inclusion, index, size, leaf, root, proof)
        assert _outcome(checker.verify, index, leaf, proof) == expected


def test_nearby_leaves_are_not_hashed_up_to_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    size = MAX_LEAVES
    checker = InclusionChecker(size, compute_root(HASHES[:size]))
    calls = 0
    real = node_hash

    def counted(left: bytes, right: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return real(left, right)

    monkeypatch.setattr(chain.hashing, "node_hash", counted)
    for index in range(size):
        checker.verify(index, HASHES[index], plan_inclusion(index, size))
    full = sum(len(plan_inclusion(index, size)) for index in range(size))
    assert calls < full / 2
