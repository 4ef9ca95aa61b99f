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
from chain.sequencer import InMemoryLedgerStore, Integration, LogHead
from ingest.ledger_writer import LedgerWriter
from roadledger.log_key import LogKey
from roadledger.resilience import RetryPolicy
from roadledger.settings import Settings
from roadledger.stream import TopicPartition
from roadledger.stream.memory import MemoryStream
from tests.support.pipeline import wait_until

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

    async def there() -> bool:
        result = done()
        if result if isinstance(result, bool) else await result:
            return True
        if task.done():
            await task  # raises what ended it
        return False

    await wait_until(there, "the writer to get there", 10, every_s=0.005)
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
    await wait_until(
        lambda: writer.stats.entries == 5,
        "the batch of 5 to be submitted",
        2,
        every_s=0.005,
        observed=lambda: f"{writer.stats.entries} entries",
    )
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
    assert stale is not None
    await LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id="other")._open(tp)
    with pytest.raises(FencingError, match="is stale"):
        await stale.append([b"late"])
    assert store.logs[settings.log_origin(0)].entries == []


# --- failures while the writer lives on ---------------------------------------------------------


class _CountingStore(InMemoryLedgerStore):
    """Counts openings; ``acquire`` waits for ``opened`` so a test can hold it in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.acquires: dict[str, int] = {}
        self.opened = asyncio.Event()
        self.opened.set()

    async def acquire(self, origin: str) -> LogHead:
        self.acquires[origin] = self.acquires.get(origin, 0) + 1
        await self.opened.wait()
        return await super().acquire(origin)


class _FailingStore(_CountingStore):
    """Fails chosen writes: with ``error`` raised before (or after) the write landed."""

    def __init__(self, fail_writes: set[int], error: BaseException, *, land: bool) -> None:
        super().__init__()
        self.fail_writes = fail_writes
        self.error = error
        self.land = land
        self.writes = 0

    async def integrate(self, work: Integration) -> None:
        self.writes += 1
        if self.writes not in self.fail_writes:
            await super().integrate(work)
            return
        if self.land:  # the commit landed, then the connection broke: outcome unknown
            await super().integrate(work)
        raise self.error


def _fast_retry() -> RetryPolicy:
    return RetryPolicy(base_s=0.001, cap_s=0.002)


async def _sequence_all(
    settings: Settings, key: LogKey, store: InMemoryLedgerStore, partitions: int, count: int
) -> tuple[MemoryStream, list[bytes], LedgerWriter]:
    stream = MemoryStream(partitions=partitions)
    stream.create_topic(TOPIC)
    values = await publish(stream, count)
    writer = LedgerWriter(
        settings, stream, store, key, topic=TOPIC, group_id=GROUP, retry=_fast_retry()
    )
    ends = {tp: end for tp, end in stream.end_offsets(TOPIC).items() if end}
    await run_until(
        writer, lambda: all(stream.committed(GROUP, tp) == end for tp, end in ends.items())
    )
    return stream, values, writer


def _assert_each_entry_once(
    settings: Settings, stream: MemoryStream, store: InMemoryLedgerStore
) -> None:
    for partition, values in per_partition(stream).items():
        entries = store.logs[settings.log_origin(partition)].entries
        assert sorted(entries) == sorted(values), f"partition {partition}: lost or duplicated"
        assert len(set(entries)) == len(entries)


async def test_a_log_is_opened_once_per_assignment(settings: Settings, key: LogKey) -> None:
    # The opening started by the assignment is still in flight when the first records arrive,
    # and the group hears "assigned" again for partitions it kept (a rebalance after a member
    # left). Every path must share the one opening: a second one fences the first and drops
    # the batches in flight.
    store = _CountingStore()
    store.opened.clear()
    stream = MemoryStream(partitions=2)
    stream.create_topic(TOPIC)
    await publish(stream, 30)
    writer = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=GROUP)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    await wait_until(lambda: len(store.acquires) == 2, "both logs acquired", 10, every_s=0.005)
    await writer.assigned({TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)})
    store.opened.set()
    await wait_until(lambda: writer.stats.entries == 30, "30 entries", 10, every_s=0.005)
    await publish(stream, 30, start=30)
    await writer.assigned({TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)})
    ends = {tp: end for tp, end in stream.end_offsets(TOPIC).items() if end}
    await wait_until(
        lambda: all(stream.committed(GROUP, tp) == end for tp, end in ends.items()),
        "every partition committed to its end",
        10,
        every_s=0.005,
    )
    stop.set()
    await task
    assert store.acquires == {settings.log_origin(0): 1, settings.log_origin(1): 1}
    _assert_each_entry_once(settings, stream, store)


@pytest.mark.parametrize("land", [False, True], ids=["write-lost", "write-landed"])
async def test_a_failed_write_rewinds_and_nothing_is_lost(
    settings: Settings, key: LogKey, land: bool
) -> None:
    store = _FailingStore({2, 5}, ConnectionResetError("server closed the connection"), land=land)
    stream, _values, writer = await _sequence_all(settings, key, store, 1, 60)
    _assert_each_entry_once(settings, stream, store)
    assert writer.stats.rewinds >= 2
    assert store.acquires[settings.log_origin(0)] >= 3, "reopened after each failure"


async def test_a_fenced_writer_rewinds_before_committing_later_batches(
    settings: Settings, key: LogKey
) -> None:
    # Another opening takes the log between two batches: the batches in flight are fenced.
    # The writer must read them again, not commit the offsets of the batches after them.
    store = _FailingStore({3}, FencingError("log x: epoch 1 is stale, epoch 2 owns it"), land=False)
    stream, _values, writer = await _sequence_all(settings, key, store, 1, 60)
    _assert_each_entry_once(settings, stream, store)
    assert writer.stats.rewinds >= 1


async def test_a_programming_error_still_stops_the_writer(settings: Settings, key: LogKey) -> None:
    store = _FailingStore({1}, ValueError("a bug"), land=False)
    stream = MemoryStream(partitions=1)
    stream.create_topic(TOPIC)
    await publish(stream, 5)
    writer = LedgerWriter(settings, stream, store, key, topic=TOPIC, group_id=GROUP)
    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(writer.run(asyncio.Event()), timeout=10)
    assert stream.committed(GROUP, TopicPartition(TOPIC, 0)) is None
