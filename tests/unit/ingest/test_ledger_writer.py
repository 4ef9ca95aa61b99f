"""The ledger writer on the in-process stream: one log per partition, commits only after the
block is durable, a crash replays into the same leaves, a new owner fences the old one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from chain.checkpoint import SignedCheckpoint
from chain.errors import FencingError
from chain.log import InMemoryMerkleLog
from chain.merkle import verify_inclusion
from chain.sequencer import InMemoryLedgerStore, Integration
from ingest.ledger_writer import LedgerWriter
from roadledger.log_key import LogKey
from roadledger.settings import Settings
from roadledger.stream import TopicPartition
from roadledger.stream.memory import MemoryStream

TOPIC = "telemetry.verified"
GROUP = "roadledger-ledger"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, batch_size=7)


@pytest.fixture
def key() -> LogKey:
    return LogKey(bytes(range(32)))


async def publish(stream: MemoryStream, count: int, start: int = 0) -> list[bytes]:
    producer = stream.producer(client_id="test")
    await producer.start()
    values = [f"entry {i} of veh-{i % 5}".encode() for i in range(start, start + count)]
    futures = [
        await producer.send(TOPIC, value, key=f"veh-{i % 5}".encode())
        for i, value in zip(range(start, start + count), values, strict=True)
    ]
    await asyncio.gather(*futures)
    await producer.stop()
    return values


async def run_until(writer: LedgerWriter, done: Callable[[], bool | Awaitable[bool]]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    for _ in range(2000):
        result = done()
        if result if isinstance(result, bool) else await result:
            break
        if task.done():
            await task
        await asyncio.sleep(0.005)  # polling an observed condition
    else:
        raise AssertionError("the writer did not get there")
    stop.set()
    await task


def per_partition(stream: MemoryStream) -> dict[int, list[bytes]]:
    logs: dict[int, list[bytes]] = {}
    for record in stream.records(TOPIC):
        logs.setdefault(record.partition, []).append(record.value)
    return logs


async def test_each_partition_becomes_its_own_log(settings: Settings, key: LogKey) -> None:
    stream = MemoryStream(partitions=3)
    stream.create_topic(TOPIC)
    await publish(stream, 60)
    store = InMemoryLedgerStore()
    writer = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=GROUP)
    ends = {tp: end for tp, end in stream.end_offsets(TOPIC).items() if end}
    await run_until(
        writer, lambda: all(stream.committed(GROUP, tp) == end for tp, end in ends.items())
    )
    for partition, values in per_partition(stream).items():
        origin = settings.log_origin(partition)
        log = store.logs[origin]
        assert log.entries == values, "entries are the record values, verbatim, in offset order"
        reference = InMemoryMerkleLog()
        reference.append_many(values)
        checkpoint = SignedCheckpoint.from_text(log.checkpoints[-1].to_text())
        checkpoint.verify_log_signature(key.signer(origin).verifier())
        assert checkpoint.checkpoint.root_hash == reference.root()
        verify_inclusion(0, len(values), reference.leaf_hash(0), reference.root(),
                         reference.inclusion_proof(0))  # fmt: skip
    assert writer.stats.entries == 60


class _SlowStore(InMemoryLedgerStore):
    """Holds every write until released: lets a test look between 'submitted' and 'durable'."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def integrate(self, work: Integration) -> None:
        await self.release.wait()
        await super().integrate(work)


async def test_offsets_are_committed_only_after_the_block_is_durable(
    settings: Settings, key: LogKey
) -> None:
    stream = MemoryStream(partitions=1)
    stream.create_topic(TOPIC)
    await publish(stream, 5)
    store = _SlowStore()
    writer = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=GROUP)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    for _ in range(400):
        if writer.stats.entries == 5:
            break
        await asyncio.sleep(0.005)
    assert writer.stats.entries == 5, "the batch was submitted"
    assert stream.committed(GROUP, TopicPartition(TOPIC, 0)) is None, "not durable yet"
    store.release.set()
    stop.set()
    await task
    assert stream.committed(GROUP, TopicPartition(TOPIC, 0)) == 5
    assert len(store.logs[settings.log_origin(0)].entries) == 5


async def test_a_crash_replays_into_the_same_leaves(settings: Settings, key: LogKey) -> None:
    stream = MemoryStream(partitions=1)
    stream.create_topic(TOPIC)
    values = await publish(stream, 20)
    store = InMemoryLedgerStore()
    first = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=GROUP)
    await run_until(first, lambda: stream.committed(GROUP, TopicPartition(TOPIC, 0)) == 20)
    # A crash after the writes but before any commit looks, to the next writer, like a group
    # with no committed offset: it reads the partition again from the start.
    second_group = GROUP + "-after-crash"
    again = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=second_group)
    more = await publish(stream, 3, start=20)
    await run_until(again, lambda: stream.committed(second_group, TopicPartition(TOPIC, 0)) == 23)
    log = store.logs[settings.log_origin(0)]
    assert log.entries == values + more, "the replayed 20 kept their leaves; 3 new ones appended"
    assert log.epoch == 2, "the second writer fenced the first"


async def test_a_stale_owner_is_fenced(settings: Settings, key: LogKey) -> None:
    store = InMemoryLedgerStore()
    stream = MemoryStream(partitions=1)
    stream.create_topic(TOPIC)
    await publish(stream, 4)
    old = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=GROUP)
    tp = TopicPartition(TOPIC, 0)
    stale = await old._open(tp)
    await LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id="other")._open(tp)
    with pytest.raises(FencingError, match="is stale"):
        await stale.append([b"late"])
    assert store.logs[settings.log_origin(0)].entries == []
