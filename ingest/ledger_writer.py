"""The ledger writer: telemetry.verified -> one RFC 9162 log per partition.

The consumer that owns a partition of ``telemetry.verified`` is that log's only sequencer:
when the partition is assigned, the writer opens the log (``Sequencer.open``: a new fencing
epoch, so a previous owner still writing is refused); when it is revoked, the writer waits for
the partition's writes and commits. Each batch of a partition becomes one block and one signed
checkpoint; its offsets are committed only once the block is durable. After a crash the
records since the last commit come again and the log's leaf-hash dedupe gives them their old
indices: nothing is lost, nothing is logged twice.

Entries are the record values, verbatim: telemetry JWS and device-key records alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field

from chain.errors import FencingError
from chain.sequencer import AppendResult, LedgerStore, Sequencer
from roadledger.log_key import LogKey
from roadledger.settings import Settings
from roadledger.stream import Consumer, Stream, StreamRecord, TopicPartition
from roadledger.topics import VERIFIED

__all__ = ["LedgerWriter", "LedgerWriterStats"]

log = logging.getLogger(__name__)

_IN_FLIGHT = 2  # blocks per partition being written while the next one is prepared


@dataclass
class LedgerWriterStats:
    """What the writer has done since it started."""

    entries: int = 0
    blocks: int = 0
    tree_sizes: dict[int, int] = field(default_factory=dict)


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
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.store = store
        self.key = key
        self.topic = topic
        self.group_id = group_id
        self.stats = LedgerWriterStats()
        self._consumer: Consumer | None = None
        self._sequencers: dict[TopicPartition, Sequencer] = {}
        self._pending: defaultdict[TopicPartition, deque[tuple[asyncio.Future[AppendResult], int]]]
        self._pending = defaultdict(deque)

    def origin(self, partition: int) -> str:
        return self.settings.log_origin(partition)

    async def run(self, stop: asyncio.Event) -> None:
        """Sequence until ``stop`` is set; then finish the writes under way and commit."""
        consumer = self.stream.consumer(
            [self.topic], group_id=self.group_id, client_id="roadledger-ledger", listener=self
        )
        self._consumer = consumer
        await consumer.start()
        try:
            while not stop.is_set():
                records = await consumer.getmany(
                    timeout_ms=200, max_records=self.settings.batch_size
                )
                await self._submit(records)
                await self._settle(keep=_IN_FLIGHT - 1)
            await self._settle(keep=0)
        finally:
            await consumer.stop()
            self._consumer = None

    async def _submit(self, records: list[StreamRecord]) -> None:
        batches: defaultdict[TopicPartition, list[StreamRecord]] = defaultdict(list)
        for record in records:
            batches[record.topic_partition].append(record)
        for tp, batch in batches.items():
            sequencer = self._sequencers.get(tp)
            if sequencer is None:  # assigned before we could open it, or fenced earlier
                sequencer = await self._open(tp)
            future = await sequencer.submit([record.value for record in batch])
            self._pending[tp].append((future, batch[-1].offset + 1))
            self.stats.entries += len(batch)

    async def _settle(self, keep: int, only: set[TopicPartition] | None = None) -> None:
        """Wait until at most ``keep`` writes per partition are under way; commit the rest."""
        commits: dict[TopicPartition, int] = {}
        for tp, pending in list(self._pending.items()):
            if only is not None and tp not in only:
                continue
            while len(pending) > keep or (pending and pending[0][0].done()):
                future, next_offset = pending.popleft()
                try:
                    result = await future
                except FencingError as exc:
                    # Another writer owns this log now: drop the partition, commit nothing.
                    log.warning("%s: %s", self.origin(tp.partition), exc)
                    self._sequencers.pop(tp, None)
                    pending.clear()
                    commits.pop(tp, None)
                    break
                commits[tp] = next_offset
                if result.block is not None:
                    self.stats.blocks += 1
                    self.stats.tree_sizes[tp.partition] = result.block.tree_size
        if commits and self._consumer is not None:
            await self._consumer.commit(commits)

    async def _open(self, tp: TopicPartition) -> Sequencer:
        origin = self.origin(tp.partition)
        sequencer = await Sequencer.open(self.store, origin, self.key.signer(origin))
        self._sequencers[tp] = sequencer
        self.stats.tree_sizes[tp.partition] = sequencer.size
        log.info("%s: sequencing, epoch %d, size %d", origin, sequencer.head.epoch, sequencer.size)
        return sequencer

    # --- PartitionsListener -----------------------------------------------------------------

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            if tp.topic == self.topic:
                await self._open(tp)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        await self._settle(keep=0, only=partitions)
        for tp in partitions:
            self._sequencers.pop(tp, None)
            self._pending.pop(tp, None)
