"""RFC 9162 Merkle tree arithmetic: which stored nodes a computation needs, and the verifiers.

Nothing here touches storage. A log stores *perfect subtrees* only, each addressed as a
:data:`NodeRef` ``(level, index)`` covering leaves ``[index * 2**level, (index + 1) * 2**level)``;
a node is written once, when its last leaf is appended, and never changes. Level 0 holds the
leaf hashes. Every hash RFC 9162 needs is either such a node or, on the right border of a tree
whose size is not a power of two, a combination of a few of them
(:func:`chain.hashing.fold_right`).

So each computation comes in two halves, the I/O in between being the caller's:

1. a *plan* (:func:`root_plan`, :func:`inclusion_plan`, :func:`consistency_plan`,
   :func:`append_plan`) lists the nodes to read: O(log n) of them;
2. the caller reads those hashes (from a list, a dict, PostgreSQL, ...) in one batch;
3. the plan assembles the root or the RFC 9162 proof from them (or
   :func:`nodes_completed_by_append` computes the nodes an append completes).

Verification is separate from computing: :func:`root_from_inclusion_proof` is pure arithmetic,
:func:`verify_inclusion` and :func:`verify_consistency` compare and raise. They follow the
algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2, check their preconditions first, and reject
a proof of the wrong length before hashing anything. They raise :class:`~chain.errors.ProofError`
(bad parameters or shape) or its subclass :class:`~chain.errors.RootMismatchError` (carrying
the expected and the calculated root).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from chain.errors import ProofError, RootMismatchError, StorageError
from chain.hashing import EMPTY_ROOT, HASH_SIZE, fold_right, node_hash, parent_hashes, path_step

__all__ = [
    "CompletedNodes",
    "NodeRef",
    "ProofPlan",
    "RootPlan",
    "append_plan",
    "compute_root",
    "consistency_plan",
    "consistency_proof_size",
    "inclusion_plan",
    "inclusion_proof_size",
    "nodes_completed_by_append",
    "root_from_inclusion_proof",
    "root_plan",
    "verify_consistency",
    "verify_inclusion",
]


NodeRef: TypeAlias = tuple[int, int]
"""``(level, index)``: the perfect subtree of ``2**level`` leaves from leaf ``index * 2**level``.

