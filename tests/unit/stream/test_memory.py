"""roadledger.stream.memory: the in-process broker keeps Kafka's semantics."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from roadledger.stream.base import TopicPartition
from roadledger.stream.errors import StreamError
from roadledger.stream.memory import MemoryStream, murmur2
from roadledger.stream.memory_consumer import MemoryConsumer
from tests.stream_support import read_records

TOPIC = "telemetry.raw"
WAIT_S = 5  # bound on every wait for something that must happen


class RecordingListener:
    """A PartitionsListener that writes what it hears into a shared journal."""

    def __init__(self, name: str, journal: list[tuple[str, str, frozenset[TopicPartition]]]):
        self.name = name
        self.journal = journal
        self.consumer: MemoryConsumer | None = None
        self.commit_on_revoke: dict[TopicPartition, int] = {}

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        self.journal.append((self.name, "revoked", frozenset(partitions)))
        if self.consumer is not None and self.commit_on_revoke:
            owned = {tp: o for tp, o in self.commit_on_revoke.items() if tp in partitions}
            await self.consumer.commit(owned)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        self.journal.append((self.name, "assigned", frozenset(partitions)))


async def _send_all(
    stream: MemoryStream, items: list[tuple[bytes, bytes]]
) -> list[tuple[int, int]]:
    producer = stream.producer(client_id="test-producer")
    await producer.start()
    results = [await (await producer.send(TOPIC, v, key=k)) for k, v in items]
    await producer.stop()
    return results


def _tps(*partitions: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(TOPIC, p) for p in partitions)


# --- partitioning ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [  # Kafka's own vectors (clients/.../common/utils/UtilsTest.testMurmur2)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_devices_land_on_the_partition_kafka_would_choose() -> None:
    keys = [f"veh-{i:05d}".encode() for i in range(500)] + [b"", b"x", b"xy", b"xyz"]
    for key in keys:
        assert murmur2(key) & 0x7FFFFFFF == aiokafka_murmur2(key) & 0x7FFFFFFF


async def test_send_resolves_at_once_and_keeps_per_key_order() -> None:
    stream = MemoryStream(partitions=3)
    items = [(f"dev-{i % 7}".encode(), f"m{i}".encode()) for i in range(70)]
    results = await _send_all(stream, items)

    by_key: dict[bytes, set[int]] = {}
    for (key, _), (partition, _) in zip(items, results, strict=True):
        by_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in by_key.values()), "one key, one partition"
    assert len({p for ps in by_key.values() for p in ps}) > 1, "keys spread over partitions"
    for partition in range(3):  # offsets are dense per partition, in send order
        offsets = [o for p, o in results if p == partition]
        assert offsets == list(range(len(offsets)))

    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    records = await read_records(consumer, len(items), within_s=WAIT_S, max_records=100)
    await consumer.stop()
    assert sorted((r.partition, r.offset) for r in records) == sorted(results)
    for key in by_key:
        assert [r.value for r in records if r.key == key] == [v for k, v in items if k == key]


async def test_record_carries_value_headers_and_timestamp_verbatim() -> None:
    stream = MemoryStream(partitions=1)
    producer = stream.producer(client_id="p")
    await producer.start()
    value = bytes(range(256))
    await producer.send(TOPIC, value, key=b"dev", headers=[("mqtt_topic", b"t/dev")])
    (record,) = stream.records(TOPIC)
    assert record.value == value
    assert record.key == b"dev"
    assert record.header("mqtt_topic") == b"t/dev"
    assert record.timestamp_ms > 0


async def test_keyless_records_spread_round_robin() -> None:
    stream = MemoryStream(partitions=3)
    producer = stream.producer(client_id="p")
    await producer.start()
    partitions = [(await producer.send(TOPIC, b"v")).result()[0] for _ in range(6)]
    assert sorted(partitions) == [0, 0, 1, 1, 2, 2]


# --- groups ---------------------------------------------------------------------------------


async def test_members_share_partitions_and_rebalance_revokes_before_assigning() -> None:
    stream = MemoryStream(partitions=3)
    journal: list[tuple[str, str, frozenset[TopicPartition]]] = []
    a = stream.consumer(
        [TOPIC], group_id="g", client_id="a", listener=RecordingListener("a", journal)
    )
    b = stream.consumer(
        [TOPIC], group_id="g", client_id="b", listener=RecordingListener("b", journal)
    )

    await a.start()
    assert a.assignment() == set(_tps(0, 1, 2))
    assert journal == [("a", "assigned", _tps(0, 1, 2))]

    journal.clear()
    await b.start()
    assert a.assignment() | b.assignment() == set(_tps(0, 1, 2))
    assert not a.assignment() & b.assignment()
    assert a.assignment()
    assert b.assignment()
    assert journal[0] == ("a", "revoked", _tps(0, 1, 2)), "revoked before anyone is assigned"
    assert {(name, kind) for name, kind, _ in journal[1:]} == {("a", "assigned"), ("b", "assigned")}

    journal.clear()
    await a.stop()  # leaving: a hears revoked, b is given everything
    assert b.assignment() == set(_tps(0, 1, 2))
    assert journal[0][:2] == ("a", "revoked")
    assert journal[-1] == ("b", "assigned", _tps(0, 1, 2))
    assert [e for e in journal if e[1] == "revoked"][-1][0] == "b"
    await b.stop()


async def test_more_members_than_partitions_leaves_one_idle() -> None:
    stream = MemoryStream(partitions=3)
    members = [stream.consumer([TOPIC], group_id="g", client_id=f"m{i}") for i in range(4)]
    for member in members:
        await member.start()
    sizes = sorted(len(m.assignment()) for m in members)
    assert sizes == [0, 1, 1, 1]
    for member in members:
        await member.stop()


async def test_groups_are_independent() -> None:
    stream = MemoryStream(partitions=2)
    await _send_all(stream, [(b"k1", b"one"), (b"k2", b"two")])
    first = stream.consumer([TOPIC], group_id="g1", client_id="c1")
    second = stream.consumer([TOPIC], group_id="g2", client_id="c2")
    await first.start()
    await second.start()
    assert len(await read_records(first, 2, within_s=WAIT_S, max_records=100)) == 2
    assert len(await read_records(second, 2, within_s=WAIT_S, max_records=100)) == 2
    await first.stop()
    await second.stop()


# --- commits --------------------------------------------------------------------------------


async def test_restart_resumes_at_the_commit() -> None:
    stream = MemoryStream(partitions=1)
    await _send_all(stream, [(b"k", f"m{i}".encode()) for i in range(10)])
    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    first = await consumer.getmany(timeout_ms=0, max_records=4)
    assert [r.offset for r in first] == [0, 1, 2, 3]
    await consumer.commit({TopicPartition(TOPIC, 0): 4})
    await consumer.getmany(timeout_ms=0, max_records=3)  # read but never committed
    await consumer.stop()
    assert stream.committed("g", TopicPartition(TOPIC, 0)) == 4

    again = stream.consumer([TOPIC], group_id="g", client_id="c")
    await again.start()
    rest = await read_records(again, 6, within_s=WAIT_S, max_records=100)
    assert [r.offset for r in rest] == list(range(4, 10))
    await again.stop()


async def test_seek_reads_a_partition_again_from_an_offset() -> None:
    stream = MemoryStream(partitions=1)
    await _send_all(stream, [(b"k", f"m{i}".encode()) for i in range(10)])
    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    assert len(await read_records(consumer, 10, within_s=WAIT_S, max_records=100)) == 10
    consumer.seek(TopicPartition(TOPIC, 0), 3)
    again = await read_records(consumer, 7, within_s=WAIT_S, max_records=100)
    assert [r.offset for r in again] == list(range(3, 10))
    with pytest.raises(StreamError, match="not assigned"):
        consumer.seek(TopicPartition("other", 0), 0)
    await consumer.stop()


async def test_uncommitted_records_are_delivered_again_after_stop() -> None:
    stream = MemoryStream(partitions=3)
    items = [(f"d{i}".encode(), f"m{i}".encode()) for i in range(30)]
    await _send_all(stream, items)
    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    assert len(await read_records(consumer, 30, within_s=WAIT_S, max_records=100)) == 30
    await consumer.stop()  # crash-like: nothing committed

    again = stream.consumer([TOPIC], group_id="g", client_id="c2")
    await again.start()
    redelivered = await read_records(again, 30, within_s=WAIT_S, max_records=100)
    assert sorted(r.value for r in redelivered) == sorted(v for _, v in items)
    await again.stop()


async def test_new_owner_starts_at_what_the_old_owner_committed_in_revoked() -> None:
    stream = MemoryStream(partitions=1)
    await _send_all(stream, [(b"k", f"m{i}".encode()) for i in range(6)])
    journal: list[tuple[str, str, frozenset[TopicPartition]]] = []
    listener = RecordingListener("a", journal)
    a = stream.consumer([TOPIC], group_id="g", client_id="a", listener=listener)
    listener.consumer = a
    await a.start()
    assert len(await a.getmany(timeout_ms=0, max_records=2)) == 2
    listener.commit_on_revoke = {TopicPartition(TOPIC, 0): 2}

    b = stream.consumer([TOPIC], group_id="g", client_id="b")
    await b.start()  # rebalance: a commits 2 in revoked; one partition, so a or b owns it
    owner = a if a.assignment() else b
    records = await read_records(owner, 4, within_s=WAIT_S, max_records=100)
    assert [r.offset for r in records] == [2, 3, 4, 5]
    await a.stop()
    await b.stop()


async def test_commit_of_a_partition_taken_away_is_refused() -> None:
    stream = MemoryStream(partitions=2)
    a = stream.consumer([TOPIC], group_id="g", client_id="a")
    await a.start()
    b = stream.consumer([TOPIC], group_id="g", client_id="b")
    await b.start()
    (lost,) = b.assignment()
    with pytest.raises(StreamError, match="not assigned to this member"):
        await a.commit({lost: 0})
    with pytest.raises(StreamError, match="outside"):
        await b.commit({lost: 5})
    await a.stop()
    await b.stop()


# --- waiting --------------------------------------------------------------------------------


async def test_getmany_wakes_up_when_a_record_arrives() -> None:
    stream = MemoryStream(partitions=3)
    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    waiting = asyncio.create_task(consumer.getmany(timeout_ms=60_000, max_records=10))
    await asyncio.sleep(0)  # let it start waiting (ordering only; the result decides)
    assert not waiting.done()
    await _send_all(stream, [(b"dev", b"hello")])
    async with asyncio.timeout(WAIT_S):
        records = await waiting
    assert [r.value for r in records] == [b"hello"]
    await consumer.stop()


async def test_getmany_times_out_empty_and_stop_releases_a_waiter() -> None:
    stream = MemoryStream(partitions=1)
    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    assert await consumer.getmany(timeout_ms=20, max_records=10) == []
    waiting = asyncio.create_task(consumer.getmany(timeout_ms=60_000, max_records=10))
    await asyncio.sleep(0)
    await consumer.stop()
    async with asyncio.timeout(WAIT_S):
        assert await waiting == []
    with pytest.raises(StreamError, match="getmany while stopped"):
        await consumer.getmany(timeout_ms=0, max_records=1)


async def test_max_records_is_respected_across_partitions() -> None:
    stream = MemoryStream(partitions=3)
    await _send_all(stream, [(f"d{i}".encode(), b"v") for i in range(50)])
    consumer = stream.consumer([TOPIC], group_id="g", client_id="c")
    await consumer.start()
    batch = await consumer.getmany(timeout_ms=0, max_records=7)
    assert len(batch) == 7
    await consumer.stop()


# --- misuse and memory ----------------------------------------------------------------------


async def test_send_before_start_is_refused() -> None:
    producer = MemoryStream().producer(client_id="p")
    with pytest.raises(StreamError, match="not started"):
        await producer.send(TOPIC, b"v")


async def test_trim_committed_drops_what_every_group_has_passed() -> None:
    stream = MemoryStream(partitions=1, trim_committed=True)
    await _send_all(stream, [(b"k", f"m{i}".encode()) for i in range(10)])
    g1 = stream.consumer([TOPIC], group_id="g1", client_id="c1")
    g2 = stream.consumer([TOPIC], group_id="g2", client_id="c2")
    await g1.start()
    await g2.start()
    tp = TopicPartition(TOPIC, 0)
    await g1.commit({tp: 8})
    assert len(stream.records(TOPIC)) == 10, "g2 has not read anything yet"
    await g2.commit({tp: 5})
    assert [r.offset for r in stream.records(TOPIC)] == [5, 6, 7, 8, 9]
    assert stream.end_offsets(TOPIC) == {tp: 10}
    await g1.stop()
    await g2.stop()
