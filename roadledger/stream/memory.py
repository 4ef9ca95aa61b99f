"""An in-process broker with Kafka's semantics, for the embedded demo and for tests.

:class:`MemoryStream` meets the contract of :mod:`roadledger.stream.base` inside one event loop:

- Topics are created on first use with ``partitions`` partitions. A keyed record goes to
  ``murmur2(key) % partitions`` -- Kafka's default partitioner, so a device lands on the same
  partition number here as on the real broker; keyless records are spread round robin.
  Offsets count from 0 per partition.
- ``send`` appends at once and returns an already resolved future ``(partition, offset)``:
  in process, appended is as durable as it gets.
- Consumer groups: partitions of the subscribed topics are spread round robin over the live
  members (in join order). A member joining or leaving triggers an eager rebalance: every
  member's listener hears ``revoked`` (with its whole old assignment, while it may still
  commit) before any member hears ``assigned``. ``stop()`` revokes the member's partitions
  (its listener hears ``revoked``) and rebalances the rest of the group. Listener exceptions
  are logged and swallowed, as aiokafka does.
- Committed offsets live per group; a member newly given a partition starts at the group's
  commit, else at the earliest record. So a consumer that stops without committing has its
  records delivered again to the next owner.
- ``getmany`` waits on a per-topic signal (no polling) and returns what is there, at most
  ``max_records``, in offset order per partition. A ``getmany`` still waiting when ``stop()``
  is called returns an empty list.
- ``commit`` of a partition the member does not own (the group rebalanced) raises
  :class:`~roadledger.stream.errors.StreamError`, like Kafka's failed commit.

The broker, its topics and groups are here; the member is
:class:`~roadledger.stream.memory_consumer.MemoryConsumer`.

With ``trim_committed=True`` records that every group which ever subscribed to the topic has
committed past are dropped, so a long demo does not keep the whole stream in memory (Kafka
would keep them until retention; a group that subscribes later starts at the oldest record
still kept).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence

from roadledger.stream.base import (
    OutgoingRecord,
    PartitionsListener,
    StreamRecord,
    TopicPartition,
    send_one_by_one,
)
from roadledger.stream.errors import StreamError
from roadledger.stream.memory_consumer import MemoryConsumer

__all__ = ["MemoryProducer", "MemoryStream", "murmur2"]

_KEY_CACHE_LIMIT = 100_000


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (``org.apache.kafka.common.utils.Utils.murmur2``), 32-bit signed."""
    length = len(data)
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length % 4
    if tail >= 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


class _PartitionLog:
    __slots__ = ("records", "start")

    def __init__(self) -> None:
        self.records: list[StreamRecord] = []
        self.start = 0  # offset of records[0]

    @property
    def end(self) -> int:
        """The offset the next record will get."""
        return self.start + len(self.records)

    def read(self, position: int, limit: int) -> list[StreamRecord]:
        index = position - self.start
        return self.records[index : index + limit]

    def trim(self, offset: int) -> None:
        drop = min(offset, self.end) - self.start
        if drop > 0:
            del self.records[:drop]
            self.start += drop


