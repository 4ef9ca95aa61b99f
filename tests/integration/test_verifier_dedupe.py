"""The verifier's deduplication on the real PostgreSQL (``device_messages``, scratch schema)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from chain.errors import RejectReason
from contracts.topics import Source
from ingest.dedupe import MessageClaim, Outcome, PostgresDeviceMessages, resolve
from ingest.key_cache import StaticKeys
from ingest.verifier import Verifier
from roadledger.settings import Settings
from roadledger.stream.memory import MemoryStream
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.fleet import T0, Device, raw_record

pytestmark = pytest.mark.postgres


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def claim(seq: int, text: str, offset: int, device: str = "dev-1", part: int = 0) -> MessageClaim:
    return MessageClaim(device, seq, digest(text), Source(part, offset))


class CountingPool:
    """Counts connections taken from the pool: one per round trip in PostgresDeviceMessages."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.acquired = 0

    def acquire(self) -> Any:
        self.acquired += 1
        return self.pool.acquire()


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres, max_size=8) as scratch:
        yield scratch


async def outcomes(store: PostgresDeviceMessages, claims: list[MessageClaim]) -> list[Outcome]:
    return resolve(claims, await store.claim(claims))


async def test_new_replay_duplicate_conflict_in_one_round_trip_each(pool: asyncpg.Pool) -> None:
    counting = CountingPool(pool)
    store = PostgresDeviceMessages(counting)
    first = [claim(seq, f"m{seq}", offset=seq) for seq in range(1, 501)]
    assert await outcomes(store, first) == [Outcome.NEW] * 500
    assert counting.acquired == 1

    mixed = [
        claim(1, "m1", offset=1),  # the same raw record again: our replay
        claim(2, "m2", offset=900),  # same bytes, other record: duplicate
        claim(3, "other", offset=901),  # other bytes: conflict
        claim(501, "m501", offset=902),  # new
        claim(501, "m501", offset=903),  # second copy in the batch: duplicate
        claim(502, "m502", offset=904),  # new
        claim(502, "x", offset=905),  # second copy, other bytes: conflict
        claim(1, "m1", offset=1, device="dev-2"),  # another device, same seq: new
    ]
    assert await outcomes(store, mixed) == [
        Outcome.REPLAY,
        Outcome.DUPLICATE,
        Outcome.CONFLICT,
        Outcome.NEW,
        Outcome.DUPLICATE,
        Outcome.NEW,
        Outcome.CONFLICT,
        Outcome.NEW,
    ]
    assert counting.acquired == 2, "one round trip per batch"
    row = await pool.fetchrow(
        "SELECT message_hash, source_partition, source_offset FROM device_messages "
        "WHERE device_id = 'dev-1' AND seq = 502"
    )
    assert (bytes(row[0]), row[1], row[2]) == (digest("m502"), 0, 904)
    assert await pool.fetchval("SELECT count(*) FROM device_messages") == 503


async def test_concurrent_claimers_agree_on_one_winner_per_seq(pool: asyncpg.Pool) -> None:
    # Two verifiers on one partition during a rebalance: both claim the same (device, seq)s
    # from different sources. Exactly one wins each; the other reads the winner's row back,
    # even when it was committed after the loser's snapshot (the retry path).
    a, b = PostgresDeviceMessages(pool), PostgresDeviceMessages(pool)
    for round_ in range(5):
        base = round_ * 2000
        left = [claim(base + s, f"m{base + s}", offset=base + s) for s in range(1, 2001)]
        right = [claim(base + s, f"m{base + s}", offset=10**6 + base + s) for s in range(1, 2001)]
        stored_a, stored_b = await asyncio.gather(a.claim(left), b.claim(right))
        for key in stored_a:
            assert stored_a[key].new != stored_b[key].new, f"{key}: exactly one claim stores it"
            assert stored_a[key].source == stored_b[key].source
        results = resolve(left, stored_a) + resolve(right, stored_b)
        assert results.count(Outcome.NEW) == 2000
        assert results.count(Outcome.DUPLICATE) == 2000


async def test_verifier_decides_against_postgres_and_repeats_its_verdicts(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    device = Device("veh-1")
    settings = postgres.model_copy(update={"verify_workers": 0})
    verifier = Verifier(settings, MemoryStream(), pool, StaticKeys(device.records))
    first, second = device.message(T0), device.message(T0 + 1000)
    records = [
        raw_record(first, "veh-1", offset=0),
        raw_record(second, "veh-1", offset=1),
        raw_record(first, "veh-1", offset=2),
        raw_record(device.message(T0 + 900, seq=2, odo_m=1), "veh-1", offset=3),
    ]
    want = [None, None, RejectReason.DUPLICATE, RejectReason.CONFLICT]
    decisions = await verifier.decide(records)
    assert [d.reason for d in decisions] == want
    assert [d.replay for d in decisions] == [False] * 4
    again = await verifier.decide(records)  # a crash before the commit: the same verdicts
    assert [d.reason for d in again] == want
    assert [d.replay for d in again] == [True, True, False, False]
