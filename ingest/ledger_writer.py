"""The ledger writer: telemetry.verified -> one RFC 9162 log per partition.

The consumer that owns a partition of ``telemetry.verified`` is that log's only sequencer:
when the partition is assigned, the writer opens the log (``Sequencer.open``: a new fencing
epoch, so a previous owner still writing is refused); when it is revoked, the writer waits for
the partition's writes and commits. Each batch of a partition becomes one block and one signed
checkpoint; its offsets are committed only once the block is durable. After a crash the
records since the last commit come again and the log's leaf-hash dedupe gives them their old
indices: nothing is lost, nothing is logged twice.

What keeps that true when something fails while the process lives on:

- **One opening per assignment.** The assignment callback and the submit path share one
  opening task per partition, so a log is never opened twice by one writer (two openings
  fence each other and drop the older one's batches).
- **Rewind before anything later is committed.** When a batch's write fails (fenced, a lost
  database connection, an unknown outcome), the writer drops the partition's batches in
  flight and its sequencer, and seeks the consumer back to the first record it has not seen
  committed. Offsets are committed only up to the last batch that is durable, so a later
  batch can never be committed past a lost one. The log is reopened (waiting out a database
  outage with backoff) and the records come again; dedupe keeps the leaves already written.
- **A failed offset commit is not fatal.** The blocks are durable; the records come again
  after a rebalance and dedupe to their old leaves.

Entries are the record values, verbatim: telemetry JWS and device-key records alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field

from chain.errors import FencingError
from chain.sequencer import AppendResult, LedgerStore, Sequencer
from contracts.topics import VERIFIED
from roadledger.log_key import LogKey
from roadledger.metrics import Sample, counters
from roadledger.resilience import Dependency, RetryPolicy, is_transient
from roadledger.settings import Settings
from roadledger.stream import Consumer, Stream, StreamError, StreamRecord, TopicPartition

__all__ = ["LedgerWriter", "LedgerWriterStats"]

log = logging.getLogger(__name__)

_IN_FLIGHT = 2  # blocks per partition being written while the next one is prepared


@dataclass
class LedgerWriterStats:
    """What the writer has done since it started."""

    entries: int = 0
    blocks: int = 0
    rewinds: int = 0
    tree_sizes: dict[int, int] = field(default_factory=dict)

    def samples(self) -> list[Sample]:
        """Prometheus samples: what was appended, and each owned log's tree size."""
        done = {"entries": self.entries, "blocks": self.blocks, "rewinds": self.rewinds}
        return [
            *counters("roadledger_sequencer", done),
            *(
                Sample("roadledger_ledger_tree_size", size, (("partition", str(partition)),))
                for partition, size in sorted(self.tree_sizes.items())
            ),
        ]


@dataclass(frozen=True)
class _Batch:
    """One submitted block: its write and the offsets it covers."""

    write: asyncio.Future[AppendResult]
    first_offset: int
    next_offset: int