class _Topic:
    __slots__ = ("_changed", "_keys", "_round_robin", "logs", "name")

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.logs = [_PartitionLog() for _ in range(partitions)]
        self._keys: dict[bytes, int] = {}
        self._round_robin = itertools.cycle(range(partitions))
        self._changed: asyncio.Future[None] | None = None

    def partition_for(self, key: bytes | None) -> int:
        if key is None:
            return next(self._round_robin)
        partition = self._keys.get(key)
        if partition is None:
            partition = (murmur2(key) & 0x7FFFFFFF) % len(self.logs)
            if len(self._keys) >= _KEY_CACHE_LIMIT:
                self._keys.clear()
            self._keys[key] = partition
        return partition

    def changed(self) -> asyncio.Future[None]:
        """A future resolved at the next append to this topic."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)


class _Group:
    __slots__ = ("committed", "id", "lock", "members", "topics")

    def __init__(self, group_id: str) -> None:
        self.id = group_id
        self.members: list[MemoryConsumer] = []
        self.committed: dict[TopicPartition, int] = {}
        self.topics: set[str] = set()  # every topic a member ever subscribed to
        self.lock = asyncio.Lock()


class MemoryStream:
    """An in-process broker; make clients with :meth:`producer` and :meth:`consumer`."""

    def __init__(self, partitions: int = 3, *, trim_committed: bool = False) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.partitions = partitions
        self.trim_committed = trim_committed
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}

    # --- Stream -------------------------------------------------------------------------------

    def producer(self, *, client_id: str) -> MemoryProducer:
        return MemoryProducer(self, client_id)

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None = None,
    ) -> MemoryConsumer:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        return MemoryConsumer(self, list(topics), group_id, client_id, listener)

    # --- inspection (tests, the demo's progress display) --------------------------------------

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        """Create ``name`` now (with ``partitions``, default the stream's); no-op if it exists."""
        if name not in self._topics:
            self._topics[name] = _Topic(name, partitions or self.partitions)

    def end_offsets(self, topic: str) -> dict[TopicPartition, int]:
        """Per partition, the offset the next record will get (0 for an unknown topic)."""
        found = self._topics.get(topic)
        if found is None:
            return {TopicPartition(topic, p): 0 for p in range(self.partitions)}
        return {TopicPartition(topic, p): lg.end for p, lg in enumerate(found.logs)}

    def committed(self, group_id: str, partition: TopicPartition) -> int | None:
        """The group's committed offset for ``partition``, or None."""
        group = self._groups.get(group_id)
        return None if group is None else group.committed.get(partition)

    def records(self, topic: str) -> list[StreamRecord]:
        """Every record still kept in ``topic``, partition by partition in offset order."""
        found = self._topics.get(topic)
        return [] if found is None else [r for lg in found.logs for r in lg.records]

    # --- broker internals ---------------------------------------------------------------------

    def _topic(self, name: str) -> _Topic:
        found = self._topics.get(name)
        if found is None:
            found = self._topics[name] = _Topic(name, self.partitions)
        return found

    def _group(self, group_id: str) -> _Group:
        found = self._groups.get(group_id)
        if found is None:
            found = self._groups[group_id] = _Group(group_id)
        return found

    def _append(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> tuple[int, int]:
        target = self._topic(topic)
        partition = target.partition_for(key)
        partition_log = target.logs[partition]
        offset = partition_log.end
        partition_log.records.append(
            StreamRecord(
                topic=topic,
                partition=partition,
                offset=offset,
                key=key,
                value=value,
                headers=tuple(headers),
                timestamp_ms=time.time_ns() // 1_000_000,
            )
        )
        target.notify()
        return partition, offset

    async def _rebalance(
        self,
        group: _Group,
        *,
        joining: MemoryConsumer | None = None,
        leaving: MemoryConsumer | None = None,
    ) -> None:
        async with group.lock:
            # Eager protocol: every member gives up all its partitions before anyone gets any.
            if leaving is not None and leaving in group.members:
                await leaving._revoke_all()
                group.members.remove(leaving)
            for member in group.members:
                await member._revoke_all()
            if joining is not None:
                group.members.append(joining)
                group.topics.update(joining._topics)
                for topic in joining._topics:
                    self._topic(topic)
            plan = self._plan(group.members)
            for member in group.members:
                member._take_assignment(plan[member])
            for member in group.members:
                await member._assigned()

    def _plan(self, members: list[MemoryConsumer]) -> dict[MemoryConsumer, set[TopicPartition]]:
        """Round robin of the sorted partitions over the members subscribed to each topic."""
        plan: dict[MemoryConsumer, set[TopicPartition]] = {m: set() for m in members}
        topics = sorted({t for m in members for t in m._topics})
        turn = 0
        for topic in topics:
            for partition in range(len(self._topic(topic).logs)):
                while topic not in members[turn % len(members)]._topics:
                    turn += 1
                plan[members[turn % len(members)]].add(TopicPartition(topic, partition))
                turn += 1
        return plan

    def _trim(self, partitions: Sequence[TopicPartition]) -> None:
        for tp in partitions:
            target = self._topics.get(tp.topic)
            if target is None:
                continue
            partition_log = target.logs[tp.partition]
            floor = min(
                (
                    g.committed.get(tp, partition_log.start)
                    for g in self._groups.values()
                    if tp.topic in g.topics
                ),
                default=partition_log.start,
            )
            partition_log.trim(floor)


class MemoryProducer:
    """A producer on a :class:`MemoryStream`; ``send`` futures are resolved on return."""

    def __init__(self, broker: MemoryStream, client_id: str) -> None:
        self._broker = broker
        self.client_id = client_id
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def stop(self) -> None:
        self._running = False

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[tuple[int, int]]:
        if not self._running:
            raise StreamError(f"producer {self.client_id}: send to {topic} while not started")
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        future.set_result(self._broker._append(topic, value, key, headers))
        return future

    async def send_many(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> asyncio.Future[None]:
        return await send_one_by_one(self, topic, records)
