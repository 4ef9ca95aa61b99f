"""The analytics engine on the real Kafka and PostgreSQL: records in, warnings stored once and
published, offsets committed; reprocessing the same records stores nothing new."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from analytics.warnings.engine import AnalyticsEngine
from analytics.warnings.model import Warning, WarningType
from analytics.warnings.store import load_warnings
from chain.keys import Ed25519PrivateKey
from chain.telemetry import Telemetry, chain_hash, sign_telemetry
from contracts.topics import QUARANTINE, VERIFIED, WARNINGS
from roadledger.settings import Settings
from roadledger.stream import OutgoingRecord
from roadledger.stream.kafka import KafkaStream
from tests.integration.analytics_support import WAIT_S, analytics_env, run_until

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

T0 = int(time.time() * 1000) - 600_000
LAT, LON = 522_516_100, 133_777_200


@pytest.fixture
async def env(kafka: Settings, postgres: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    async with analytics_env(kafka, postgres, "test-warn") as pair:
        yield pair


def _messages(key: Ed25519PrivateKey, device: str, count: int, rollback_at: int) -> list[bytes]:
    out, prev = [], ""
    for seq in range(1, count + 1):
        odo = 50_000 + seq * 14 - (30_000 if seq >= rollback_at else 0)
        telemetry = Telemetry(
            dev=device, seq=seq, prev=prev, ts=T0 + seq * 1000, odo_m=odo,
            lat_e7=LAT + seq * 100, lon_e7=LON, spd_cms=1400, hdg_cdeg=0,
        )  # fmt: skip
        raw = sign_telemetry(key, telemetry)
        prev = chain_hash(raw)
        out.append(raw)
    return out


async def _produce(settings: Settings, pool: asyncpg.Pool) -> dict[WarningType, int]:
    """A rolled-back odometer, a forged copy of an accepted seq, a tampered message, an
    unknown device; returns the warnings expected per type."""
    device = f"veh-{uuid.uuid4().hex[:6]}"
    key, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    genuine = _messages(key, device, 12, rollback_at=7)
    forged = _messages(forger, device, 3, rollback_at=99)[2]  # "seq 3" under another key
    tampered = _messages(key, device, 14, rollback_at=99)[13]  # seq 14, never accepted
    stranger = _messages(Ed25519PrivateKey.generate(), "veh-stranger", 1, rollback_at=99)[0]
    await pool.execute(
        "INSERT INTO device_messages (device_id, seq, message_hash, source_partition, "
        "source_offset) VALUES ($1, 3, $2, 0, 3)",
        device,
        hashlib.sha256(genuine[2]).digest(),
    )

    def headers(i: int, reason: str | None = None) -> tuple[tuple[str, bytes], ...]:
        common = (("recv_ms", str(T0 + i * 1000 + 80).encode()), ("src", b"raw:0:%d" % i))
        return ((("reason", reason.encode()),) if reason else ()) + common

    stream = KafkaStream(settings)
    producer = stream.producer(client_id="test-warnings-feed")
    await producer.start()
    try:
        verified = [
            OutgoingRecord(device.encode(), raw, headers(i)) for i, raw in enumerate(genuine)
        ]
        quarantined = [
            OutgoingRecord(device.encode(), forged, headers(3, "bad_signature")),
            OutgoingRecord(device.encode(), tampered, headers(14, "bad_signature")),
            OutgoingRecord(b"veh-stranger", stranger, headers(1, "unknown_device")),
        ]
        await (await producer.send_many(settings.topic(VERIFIED), verified))
        await (await producer.send_many(settings.topic(QUARANTINE), quarantined))
    finally:
        await producer.stop()
    return {
        WarningType.ODOMETER_ROLLBACK: 1,
        WarningType.FORGED_SIGNATURE: 1,
        WarningType.TAMPERED_PAYLOAD: 1,
        WarningType.UNKNOWN_DEVICE: 1,
    }


async def _published(settings: Settings, count: int) -> list[Warning]:
    consumer = AIOKafkaConsumer(
        settings.topic(WARNINGS),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=f"test-read-{uuid.uuid4().hex[:8]}",
    )
    await consumer.start()
    out: list[Warning] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(out) < count:
                batches = await consumer.getmany(timeout_ms=1000)
                out += [Warning.from_json(r.value) for rs in batches.values() for r in rs]
    finally:
        await consumer.stop()
    return out


async def test_warnings_are_stored_once_published_and_survive_reprocessing(
    env: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = env
    expected = await _produce(settings, pool)
    first_group = f"test-analytics-{uuid.uuid4().hex[:8]}"
    records = 12 + 3

    first = AnalyticsEngine(settings, KafkaStream(settings), pool, group_id=first_group)
    await run_until(first, records)
    stored = await load_warnings(pool)
    assert {w.type: sum(1 for x in stored if x.type is w.type) for w in stored} == expected
    rollback = next(w for w in stored if w.type is WarningType.ODOMETER_ROLLBACK)
    assert [e.seq for e in rollback.evidence] == [6, 7]
    leaf = await pool.fetchval("SELECT evidence->1->>'leaf_hash' FROM warnings WHERE "
                               "warning_id = $1", rollback.warning_id)  # fmt: skip
    assert leaf is not None
    assert len(bytes.fromhex(leaf)) == 32, "joinable to ledger_entries.leaf_hash"
    assert rollback.rule_version == "builtin@0"
    published = await _published(settings, len(stored))
    assert {w.warning_id for w in published} == {w.warning_id for w in stored}

    # Same records again (another group reads them all): nothing new is stored.
    again = AnalyticsEngine(settings, KafkaStream(settings), pool, group_id=f"{first_group}-again")
    await run_until(again, records)
    assert again.stats.stored == 0
    assert [w.warning_id for w in await load_warnings(pool)] == [w.warning_id for w in stored]

    # The first group committed its offsets up to the end of both topics.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(first_group)
    finally:
        await admin.close()
    assert sum(meta.offset for meta in committed.values()) == records
