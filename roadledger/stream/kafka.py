"""The stream on Apache Kafka, with aiokafka.

- Producer: ``acks="all"`` and the idempotent producer, so a resolved ``send`` future means
  every in-sync replica has the record and a retry inside the client cannot duplicate it.
  Keys are partitioned as Kafka's default partitioner does (murmur2), like the memory stream.
  ``linger_ms`` and a large ``max_batch_size`` trade a few milliseconds of latency for
  throughput. The future resolves to ``(partition, offset)`` from aiokafka's RecordMetadata,
  or fails with :class:`~roadledger.stream.errors.StreamError`.
- Consumer: a group member with ``enable_auto_commit=False`` (callers commit after their
  writes) and ``auto_offset_reset="earliest"`` (a new group reads the topic from its start);
  ``getmany`` returns at most ``settings.batch_size`` records per call. The
  :class:`~roadledger.stream.base.PartitionsListener` hears aiokafka's rebalance callbacks;
  ``revoked`` is skipped when nothing was assigned, and also heard on ``stop()`` so an owner
  can commit before leaving (aiokafka alone does not call it there). A ``getmany`` waiting
  when ``stop()`` is called returns an empty list; one called after it raises.
- Every aiokafka error is converted to ``StreamError`` at this edge, keeping the original as
  ``__cause__`` and its ``retriable`` flag.

aiokafka objects need a running loop when built, so they are made in ``start()``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    ConsumerStoppedError,
    KafkaError,
    KafkaTimeoutError,
    UnknownTopicOrPartitionError,
)

from roadledger.stream.base import (
    OutgoingRecord,
    PartitionsListener,
    StreamRecord,
    TopicPartition,
)
from roadledger.stream.errors import StreamError
from roadledger.stream.memory import murmur2

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = ["KafkaConsumer", "KafkaProducer", "KafkaStream"]

log = logging.getLogger(__name__)


def _stream_error(what: str, exc: BaseException) -> StreamError:
    retriable = bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)
    cause = str(exc) or type(exc).__name__
    if type(exc).__name__ not in cause:
        cause = f"{type(exc).__name__}: {cause}"
    error = StreamError(f"{what}: {cause}", retriable=retriable)
    error.__cause__ = exc
    return error


class _KeyPartitioner:
    """Kafka's default partitioner (murmur2 of the key bytes), remembering recent keys' hashes:
    a fleet sends from the same device ids over and over, and hashing in Python is not free."""

    _LIMIT = 100_000

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)  # noqa: S311 - spreading, not secrecy
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._LIMIT:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


class KafkaStream:
    """Makes aiokafka producers and consumers on ``settings.kafka_bootstrap``."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_batch_bytes: int = 512 * 1024,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.bootstrap = settings.kafka_bootstrap
        self.max_poll_records = settings.batch_size
        self.linger_ms = settings.kafka_linger_ms
        self.max_batch_bytes = max_batch_bytes
        self.request_timeout_ms = request_timeout_ms
        # A fetch answers once this much is there or after this wait: under load, fewer and
        # fuller fetches (each costs the broker and the client per request, not per record);
        # when idle, at most the wait more latency per stage.
        self.fetch_min_bytes = settings.kafka_fetch_min_bytes
        self.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
        self.group_instance = settings.kafka_group_instance
        self.consumers: list[KafkaConsumer] = []  # made here and not stopped (for their lag)

    def producer(self, *, client_id: str) -> KafkaProducer:
        return KafkaProducer(self, client_id)

    def consumer(
        self,
        topics: Sequence[str],
        *,
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None = None,
    ) -> KafkaConsumer:
        if not topics:
            raise ValueError("a consumer needs at least one topic")
        made = KafkaConsumer(self, list(topics), group_id, client_id, listener)
        self.consumers.append(made)
        return made


