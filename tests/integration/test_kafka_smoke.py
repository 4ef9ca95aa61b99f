"""Kafka is a real broker usable from Python: acks=all, idempotent produce, group consume."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import KAFKA_TOPICS, RAW
from roadledger.settings import Settings

pytestmark = pytest.mark.kafka


@pytest.fixture
async def admin(kafka: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def scratch_topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    name = f"test.smoke.{uuid.uuid4().hex[:12]}"
    await admin.create_topics([NewTopic(name, 3, 1)])
    yield name
    await admin.delete_topics([name])


async def test_design_topics_exist_with_enough_partitions(
    kafka: Settings, admin: AIOKafkaAdminClient
) -> None:
    described = await admin.describe_topics(list(KAFKA_TOPICS))
    partitions = {str(t["topic"]): len(t["partitions"]) for t in described}
    assert set(partitions) == set(KAFKA_TOPICS)
    assert all(count >= max(3, kafka.kafka_partitions) for count in partitions.values()), partitions
    configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, RAW)])
    entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert entries["retention.ms"] == "-1", "telemetry.raw must keep every byte that arrived"


async def test_idempotent_acks_all_produce_and_group_consume(
    kafka: Settings, scratch_topic: str
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent = []
    try:
        for i in range(60):
            key = f"device-{i % 6}".encode()
            metadata = await producer.send_and_wait(scratch_topic, f"m{i}".encode(), key=key)
            sent.append((key, f"m{i}".encode(), metadata.partition))
    finally:
        await producer.stop()
    partitions_by_key: dict[bytes, set[int]] = {}
    for key, _, partition in sent:
        partitions_by_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_by_key.values()), "a key must map to one partition"

    group = f"smoke-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        scratch_topic,
        bootstrap_servers=kafka.kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        while len(received) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"consumer stalled after {len(received)} of {len(sent)} messages"
            for records in batches.values():
                received.extend((r.key or b"", r.value or b"") for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(received) == sorted((k, v) for k, v, _ in sent)
    for key in partitions_by_key:  # per-key order is kept within its partition
        assert [v for k, v in received if k == key] == [v for k, v, _ in sent if k == key]

    # A fresh member of the group sees the committed offsets: nothing would be re-read.
    again = AIOKafkaConsumer(bootstrap_servers=kafka.kafka_bootstrap, group_id=group)
    await again.start()
    try:
        committed = [await again.committed(TopicPartition(scratch_topic, p)) for p in range(3)]
    finally:
        await again.stop()
    assert sum(offset or 0 for offset in committed) == len(sent), "offsets were not committed"
