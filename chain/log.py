"""A Merkle log over a node store: the storage contract, and the in-memory log.

The arithmetic lives in :mod:`chain.merkle`; this module connects it to storage through
:class:`NodeReader`, the one thing a store must provide for proofs. :class:`InMemoryMerkleLog`
is the reference store (tests, benchmarks, small audit logs); the PostgreSQL sequencer
implements the same contract asynchronously, calling the same plans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from chain.errors import EncodingError, ProofError, StorageError
from chain.hashing import HASH_SIZE, leaf_hash, leaf_hashes, node_hash
from chain.merkle import (
    NodeRef,
    append_plan,
    consistency_plan,
    inclusion_plan,
    nodes_completed_by_append,
    root_plan,
)

__all__ = [
    "InMemoryMerkleLog",
    "NodeReader",
    "read_consistency_proof",
    "read_inclusion_proof",
    "read_root",
]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


class NodeReader(Protocol):
    """Storage contract: read a batch of perfect-subtree hashes.

    ``read_nodes(refs)`` returns the 32-byte hash of every node in ``refs``, in the order of
    ``refs`` (duplicates are never asked for). Callers only ask for nodes that are complete in
    the tree size they are working on, and check that size against the log first; a store
    MUST raise :class:`~chain.errors.StorageError` for a node it does not have rather than
    return a placeholder, and MUST NOT recompute a node from leaves it happens to hold: a node,
    once written, never changes, so it may be cached forever. A tree size a caller works on
    MUST come from a checkpoint (or the log's own committed size), never from counting rows,
    which may include an append still in progress.

    An asynchronous store offers ``async def read_nodes(...)`` with the same contract and
    calls the plans of :mod:`chain.merkle` itself (see :func:`read_inclusion_proof`).
    """

    def read_nodes(self, refs: Sequence[NodeRef], /) -> Sequence[bytes]:
        """The hashes of ``refs``, in order."""
        ...


def read_root(reader: NodeReader, size: int) -> bytes:
    """Root of the tree of ``size`` leaves: O(log n) node reads in one batch."""
    plan = root_plan(size)
    return plan.assemble(reader.read_nodes(plan.nodes))


def read_inclusion_proof(reader: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size``: one batch read."""
    plan = inclusion_plan(index, size)
    return plan.assemble(reader.read_nodes(plan.nodes))


def read_consistency_proof(reader: NodeReader, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 consistency proof from ``size1`` to ``size2``: one batch read."""
    plan = consistency_plan(size1, size2)
    return plan.assemble(reader.read_nodes(plan.nodes))


class InMemoryMerkleLog:
    """An RFC 9162 log held in memory: leaf hashes plus every completed perfect subtree.

    ``_levels[L][i]`` is the hash of node ``(L, i)``; level 0 holds the leaf hashes. Entries
    themselves are not kept. Appending k leaves costs about 2k hashes; a root or proof reads
    O(log n) nodes. Not thread-safe: a log has one writer (its sequencer).
    """

    __slots__ = ("_levels", "_root", "_root_size")

    def __init__(self) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._root = b""
        self._root_size = -1

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, entry: bytes) -> int:
        """Append one entry (its leaf hash is stored); return its leaf index."""
        # The one-leaf case of nodes_completed_by_append, unrolled: appending leaf i completes
        # one node per trailing 1 bit of i, each the parent of the old frontier node and the
        # node just made. Plans and batch lists cost more than the hashing for one leaf; the
        # property tests check this path against append_many and compute_root.
        levels = self._levels
        value = leaf_hash(entry)
        index = position = len(levels[0])
        levels[0].append(value)
        level = 0
        while position & 1:
            value = node_hash(levels[level][position - 1], value)
            level += 1
            position >>= 1
            if level == len(levels):
                levels.append([])
            levels[level].append(value)
        return index

    def append_many(self, entries: Iterable[bytes]) -> int:
        """Append entries in order; return the leaf index of the first one."""
        return self._extend(leaf_hashes(entries))

    def append_leaf_hashes(self, hashes: Sequence[bytes]) -> int:
        """Append leaves whose RFC 9162 leaf hashes are already known; return the first index."""
        for position, value in enumerate(hashes):
            if not _is_hash(value):
                raise EncodingError(f"leaf hash {position} is not {HASH_SIZE} bytes")
        return self._extend(list(hashes))

    def _extend(self, hashes: list[bytes]) -> int:
        levels = self._levels
        old_size = len(levels[0])
        frontier = self.read_nodes(append_plan(old_size, len(hashes)))
        completed = nodes_completed_by_append(old_size, hashes, frontier)
        for level in range(len(completed.levels)):  # all checked before anything changes
            stored = len(levels[level]) if level < len(levels) else 0
            if stored != completed.first_index(level):  # pragma: no cover - a bug, not input
                raise StorageError(
                    f"level {level} has {stored} nodes, expected {completed.first_index(level)}"
                )
        for level, new in enumerate(completed.levels):
            if level == len(levels):
                levels.append([])
            levels[level].extend(new)
        return old_size

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise ProofError(f"leaf index {index} is outside a tree of size {self.size}")
        return self._levels[0][index]

    def read_nodes(self, refs: Sequence[NodeRef], /) -> list[bytes]:
        """:class:`NodeReader`: the hashes of ``refs``, in order."""
        levels = self._levels
        try:
            return [levels[level][index] for level, index in refs]
        except IndexError:
            raise StorageError(f"a node of {list(refs)} is not complete yet") from None

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is outside 0..{self.size} (the log's size)")

    def root(self) -> bytes:
        """Root hash of the whole log (the empty-tree hash when there are no leaves)."""
        size = self.size
        if self._root_size != size:
            self._root = read_root(self, size)
            self._root_size = size
        return self._root

    def root_at(self, size: int) -> bytes:
        """Root hash of the tree made of the first ``size`` leaves."""
        self._check_size(size)
        return read_root(self, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` (default: all)."""
        if size is None:
            size = self.size
        self._check_size(size)
        return read_inclusion_proof(self, index, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from tree ``size1`` to ``size2`` (default: all)."""
        if size2 is None:
            size2 = self.size
        self._check_size(size2)
        return read_consistency_proof(self, size1, size2)
