"""The hash chain at ingest and claims of revoked keys on the real PostgreSQL (scratch schema).

What depends on PostgreSQL here: the neighbours read in the claim statement (rows stored by
earlier batches), the compare-and-swap of a void claim between concurrent verifiers, rows
written before schema version 6, and the migration of such a database.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chain.errors import RejectReason
from chain.telemetry import chain_hash
from contracts.topics import Source
from ingest.chain_links import settle_claims
from ingest.dedupe import MessageClaim, Outcome, PostgresDeviceMessages
from ingest.key_cache import StaticKeys
from ingest.verifier import Verifier
from ingest.verifier_routing import Decision
from roadledger.db.schema import SCHEMA_VERSION, apply_schema
from roadledger.settings import Settings
from roadledger.stream.memory import MemoryStream
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.fleet import T0, Device, raw_record

pytestmark = pytest.mark.postgres

R = RejectReason
MADE_UP = chain_hash(b"a message this device never sent")
STOLEN_AT = T0 - 3_600_000


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres, max_size=8) as scratch:
        yield scratch


class Feed:
    """One device's raw records through a verifier on PostgreSQL, offsets from 0."""

    def __init__(self, pool: asyncpg.Pool, postgres: Settings, device: Device) -> None:
        self.device_id = device.device_id
        self.keys = StaticKeys(device.records)
        settings = postgres.model_copy(update={"verify_workers": 0})
        self.verifier = Verifier(settings, MemoryStream(), pool, self.keys, key_refresh_s=0)
        self.offset = 0

    async def decide(self, *messages: bytes, recv_ms: int = T0) -> list[Decision]:
        records = []
        for raw in messages:
            records.append(raw_record(raw, self.device_id, offset=self.offset, recv_ms=recv_ms))
            self.offset += 1
        return await self.verifier.decide(records)


def links(decisions: list[Decision]) -> list[str | None]:
    return [",".join(b.link for b in d.chain_breaks) or None for d in decisions]


