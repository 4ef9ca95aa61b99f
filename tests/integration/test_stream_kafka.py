"""roadledger.stream.kafka on the real broker: what only Kafka has (listeners on a real group,
an unreachable broker, a missing topic). The contract both streams share is
``test_stream_contract.py``."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from roadledger.metrics import render
from roadledger.settings import Settings
from roadledger.stream.base import OutgoingRecord, StreamRecord, TopicPartition, next_offsets
from roadledger.stream.errors import StreamError
from roadledger.stream.kafka import KafkaStream
from roadledger.stream.lag import LAG_METRIC, ConsumerLag
from roadledger.stream.memory import murmur2
from tests.integration.conftest import free_port
from tests.stream_support import read_records

pytestmark = pytest.mark.kafka

PARTITIONS = 3
WAIT_S = 30  # group joins take a few seconds on a real broker


@pytest.fixture
async def scratch_topic(kafka: Settings) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    name = f"test.stream.{uuid.uuid4().hex[:12]}"
    await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    try:
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[str, frozenset[TopicPartition]]] = []
        self.changed = asyncio.Event()

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.events.append(("revoked", frozenset(partitions)))
        self.changed.set()

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self.events.append(("assigned", frozenset(partitions)))
        self.changed.set()

    async def wait_for(self, kind: str) -> frozenset[TopicPartition]:
        async with asyncio.timeout(WAIT_S):
            while not any(k == kind for k, _ in self.events):
                self.changed.clear()
                await self.changed.wait()
        return [p for k, p in self.events if k == kind][-1]


async def _read_all(stream: KafkaStream, topic: str, count: int) -> list[StreamRecord]:
    """Exactly ``count`` records of ``topic``, read by a new consumer group."""
    consumer = stream.consumer([topic], group_id=f"g-{uuid.uuid4().hex}", client_id="c")
    await consumer.start()
    try:
        records = await read_records(consumer, count, within_s=WAIT_S)
    finally:
        await consumer.stop()
    assert len(records) == count
    return records


async def test_send_resolves_to_partition_and_offset_and_records_round_trip(
    kafka: Settings, scratch_topic: str
) -> None:
    stream = KafkaStream(kafka)
    producer = stream.producer(client_id="test-stream-producer")
    await producer.start()
    sent = []
    try:
        futures = []
        for i in range(90):
            key = f"veh-{i % 9}".encode()
            value = bytes([i]) + b"\x00\xffpayload"
            headers = (("mqtt_topic", b"t/" + key), ("recv_ms", str(i).encode()))
            futures.append(await producer.send(scratch_topic, value, key=key, headers=headers))
            sent.append((key, value, headers))
        results = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    for (key, _, _), (partition, _) in zip(sent, results, strict=True):
        assert partition == (murmur2(key) & 0x7FFFFFFF) % PARTITIONS, "Kafka's partitioner"

    records = await _read_all(stream, scratch_topic, len(sent))
    by_position = {(r.partition, r.offset): r for r in records}
    for (key, value, headers), position in zip(sent, results, strict=True):
        record = by_position[position]
        assert (record.key, record.value, record.headers) == (key, value, headers)
        assert record.topic == scratch_topic
        assert record.timestamp_ms > 0
    for key in {k for k, _, _ in sent}:
        assert [r.value for r in records if r.key == key] == [v for k, v, _ in sent if k == key]


async def test_send_many_keeps_key_order_headers_and_partitioning(
    kafka: Settings, scratch_topic: str
) -> None:
    stream = KafkaStream(kafka, max_batch_bytes=16 * 1024)  # small: several batches per call
    producer = stream.producer(client_id="test-stream-batch-producer")
    await producer.start()
    sent = [
        OutgoingRecord(
            f"veh-{i % 7}".encode(), b"%05d" % i + bytes(200), (("src", b"raw:0:%d" % i),)
        )
        for i in range(1500)
    ]
    try:
        first = await producer.send_many(scratch_topic, sent[:700])
        second = await producer.send_many(scratch_topic, sent[700:])
        await asyncio.gather(first, second)
        big = OutgoingRecord(b"veh-0", bytes(40_000))  # larger than a batch: one of its own
        await (await producer.send_many(scratch_topic, [big]))
        sent.append(big)
    finally:
        await producer.stop()

    records = await _read_all(stream, scratch_topic, len(sent))
    for record in records:
        assert record.partition == (murmur2(record.key or b"") & 0x7FFFFFFF) % PARTITIONS
    for key in {r.key for r in sent}:
        got = [(r.value, r.headers) for r in records if r.key == key]
        assert got == [(r.value, tuple(r.headers)) for r in sent if r.key == key]


async def test_listener_hears_assignment_rebalance_and_stop(
    kafka: Settings, scratch_topic: str
) -> None:
    stream = KafkaStream(kafka)
    group = f"g-{uuid.uuid4().hex}"
    first_listener, second_listener = Listener(), Listener()
    first = stream.consumer([scratch_topic], group_id=group, client_id="a", listener=first_listener)
    second = stream.consumer(
        [scratch_topic], group_id=group, client_id="b", listener=second_listener
    )
    every = frozenset(TopicPartition(scratch_topic, p) for p in range(PARTITIONS))
    await first.start()
    try:
        assert await first_listener.wait_for("assigned") == every
        assert first.assignment() == set(every)
        assert ("revoked", frozenset()) not in first_listener.events, "empty revokes are skipped"

        await second.start()
        try:  # the first member only notices the join while it polls
            async with asyncio.timeout(WAIT_S):
                while not second.assignment() or len(first.assignment()) == PARTITIONS:
                    await first.getmany(timeout_ms=200, max_records=10)
                    await second.getmany(timeout_ms=200, max_records=10)
            assert first.assignment() | second.assignment() == set(every)
            assert not first.assignment() & second.assignment()
            assert ("revoked", every) in first_listener.events
        finally:
            held = frozenset(second.assignment())
            await second.stop()
        assert second_listener.events[-1] == ("revoked", held), "stop() revokes first"

        with pytest.raises(StreamError, match="commit failed"):
            await first.commit({TopicPartition(scratch_topic, 99): 0})
        waiting = asyncio.create_task(first.getmany(timeout_ms=60_000, max_records=10))
        await asyncio.sleep(0)  # one loop turn: it is now waiting inside aiokafka
    finally:
        await first.stop()
    async with asyncio.timeout(WAIT_S):
        assert await waiting == [], "a waiting getmany returns empty on stop"
    with pytest.raises(StreamError, match="getmany while stopped"):
        await first.getmany(timeout_ms=0, max_records=1)


async def test_unreachable_broker_is_one_clear_stream_error(kafka: Settings) -> None:
    nowhere = kafka.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    producer = KafkaStream(nowhere).producer(client_id="p")
    with pytest.raises(StreamError, match=r"cannot connect to Kafka at 127\.0\.0\.1:") as caught:
        await producer.start()
    assert caught.value.__cause__ is not None
    with pytest.raises(StreamError, match="while not started"):
        await producer.send("anything", b"v")


async def test_send_to_a_missing_topic_names_it(kafka: Settings) -> None:
    producer = KafkaStream(kafka, request_timeout_ms=2000).producer(client_id="p")
    await producer.start()
    missing = f"test.missing.{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(StreamError, match=f"topic {missing} does not exist") as caught:
            await producer.send(missing, b"v")
        assert caught.value.retriable
    finally:
        await producer.stop()


async def test_a_consumer_reports_the_records_its_group_has_not_committed_as_lag(
    kafka: Settings, scratch_topic: str
) -> None:
    stream = KafkaStream(kafka)
    producer = stream.producer(client_id="test-lag-producer")
    await producer.start()
    try:
        sent = [OutgoingRecord(f"veh-{i % 5}".encode(), b"%d" % i) for i in range(40)]
        await (await producer.send_many(scratch_topic, sent))
    finally:
        await producer.stop()
    per_partition = Counter((murmur2(r.key or b"") & 0x7FFFFFFF) % PARTITIONS for r in sent)
    listener = Listener()
    group = f"g-{uuid.uuid4().hex}"
    consumer = stream.consumer([scratch_topic], group_id=group, client_id="c", listener=listener)
    lag = ConsumerLag(stream)
    await consumer.start()
    try:
        await listener.wait_for("assigned")
        await lag.refresh()  # joined, nothing read: every record is lag
        assert lags(lag, group, scratch_topic) == {p: per_partition[p] for p in range(PARTITIONS)}
        records = await read_records(consumer, len(sent), within_s=WAIT_S)
        first = records[0].topic_partition
        done = [r for r in records if r.topic_partition == first][:3]
        await consumer.commit(next_offsets(done))  # three of one partition's records
        await lag.refresh()
        expected = {p: per_partition[p] for p in range(PARTITIONS)}
        expected[first.partition] -= 3
        assert lags(lag, group, scratch_topic) == expected
        await consumer.commit(next_offsets(records))
        await lag.refresh()
        assert lags(lag, group, scratch_topic) == dict.fromkeys(range(PARTITIONS), 0)
        assert f'{LAG_METRIC}{{group="{group}",partition="0",topic="{scratch_topic}"}} 0' in (
            render(lag())
        )
    finally:
        await consumer.stop()
    await lag.refresh()
    assert lag() == []  # a stopped consumer has no lag to report


def lags(lag: ConsumerLag, group: str, topic: str) -> dict[int, float]:
    found = {}
    for sample in lag():
        labels = dict(sample.labels)
        assert sample.name == LAG_METRIC
        assert (labels["group"], labels["topic"]) == (group, topic)
        found[int(labels["partition"])] = sample.value
    return found
