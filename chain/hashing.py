"""RFC 9162 section 2.1 hashing: the only module that knows the domain-separation prefixes.

A leaf is ``SHA-256(0x00 || entry)`` and an interior node ``SHA-256(0x01 || left || right)``;
the two prefixes keep a leaf from ever being confused with a node (second-preimage attack).
The empty tree's root is ``SHA-256("")``. Everything else in ``chain`` hashes through here.

The batch helpers are the hot loop of appending: they copy a hasher already primed with the
prefix instead of concatenating, which measured about 15% faster than ``sha256(prefix + data)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "fold_right",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "parent_hashes",
    "path_step",
]

HASH_SIZE = 32
"""Length in bytes of every leaf, node and root hash (SHA-256)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_LEAF_HASHER = hashlib.sha256(_LEAF_PREFIX)
_NODE_HASHER = hashlib.sha256(_NODE_PREFIX)

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the tree with no leaves (RFC 9162 section 2.1.1)."""


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 leaf hash of one entry: ``SHA-256(0x00 || entry)``."""
    hasher = _LEAF_HASHER.copy()
    hasher.update(entry)
    return hasher.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    hasher = _NODE_HASHER.copy()
    hasher.update(left)
    hasher.update(right)
    return hasher.digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Leaf hashes of ``entries``, in order (the batch form of :func:`leaf_hash`)."""
    copy = _LEAF_HASHER.copy
    out: list[bytes] = []
    append = out.append
    for entry in entries:
        hasher = copy()
        hasher.update(entry)
        append(hasher.digest())
    return out


def parent_hashes(children: Sequence[bytes]) -> list[bytes]:
    """Hashes of the parents of consecutive pairs ``(children[0], children[1]), ...``.

    A trailing unpaired child is ignored: its parent is not complete yet.
    """
    copy = _NODE_HASHER.copy
    out: list[bytes] = []
    append = out.append
    for left, right in zip(children[0::2], children[1::2], strict=False):
        hasher = copy()
        hasher.update(left)
        hasher.update(right)
        append(hasher.digest())
    return out


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of perfect subtrees side by side, left to right: ``H(h0, H(h1, ... H(hn-2, hn-1)))``.

    This is how RFC 9162 combines the perfect pieces of a tree (or of the right border of a
    tree) whose size is not a power of two. An empty sequence gives :data:`EMPTY_ROOT`.
    """
    if not hashes:
        return EMPTY_ROOT
    copy = _NODE_HASHER.copy
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        hasher = copy()
        hasher.update(left)
        hasher.update(result)
        result = hasher.digest()
    return result


def path_step(fn: int, sn: int, result: bytes, sibling: bytes) -> tuple[int, int, bytes]:
    """One step of the inclusion proof loop of RFC 9162 section 2.1.3.2: ``sibling`` folded
    into ``result`` at the state ``(fn, sn)``; the next state and hash."""
    if fn & 1 or fn == sn:
        result = node_hash(sibling, result)
        while not fn & 1 and fn:
            fn >>= 1
            sn >>= 1
    else:
        result = node_hash(result, sibling)
    return fn >> 1, sn >> 1, result