A plain tuple rather than a named one: plans build a few dozen per proof, and a NamedTuple
costs twice as much to make, which showed in the proof rate.
"""

NodeHashes: TypeAlias = Sequence[bytes] | Mapping[NodeRef, bytes]
"""Hashes read for a plan: a sequence in the order of ``plan.nodes``, or a mapping by node."""


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _ordered(nodes: tuple[NodeRef, ...], hashes: NodeHashes) -> Sequence[bytes]:
    """The hashes of ``nodes`` in order, checking what storage returned."""
    if type(hashes) is not list and isinstance(hashes, Mapping):
        try:
            hashes = [hashes[ref] for ref in nodes]
        except KeyError as exc:
            raise StorageError(f"node {exc.args[0]} was not read") from None
    elif len(hashes) != len(nodes):
        raise StorageError(f"{len(nodes)} nodes requested, {len(hashes)} hashes returned")
    try:
        total = len(b"".join(hashes))  # one C call checks the common case
    except TypeError:
        total = -1
    if total != HASH_SIZE * len(nodes):
        for ref, value in zip(nodes, hashes, strict=True):
            if not _is_hash(value):
                raise StorageError(f"node {ref} has no {HASH_SIZE}-byte hash: {value!r}")
    return hashes


@dataclass(frozen=True, slots=True)
class RootPlan:
    """The nodes whose hashes make the root of a tree of ``size`` leaves."""

    size: int
    nodes: tuple[NodeRef, ...]

    def assemble(self, hashes: NodeHashes) -> bytes:
        """The root hash, from the hashes of :attr:`nodes`."""
        return fold_right(_ordered(self.nodes, hashes))


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """The nodes to read for one RFC 9162 proof, and how to combine them.

    Each node gives one proof hash, in order, except ``nodes[border : border + width]``: those
    are the perfect pieces of the one proof subtree that is not perfect (on the right border of
    the tree), combined with :func:`~chain.hashing.fold_right` into one proof hash.
    """

    nodes: tuple[NodeRef, ...]
    border: int = 0
    width: int = 1

    @property
    def proof_size(self) -> int:
        """Number of hashes in the proof."""
        return len(self.nodes) - self.width + 1 if self.nodes else 0

    def assemble(self, hashes: NodeHashes) -> list[bytes]:
        """The RFC 9162 proof (list of hashes, in proof order), from the hashes of :attr:`nodes`."""
        ordered = _ordered(self.nodes, hashes)
        if self.width == 1:
            return list(ordered)
        border, end = self.border, self.border + self.width
        return [*ordered[:border], fold_right(ordered[border:end]), *ordered[end:]]


def _range_nodes(start: int, end: int, nodes: list[NodeRef]) -> int:
    """Append the perfect subtrees covering ``[start, end)``, largest first; return their count.

    ``start`` must be a multiple of a power of two not smaller than ``end - start``, which holds
    for every subtree RFC 9162 names (it splits at the largest power of two below the size).
    """
    width = end - start
    count = 0
    while width:
        level = width.bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
        width -= 1 << level
        count += 1
    return count


def _path(level: int, index: int, size: int, nodes: list[NodeRef]) -> tuple[int, int]:
    """Append the siblings of node ``(level, index)`` up to the root of a tree of ``size``.

    Returns where the right-border pieces are in ``nodes`` and how many (see ProofPlan).
    """
    # `fork` levels up, the node's path leaves the right border of the tree. Below it every
    # level has a complete sibling, except that the highest of them (a right sibling) may be
    # the imperfect right border. Above it, only the levels where the path comes from the
    # right have a sibling (on the left, complete); elsewhere RFC 9162 promotes the node.
    fork = (index ^ ((size - 1) >> level)).bit_length()
    border, width = 0, 1
    if fork:
        nodes += [(level + h, (index >> h) ^ 1) for h in range(fork - 1)]
        top = level + fork - 1
        sibling = (index >> (fork - 1)) + 1  # a right sibling: the bit there is 0
        start = sibling << top
        if start + (1 << top) <= size:
            nodes.append((top, sibling))
        else:
            border = len(nodes)
            width = _range_nodes(start, size, nodes)
    rest = index >> fork
    level += fork
    while rest:
        if rest & 1:
            nodes.append((level, rest - 1))
        rest >>= 1
        level += 1
    return border, width


def root_plan(size: int) -> RootPlan:
    """Nodes for the root of a tree of ``size`` leaves: one per set bit of ``size``."""
    if size < 0:
        raise ProofError(f"tree size {size} is negative")
    nodes: list[NodeRef] = []
    _range_nodes(0, size, nodes)
    return RootPlan(size, tuple(nodes))


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Nodes for the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    nodes: list[NodeRef] = []
    border, width = _path(0, index, size, nodes)
    return ProofPlan(tuple(nodes), border, width)


def _consistency_start(size1: int) -> tuple[int, int]:
    """The last perfect subtree of the old tree: it ends exactly at ``size1``."""
    level = (size1 & -size1).bit_length() - 1
    return level, (size1 >> level) - 1


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """Nodes for the consistency proof from the tree of ``size1`` leaves to ``size2``.

    The proof is empty when ``size1`` is 0 or equals ``size2``.
    """
    if not 0 <= size1 <= size2:
        raise ProofError(f"consistency needs 0 <= size1 <= size2, got {size1} and {size2}")
    if size1 in (0, size2):
        return ProofPlan(())
    level, index = _consistency_start(size1)
    nodes: list[NodeRef] = []
    if index:  # when size1 is a power of two the verifier has this node: it is root1
        nodes.append((level, index))
    border, width = _path(level, index, size2, nodes)
    return ProofPlan(tuple(nodes), border, width)


def _path_size(level: int, index: int, size: int) -> int:
    fork = (index ^ ((size - 1) >> level)).bit_length()  # as in _path
    return fork + (index >> fork).bit_count()


def inclusion_proof_size(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    return _path_size(0, index, size)


def consistency_proof_size(size1: int, size2: int) -> int:
    """Number of hashes in the consistency proof from ``size1`` to ``size2``."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"consistency needs 0 <= size1 <= size2, got {size1} and {size2}")
    if size1 in (0, size2):
        return 0
    level, index = _consistency_start(size1)
    return (1 if index else 0) + _path_size(level, index, size2)


# --- appending ---------------------------------------------------------------------------


def append_plan(old_size: int, count: int) -> tuple[NodeRef, ...]:
    """The old nodes that appending ``count`` leaves to a tree of ``old_size`` pairs with.

    These are left children on the old tree's right border (its "frontier") that get their
    parent now: at most one per level, lowest level first, so O(log n) reads whatever
    ``count`` is.
    """
    if old_size < 0 or count < 0:
        raise ProofError(f"cannot append {count} leaves to a tree of size {old_size}")
    new_size = old_size + count
    nodes: list[NodeRef] = []
    level = 0
    while new_size >> (level + 1) > old_size >> (level + 1):  # level gets a new parent
        if old_size >> level & 1:
            nodes.append((level, (old_size >> level) - 1))
        level += 1
    return tuple(nodes)


@dataclass(frozen=True, slots=True)
class CompletedNodes:
    """The nodes an append completed: ``levels[L]`` are the new hashes at level ``L``.

    Level 0 is the appended leaf hashes. The new nodes of level ``L`` have consecutive indexes
    starting at :meth:`first_index` ``(L)``: a store appends each list to its level.
    """

    old_size: int
    levels: tuple[list[bytes], ...]

    @property
    def new_size(self) -> int:
        """Tree size after the append."""
        return self.old_size + len(self.levels[0])

    def first_index(self, level: int) -> int:
        """Index of the first new node at ``level`` (the number of nodes it had before)."""
        return self.old_size >> level

    def __iter__(self) -> Iterator[tuple[NodeRef, bytes]]:
        """Every new node with its hash, level by level (e.g. for one bulk insert)."""
        for level, hashes in enumerate(self.levels):
            first = self.old_size >> level
            for offset, value in enumerate(hashes):
                yield (level, first + offset), value


