"""Deduplication on (device, seq): new, own replay, duplicate, conflict; copies in one batch."""

from __future__ import annotations

import hashlib

import pytest

from contracts.topics import Source
from ingest.dedupe import (
    InMemoryDeviceMessages,
    MessageClaim,
    Outcome,
    StoredMessage,
    describe,
    first_claims,
    resolve,
)

H1, H2 = hashlib.sha256(b"one").digest(), hashlib.sha256(b"two").digest()


def claim(
    seq: int, digest: bytes, offset: int, device: str = "dev-1", partition: int = 0
) -> MessageClaim:
    return MessageClaim(device, seq, digest, Source(partition, offset))


async def outcomes(store: InMemoryDeviceMessages, claims: list[MessageClaim]) -> list[Outcome]:
    return resolve(claims, await store.claim(claims))


async def test_new_then_duplicate_then_conflict() -> None:
    store = InMemoryDeviceMessages()
    assert await outcomes(store, [claim(1, H1, 10)]) == [Outcome.NEW]
    assert await outcomes(store, [claim(1, H1, 11)]) == [Outcome.DUPLICATE]
    assert await outcomes(store, [claim(1, H2, 12)]) == [Outcome.CONFLICT]
    assert store.rows == {("dev-1", 1): (H1, Source(0, 10))}, "the first bytes stay"


async def test_the_same_raw_record_read_again_is_an_own_replay() -> None:
    store = InMemoryDeviceMessages()
    batch = [claim(1, H1, 10), claim(2, H2, 11)]
    assert await outcomes(store, batch) == [Outcome.NEW, Outcome.NEW]
    # the verifier died before committing: the same records come again
    assert await outcomes(store, batch) == [Outcome.REPLAY, Outcome.REPLAY]
    assert all(o.forwards for o in (Outcome.NEW, Outcome.REPLAY))
    assert not any(o.forwards for o in (Outcome.DUPLICATE, Outcome.CONFLICT))


async def test_same_offset_on_another_partition_is_not_a_replay() -> None:
    store = InMemoryDeviceMessages()
    await store.claim([claim(1, H1, 10, partition=0)])
    assert await outcomes(store, [claim(1, H1, 10, partition=1)]) == [Outcome.DUPLICATE]


@pytest.mark.parametrize(
    ("second", "expected"),
    [(H1, Outcome.DUPLICATE), (H2, Outcome.CONFLICT)],
    ids=["same-bytes", "other-bytes"],
)
async def test_two_copies_in_one_batch(second: bytes, expected: Outcome) -> None:
    store = InMemoryDeviceMessages()
    batch = [claim(1, H1, 10), claim(2, H1, 11), claim(1, second, 12)]
    assert await outcomes(store, batch) == [Outcome.NEW, Outcome.NEW, expected]
    # and after a crash, the whole batch again: the first copy is our replay, the second
    # keeps its verdict
    assert await outcomes(store, batch) == [Outcome.REPLAY, Outcome.REPLAY, expected]


async def test_a_duplicate_of_an_earlier_batch_inside_a_batch_with_its_own_copy() -> None:
    store = InMemoryDeviceMessages()
    await store.claim([claim(1, H1, 10)])
    batch = [claim(1, H2, 20), claim(1, H1, 21), claim(1, H1, 10)]
    assert await outcomes(store, batch) == [Outcome.CONFLICT, Outcome.DUPLICATE, Outcome.REPLAY]


def test_first_claims_keeps_the_first_of_each_key_in_order() -> None:
    claims = [claim(2, H1, 1), claim(1, H1, 2), claim(2, H2, 3), claim(1, H1, 4, device="dev-2")]
    assert first_claims(claims) == [claims[0], claims[1], claims[3]]


def test_describe_names_the_first_source_and_hashes() -> None:
    row = StoredMessage(H1, Source(2, 77), new=False)
    conflict = describe(claim(5, H2, 90), row, Outcome.CONFLICT)
    assert conflict.startswith("dev-1 seq 5: other bytes were accepted first")
    assert H1.hex()[:16] in conflict
    assert H2.hex()[:16] in conflict
    assert "raw:2:77" in conflict
    duplicate = describe(claim(5, H1, 90), row, Outcome.DUPLICATE)
    assert duplicate == "dev-1 seq 5: the same bytes were accepted first from raw:2:77"
