"""The analytics engine waits out PostgreSQL outages (a PRIVATE server, crashed with
``pg_ctl stop -m immediate``): down at start, and down while a batch needs it. Every expected
warning is stored exactly once, the engine never gives up, and each outage is one
"unavailable" line and one "back" line."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from analytics.warnings.engine import AnalyticsEngine
from analytics.warnings.model import WarningType
from analytics.warnings.store import load_warnings
from chain.keys import Ed25519PrivateKey
from contracts.topics import QUARANTINE, VERIFIED
from roadledger.db.schema import apply_schema
from roadledger.resilience import RetryPolicy
from roadledger.settings import Settings
from roadledger.stream import OutgoingRecord
from roadledger.stream.kafka import KafkaStream
from runtime.services.kafka import delete_topics, ensure_topics
from tests.integration.private_services import PrivateServices, private_services
from tests.integration.test_warnings_engine import T0, _messages, _produce
from tests.support.pipeline import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.faults]

WAIT_S = 90


@pytest.fixture
async def private(settings: Settings) -> AsyncIterator[tuple[PrivateServices, asyncpg.Pool]]:
    async with private_services(settings, postgres=True) as services:
        services.settings = services.settings.model_copy(
            update={"topic_prefix": f"test-analytics-outage-{uuid.uuid4().hex[:8]}."}
        )
        await ensure_topics(services.settings)
        pool = await asyncpg.create_pool(services.settings.database_url, min_size=1, max_size=4)
        try:
            async with pool.acquire() as conn:
                await apply_schema(conn)
            yield services, pool
        finally:
            pool.terminate()
            await delete_topics(services.settings)


async def _produce_without_database(settings: Settings) -> dict[WarningType, int]:
    """A rolled-back odometer, a tampered message and an unknown device: records that need no
    rows written first, so they can be published while the database is down."""
    device = f"veh-{uuid.uuid4().hex[:6]}"
    key = Ed25519PrivateKey.generate()
    genuine = _messages(key, device, 12, rollback_at=7)
    tampered = _messages(key, device, 14, rollback_at=99)[13]
    stranger = _messages(Ed25519PrivateKey.generate(), "veh-stranger-2", 1, rollback_at=99)[0]

    def headers(i: int, reason: str | None = None) -> tuple[tuple[str, bytes], ...]:
        common = (("recv_ms", str(T0 + i * 1000 + 80).encode()), ("src", b"raw:1:%d" % i))
        return ((("reason", reason.encode()),) if reason else ()) + common

    producer = KafkaStream(settings).producer(client_id="test-analytics-outage-feed")
    await producer.start()
    try:
        verified = [
            OutgoingRecord(device.encode(), raw, headers(i)) for i, raw in enumerate(genuine)
        ]
        quarantined = [
            OutgoingRecord(device.encode(), tampered, headers(14, "bad_signature")),
            OutgoingRecord(b"veh-stranger-2", stranger, headers(1, "unknown_device")),
        ]
        await (await producer.send_many(settings.topic(VERIFIED), verified))
        await (await producer.send_many(settings.topic(QUARANTINE), quarantined))
    finally:
        await producer.stop()
    return {
        WarningType.ODOMETER_ROLLBACK: 1,
        WarningType.TAMPERED_PAYLOAD: 1,
        WarningType.UNKNOWN_DEVICE: 1,
    }


async def _until(condition: Callable[[], bool], what: str, task: asyncio.Task[None]) -> None:
    """Until ``condition`` holds; fail at once if the engine stopped first."""

    async def holds() -> bool:
        if condition():
            return True
        if task.done():
            await task  # raises what ended it
            raise AssertionError(f"the engine stopped before {what}")
        return False

    await wait_until(holds, what, WAIT_S, every_s=0.05)


async def test_engine_waits_out_postgres_at_start_and_mid_batch(
    private: tuple[PrivateServices, asyncpg.Pool], caplog: pytest.LogCaptureFixture
) -> None:
    services, pool = private
    settings = services.settings
    first = await _produce(settings, pool)  # 12 verified + 3 quarantined records
    engine = AnalyticsEngine(
        settings,
        KafkaStream(settings),
        pool,
        group_id=f"test-analytics-{uuid.uuid4().hex[:8]}",
        retry=RetryPolicy(cap_s=1.0),  # short waits: the test watches two outages
    )
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="analytics.warnings.engine")

    def lines(text: str) -> int:
        return sum(text in r.getMessage() for r in caplog.records)

    # Down at start: the engine waits (one line), then analyses everything once it is back.
    await asyncio.to_thread(services.postgres_immediate_stop)
    task = asyncio.create_task(engine.run(stop))
    try:
        await _until(lambda: lines("PostgreSQL unavailable") == 1, "the first outage line", task)
        await asyncio.to_thread(services.postgres_start)
        await _until(lambda: engine.stats.records >= 15, "the first 15 records", task)
        assert lines("PostgreSQL is back") == 1

        # Down while a batch needs it (its new device's vehicle class, then storing).
        await asyncio.to_thread(services.postgres_immediate_stop)
        second = await _produce_without_database(settings)
        await _until(lambda: lines("PostgreSQL unavailable") == 2, "the second outage", task)
        assert engine.stats.records == 15, "the batch waits for the database"
        await asyncio.to_thread(services.postgres_start)
        await _until(lambda: engine.stats.records >= 15 + 14, "the second batch", task)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)
    stored = await load_warnings(pool)
    assert Counter(w.type for w in stored) == Counter(first) + Counter(second)
    assert len({w.warning_id for w in stored}) == len(stored)
    assert (lines("PostgreSQL unavailable"), lines("PostgreSQL is back")) == (2, 2)
