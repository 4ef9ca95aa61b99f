"""Block headers: encoding, JSON, entries root, and the hash-chain check."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from chain.blocks import (
    BLOCK_TAG,
    GENESIS_PREV_HASH,
    BlockHeader,
    entries_root,
    verify_block_chain,
    verify_block_entries,
)
from chain.errors import BlockError, EncodingError
from chain.hashing import leaf_hashes
from chain.log import InMemoryMerkleLog

ORIGIN = "roadledger.example/log-0"


def build_chain(batches: list[list[bytes]], origin: str = ORIGIN) -> list[BlockHeader]:
    log = InMemoryMerkleLog()
    headers: list[BlockHeader] = []
    prev = GENESIS_PREV_HASH
    for height, batch in enumerate(batches):
        first = log.size
        log.append_many(batch)
        header = BlockHeader(
            version=1,
            origin=origin,
            height=height,
            prev_block_hash=prev,
            first_leaf_index=first,
            leaf_count=len(batch),
            entries_root=entries_root(batch),
            tree_size=log.size,
            tree_root=log.root(),
            timestamp_ms=1_700_000_000_000 + 1000 * height,
        )
        headers.append(header)
        prev = header.block_hash
    return headers


BATCHES = [[b"a", b"b", b"c"], [b"d"], [b"e", b"f", b"g", b"h", b"i"]]


@pytest.fixture
def chain() -> list[BlockHeader]:
    return build_chain(BATCHES)


# --- encoding ---------------------------------------------------------------------------------


def test_encoding_layout_is_fixed(chain: list[BlockHeader]) -> None:
    h = chain[1]
    origin = ORIGIN.encode()
    expected = (
        b"roadledger/block/v1\n"
        + (1).to_bytes(2, "big")
        + len(origin).to_bytes(2, "big")
        + origin
        + (1).to_bytes(8, "big")
        + h.prev_block_hash
        + (3).to_bytes(8, "big")
        + (1).to_bytes(8, "big")
        + h.entries_root
        + (4).to_bytes(8, "big")
        + h.tree_root
        + (1_700_000_001_000).to_bytes(8, "big")
    )
    assert h.encode() == expected
    assert h.block_hash == hashlib.sha256(expected).digest()


def test_golden_block_hash() -> None:
    # Pins the format: if this changes, every stored block hash changes with it.
    h = BlockHeader(1, "o", 0, bytes(32), 0, 1, b"\x11" * 32, 1, b"\x11" * 32, 0)
    assert h.encode().hex() == (
        BLOCK_TAG.hex()
        + "0001"
        + "0001"
        + "6f"
        + "00" * 8
        + "00" * 32
        + "00" * 8
        + "0000000000000001"
        + "11" * 32
        + "0000000000000001"
        + "11" * 32
        + "00" * 8
    )
    assert h.block_hash == hashlib.sha256(h.encode()).digest()


def test_decode_encode_round_trips_both_ways(chain: list[BlockHeader]) -> None:
    for h in chain:
        data = h.encode()
        assert BlockHeader.decode(data) == h
        assert BlockHeader.decode(data).encode() == data
        assert BlockHeader.decode(bytearray(data)) == h


def test_unicode_origin_round_trips() -> None:
    h = build_chain([[b"x"]], origin="straßen.example/log-ü")[0]
    assert BlockHeader.decode(h.encode()) == h


def _tamper(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def _malformed(h: BlockHeader) -> list[bytes]:
    data = h.encode()
    tag = len(BLOCK_TAG)
    body = tag + 4 + len(ORIGIN)
    return [
        b"",
        data[:-1],
        data + b"\x00",
        data[: tag - 1],
        data[: tag + 3],
        b"roadledger/block/v2\n" + data[tag:],
        _tamper(data, tag, struct.pack(">H", 2)),  # version 2
        _tamper(data, tag + 2, struct.pack(">H", len(ORIGIN) + 1)),  # origin length lies
        _tamper(data, tag + 2, struct.pack(">H", 0)),
        _tamper(data, tag + 4, b"\xff"),  # origin not UTF-8
        _tamper(data, tag + 4, b"\x01"),  # control character in origin
        _tamper(data, body + 8 + 32 + 8, (0).to_bytes(8, "big")),  # leaf_count 0
        _tamper(data, body + 8 + 32 + 8 + 8 + 32, (99).to_bytes(8, "big")),  # tree_size
    ]


def test_malformed_encodings_raise_encoding_error(chain: list[BlockHeader]) -> None:
    for data in _malformed(chain[1]):
        with pytest.raises(EncodingError):
            BlockHeader.decode(data)


def test_genesis_with_a_previous_hash_does_not_decode(chain: list[BlockHeader]) -> None:
    data = chain[0].encode()
    offset = len(BLOCK_TAG) + 4 + len(ORIGIN) + 8
    with pytest.raises(EncodingError, match="zero bytes"):
        BlockHeader.decode(_tamper(data, offset, b"\x01"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 2),
        ("version", True),
        ("origin", ""),
        ("origin", "x" * 256),
        ("origin", "tab\there"),
        ("height", -1),
        ("height", 1 << 64),
        ("prev_block_hash", b"\x00" * 31),
        ("leaf_count", 0),
        ("tree_size", 5),
        ("entries_root", "not bytes"),
        ("timestamp_ms", 1.5),
        ("first_leaf_index", True),
    ],
)
def test_invalid_headers_cannot_be_built(chain: list[BlockHeader], field: str, value: Any) -> None:
    with pytest.raises(BlockError):
        dataclasses.replace(chain[1], **{field: value})


def test_genesis_rules() -> None:
    good = build_chain([[b"a", b"b"]])[0]
    with pytest.raises(BlockError, match="zero bytes"):
        dataclasses.replace(good, prev_block_hash=b"\x01" * 32)
    with pytest.raises(BlockError, match="entries_root must equal tree_root"):
        dataclasses.replace(good, entries_root=b"\x02" * 32)


# --- JSON -------------------------------------------------------------------------------------


def test_json_round_trips_both_ways(chain: list[BlockHeader]) -> None:
    for h in chain:
        obj = h.to_json()
        assert BlockHeader.from_json(obj) == h
        assert BlockHeader.from_json(h.to_json_text()) == h
        assert BlockHeader.from_json(h.to_json_text()).to_json_text() == h.to_json_text()
        without_hash = {k: v for k, v in obj.items() if k != "block_hash"}
        assert BlockHeader.from_json(without_hash) == h


def test_json_shape(chain: list[BlockHeader]) -> None:
    obj = json.loads(chain[1].to_json_text())
    assert obj["height"] == 1
    assert obj["first_leaf_index"] == 3
    assert obj["origin"] == ORIGIN
    assert obj["prev_block_hash"] == base64.b64encode(chain[0].block_hash).decode()


def _mutations(obj: dict[str, Any]) -> list[Any]:
    def changed(**kv: Any) -> dict[str, Any]:
        return {**obj, **kv}

    missing = dict(obj)
    del missing["height"]
    return [
        [],
        "not json",
        '{"height": 1, "height": 2}',
        missing,
        changed(extra=1),
        changed(height=True),
        changed(height=1.0),
        changed(height="1"),
        changed(origin=5),
        changed(tree_root=5),
        changed(tree_root="not base64!"),
        changed(tree_root=obj["tree_root"].rstrip("=")),
        changed(block_hash=obj["prev_block_hash"]),
        changed(block_hash=7),
        changed(leaf_count=0),
    ]


def test_malformed_json_raises_encoding_error(chain: list[BlockHeader]) -> None:
    obj = chain[1].to_json()
    for bad in _mutations(obj):
        with pytest.raises(EncodingError):
            BlockHeader.from_json(bad)


def test_duplicate_keys_in_json_text_are_refused(chain: list[BlockHeader]) -> None:
    text = chain[1].to_json_text()
    with pytest.raises(EncodingError, match="duplicate"):
        BlockHeader.from_json(text[:-1] + ',"height":1}')


# --- entries root -----------------------------------------------------------------------------


def test_entries_root_matches_the_shared_rfc9162_vectors(vectors_dir: Path) -> None:
    vectors = json.loads((vectors_dir / "rfc9162-merkle.json").read_text())
    leaves = [bytes.fromhex(x) for x in vectors["leaves_hex"]]
    for case in vectors["roots"]:
        assert entries_root(leaves[: case["size"]]).hex() == case["root_hex"]


def test_verify_block_entries(chain: list[BlockHeader]) -> None:
    verify_block_entries(chain[2], leaf_hashes(BATCHES[2]))
    with pytest.raises(BlockError, match="block 2: has 5 leaves, got 4"):
        verify_block_entries(chain[2], leaf_hashes(BATCHES[2][:4]))
    with pytest.raises(BlockError, match="block 2: entries_root"):
        verify_block_entries(chain[2], leaf_hashes([*BATCHES[2][:4], b"z"]))


# --- chain ------------------------------------------------------------------------------------


def test_valid_chain_verifies(chain: list[BlockHeader]) -> None:
    verify_block_chain(chain)
    verify_block_chain(chain[1:], previous=chain[0])
    verify_block_chain([])


def test_last_block_tree_matches_the_log(chain: list[BlockHeader]) -> None:
    log = InMemoryMerkleLog()
    log.append_many([e for batch in BATCHES for e in batch])
    assert chain[-1].tree_size == log.size
    assert chain[-1].tree_root == log.root()


def _relinked(headers: list[BlockHeader], index: int, **changes: Any) -> list[BlockHeader]:
    """Change one header and re-link the ones after it, so only the intended break remains."""
    out = list(headers[:index])
    out.append(dataclasses.replace(headers[index], **changes))
    for h in headers[index + 1 :]:
        out.append(dataclasses.replace(h, prev_block_hash=out[-1].block_hash))
    return out


def test_broken_prev_hash_names_the_height(chain: list[BlockHeader]) -> None:
    broken = [chain[0], chain[1], dataclasses.replace(chain[2], prev_block_hash=b"\x09" * 32)]
    with pytest.raises(BlockError, match=r"^block 2: prev_block_hash"):
        verify_block_chain(broken)


def test_changed_earlier_block_breaks_the_link(chain: list[BlockHeader]) -> None:
    tampered = [
        chain[0],
        dataclasses.replace(chain[1], timestamp_ms=chain[1].timestamp_ms + 1),
        chain[2],
    ]
    with pytest.raises(BlockError, match=r"^block 2: prev_block_hash"):
        verify_block_chain(tampered)


def test_height_gap_is_refused(chain: list[BlockHeader]) -> None:
    gapped = _relinked(chain, 2, height=3)
    with pytest.raises(BlockError, match=r"^block 3: follows block 1"):
        verify_block_chain(gapped)


def test_leaf_gap_is_refused(chain: list[BlockHeader]) -> None:
    gapped = _relinked(chain, 2, first_leaf_index=5, tree_size=10)
    with pytest.raises(BlockError, match=r"^block 2: first_leaf_index 5 != tree_size 4"):
        verify_block_chain(gapped)


def test_timestamp_going_back_is_refused(chain: list[BlockHeader]) -> None:
    back = _relinked(chain, 2, timestamp_ms=chain[1].timestamp_ms - 1)
    with pytest.raises(BlockError, match=r"^block 2: timestamp"):
        verify_block_chain(back)


def test_origin_change_is_refused(chain: list[BlockHeader]) -> None:
    moved = _relinked(chain, 1, origin="other.example/log")
    with pytest.raises(BlockError, match=r"^block 1: origin"):
        verify_block_chain(moved)


def test_segment_needs_its_previous_block(chain: list[BlockHeader]) -> None:
    with pytest.raises(BlockError, match="does not start at height 0"):
        verify_block_chain(chain[1:])
    with pytest.raises(BlockError, match="block 2: follows block 0"):
        verify_block_chain(chain[2:], previous=chain[0])
