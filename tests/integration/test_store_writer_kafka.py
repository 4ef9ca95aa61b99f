"""The store writer on the real Kafka: verified records in a scratch topic end up stored once,
and the group's committed offsets reach the end of every partition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from chain.telemetry import Observation
from ingest.store_writer import StoreWriter
from roadledger.settings import Settings
from roadledger.stream import TopicPartition
from roadledger.stream.kafka import KafkaStream
from tests.integration.store_support import (
    drive,
    now_ms,
    scratch_pool,
    timescaledb_installed,
)
from tests.unit.ingest.test_store_rows import Signer

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def scratch_topic(kafka: Settings) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    name = f"test.store.{uuid.uuid4().hex[:12]}"
    await admin.create_topics([NewTopic(name, 3, 1)])
    try:
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def test_verified_records_from_kafka_are_stored_once_and_committed(
    kafka: Settings, postgres: Settings, scratch_topic: str
) -> None:
    settings = kafka.model_copy(update={"batch_size": 250})
    stream = KafkaStream(settings)
    cars = [Signer(f"veh-{i:03d}") for i in range(30)]
    raws = [car.key_entry() for car in cars] + drive(cars, 40, now_ms() - 1_800_000)
    rsu = Signer("rsu-1")
    raws.append(rsu.rsu(now_ms(), 0, 0, (Observation("veh-001", now_ms(), 0, 0),)))
    producer = stream.producer(client_id="test-store-producer")
    await producer.start()
    try:
        futures = [
            await producer.send(scratch_topic, raw, key=str(i % 30).encode())
            for i, raw in enumerate(raws)
        ]
        placed = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    assert len(ends) == 3, "the keys should spread over every partition"

    group = f"test-store-{uuid.uuid4().hex[:8]}"
    timescaledb = await timescaledb_installed(postgres)
    async with scratch_pool(postgres, timescaledb=timescaledb) as pool:
        writer = StoreWriter(settings, stream, pool, topic=scratch_topic, group_id=group)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        try:
            async with asyncio.timeout(120):
                totals = await writer.wait_for(lambda t: t.records >= len(raws))
        finally:
            stop.set()
            await task
        assert (totals.telemetry_inserted, totals.device_key_entries) == (30 * 40 + 1, 30)
        assert (totals.observations_inserted, totals.undecodable) == (1, 0)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM telemetry") == 30 * 40 + 1
            assert await conn.fetchval("SELECT count(DISTINCT device_id) FROM telemetry") == 31

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    assert {
        TopicPartition(tp.topic, tp.partition): meta.offset for tp, meta in committed.items()
    } == {TopicPartition(scratch_topic, p): end for p, end in ends.items()}
