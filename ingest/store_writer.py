"""The store writer: ``telemetry.verified`` -> the telemetry tables, in batches, idempotent.

:class:`StoreWriter` consumes the topic in a consumer group and hands each batch to a
:class:`~ingest.batch_writer.BatchWriter` (one transaction per batch; the SQL is there).
Offsets are committed only after the batch's transaction committed; after a crash the records
since the last commit come again and insert nothing (at-least-once in, exactly once stored).
Between batches it reloads the road network when it changed and, in partitioned mode, applies
retention. Storage modes and tables: ``roadledger/db/telemetry_schema.py`` and
``docs/storage.md``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Final

import asyncpg

from contracts.map_matching import SegmentIndex
from contracts.roads import load_segments
from contracts.topics import VERIFIED
from ingest.batch_writer import BatchWriter, WriteCounts
from roadledger.db import telemetry_schema
from roadledger.db.schema import apply_schema
from roadledger.db.telemetry_schema import MODE_PARTITIONED
from roadledger.resilience import Dependency, RetryPolicy, is_rebalance, is_transient, patiently
from roadledger.settings import Settings
from roadledger.stream import Consumer, Stream, StreamRecord, TopicPartition, next_offsets
from roadledger.stream.errors import StreamError

__all__ = ["StoreWriter"]

log = logging.getLogger(__name__)

_POLL_MS: Final = 250
_SEGMENTS_FINGERPRINT: Final = (
    "SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r.segment_id), '')) FROM road_segments r"
)


class StoreWriter:
    """Consumes ``topic`` in group ``group_id`` and stores every record (see module docstring).

    Every ``segment_refresh_s`` it reloads the road network if ``road_segments`` changed
    (rows stored before a segment existed keep ``segment_id`` NULL); in partitioned mode it
    applies retention every ``retention_interval_s`` (TimescaleDB runs its own policy, which
    :meth:`start` sets to ``settings.retention_days``).
    """

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        pool: asyncpg.Pool,
        *,
        topic: str = VERIFIED,
        group_id: str = "roadledger-store",
        client_id: str = "roadledger-store",
        segment_refresh_s: float = 60.0,
        retention_interval_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        database: Dependency | None = None,
        kafka: Dependency | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.pool = pool
        # Shared with the process's other components: one outage, one pair of log lines.
        self.database = database or Dependency("PostgreSQL", log)
        self.kafka = kafka or Dependency("Kafka", log)
        self._retry = retry or RetryPolicy()
        self.topic = topic
        self.group_id = group_id
        self.client_id = client_id
        self.segment_refresh_s = segment_refresh_s
        self.retention_interval_s = retention_interval_s
        self.totals = WriteCounts()
        self.batches = 0
        self._clock = clock
        self._writer: BatchWriter | None = None
        self._segments_fingerprint: str | None = None
        self._segments_checked = self._retention_applied = -math.inf
        self._batch_lock = asyncio.Lock()
        self._progress = asyncio.Condition()

    @property
    def mode(self) -> str | None:
        """The storage mode, once :meth:`start` has run."""
        return self._writer.mode if self._writer is not None else None

    async def start(self) -> None:
        """Apply the schema (idempotent), set retention, load the road network."""
        wanted = None if self.settings.timescaledb == "auto" else False
        async with self.pool.acquire() as conn:
            mode = await apply_schema(conn, timescaledb=wanted)
            await telemetry_schema.ensure_retention_policy(conn, self.settings.retention_days)
            self._writer = BatchWriter(mode, retention_days=self.settings.retention_days)
            await self._maintain(conn)
        log.info(
            "store writer: %s storage, %d road segments, retention %d days",
            mode,
            len(self._writer.segments or ()),
            self.settings.retention_days,
        )

    async def write_batch(
        self, conn: asyncpg.Connection, records: Sequence[StreamRecord]
    ) -> WriteCounts:
        """Store one batch (no stream needed): :meth:`BatchWriter.write_batch`."""
        if self._writer is None:
            self._writer = await BatchWriter.open(conn, retention_days=self.settings.retention_days)
        return await self._writer.write_batch(conn, records)

    async def run(self, stop: asyncio.Event) -> None:
        """Store until ``stop`` is set; the batch under way is finished and committed first.

        Outages of PostgreSQL (lost connection, deadlock, shutdown) and Kafka are waited out
        with backoff, offsets uncommitted, one log line each way; any other error ends the run
        (the supervisor restarts the writer, which resumes at the last commit).
        """
        if self._writer is None and not await self._retry.run(self.start, self.database, stop):
            return
        consumer = self.stream.consumer(
            [self.topic], group_id=self.group_id, client_id=self.client_id, listener=self
        )
        if not await self._retry.run(consumer.start, self.kafka, stop):
            return
        try:
            while not stop.is_set():
                fetch = functools.partial(
                    consumer.getmany, timeout_ms=_POLL_MS, max_records=self.settings.batch_size
                )
                records = await self._retry.call(fetch, self.kafka, stop)
                if records is None:  # stopped while Kafka was away
                    break
                if records:
                    async with self._batch_lock:
                        counts = await self._write_retrying(records, stop)
                        if counts is None:  # stopped while the database was away
                            break
                        await self._commit(consumer, records)
                    await self._count(counts)
                if self._clock() - self._segments_checked >= self.segment_refresh_s or (
                    self._clock() - self._retention_applied >= self.retention_interval_s
                ):
                    try:
                        async with self.pool.acquire() as conn:
                            await self._maintain(conn)
                    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                        if not is_transient(exc):
                            log.warning("store writer: maintenance failed, retried later: %s", exc)
                            continue
                        self.database.down(exc, "maintenance")  # one line per outage
                        await self._retry.pause(self.database, stop)
                    except asyncpg.InterfaceError as exc:
                        if not is_transient(exc):
                            raise  # misuse of asyncpg: a bug
                        self.database.down(exc, "maintenance")
                        await self._retry.pause(self.database, stop)
                    else:
                        self.database.up("maintenance")
        finally:
            await consumer.stop()
            seconds = self._writer.seconds if self._writer else {}
            log.info(
                "store writer stopped: %s; seconds %s",
                self.totals,
                " ".join(f"{stage}={value:.1f}" for stage, value in seconds.items()),
            )

    async def wait_for(self, predicate: Callable[[WriteCounts], bool]) -> WriteCounts:
        """Wait until ``predicate(totals)`` holds (checked after each committed batch).

        Bound the wait with ``asyncio.timeout``.
        """
        async with self._progress:
            await self._progress.wait_for(lambda: predicate(self.totals))
            return self.totals

    async def _count(self, counts: WriteCounts) -> None:
        async with self._progress:
            self.totals += counts
            self.batches += 1
            self._progress.notify_all()

    async def _commit(self, consumer: Consumer, records: Sequence[StreamRecord]) -> None:
        try:
            # A paused broker holds a commit until its request timeout: patiently() says so.
            await patiently(consumer.commit(next_offsets(records)), self.kafka, "commit")
        except StreamError as exc:
            # The rows are stored; whoever reads these records again inserts nothing.
            if is_rebalance(exc):
                log.info("store writer: offsets not committed, the group rebalanced: read again")
            else:
                self.kafka.down(exc, "commit")

    async def _write_retrying(
        self, records: Sequence[StreamRecord], stop: asyncio.Event
    ) -> WriteCounts | None:
        writer = self._writer
        assert writer is not None

        async def write() -> WriteCounts:
            async with self.pool.acquire() as conn:
                return await writer.write_batch(conn, records)

        return await self._retry.call(write, self.database, stop)

    async def _maintain(self, conn: asyncpg.Connection) -> None:
        """Reload the road network if it changed; apply retention when due."""
        assert self._writer is not None
        now = self._clock()
        if now - self._segments_checked >= self.segment_refresh_s:
            self._segments_checked = now
            fingerprint = await conn.fetchval(_SEGMENTS_FINGERPRINT)
            if fingerprint != self._segments_fingerprint:
                self._writer.segments = SegmentIndex(await load_segments(conn))
                self._segments_fingerprint = fingerprint
                log.info(
                    "store writer: road network loaded, %d segments", len(self._writer.segments)
                )
        if (
            self._writer.mode == MODE_PARTITIONED
            and now - self._retention_applied >= self.retention_interval_s
        ):
            self._retention_applied = now
            dropped = await telemetry_schema.apply_retention(conn, self.settings.retention_days)
            if dropped:
                log.info("store writer: retention dropped %s", ", ".join(dropped))

    # --- PartitionsListener -------------------------------------------------------------------

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Wait for the batch under way: it is stored and committed before the handover."""
        async with self._batch_lock:
            pass

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Nothing to prepare: the tables and the committed offsets are the whole state."""