class LedgerWriter:
    """Consumes ``topic`` in group ``group_id``; sequences each partition into its own log."""

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        store: LedgerStore,
        key: LogKey,
        *,
        topic: str = VERIFIED,
        group_id: str = "roadledger-ledger",
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.store = store
        self.key = key
        self.topic = topic
        self.group_id = group_id
        self.stats = LedgerWriterStats()
        self.database = Dependency("PostgreSQL", log)
        self.kafka = Dependency("Kafka", log)
        self._retry = retry or RetryPolicy()
        self._stop = asyncio.Event()
        self._consumer: Consumer | None = None
        self._sequencers: dict[TopicPartition, Sequencer] = {}
        self._opening: dict[TopicPartition, asyncio.Future[Sequencer | None]] = {}
        self._pending: defaultdict[TopicPartition, deque[_Batch]] = defaultdict(deque)

    def origin(self, partition: int) -> str:
        return self.settings.log_origin(partition)

    async def run(self, stop: asyncio.Event) -> None:
        """Sequence until ``stop`` is set; then finish the writes under way and commit."""
        self._stop = stop
        consumer = self.stream.consumer(
            [self.topic], group_id=self.group_id, client_id="roadledger-ledger", listener=self
        )
        self._consumer = consumer
        if not await self._retry.run(consumer.start, self.kafka, stop):
            self._consumer = None
            return
        try:
            while not stop.is_set():
                fetch = functools.partial(
                    consumer.getmany, timeout_ms=200, max_records=self.settings.batch_size
                )
                records = await self._retry.call(fetch, self.kafka, stop)
                if records is None:  # stopped while Kafka was away
                    break
                await self._submit(records)
                await self._settle(keep=_IN_FLIGHT - 1)
            await self._settle(keep=0)
        finally:
            for opening in self._opening.values():
                opening.cancel()
            await consumer.stop()
            self._consumer = None

    async def _submit(self, records: list[StreamRecord]) -> None:
        batches: defaultdict[TopicPartition, list[StreamRecord]] = defaultdict(list)
        for record in records:
            batches[record.topic_partition].append(record)
        for tp, batch in batches.items():
            sequencer = await self._sequencer(tp)
            if sequencer is None:  # stopping, or the partition went elsewhere meanwhile
                self._rewind(tp, batch[0].offset)
                continue
            try:
                write = await sequencer.submit([record.value for record in batch])
            except FencingError as exc:  # an earlier write of this sequencer failed
                self._failed(tp, exc)
                self._rewind(tp, batch[0].offset)
                continue
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.database.down(exc)
                self._rewind(tp, batch[0].offset)
                continue
            self._pending[tp].append(_Batch(write, batch[0].offset, batch[-1].offset + 1))
            self.stats.entries += len(batch)

    async def _settle(self, keep: int, only: set[TopicPartition] | None = None) -> None:
        """Wait until at most ``keep`` writes per partition are under way; commit the rest."""
        commits: dict[TopicPartition, int] = {}
        for tp, pending in list(self._pending.items()):
            if only is not None and tp not in only:
                continue
            while pending and (len(pending) > keep or pending[0].write.done()):
                batch = pending[0]
                try:
                    result = await batch.write
                except FencingError as exc:
                    self._failed(tp, exc)
                    self._rewind(tp, batch.first_offset)
                    break
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    self.database.down(exc)
                    self._rewind(tp, batch.first_offset)
                    break
                pending.popleft()
                self.database.up()
                commits[tp] = batch.next_offset
                if result.block is not None:
                    self.stats.blocks += 1
                    self.stats.tree_sizes[tp.partition] = result.block.tree_size
        if commits and self._consumer is not None:
            try:
                await self._consumer.commit(commits)
            except StreamError as exc:
                # The blocks are durable: after a rebalance the records come again and
                # dedupe to their leaves. Nothing later than them was committed.
                self.kafka.down(exc)
            else:
                self.kafka.up()

    def _failed(self, tp: TopicPartition, exc: FencingError) -> None:
        log.warning("%s: %s", self.origin(tp.partition), exc)

    def _rewind(self, tp: TopicPartition, offset: int) -> None:
        """Forget ``tp``'s writes in flight and read it again from its first uncommitted record.

        ``offset`` is the first record of the batch that could not be made durable; a batch
        submitted before it and still in flight starts earlier, so the rewind goes there.
        """
        pending = self._pending.pop(tp, deque())
        for batch in pending:
            offset = min(offset, batch.first_offset)
            # Its outcome no longer matters: the records come again and dedupe.
            batch.write.add_done_callback(_ignore_outcome)
        self._sequencers.pop(tp, None)
        opening = self._opening.pop(tp, None)
        if opening is not None:
            opening.cancel()
        consumer = self._consumer
        if consumer is None or tp not in consumer.assignment():
            return  # whoever owns it now reads from the last commit
        try:
            consumer.seek(tp, offset)
        except StreamError as exc:  # taken away meanwhile: its new owner reads from the commit
            log.info("%s: no rewind (%s)", self.origin(tp.partition), exc)
            return
        self.stats.rewinds += 1
        log.info("%s: reading again from offset %d", self.origin(tp.partition), offset)

    async def _sequencer(self, tp: TopicPartition) -> Sequencer | None:
        """The open sequencer of ``tp``: the one opening under way, or a new one."""
        sequencer = self._sequencers.get(tp)
        if sequencer is not None:
            return sequencer
        opening = self._opening.get(tp)
        if opening is None:
            opening = self._opening[tp] = asyncio.ensure_future(self._open(tp))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            if opening.cancelled():  # the partition was revoked while it opened
                return None
            raise

    async def _open(self, tp: TopicPartition) -> Sequencer | None:
        origin = self.origin(tp.partition)
        signer = self.key.signer(origin)

        async def acquire() -> Sequencer:
            return await Sequencer.open(self.store, origin, signer)

        try:
            opened = await self._retry.call(acquire, self.database, self._stop)
        finally:
            if self._opening.get(tp) is asyncio.current_task():
                del self._opening[tp]
        if opened is None:
            return None
        self._sequencers[tp] = opened
        self.stats.tree_sizes[tp.partition] = opened.size
        log.info("%s: sequencing, epoch %d, size %d", origin, opened.head.epoch, opened.size)
        return opened

    # --- PartitionsListener -----------------------------------------------------------------

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            if tp.topic != self.topic or tp in self._sequencers or tp in self._opening:
                continue  # still ours since the last assignment: reopening would fence us
            # Opened at once to fence a previous owner; the submit path awaits the same.
            self._opening[tp] = asyncio.ensure_future(self._open(tp))

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        await self._settle(keep=0, only=partitions)
        for tp in partitions:
            self._sequencers.pop(tp, None)
            self._pending.pop(tp, None)
            opening = self._opening.pop(tp, None)
            if opening is not None:
                opening.cancel()


def _ignore_outcome(write: asyncio.Future[AppendResult]) -> None:
    if not write.cancelled():
        with contextlib.suppress(BaseException):
            write.exception()
