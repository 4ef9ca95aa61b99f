"""Block headers: one per integration batch, hash-chained, each pinned to the Merkle log.

A block says: "at ``timestamp_ms`` the log ``origin`` integrated leaves
``[first_leaf_index, first_leaf_index + leaf_count)``, whose own RFC 9162 Merkle root is
``entries_root``; afterwards the log had ``tree_size`` leaves and root ``tree_root``; the block
before this one has hash ``prev_block_hash``" (32 zero bytes for height 0).

Binary encoding (version 1), all integers big-endian, fixed width::

    b"roadledger/block/v1\\n"        20 bytes   domain-separation tag
    version                        u16        1
    origin length                  u16        1..255
    origin                         UTF-8      the log's origin (checkpoint origin line)
    height                         u64        0-based
    prev_block_hash                32 bytes
    first_leaf_index               u64
    leaf_count                     u64        >= 1
    entries_root                   32 bytes   RFC 9162 root over this block's leaf hashes
    tree_size                      u64        == first_leaf_index + leaf_count
    tree_root                      32 bytes   RFC 9162 root of the whole log after the block
    timestamp_ms                   u64        ms since the Unix epoch (sequencer clock)

``block_hash = SHA-256(encoding)``. The JSON form carries the same fields, hashes in standard
padded base64 (as in checkpoints and proofs), plus the block hash for convenience.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain.encoding import b64_decode, b64_encode
from chain.errors import BlockError, EncodingError
from chain.hashing import leaf_hashes
from chain.merkle import compute_root
from chain.strict_json import dumps_canonical, loads_object

__all__ = [
    "BLOCK_TAG",
    "BLOCK_VERSION",
    "GENESIS_PREV_HASH",
    "BlockHeader",
    "entries_root",
    "verify_block_chain",
    "verify_block_entries",
]

BLOCK_TAG = b"roadledger/block/v1\n"
BLOCK_VERSION = 1
GENESIS_PREV_HASH = bytes(32)
_HASH = 32
_U64_MAX = (1 << 64) - 1
_MAX_ORIGIN = 255
_HEAD = struct.Struct(">HH")
_BODY = struct.Struct(">Q32sQQ32sQ32sQ")
_JSON_FIELDS = (
    "version",
    "origin",
    "height",
    "prev_block_hash",
    "first_leaf_index",
    "leaf_count",
    "entries_root",
    "tree_size",
    "tree_root",
    "timestamp_ms",
)
_HASH_FIELDS = frozenset({"prev_block_hash", "entries_root", "tree_root"})


def entries_root(entries: Iterable[bytes]) -> bytes:
    """RFC 9162 root over the leaf hashes of ``entries`` (the verbatim entry bytes)."""
    return compute_root(leaf_hashes(entries))


def _u64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BlockError(f"block: {what} must be an integer")
    if not 0 <= value <= _U64_MAX:
        raise BlockError(f"block: {what} {value} out of range 0..2^64-1")
    return value


def _hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != _HASH:
        raise BlockError(f"block: {what} must be {_HASH} bytes")
    return value


@dataclass(frozen=True)
class BlockHeader:
    """A block header; constructing one validates every field (raises :class:`BlockError`)."""

    version: int
    origin: str
    height: int
    prev_block_hash: bytes
    first_leaf_index: int
    leaf_count: int
    entries_root: bytes
    tree_size: int
    tree_root: bytes
    timestamp_ms: int

    def __post_init__(self) -> None:
        if self.version != BLOCK_VERSION or isinstance(self.version, bool):
            raise BlockError(f"block: unsupported version {self.version!r}")
        origin_value: object = self.origin  # typed str, but built from untrusted input too
        if not isinstance(origin_value, str) or not origin_value:
            raise BlockError("block: origin must be a non-empty string")
        try:
            origin = self.origin.encode("utf-8")
        except UnicodeEncodeError:
            raise BlockError("block: origin is not valid UTF-8") from None
        if len(origin) > _MAX_ORIGIN:
            raise BlockError(f"block: origin longer than {_MAX_ORIGIN} bytes")
        if any(b < 0x20 for b in origin):
            raise BlockError("block: origin contains a control character")
        _u64(self.height, "height")
        _hash(self.prev_block_hash, "prev_block_hash")
        _u64(self.first_leaf_index, "first_leaf_index")
        _u64(self.leaf_count, "leaf_count")
        _hash(self.entries_root, "entries_root")
        _u64(self.tree_size, "tree_size")
        _hash(self.tree_root, "tree_root")
        _u64(self.timestamp_ms, "timestamp_ms")
        if self.leaf_count < 1:
            raise BlockError(f"block {self.height}: a block holds at least one leaf")
        if self.tree_size != self.first_leaf_index + self.leaf_count:
            raise BlockError(
                f"block {self.height}: tree_size {self.tree_size} != first_leaf_index "
                f"{self.first_leaf_index} + leaf_count {self.leaf_count}"
            )
        if self.height == 0:
            if self.prev_block_hash != GENESIS_PREV_HASH:
                raise BlockError("block 0: prev_block_hash must be 32 zero bytes")
            if self.first_leaf_index != 0:
                raise BlockError("block 0: first_leaf_index must be 0")
        if self.leaf_count == self.tree_size and self.entries_root != self.tree_root:
            raise BlockError(
                f"block {self.height}: holds the whole tree, so entries_root must equal tree_root"
            )

    @property
    def last_leaf_index(self) -> int:
        return self.tree_size - 1

    # --- binary -------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The deterministic binary encoding (see the module docstring)."""
        origin = self.origin.encode("utf-8")
        return (
            BLOCK_TAG
            + _HEAD.pack(self.version, len(origin))
            + origin
            + _BODY.pack(
                self.height,
                self.prev_block_hash,
                self.first_leaf_index,
                self.leaf_count,
                self.entries_root,
                self.tree_size,
                self.tree_root,
                self.timestamp_ms,
            )
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> BlockHeader:
        """Parse :meth:`encode` output; anything else raises :class:`EncodingError`."""
        given: object = data
        if not isinstance(given, bytes | bytearray | memoryview):
            raise EncodingError("block: encoding must be bytes")
        data = bytes(given)
        if not data.startswith(BLOCK_TAG):
            raise EncodingError("block: missing the roadledger/block/v1 tag")
        offset = len(BLOCK_TAG)
        if len(data) < offset + _HEAD.size:
            raise EncodingError("block: truncated header")
        version, origin_len = _HEAD.unpack_from(data, offset)
        if version != BLOCK_VERSION:
            raise EncodingError(f"block: unsupported version {version}")
        offset += _HEAD.size
        if len(data) != offset + origin_len + _BODY.size:
            raise EncodingError(
                f"block: expected {offset + origin_len + _BODY.size} bytes, got {len(data)}"
            )
        try:
            origin = data[offset : offset + origin_len].decode("utf-8")
        except UnicodeDecodeError:
            raise EncodingError("block: origin is not valid UTF-8") from None
        fields = _BODY.unpack_from(data, offset + origin_len)
        try:
            return cls(version, origin, *fields)
        except BlockError as exc:
            raise EncodingError(f"block: invalid header: {exc}") from None

    @property
    def block_hash(self) -> bytes:
        """``SHA-256(encode())``."""
        return hashlib.sha256(self.encode()).digest()

    # --- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: integers as numbers, hashes as base64, plus ``block_hash``."""
        out: dict[str, Any] = {}
        for name in _JSON_FIELDS:
            value = getattr(self, name)
            out[name] = b64_encode(value) if name in _HASH_FIELDS else value
        out["block_hash"] = b64_encode(self.block_hash)
        return out

    def to_json_text(self) -> str:
        """Compact JSON text with sorted keys."""
        return dumps_canonical(self.to_json())

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | str | bytes) -> BlockHeader:
        """Parse the JSON form strictly: exactly the known keys; ``block_hash`` optional but,
        when present, it must match. Raises :class:`EncodingError`."""
        if isinstance(obj, str | bytes):
            obj = loads_object(obj, "block JSON")
        if not isinstance(obj, Mapping):
            raise EncodingError("block JSON: expected an object")
        keys = set(obj)
        expected = set(_JSON_FIELDS)
        if not expected <= keys or not keys <= expected | {"block_hash"}:
            extra = sorted(keys - expected - {"block_hash"})
            lacking = sorted(expected - keys)
            raise EncodingError(f"block JSON: missing {lacking}, unexpected {extra}")
        values: dict[str, Any] = {}
        for name in _JSON_FIELDS:
            value = obj[name]
            if name in _HASH_FIELDS:
                if not isinstance(value, str):
                    raise EncodingError(f"block JSON: {name} must be a base64 string")
                values[name] = b64_decode(value, f"block JSON {name}")
            elif name == "origin":
                if not isinstance(value, str):
                    raise EncodingError("block JSON: origin must be a string")
                values[name] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise EncodingError(f"block JSON: {name} must be an integer")
                values[name] = value
        try:
            header = cls(**values)
        except BlockError as exc:
            raise EncodingError(f"block JSON: invalid header: {exc}") from None
        if "block_hash" in obj:
            claimed = obj["block_hash"]
            if not isinstance(claimed, str):
                raise EncodingError("block JSON: block_hash must be a base64 string")
            if b64_decode(claimed, "block JSON block_hash") != header.block_hash:
                raise EncodingError("block JSON: block_hash does not match the header")
        return header


