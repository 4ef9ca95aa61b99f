"""chain.merkle rejects tampered proofs, proofs for other parameters, and malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import ProofError, RootMismatchError
from chain.hashing import EMPTY_ROOT
from chain.merkle import (
    compute_root,
    consistency_plan,
    consistency_proof_size,
    inclusion_plan,
    inclusion_proof_size,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.unit.chain.test_merkle import (
    HASHES,
    flip,
    index_and_size,
    plan_consistency,
    plan_inclusion,
    two_sizes,
)

# --- tampering and mismatched parameters are rejected ----------------------------------------


@settings(max_examples=200, deadline=None)
@given(index_and_size(), st.integers(0, 7))
def test_any_flipped_bit_breaks_an_inclusion_proof(case: tuple[int, int], bit: int) -> None:
    index, size = case
    root = compute_root(HASHES[:size])
    proof = plan_inclusion(index, size)
    for position in range(len(proof)):
        bad = [*proof]
        bad[position] = flip(bad[position], bit)
        with pytest.raises(RootMismatchError):
            verify_inclusion(index, size, HASHES[index], root, bad)
    with pytest.raises(RootMismatchError):
        verify_inclusion(index, size, flip(HASHES[index], bit), root, proof)
    with pytest.raises(RootMismatchError):
        verify_inclusion(index, size, HASHES[index], flip(root, bit), proof)


@settings(max_examples=200, deadline=None)
@given(two_sizes(), st.integers(0, 7))
def test_any_flipped_bit_breaks_a_consistency_proof(case: tuple[int, int], bit: int) -> None:
    size1, size2 = case
    root1, root2 = compute_root(HASHES[:size1]), compute_root(HASHES[:size2])
    proof = plan_consistency(size1, size2)
    for position in range(len(proof)):
        bad = [*proof]
        bad[position] = flip(bad[position], bit)
        with pytest.raises(RootMismatchError):
            verify_consistency(size1, size2, root1, root2, bad)
    if size1:  # from size 0 any tree is consistent: root2 is not constrained
        with pytest.raises(RootMismatchError):
            verify_consistency(size1, size2, root1, flip(root2, bit), proof)
    with pytest.raises(RootMismatchError):
        verify_consistency(size1, size2, flip(root1, bit), root2, proof)


@settings(max_examples=300, deadline=None)
@given(index_and_size(), index_and_size())
def test_inclusion_proof_for_other_parameters_is_rejected(
    case: tuple[int, int], other: tuple[int, int]
) -> None:
    index, size = case
    if other == case:
        return
    other_index, other_size = other
    proof = plan_inclusion(index, size)
    with pytest.raises(ProofError):  # right leaf and root for (other_index, other_size)
        verify_inclusion(
            other_index,
            other_size,
            HASHES[other_index],
            compute_root(HASHES[:other_size]),
            proof,
        )


@settings(max_examples=300, deadline=None)
@given(two_sizes(), two_sizes())
def test_consistency_proof_for_other_sizes_is_rejected(
    case: tuple[int, int], other: tuple[int, int]
) -> None:
    size1, size2 = case
    proof = plan_consistency(size1, size2)
    if other == case or not proof:
        return  # an empty proof is the right proof for many size pairs
    o1, o2 = other
    with pytest.raises(ProofError):
        verify_consistency(o1, o2, compute_root(HASHES[:o1]), compute_root(HASHES[:o2]), proof)


def test_neighbouring_sizes_are_rejected() -> None:
    root = compute_root(HASHES[:6])
    proof = plan_inclusion(2, 6)
    for size in (5, 7):
        with pytest.raises(ProofError):
            verify_inclusion(2, size, HASHES[2], compute_root(HASHES[:size]), proof)
    proof = plan_consistency(3, 6)
    for size1, size2 in ((2, 6), (4, 6), (3, 5), (3, 7)):
        with pytest.raises(ProofError):
            verify_consistency(
                size1, size2, compute_root(HASHES[:size1]), compute_root(HASHES[:size2]), proof
            )
    verify_inclusion(2, 6, HASHES[2], root, proof=plan_inclusion(2, 6))


@pytest.mark.parametrize(
    ("index", "size", "message"),
    [
        (-1, 5, "leaf index -1 is outside a tree of size 5"),
        (5, 5, "leaf index 5 is outside a tree of size 5"),
        (0, 0, "leaf index 0 is outside a tree of size 0"),
    ],
)
def test_inclusion_preconditions_come_first(index: int, size: int, message: str) -> None:
    for call in (
        lambda: inclusion_plan(index, size),
        lambda: inclusion_proof_size(index, size),
        lambda: root_from_inclusion_proof(index, size, HASHES[0], []),
        lambda: verify_inclusion(index, size, HASHES[0], HASHES[0], []),
    ):
        with pytest.raises(ProofError, match=message) as info:
            call()
        assert type(info.value) is ProofError


def test_wrong_proof_length_is_named() -> None:
    proof = plan_inclusion(2, 5)
    root = compute_root(HASHES[:5])
    message = "inclusion proof of leaf 2 in size 5 must have 3 hashes, got 4"
    with pytest.raises(ProofError, match=message):
        verify_inclusion(2, 5, HASHES[2], root, [*proof, proof[0]])
    with pytest.raises(ProofError, match="must have 3 hashes, got 2"):
        verify_inclusion(2, 5, HASHES[2], root, proof[:-1])
    with pytest.raises(ProofError, match="consistency proof from size 3 to 7 must have 4"):
        verify_consistency(3, 7, compute_root(HASHES[:3]), compute_root(HASHES[:7]), proof)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32, None])
def test_hashes_of_the_wrong_size_or_type_are_rejected(bad: object) -> None:
    root = compute_root(HASHES[:2])
    with pytest.raises(ProofError, match="32-byte hash"):
        verify_inclusion(0, 2, HASHES[0], root, [bad])  # type: ignore[list-item]
    with pytest.raises(ProofError, match="leaf hash must be a 32-byte hash"):
        verify_inclusion(0, 2, bad, root, [HASHES[1]])  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="root must be a 32-byte hash"):
        verify_inclusion(0, 2, HASHES[0], bad, [HASHES[1]])  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="root2 must be a 32-byte hash"):
        verify_consistency(1, 2, HASHES[0], bad, [HASHES[1]])  # type: ignore[arg-type]


def test_root_mismatch_carries_its_evidence() -> None:
    root = compute_root(HASHES[:5])
    wrong = compute_root(HASHES[:4])
    with pytest.raises(RootMismatchError) as info:
        verify_inclusion(2, 5, HASHES[2], wrong, plan_inclusion(2, 5))
    assert info.value.expected == wrong
    assert info.value.calculated == root
    assert f"expected {wrong.hex()}, calculated {root.hex()}" in str(info.value)


def test_consistency_edge_cases() -> None:
    root3, root7 = compute_root(HASHES[:3]), compute_root(HASHES[:7])
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 7, EMPTY_ROOT, root7, [])
    verify_consistency(7, 7, root7, root7, [])
    with pytest.raises(ProofError, match="must have 0 hashes, got 1"):
        verify_consistency(0, 7, EMPTY_ROOT, root7, [root7])
    with pytest.raises(ProofError, match="must have 0 hashes, got 1"):
        verify_consistency(7, 7, root7, root7, [root7])
    with pytest.raises(RootMismatchError, match="root of the empty tree"):
        verify_consistency(0, 7, root3, root7, [])
    with pytest.raises(RootMismatchError, match="root of tree size 7"):
        verify_consistency(7, 7, root3, root7, [])
    with pytest.raises(ProofError, match="0 <= size1 <= size2, got 7 and 3"):
        verify_consistency(7, 3, root7, root3, [])
    with pytest.raises(ProofError, match="got -1 and 3"):
        consistency_plan(-1, 3)
    with pytest.raises(ProofError, match="got 4 and 3"):
        consistency_proof_size(4, 3)
    with pytest.raises(RootMismatchError, match=r"old root \(tree size 3\)"):
        verify_consistency(3, 7, root7, root7, plan_consistency(3, 7))
    with pytest.raises(RootMismatchError, match=r"new root \(tree size 7\)"):
        verify_consistency(3, 7, root3, root3, plan_consistency(3, 7))