def nodes_completed_by_append(
    old_size: int, leaf_hashes: Sequence[bytes], frontier: NodeHashes
) -> CompletedNodes:
    """Hash the nodes completed by appending ``leaf_hashes`` to a tree of ``old_size``.

    ``frontier`` holds the hashes of ``append_plan(old_size, len(leaf_hashes))`` (in that order,
    or by node). Costs about ``len(leaf_hashes)`` node hashes and no other reads: O(k + log n).
    """
    # The plan lists the frontier lowest level first, which is the order the loop meets them.
    olds = iter(_ordered(append_plan(old_size, len(leaf_hashes)), frontier))
    current = list(leaf_hashes)
    levels = [current]
    first = old_size  # index of current[0] within its level
    while current:
        if first & 1:  # the first new node is a right child: its left sibling is old
            current = [next(olds), *current]
        elif len(current) == 1:  # a lone left child: no parent yet
            break
        current = parent_hashes(current)
        levels.append(current)
        first >>= 1
    return CompletedNodes(old_size, tuple(levels))


# --- reference implementation --------------------------------------------------------------


def compute_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of RFC 9162 section 2.1.1, recursively from all leaf hashes (for small lists/tests)."""

    def mth(start: int, end: int) -> bytes:
        width = end - start
        if width == 1:
            return leaf_hashes[start]
        split = start + (1 << ((width - 1).bit_length() - 1))  # largest power of two < width
        return node_hash(mth(start, split), mth(split, end))

    return mth(0, len(leaf_hashes)) if leaf_hashes else EMPTY_ROOT


# --- verification --------------------------------------------------------------------------


def _check_hash(value: object, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        size = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte hash, got {size}")


def _check_proof(proof: Sequence[bytes], expected: int, what: str) -> None:
    if len(proof) != expected:
        raise ProofError(f"{what} must have {expected} hashes, got {len(proof)}")
    if not (set(map(type, proof)) <= {bytes} and set(map(len, proof)) <= {HASH_SIZE}):
        for position, value in enumerate(proof):  # name the first bad one
            _check_hash(value, f"proof[{position}]")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for leaf ``index`` of a tree of ``size`` (RFC 9162 2.1.3.2).

    Raises ProofError when ``0 <= index < size`` fails or the proof has the wrong length.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_proof(
        proof, _path_size(0, index, size), f"inclusion proof of leaf {index} in size {size}"
    )
    fn, sn, result = index, size - 1, leaf_hash
    for sibling in proof:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise ProofError("inclusion proof is longer than the path to the root")
        fn, sn, result = path_step(fn, sn, result, sibling)
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return result


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that leaf ``leaf_hash`` is at ``index`` in the tree of ``size`` with ``root``.

    Raises ProofError for bad parameters or a proof of the wrong shape, RootMismatchError when
    the proof leads to a different root.
    """
    _check_hash(root, "root")
    calculated = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if calculated != root:
        raise RootMismatchError(root, calculated, f"root of tree size {size}")


def _consistency_roots(
    size1: int, size2: int, root1: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Old and new roots implied by a proof for ``0 < size1 < size2`` (RFC 9162 2.1.4.2)."""
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old = new = path[0]
    for node in path[1:]:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise ProofError("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            old = node_hash(node, old)
            new = node_hash(node, new)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            new = node_hash(new, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    return old, new


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size2`` with ``root2`` extends the one of ``size1`` with ``root1``.

    Follows RFC 9162 section 2.1.4.2. Equal sizes need an empty proof and equal roots; from
    size 0 (whose root must be the empty-tree hash) any tree is consistent, with an empty proof.
    Raises ProofError for bad sizes or a proof of the wrong shape, RootMismatchError naming the
    old or the new root when the proof leads elsewhere.
    """
    if not 0 <= size1 <= size2:
        raise ProofError(f"consistency needs 0 <= size1 <= size2, got {size1} and {size2}")
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    what = f"consistency proof from size {size1} to {size2}"
    _check_proof(proof, consistency_proof_size(size1, size2), what)
    if size1 == size2:
        if root1 != root2:
            raise RootMismatchError(root1, root2, f"root of tree size {size1} (seen twice)")
        return
    if size1 == 0:
        if root1 != EMPTY_ROOT:
            raise RootMismatchError(EMPTY_ROOT, root1, "root of the empty tree")
        return
    old, new = _consistency_roots(size1, size2, root1, proof)
    if old != root1:
        raise RootMismatchError(root1, old, f"old root (tree size {size1})")
    if new != root2:
        raise RootMismatchError(root2, new, f"new root (tree size {size2})")