async def test_a_reflashed_device_is_flagged_against_rows_of_earlier_batches(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    car = Device("veh-1")
    feed = Feed(pool, postgres, car)
    history = [car.message(T0 - 600_000 + i * 1000) for i in range(10)]
    assert links(await feed.decide(*history[:5])) == [None] * 5
    assert links(await feed.decide(*history[5:])) == [None] * 5
    forged = car.message(T0, seq=11, prev=MADE_UP, odo_m=1_000)
    (flagged,) = await feed.decide(forged)
    assert flagged.reason is None
    assert links([flagged]) == ["10->11"]
    # the same raw record read again after a crash: the same verdict and flag
    feed.offset -= 1
    (again,) = await feed.decide(forged)
    assert again.replay
    assert links([again]) == ["10->11"]
    # a successor stored first, then its predecessor: judged when the predecessor arrives
    other = Device("veh-2")
    feed2 = Feed(pool, postgres, other)
    m1, m2, m3 = (other.message(T0 - 5000 + i) for i in range(3))
    forged_4 = other.message(T0, seq=4, prev=MADE_UP)
    assert links(await feed2.decide(m1, m2, forged_4)) == [None] * 3
    assert links(await feed2.decide(m3)) == ["3->4"]


async def test_rows_from_before_schema_6_are_not_judged_nor_void(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    car = Device("veh-1")
    feed = Feed(pool, postgres, car)
    m1, m2, m3 = (car.message(T0 - 5000 + i) for i in range(3))
    await feed.decide(m1, m3)
    await pool.execute("UPDATE device_messages SET prev = NULL, key_id = NULL, signed_ts = NULL")
    # seq 3's prev is unknown now: seq 2's successor check is skipped; its predecessor (seq 1,
    # an old row) is still judged by its hash, which every row has
    assert links(await feed.decide(m2)) == [None]
    forged = car.message(T0, seq=4, prev=MADE_UP)
    assert links(await feed.decide(forged)) == ["3->4"]


def _squatted(pool: asyncpg.Pool, postgres: Settings) -> tuple[Device, Feed, list[bytes]]:
    car = Device("veh-1", key_name="k1", valid_from_ms=T0 - 10 * 86_400_000)
    thief = Device("veh-1", key_name="k1", valid_from_ms=T0 - 10 * 86_400_000)
    genuine = [car.message(STOLEN_AT - 60_000 + i * 1000) for i in range(10)]
    thief.seq, thief.prev = car.seq, car.prev
    squats = [thief.message(STOLEN_AT + i * 100, odo_m=5) for i in range(1000)]  # seq 11..1010
    return car, Feed(pool, postgres, car), [*genuine, *squats]


async def test_seqs_squatted_with_a_stolen_key_give_way_to_the_next_key(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    car, feed, sent = _squatted(pool, postgres)
    decided = await feed.decide(*sent, recv_ms=STOLEN_AT + 120_000)
    assert [d.reason for d in decided] == [None] * 1010
    old, new = car.rotate(STOLEN_AT, "k2")  # roadledger devices rotate --at <theft>
    feed.keys.replace(feed.keys.keys["veh-1"][0], old)
    feed.keys.add(new)
    resent = [car.message(T0 + i * 1000) for i in range(5)]  # the device's seq 11..15
    decisions = await feed.decide(*resent, recv_ms=T0 + 10_000)
    assert [d.reason for d in decisions] == [None] * 5
    assert links(decisions) == [None] * 5
    rows = await pool.fetch(
        "SELECT seq, key_id, source_offset FROM device_messages "
        "WHERE device_id = 'veh-1' AND seq BETWEEN 10 AND 16 ORDER BY seq"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (10, old.key_id, 9),
        *((11 + i, new.key_id, 1010 + i) for i in range(5)),
        (16, old.key_id, 15),  # not reached by the device yet: still the thief's (void)
    ]
    # the device goes on: seq 16 takes the squat over and links to 15
    (next_one,) = await feed.decide(car.message(T0 + 6000), recv_ms=T0 + 10_000)
    assert (next_one.reason, links([next_one])) == (None, [None])


async def test_concurrent_verifiers_supersede_a_void_claim_once(
    pool: asyncpg.Pool, postgres: Settings
) -> None:
    car, feed, sent = _squatted(pool, postgres)
    await feed.decide(*sent[:20], recv_ms=STOLEN_AT + 120_000)
    old, new = car.rotate(STOLEN_AT, "k2")
    keys = {"veh-1": [old, new]}

    def claim(seq: int, text: str, offset: int) -> MessageClaim:
        digest = hashlib.sha256(text.encode()).digest()
        return MessageClaim("veh-1", seq, digest, Source(1, offset), None, new.key_id, T0)

    # two verifiers during a hand-over, each with other bytes for seqs 11..20
    left = [claim(s, f"left-{s}", s) for s in range(11, 21)]
    right = [claim(s, f"right-{s}", 100 + s) for s in range(11, 21)]
    a, b = PostgresDeviceMessages(pool), PostgresDeviceMessages(pool)
    won_a, won_b = await asyncio.gather(settle_claims(a, left, keys), settle_claims(b, right, keys))
    for x, y in zip(won_a, won_b, strict=True):
        outcomes = {x.outcome, y.outcome}
        assert outcomes == {Outcome.NEW, Outcome.CONFLICT}, (x.claim.seq, outcomes)
        assert x.row.message_hash == y.row.message_hash, "both see the one winner"
        winner = x if x.outcome is Outcome.NEW else y
        assert winner.superseded is not None
        assert winner.superseded.key_id == old.key_id
    stored = await pool.fetch(
        "SELECT seq, message_hash FROM device_messages WHERE device_id = 'veh-1' AND seq > 10"
    )
    winners = {s.claim.seq: s.claim.message_hash for s in [*won_a, *won_b] if s.outcome.forwards}
    assert {r[0]: bytes(r[1]) for r in stored} == winners


async def test_a_database_at_schema_5_gains_the_columns(postgres: Settings) -> None:
    async with scratch_schema_pool(postgres) as scratch, scratch.acquire() as conn:
        await conn.execute(
            "ALTER TABLE device_messages DROP COLUMN prev, DROP COLUMN key_id, "
            "DROP COLUMN signed_ts"
        )
        # Recorded at 5: every later migration runs again (each may run twice).
        await conn.execute("DELETE FROM roadledger_migrations WHERE number > 5")
        await apply_schema(conn)
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'device_messages'"
        )
        assert {"prev", "key_id", "signed_ts"} <= {c[0] for c in columns}
        assert (
            await conn.fetchval("SELECT max(number) FROM roadledger_migrations") == SCHEMA_VERSION
        )