def verify_block_entries(header: BlockHeader, entry_leaf_hashes: Sequence[bytes]) -> None:
    """Check that ``entry_leaf_hashes`` are exactly this block's leaves (count and root)."""
    if len(entry_leaf_hashes) != header.leaf_count:
        raise BlockError(
            f"block {header.height}: has {header.leaf_count} leaves, got {len(entry_leaf_hashes)}"
        )
    calculated = compute_root(entry_leaf_hashes)
    if calculated != header.entries_root:
        raise BlockError(
            f"block {header.height}: entries_root {header.entries_root.hex()} != "
            f"calculated {calculated.hex()}"
        )


def verify_block_chain(headers: Sequence[BlockHeader], previous: BlockHeader | None = None) -> None:
    """Check that ``headers`` form an unbroken chain; raise :class:`BlockError` naming the height.

    Checks: one origin and version; heights consecutive; each ``prev_block_hash`` is the hash of
    the header before; leaf ranges contiguous (``first_leaf_index`` == previous ``tree_size``);
    timestamps never go backwards. Without ``previous`` the chain must start at the genesis
    block (height 0); to check a segment, pass the (already trusted) header before it as
    ``previous``.
    """
    if not headers:
        return
    chain: list[BlockHeader] = [previous, *headers] if previous is not None else list(headers)
    first = chain[0]
    if previous is None and first.height != 0:
        raise BlockError(
            f"block {first.height}: chain does not start at height 0 "
            f"(pass the block before it as previous)"
        )
    for before, block in itertools.pairwise(chain):
        where = f"block {block.height}"
        if block.origin != before.origin:
            raise BlockError(f"{where}: origin {block.origin!r} != {before.origin!r}")
        if block.version != before.version:
            raise BlockError(f"{where}: version {block.version} != {before.version}")
        if block.height != before.height + 1:
            raise BlockError(f"{where}: follows block {before.height} (heights not consecutive)")
        if block.prev_block_hash != before.block_hash:
            raise BlockError(
                f"{where}: prev_block_hash {block.prev_block_hash.hex()} is not the hash of "
                f"block {before.height} ({before.block_hash.hex()})"
            )
        if block.first_leaf_index != before.tree_size:
            raise BlockError(
                f"{where}: first_leaf_index {block.first_leaf_index} != tree_size "
                f"{before.tree_size} after block {before.height}"
            )
        if block.timestamp_ms < before.timestamp_ms:
            raise BlockError(
                f"{where}: timestamp {block.timestamp_ms} is before block {before.height}'s "
                f"{before.timestamp_ms}"
            )
