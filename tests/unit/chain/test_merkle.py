"""chain.merkle and chain.hashing: plans, verifiers, and RFC 9162 taken literally.

The reference functions below transcribe the recursive definitions of RFC 9162 sections
2.1.1, 2.1.3.1 and 2.1.4.1 directly from the leaf hashes; the plans (iterative, reading stored
perfect subtrees) must produce exactly the same hashes, for every size up to EXHAUSTIVE and for
random sizes beyond.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import ProofError, StorageError
from chain.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    fold_right,
    leaf_hash,
    leaf_hashes,
    node_hash,
    parent_hashes,
)
from chain.merkle import (
    NodeRef,
    append_plan,
    compute_root,
    consistency_plan,
    consistency_proof_size,
    inclusion_plan,
    inclusion_proof_size,
    nodes_completed_by_append,
    root_from_inclusion_proof,
    root_plan,
    verify_consistency,
    verify_inclusion,
)

EXHAUSTIVE = 33  # every (index, size) and (size1, size2) up to here
MAX_LEAVES = 300  # hypothesis explores sizes up to here

ENTRIES = [b"entry-%d" % i for i in range(MAX_LEAVES)]
HASHES = leaf_hashes(ENTRIES)


# --- RFC 9162, literally ---------------------------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _split(len(d))
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [rfc_mth(d)]
    k = _split(n)
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def rfc_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return [] if m == 0 else rfc_subproof(m, d, True)


# --- storage for the plans: every perfect subtree of HASHES ------------------------------------


def _all_nodes(hashes: Sequence[bytes]) -> dict[NodeRef, bytes]:
    nodes = {(0, i): h for i, h in enumerate(hashes)}
    level, row = 0, list(hashes)
    while len(row) > 1:
        row = parent_hashes(row)
        level += 1
        nodes.update({(level, i): h for i, h in enumerate(row)})
    return nodes


NODES = _all_nodes(HASHES)


def _end(ref: NodeRef) -> int:
    """One past the last leaf under node ``ref``."""
    level, index = ref
    return (index + 1) << level


def plan_root(size: int) -> bytes:
    plan = root_plan(size)
    assert all(_end(ref) <= size for ref in plan.nodes), "a plan read a node beyond its tree"
    return plan.assemble(NODES)


def plan_inclusion(index: int, size: int) -> list[bytes]:
    plan = inclusion_plan(index, size)
    assert all(_end(ref) <= size for ref in plan.nodes)
    assert len(set(plan.nodes)) == len(plan.nodes)
    return plan.assemble([NODES[ref] for ref in plan.nodes])


def plan_consistency(size1: int, size2: int) -> list[bytes]:
    plan = consistency_plan(size1, size2)
    assert all(_end(ref) <= size2 for ref in plan.nodes)
    assert len(set(plan.nodes)) == len(plan.nodes)
    return plan.assemble(NODES)


def flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit), *value[1:]])


# --- hashing --------------------------------------------------------------------------------


def test_hashing_is_rfc9162() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert leaf_hashes([b"a", b"b"]) == [left, right]
    assert parent_hashes([left, right, left]) == [node_hash(left, right)]
    assert fold_right([]) == EMPTY_ROOT
    assert fold_right([left]) == left
    assert fold_right([left, right, left]) == node_hash(left, node_hash(right, left))
    assert len(leaf_hash(b"x" * 10_000)) == HASH_SIZE


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)


MERKLE_MODULES = ["merkle.py", "log.py", "proof_file.py"]


@pytest.mark.parametrize("module", MERKLE_MODULES)
def test_prefixes_and_sha256_live_only_in_hashing(module: str) -> None:
    """Architecture rule: the RFC 9162 prefixes are written in chain/hashing.py only."""
    source = (Path(__file__).parents[3] / "chain" / module).read_text()
    assert "hashlib" not in source
    assert not re.search(r"b[\"']\\x0[01]", source), "an RFC 9162 prefix outside _hashing.py"


# --- roots and proofs agree with the RFC, exhaustively for small trees -----------------------


@pytest.mark.parametrize("size", range(EXHAUSTIVE + 1))
def test_roots_match_rfc(size: int) -> None:
    expected = rfc_mth(HASHES[:size])
    assert compute_root(HASHES[:size]) == expected
    assert plan_root(size) == expected
    assert len(root_plan(size).nodes) == size.bit_count()


@pytest.mark.parametrize("size", range(1, EXHAUSTIVE + 1))
def test_inclusion_proofs_match_rfc_and_verify(size: int) -> None:
    root = rfc_mth(HASHES[:size])
    for index in range(size):
        proof = plan_inclusion(index, size)
        assert proof == rfc_path(index, HASHES[:size]), (index, size)
        assert len(proof) == inclusion_proof_size(index, size)
        assert root_from_inclusion_proof(index, size, HASHES[index], proof) == root
        verify_inclusion(index, size, HASHES[index], root, proof)


@pytest.mark.parametrize("size2", range(EXHAUSTIVE + 1))
def test_consistency_proofs_match_rfc_and_verify(size2: int) -> None:
    root2 = rfc_mth(HASHES[:size2])
    for size1 in range(size2 + 1):
        proof = plan_consistency(size1, size2)
        expected = [] if size1 == size2 else rfc_proof(size1, HASHES[:size2])
        assert proof == expected, (size1, size2)
        assert len(proof) == consistency_proof_size(size1, size2)
        verify_consistency(size1, size2, rfc_mth(HASHES[:size1]), root2, proof)


# --- ... and for random larger ones ----------------------------------------------------------


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(0, MAX_LEAVES))
    return draw(st.integers(0, size2)), size2


@settings(max_examples=300, deadline=None)
@given(index_and_size())
def test_random_inclusion_proofs(case: tuple[int, int]) -> None:
    index, size = case
    proof = plan_inclusion(index, size)
    assert proof == rfc_path(index, HASHES[:size])
    verify_inclusion(index, size, HASHES[index], compute_root(HASHES[:size]), proof)


@settings(max_examples=300, deadline=None)
@given(two_sizes())
def test_random_consistency_proofs(case: tuple[int, int]) -> None:
    size1, size2 = case
    proof = plan_consistency(size1, size2)
    if 0 < size1 < size2:
        assert proof == rfc_proof(size1, HASHES[:size2])
    roots = compute_root(HASHES[:size1]), compute_root(HASHES[:size2])
    verify_consistency(size1, size2, *roots, proof)


# --- plans: O(log n) reads, and what storage returns is checked ------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 1000, 1 << 20, (1 << 20) - 1, 10**12 + 7, 2**63 - 1])
def test_plans_read_logarithmically_many_nodes(size: int) -> None:
    bound = 2 * size.bit_length()
    for index in {0, size // 3, size // 2, size - 1}:
        plan = inclusion_plan(index, size)
        assert len(plan.nodes) <= bound
        assert plan.proof_size == inclusion_proof_size(index, size)
    for size1 in {1, size // 3, size - 1, size}:
        plan = consistency_plan(size1, size)
        assert len(plan.nodes) <= bound
        assert plan.proof_size == consistency_proof_size(size1, size)
    assert len(root_plan(size).nodes) == size.bit_count()


def test_small_plans() -> None:
    assert inclusion_plan(0, 1).nodes == ()
    assert inclusion_plan(2, 7).nodes == ((0, 3), (1, 0), (1, 2), (0, 6))
    assert (inclusion_plan(2, 7).border, inclusion_plan(2, 7).width) == (2, 2)
    assert consistency_plan(4, 7).nodes == ((1, 2), (0, 6))
    assert root_plan(6).nodes == ((2, 0), (1, 2))
    with pytest.raises(ProofError, match="negative"):
        root_plan(-1)


def test_storage_answers_are_checked() -> None:
    plan = inclusion_plan(2, 7)
    hashes = [NODES[ref] for ref in plan.nodes]
    assert plan.assemble(hashes) == plan.assemble(NODES) == rfc_path(2, HASHES[:7])
    assert len(plan.nodes) == 4  # the sibling [4, 7) is read as [4, 6) and [6, 7)
    with pytest.raises(StorageError, match="4 nodes requested, 2 hashes returned"):
        plan.assemble(hashes[:2])
    with pytest.raises(StorageError, match=r"node \(0, 3\) has no 32-byte"):
        plan.assemble([hashes[0][:31], *hashes[1:]])
    with pytest.raises(StorageError, match=r"node \(1, 0\) was not read"):
        plan.assemble({ref: value for ref, value in NODES.items() if ref != (1, 0)})


# --- appending --------------------------------------------------------------------------------


def _append_into(store: dict[NodeRef, bytes], old_size: int, new: Sequence[bytes]) -> int:
    """What a store does: read the plan's nodes, compute, write everything new."""
    plan = append_plan(old_size, len(new))
    assert len(plan) <= old_size.bit_length()
    frontier = [store[ref] for ref in plan]
    completed = nodes_completed_by_append(old_size, new, frontier)
    assert completed.new_size == old_size + len(new)
    for ref, value in completed:
        assert ref not in store, f"{ref} written twice"
        store[ref] = value
    return completed.new_size


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=12))
def test_batched_appends_store_exactly_the_perfect_subtrees(batches: list[int]) -> None:
    store: dict[NodeRef, bytes] = {}
    size = 0
    for count in batches:
        count = min(count, MAX_LEAVES - size)
        size = _append_into(store, size, HASHES[size : size + count])
    assert store == {ref: h for ref, h in NODES.items() if _end(ref) <= size}


def test_append_frontier_is_checked() -> None:
    store: dict[NodeRef, bytes] = {}
    _append_into(store, 0, HASHES[:7])
    assert append_plan(7, 1) == ((0, 6), (1, 2), (2, 0))
    assert append_plan(7, 0) == ()
    assert append_plan(6, 1) == ()
    frontier = [store[ref] for ref in append_plan(7, 1)]
    with pytest.raises(StorageError, match="3 nodes requested, 2 hashes returned"):
        nodes_completed_by_append(7, HASHES[7:8], frontier[:2])
    with pytest.raises(StorageError, match="was not read"):
        nodes_completed_by_append(7, HASHES[7:8], {})
    with pytest.raises(ProofError, match="cannot append -1"):
        append_plan(3, -1)
    completed = nodes_completed_by_append(7, HASHES[7:8], frontier)
    assert [ref for ref, _ in completed] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert completed.first_index(2) == 1