class KafkaProducer:
    """An idempotent ``acks=all`` producer (see the module docstring)."""

    def __init__(self, stream: KafkaStream, client_id: str) -> None:
        self._stream = stream
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = _KeyPartitioner()

    async def start(self) -> None:
        if self._producer is not None:
            raise StreamError(f"producer {self.client_id}: start() called twice")
        producer = AIOKafkaProducer(
            bootstrap_servers=self._stream.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._stream.linger_ms,
            max_batch_size=self._stream.max_batch_bytes,
            request_timeout_ms=self._stream.request_timeout_ms,
            partitioner=self._partitioner,
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise _stream_error(
                f"producer {self.client_id}: cannot connect to Kafka at {self._stream.bootstrap}",
                exc,
            ) from exc
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            await producer.stop()
        except KafkaError as exc:
            raise _stream_error(f"producer {self.client_id}: flush on stop failed", exc) from exc

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[tuple[int, int]]:
        producer = self._producer
        if producer is None:
            raise StreamError(f"producer {self.client_id}: send to {topic} while not started")
        try:
            delivery = await producer.send(topic, value, key=key, headers=list(headers))
        except UnknownTopicOrPartitionError as exc:
            error = _stream_error(
                f"producer {self.client_id}: topic {topic} does not exist on "
                f"{self._stream.bootstrap} (`roadledger services up` creates the pipeline's "
                "topics)",
                exc,
            )
            error.retriable = True  # it may be created in the meantime
            raise error from exc
        except KafkaTimeoutError as exc:
            raise _stream_error(
                f"producer {self.client_id}: no buffer space for {topic} within "
                f"{self._stream.request_timeout_ms} ms",
                exc,
            ) from exc
        except KafkaError as exc:
            raise _stream_error(f"producer {self.client_id}: send to {topic} failed", exc) from exc
        result: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        delivery.add_done_callback(lambda done: _settle(result, done, topic, self.client_id))
        return result

    async def send_many(
        self, topic: str, records: Sequence[OutgoingRecord]
    ) -> asyncio.Future[None]:
        """Append the records to one batch per partition (aiokafka's batch API): a few
        microseconds a record instead of ``send``'s tens. Order per partition is kept, and the
        idempotent producer sequences batches like single sends."""
        producer = self._producer
        if producer is None:
            raise StreamError(f"producer {self.client_id}: send to {topic} while not started")
        try:
            partitions = sorted(await producer.partitions_for(topic))
            by_partition: dict[int, list[OutgoingRecord]] = {}
            for record in records:
                partition = self._partitioner(record.key, partitions, partitions)
                by_partition.setdefault(partition, []).append(record)
            deliveries = []
            for partition, items in by_partition.items():
                batch = producer.create_batch()
                for record in items:
                    if _append(batch, record):
                        continue
                    deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    _append(batch, record)  # an empty batch takes any record, as send() does
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        except UnknownTopicOrPartitionError as exc:
            error = _stream_error(f"producer {self.client_id}: topic {topic} does not exist", exc)
            error.retriable = True
            raise error from exc
        except KafkaError as exc:
            raise _stream_error(f"producer {self.client_id}: send to {topic} failed", exc) from exc
        return asyncio.ensure_future(_delivered(deliveries, topic, self.client_id))


def _append(batch: Any, record: OutgoingRecord) -> bool:
    """Add ``record`` to an aiokafka BatchBuilder; False when the batch is full."""
    metadata = batch.append(
        key=record.key, value=record.value, timestamp=None, headers=list(record.headers)
    )
    return metadata is not None


async def _delivered(deliveries: Sequence[asyncio.Future[Any]], topic: str, client_id: str) -> None:
    try:
        await asyncio.gather(*deliveries)
    except KafkaError as exc:
        raise _stream_error(f"producer {client_id}: delivery to {topic}", exc) from exc


def _settle(
    result: asyncio.Future[tuple[int, int]],
    delivery: asyncio.Future[Any],
    topic: str,
    client_id: str,
) -> None:
    if result.done():
        return
    if delivery.cancelled():
        result.cancel()
        return
    exc = delivery.exception()
    if exc is not None:
        result.set_exception(_stream_error(f"producer {client_id}: delivery to {topic}", exc))
        return
    metadata = delivery.result()
    result.set_result((metadata.partition, metadata.offset))


class _ListenerAdapter(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance callbacks -> our :class:`PartitionsListener`."""

    def __init__(self, listener: PartitionsListener) -> None:
        self._listener = listener

    async def on_partitions_revoked(self, revoked: Any) -> None:
        partitions = {TopicPartition(tp.topic, tp.partition) for tp in revoked}
        if partitions:
            await self._listener.revoked(partitions)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._listener.assigned({TopicPartition(tp.topic, tp.partition) for tp in assigned})


class KafkaConsumer:
    """A consumer-group member with manual commits (see the module docstring)."""

    def __init__(
        self,
        stream: KafkaStream,
        topics: list[str],
        group_id: str,
        client_id: str,
        listener: PartitionsListener | None,
    ) -> None:
        self._stream = stream
        self._topics = topics
        self.group_id = group_id
        self.client_id = client_id
        self._listener = listener
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = False

    def _describe(self) -> str:
        return f"consumer {self.client_id} (group {self.group_id}, {', '.join(self._topics)})"

    async def start(self) -> None:
        if self._consumer is not None:
            raise StreamError(f"{self._describe()}: start() called twice")
        instance = self._stream.group_instance
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._stream.bootstrap,
            group_id=self.group_id,
            # Per role, so one name serves a process's several consumers (ingest has two).
            group_instance_id=f"{instance}.{self.client_id}" if instance else None,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._stream.max_poll_records,
            request_timeout_ms=self._stream.request_timeout_ms,
            fetch_min_bytes=self._stream.fetch_min_bytes,
            fetch_max_wait_ms=self._stream.fetch_max_wait_ms,
        )
        listener = _ListenerAdapter(self._listener) if self._listener is not None else None
        consumer.subscribe(self._topics, listener=listener)
        try:
            await consumer.start()
        except (KafkaError, OSError) as exc:
            await consumer.stop()
            raise _stream_error(
                f"{self._describe()}: cannot join at {self._stream.bootstrap}", exc
            ) from exc
        self._consumer = consumer

    async def stop(self) -> None:
        consumer = self._consumer
        if consumer is None or self._stopping:
            return
        self._stopping = True
        try:
            assigned = {TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment()}
            if assigned and self._listener is not None:
                try:
                    await self._listener.revoked(assigned)
                except Exception:
                    log.exception("%s: partitions listener failed in revoked()", self._describe())
            await consumer.stop()
        except KafkaError as exc:
            raise _stream_error(f"{self._describe()}: stop failed", exc) from exc
        finally:
            self._consumer = None
            if self in self._stream.consumers:
                self._stream.consumers.remove(self)

    async def lag(self) -> dict[TopicPartition, int]:
        """Per assigned partition: records not committed by the group yet (the high
        watermark minus the committed offset, or minus the log's start when the group never
        committed there), as ``kafka-consumer-groups`` counts it. Asks the broker."""
        consumer = self._consumer
        if consumer is None or self._stopping:
            return {}
        assigned = sorted(consumer.assignment())
        if not assigned:
            return {}
        try:
            ends = await consumer.end_offsets(assigned)
            starts = await consumer.beginning_offsets(assigned)
            found = {}
            for tp in assigned:
                committed = await consumer.committed(tp)
                done = starts[tp] if committed is None else max(committed, starts[tp])
                found[TopicPartition(tp.topic, tp.partition)] = max(ends[tp] - done, 0)
        except KafkaError as exc:
            raise _stream_error(f"{self._describe()}: cannot read its lag", exc) from exc
        return found

    def assignment(self) -> set[TopicPartition]:
        consumer = self._consumer
        if consumer is None:
            return set()
        return {TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment()}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        consumer = self._consumer
        if consumer is None:
            raise StreamError(f"{self._describe()}: seek while not started")
        try:
            # aiokafka drops records already fetched at the old position.
            consumer.seek(KafkaTopicPartition(partition.topic, partition.partition), offset)
        except (KafkaError, ValueError) as exc:
            raise _stream_error(
                f"{self._describe()}: cannot seek {partition.topic}[{partition.partition}]"
                f" to {offset}",
                exc,
            ) from exc

    async def getmany(self, timeout_ms: int, max_records: int) -> list[StreamRecord]:
        consumer = self._consumer
        if self._stopping:
            if consumer is None:
                raise StreamError(f"{self._describe()}: getmany while stopped")
            return []
        if consumer is None:
            raise StreamError(f"{self._describe()}: getmany while not started")
        try:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except ConsumerStoppedError:
            return []
        except KafkaError as exc:
            raise _stream_error(f"{self._describe()}: fetch failed", exc) from exc
        return [
            StreamRecord(
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value if r.value is not None else b"",
                headers=tuple((str(k), bytes(v)) for k, v in r.headers),
                timestamp_ms=r.timestamp,
            )
            for records in batches.values()
            for r in records
        ]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        consumer = self._consumer
        if consumer is None:
            raise StreamError(f"{self._describe()}: commit while not started")
        if not offsets:
            return
        try:
            await consumer.commit(
                {KafkaTopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
            )
        except KafkaError as exc:
            raise _stream_error(f"{self._describe()}: commit failed", exc) from exc
