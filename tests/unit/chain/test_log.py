"""chain.log: the in-memory log, and the NodeReader contract a PostgreSQL store follows."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import EncodingError, ProofError, StorageError
from chain.hashing import EMPTY_ROOT, leaf_hash, leaf_hashes
from chain.log import (
    InMemoryMerkleLog,
    NodeReader,
    read_consistency_proof,
    read_inclusion_proof,
    read_root,
)
from chain.merkle import (
    NodeRef,
    append_plan,
    compute_root,
    nodes_completed_by_append,
    verify_consistency,
    verify_inclusion,
)

MAX_LEAVES = 300
ENTRIES = [b"log-entry-%d" % i for i in range(MAX_LEAVES)]
HASHES = leaf_hashes(ENTRIES)


def _log(size: int) -> InMemoryMerkleLog:
    log = InMemoryMerkleLog()
    log.append_many(ENTRIES[:size])
    return log


FULL = _log(MAX_LEAVES)


class CountingReader:
    """A NodeReader over a dict, as a database store would be; counts its round trips."""

    def __init__(self, nodes: dict[NodeRef, bytes]) -> None:
        self.nodes = nodes
        self.batches: list[int] = []

    def read_nodes(self, refs: Sequence[NodeRef], /) -> list[bytes]:
        self.batches.append(len(refs))
        try:
            return [self.nodes[ref] for ref in refs]
        except KeyError as exc:
            raise StorageError(f"no node {exc.args[0]}") from None


def test_empty_log() -> None:
    log = InMemoryMerkleLog()
    assert (log.size, len(log)) == (0, 0)
    assert log.root() == log.root_at(0) == EMPTY_ROOT
    assert log.consistency_proof(0) == []
    with pytest.raises(ProofError, match="leaf index 0 is outside a tree of size 0"):
        log.inclusion_proof(0)


def test_append_returns_indexes_and_root_follows() -> None:
    log = InMemoryMerkleLog()
    assert log.append(b"a") == 0
    assert log.root() == leaf_hash(b"a")
    assert log.append_many([b"b", b"c"]) == 1
    assert log.append_many([]) == 3
    assert log.append_leaf_hashes([leaf_hash(b"d")]) == 3
    assert log.size == 4
    assert log.root() == compute_root(leaf_hashes([b"a", b"b", b"c", b"d"]))
    assert log.leaf_hash(2) == leaf_hash(b"c")
    with pytest.raises(ProofError, match="leaf index 4 is outside"):
        log.leaf_hash(4)


@pytest.mark.parametrize("bad", [b"short", "0" * 32, None])
def test_append_leaf_hashes_checks_them(bad: object) -> None:
    log = InMemoryMerkleLog()
    with pytest.raises(EncodingError, match="leaf hash 1 is not 32 bytes"):
        log.append_leaf_hashes([HASHES[0], bad])  # type: ignore[list-item]
    assert log.size == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=10), st.booleans())
def test_any_batching_gives_the_same_log(batches: list[int], one_by_one: bool) -> None:
    log = InMemoryMerkleLog()
    for count in batches:
        batch = ENTRIES[log.size : log.size + count]
        if one_by_one:
            for entry in batch:
                log.append(entry)
        else:
            log.append_many(iter(batch))  # any iterable
    size = log.size
    assert log.root() == compute_root(HASHES[:size])
    assert log.read_nodes([(0, i) for i in range(size)]) == HASHES[:size]
    reference = _log(size)
    assert log._levels == reference._levels  # every stored node, level by level


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_roots_and_proofs_of_random_sizes(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, MAX_LEAVES), label="size2")
    size1 = data.draw(st.integers(0, size2), label="size1")
    index = data.draw(st.integers(0, size2 - 1), label="index")
    root1, root2 = compute_root(HASHES[:size1]), compute_root(HASHES[:size2])
    assert FULL.root_at(size1) == root1
    assert FULL.root_at(size2) == root2
    proof = FULL.inclusion_proof(index, size2)
    verify_inclusion(index, size2, HASHES[index], root2, proof)
    verify_consistency(size1, size2, root1, root2, FULL.consistency_proof(size1, size2))
    log = _log(size2)
    assert log.root() == root2
    assert log.inclusion_proof(index) == proof


def test_sizes_beyond_the_log_are_refused() -> None:
    log = _log(5)
    message = r"tree size 6 is outside 0\.\.5 \(the log's size\)"
    with pytest.raises(ProofError, match=message):
        log.root_at(6)
    with pytest.raises(ProofError, match=message):
        log.inclusion_proof(0, 6)
    with pytest.raises(ProofError, match=message):
        log.consistency_proof(2, 6)
    with pytest.raises(ProofError, match="got 4 and 3"):
        log.consistency_proof(4, 3)
    with pytest.raises(ProofError, match="tree size -1"):
        log.root_at(-1)
    with pytest.raises(StorageError, match="not complete yet"):
        log.read_nodes([(1, 2)])


def test_proofs_for_a_past_size_verify_against_that_size_only() -> None:
    log = _log(20)
    proof = log.inclusion_proof(3, 11)
    verify_inclusion(3, 11, HASHES[3], log.root_at(11), proof)
    with pytest.raises(ProofError):
        verify_inclusion(3, 20, HASHES[3], log.root(), proof)
    proof = log.consistency_proof(6, 11)
    verify_consistency(6, 11, log.root_at(6), log.root_at(11), proof)
    with pytest.raises(ProofError):
        verify_consistency(6, 20, log.root_at(6), log.root(), proof)


def test_the_log_is_a_node_reader() -> None:
    reader: NodeReader = FULL
    assert read_root(reader, 7) == compute_root(HASHES[:7])


def test_a_dict_store_gives_the_same_proofs_in_one_batch_each() -> None:
    """The recipe a PostgreSQL store follows, over a dict: append by plan, prove by plan."""
    store: dict[NodeRef, bytes] = {}
    size = 0
    for count in (1, 2, 61, 1, 0, 135, 100):
        frontier = [store[ref] for ref in append_plan(size, count)]
        completed = nodes_completed_by_append(size, HASHES[size : size + count], frontier)
        store.update(completed)
        size = completed.new_size
    assert size == MAX_LEAVES
    reader = CountingReader(store)
    for index, size2 in ((0, 1), (7, 300), (299, 300), (150, 257)):
        assert read_inclusion_proof(reader, index, size2) == FULL.inclusion_proof(index, size2)
    for size1, size2 in ((1, 300), (255, 256), (77, 300), (300, 300)):
        assert read_consistency_proof(reader, size1, size2) == FULL.consistency_proof(size1, size2)
    assert read_root(reader, 300) == FULL.root()
    assert len(reader.batches) == 9, "one round trip per proof or root"
    assert max(reader.batches) <= 2 * (300).bit_length()


def test_a_store_missing_a_node_is_reported() -> None:
    store = {ref: value for ref, value in zip(_refs(8), _hashes(8), strict=True)}
    del store[(1, 1)]
    with pytest.raises(StorageError, match=r"no node \(1, 1\)"):
        read_inclusion_proof(CountingReader(store), 0, 8)


def _refs(size: int) -> list[NodeRef]:
    log = _log(size)
    return [(level, i) for level, row in enumerate(log._levels) for i in range(len(row))]


def _hashes(size: int) -> list[bytes]:
    log = _log(size)
    return [value for row in log._levels for value in row]
