"""Attacks 1, 2 and 3 of issue 9 through the real Kafka, PostgreSQL and device registry.

Raw records -> the verifier (its real loop, the registry as key source) -> the verified and
quarantine topics -> the analytics engine -> stored warnings.

1. A re-flashed vehicle continues at seq 11 with a made-up ``prev`` and an odometer 50,000 km
   lower: forwarded with a ``chain_broken`` header, and a ``chain_broken`` warning is stored
   (beside ``odometer_rollback``).
2. A key revoked at T; messages signed with ts = T - 60 s: one arriving within the buffering
   grace is forwarded, one arriving 10 minutes after T is ``revoked_key``.
3. A thief squats seq 11..1010 with the stolen key; the operator rotates the key dated back to
   the theft (``roadledger devices rotate --at``); the device's seq 11..15 under the new key
   are forwarded, not quarantined as ``conflict``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from analytics.warnings.engine import AnalyticsEngine
from analytics.warnings.model import WarningType
from analytics.warnings.store import load_warnings
from chain.telemetry import chain_hash, parse
from contracts.topics import HEADER_CHAIN_BROKEN, QUARANTINE, RAW, VERIFIED
from ingest.verifier import Verifier
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream import OutgoingRecord
from roadledger.stream.kafka import KafkaStream
from tests.integration.analytics_support import analytics_env, run_until
from tests.support.pipeline import KafkaProbe, wait_until
from tests.unit.ingest.fleet import DAY_MS, Device

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NOW = int(time.time() * 1000)
T0 = NOW - 600_000
MADE_UP = chain_hash(b"a message this device never sent")


@pytest.fixture
async def env(kafka: Settings, postgres: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    async with analytics_env(kafka, postgres, "test-chain") as pair:
        yield pair


async def _publish(
    settings: Settings, device_id: str, messages: Sequence[bytes], recv_ms: int
) -> None:
    producer = KafkaStream(settings).producer(client_id="test-bridge")
    await producer.start()
    try:
        headers = [("recv_ms", str(recv_ms).encode())]
        out = [OutgoingRecord(device_id.encode(), raw, headers) for raw in messages]
        await (await producer.send_many(settings.topic(RAW), out))
    finally:
        await producer.stop()


async def _verify(settings: Settings, pool: asyncpg.Pool, count: int) -> None:
    """Run the verifier (a fresh one: its key cache reads the registry now) until it has
    committed ``count`` records, then stop it."""
    verifier = Verifier(
        settings.model_copy(update={"verify_workers": 0}),
        KafkaStream(settings),
        pool,
        DeviceRegistry(pool),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(verifier.run(stop))
    try:

        async def done() -> bool:
            if task.done():
                await task
            return verifier.stats.received >= count

        await wait_until(done, f"the verifier to commit {count} records", 60)
    finally:
        stop.set()
        await task


async def _topic(settings: Settings, name: str) -> list[tuple[bytes, dict[str, bytes]]]:
    probe = KafkaProbe(settings)
    await probe.start()
    try:
        return await probe.read(settings.topic(name))
    finally:
        await probe.stop()


async def _register(pool: asyncpg.Pool, device: Device) -> DeviceRegistry:
    registry = DeviceRegistry(pool)
    await registry.ensure_organisation("fleet-a", "Fleet A", "fleet_owner")
    await registry.register_many(device.records)
    return registry


async def test_a_reflashed_vehicle_is_flagged_and_warned(
    env: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = env
    car = Device("veh-reflash", valid_from_ms=T0 - DAY_MS)
    await _register(pool, car)
    genuine = [car.message(T0 + i * 1000, odo_m=60_000_000 + i * 14) for i in range(10)]
    reflashed = [
        car.message(T0 + 20_000, seq=11, prev=MADE_UP, odo_m=10_000_000),
        car.message(T0 + 21_000, odo_m=10_000_014),  # chained to the re-flashed seq 11
    ]
    await _publish(settings, car.device_id, genuine, T0 + 15_000)
    await _publish(settings, car.device_id, reflashed, T0 + 25_000)
    await _verify(settings, pool, 12)

    verified = await _topic(settings, VERIFIED)
    assert len(verified) == 12, "flagged, not quarantined"
    assert await _topic(settings, QUARANTINE) == []
    flags = {parse(value).telemetry.seq: h.get(HEADER_CHAIN_BROKEN) for value, h in verified}
    assert flags == {seq: None for seq in range(1, 13)} | {11: b"10->11"}

    await run_until(AnalyticsEngine(settings, KafkaStream(settings), pool), 12)
    stored = await load_warnings(pool)
    broken = [w for w in stored if w.type is WarningType.CHAIN_BROKEN]
    assert len(broken) == 1, stored
    assert broken[0].device_id == car.device_id
    assert [e.seq for e in broken[0].evidence] == [11]
    assert broken[0].detail["from_seq"] == 10
    assert WarningType.ODOMETER_ROLLBACK in {w.type for w in stored}


async def test_squatted_seqs_do_not_block_the_rotated_key(
    env: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = env
    stolen_at = T0 + 60_000
    car = Device("veh-squat", key_name="sq-k1", valid_from_ms=T0 - DAY_MS)
    thief = Device("veh-squat", key_name="sq-k1", valid_from_ms=T0 - DAY_MS)
    registry = await _register(pool, car)
    genuine = [car.message(T0 + i * 1000) for i in range(10)]
    thief.seq, thief.prev = car.seq, car.prev
    squats = [thief.message(stolen_at + i * 50, odo_m=1) for i in range(1000)]  # seq 11..1010
    await _publish(settings, car.device_id, genuine, T0 + 15_000)
    await _publish(settings, car.device_id, squats, stolen_at + 60_000)
    await _verify(settings, pool, 1010)
    assert len(await _topic(settings, VERIFIED)) == 1010, "nobody knew yet"

    # roadledger devices rotate veh-squat --at <theft>
    _, new = car.rotate(stolen_at, "sq-k2")
    await registry.rotate(car.device_id, new.public_key, stolen_at)
    resent = [car.message(NOW - 5000 + i * 100) for i in range(5)]  # the device's seq 11..15
    late_squat = thief.message(stolen_at + 60_000, odo_m=1)  # seq 1011, with the revoked key
    await _publish(settings, car.device_id, [*resent, late_squat], NOW)
    await _verify(settings, pool, 6)

    quarantined = await _topic(settings, QUARANTINE)
    assert [(parse(v).telemetry.seq, h["reason"]) for v, h in quarantined] == [
        (1011, b"revoked_key")
    ], "the device's seq 11..15 are not conflicts"
    verified = await _topic(settings, VERIFIED)
    mine = [v for v, h in verified if v in resent]
    assert len(mine) == 5
    assert all(HEADER_CHAIN_BROKEN not in h for v, h in verified if v in resent)
    rows = await pool.fetch(
        "SELECT k.valid_from_ms FROM device_messages m JOIN device_keys k USING (device_id, "
        "key_id) WHERE m.device_id = $1 AND m.seq BETWEEN 11 AND 15",
        car.device_id,
    )
    assert [r[0] for r in rows] == [stolen_at] * 5, "the new key holds seq 11..15"


async def test_backdated_messages_arriving_after_the_revocation_grace_are_refused(
    env: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = env
    revoked_at = NOW - 900_000
    car = Device("veh-stolen", valid_from_ms=T0 - DAY_MS)
    registry = await _register(pool, car)
    await registry.revoke(car.device_id, revoked_at)  # roadledger devices revoke --at
    buffered = car.message(revoked_at - 60_000)  # genuinely buffered, arrives 1 min after T
    backdated = car.message(revoked_at - 59_000)  # a thief's, arriving 10 min after T
    await _publish(settings, car.device_id, [buffered], revoked_at + 60_000)
    await _publish(settings, car.device_id, [backdated], revoked_at + 600_000)
    await _verify(settings, pool, 2)
    assert [v for v, _ in await _topic(settings, VERIFIED)] == [buffered]
    quarantined = await _topic(settings, QUARANTINE)
    assert [(v, h["reason"]) for v, h in quarantined] == [(backdated, b"revoked_key")]
    assert b"grace for buffered messages" in quarantined[0][1]["detail"]
