"""One contract, two streams: every test here runs on the in-process memory stream and on the
real Kafka broker, so the demo's stream and production's cannot drift apart.

The contract is the docstring of ``roadledger/stream/base.py``; what only one implementation
has (Kafka's unreachable-broker errors, the memory stream's trimming) stays in
``test_stream_kafka.py`` and ``tests/unit/stream/test_memory.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from roadledger.settings import Settings
from roadledger.stream.base import (
    Consumer,
    OutgoingRecord,
    Stream,
    TopicPartition,
)
from roadledger.stream.kafka import KafkaStream
from roadledger.stream.memory import MemoryStream, murmur2
from tests.stream_support import read_records

PARTITIONS = 3
WAIT_S = 30  # a group join takes seconds on a real broker


@dataclass
class Subject:
    stream: Stream
    topic: str


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    topic = f"test.contract.{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        memory = MemoryStream(partitions=PARTITIONS)
        memory.create_topic(topic)
        yield Subject(memory, topic)
        return
    settings: Settings = request.getfixturevalue("kafka")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    try:
        yield Subject(KafkaStream(settings), topic)
    finally:
        await admin.delete_topics([topic])
        await admin.close()


async def _produce(subject: Subject, items: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    producer = subject.stream.producer(client_id="contract-producer")
    await producer.start()
    try:
        futures = [
            await producer.send(subject.topic, value, key=key, headers=[("n", value)])
            for key, value in items
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


def _consumer(subject: Subject, group: str, name: str = "c") -> Consumer:
    return subject.stream.consumer([subject.topic], group_id=group, client_id=name)


async def test_records_round_trip_partitioned_by_key_in_send_order(subject: Subject) -> None:
    items = [(b"dev-%d" % (i % 7), b"m%d" % i) for i in range(70)]
    placed = await _produce(subject, items)
    for (key, _), (partition, _) in zip(items, placed, strict=True):
        assert partition == (murmur2(key) & 0x7FFFFFFF) % PARTITIONS  # Kafka's partitioner
    consumer = _consumer(subject, f"g-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        records = await read_records(consumer, len(items), within_s=WAIT_S)
    finally:
        await consumer.stop()
    assert len(records) == len(items)
    assert sorted((r.partition, r.offset) for r in records) == sorted(placed)
    for record in records:
        assert record.topic == subject.topic
        assert record.header("n") == record.value  # headers verbatim
    for key in {k for k, _ in items}:
        assert [r.value for r in records if r.key == key] == [v for k, v in items if k == key]


async def test_send_many_is_one_durable_future_for_the_batch(subject: Subject) -> None:
    producer = subject.stream.producer(client_id="contract-producer")
    await producer.start()
    try:
        batch = [OutgoingRecord(b"dev-%d" % (i % 3), b"b%d" % i) for i in range(30)]
        await asyncio.wait_for(await producer.send_many(subject.topic, batch), WAIT_S)
    finally:
        await producer.stop()
    consumer = _consumer(subject, f"g-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        records = await read_records(consumer, 30, within_s=WAIT_S)
    finally:
        await consumer.stop()
    for key in (b"dev-0", b"dev-1", b"dev-2"):
        sent = [r.value for r in batch if r.key == key]
        assert [r.value for r in records if r.key == key] == sent


async def test_a_restart_resumes_at_the_commit_and_delivers_the_rest_again(
    subject: Subject,
) -> None:
    await _produce(subject, [(b"k%d" % i, b"m%d" % i) for i in range(60)])
    group = f"g-{uuid.uuid4().hex}"
    first = _consumer(subject, group, "first")
    await first.start()
    try:
        records = await read_records(first, 60, within_s=WAIT_S)
        ends: dict[TopicPartition, int] = {}
        for record in records:
            tp = record.topic_partition
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
        handled = {tp: end // 2 for tp, end in ends.items()}  # the first half of each
        await first.commit(handled)
    finally:
        await first.stop()
    second = _consumer(subject, group, "second")
    await second.start()
    try:
        rest = await read_records(second, 60 - sum(handled.values()), within_s=WAIT_S)
    finally:
        await second.stop()
    assert len(rest) == 60 - sum(handled.values())
    assert all(r.offset >= handled[r.topic_partition] for r in rest)


async def test_seek_drops_what_was_fetched_and_reads_from_the_offset(subject: Subject) -> None:
    await _produce(subject, [(b"one-key", b"m%d" % i) for i in range(40)])
    consumer = _consumer(subject, f"g-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        first = await read_records(consumer, 10, within_s=WAIT_S)
        consumer.seek(first[0].topic_partition, 5)
        again = await read_records(consumer, 35, within_s=WAIT_S)
    finally:
        await consumer.stop()
    assert [r.offset for r in again[:35]] == list(range(5, 40))
    assert [r.value for r in again[:35]] == [b"m%d" % i for i in range(5, 40)]


async def test_an_idle_fetch_returns_empty_within_its_timeout(subject: Subject) -> None:
    consumer = _consumer(subject, f"g-{uuid.uuid4().hex}")
    await consumer.start()
    try:
        fetched = await asyncio.wait_for(consumer.getmany(timeout_ms=200, max_records=10), WAIT_S)
    finally:
        await consumer.stop()
    assert fetched == []
