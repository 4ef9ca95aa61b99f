"""The stream contract every implementation meets (Kafka semantics, at least once).

- A record is ``(topic, partition, offset, key, value, headers, timestamp_ms)``; the value is
  bytes kept verbatim. Records with the same key go to the same partition, in send order.
- ``Producer.send`` queues a record and returns a future that resolves to
  ``(partition, offset)`` only once the broker has durably acknowledged it (Kafka:
  ``acks=all`` with the idempotent producer). Callers that must not lose data act (ack MQTT,
  commit offsets) only after that future resolved. ``Producer.send_many`` queues several
  records for one topic at once (in order, each partitioned by its key like ``send``) and
  returns one future that resolves once every one of them is durable: the cheap way to
  forward a batch, since the per-record bookkeeping of ``send`` dominates its cost.
- ``Consumer`` belongs to a consumer group; partitions are spread over the group's members.
  ``getmany`` returns records in offset order per partition. ``commit`` takes, per partition,
  the offset of the next record to read, and is called only after the records before it were
  fully handled; after a crash, consumption resumes at the last commit (so records after it
  are delivered again: every stage is idempotent).
- ``seek`` moves an assigned partition's position back (or forward): the next ``getmany``
  returns records from that offset, and records fetched before the seek are dropped. A stage
  whose write failed seeks back to the first record it has not made durable, so nothing after
  it is committed past it.
- A :class:`PartitionsListener` hears about partitions before they are taken away
  (``revoked``: finish and commit; also called by ``Consumer.stop``, and never with an empty
  set) and after new ones are given (``assigned``).
- A ``getmany`` waiting when ``stop`` is called returns ``[]``; one called after raises.
- Failures surface as :class:`roadledger.stream.errors.StreamError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

__all__ = [
    "Consumer",
    "OutgoingRecord",
    "PartitionsListener",
    "Producer",
    "Stream",
    "StreamRecord",
    "TopicPartition",
    "next_offsets",
    "send_one_by_one",
]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One record as a consumer receives it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The first header called ``name``, or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class OutgoingRecord(NamedTuple):
    """One record for :meth:`Producer.send_many`."""

    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


class Producer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Flush what was sent, then close."""
        ...

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[tuple[int, int]]:
        """Queue a record; the future resolves to (partition, offset) once it is durable."""
        ...

    async def send_many(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> asyncio.Future[None]:
        """Queue ``records`` in order; the future resolves once every one is durable."""
        ...


def next_offsets(records: Sequence[StreamRecord]) -> dict[TopicPartition, int]:
    """What to commit once ``records`` are handled: per partition, the offset after the last."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = record.topic_partition
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


async def send_one_by_one(
    producer: Producer, topic: str, records: Sequence[OutgoingRecord]
) -> asyncio.Future[None]:
    """``send_many`` by ``send``: for producers with no cheaper way (in-process, test doubles)."""
    deliveries = [
        await producer.send(topic, value, key=key, headers=headers)
        for key, value, headers in records
    ]
    return asyncio.ensure_future(_all_delivered(deliveries))


async def _all_delivered(deliveries: Sequence[asyncio.Future[tuple[int, int]]]) -> None:
    await asyncio.gather(*deliveries)


class PartitionsListener(Protocol):
    async def revoked(self, partitions: set[TopicPartition]) -> None: ...

    async def assigned(self, partitions: set[TopicPartition]) -> None: ...


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(self, timeout_ms: int, max_records: int) -> list[StreamRecord]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for the first."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record, per partition, the offset of the next record to read."""
        ...

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Read ``partition`` from ``offset`` on; it must be assigned to this consumer."""
        ...

    def assignment(self) -> set[TopicPartition]: ...


class Stream(Protocol):
    """Makes producers and consumers on one broker (or in-process stand-in)."""

    def producer(self, *, client_id: str) -> Producer: ...

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None = None,
    ) -> Consumer: ...
