"""``roadledger analytics``: ``telemetry.verified`` + ``telemetry.quarantine`` -> warnings.

One consumer group (``roadledger-analytics``) reads both topics. Per batch (steps 1 and 2 are
the :class:`~analytics.warnings.judge.Judge`'s, which keeps the detectors' state):

1. decode (:mod:`analytics.warnings.stream_records`): verified vehicle messages become
   :class:`~analytics.warnings.detectors.Point` s, map-matched to a road segment (as the store
   writer does) and given their vehicle class from the registry; RSU messages become
   :class:`~analytics.warnings.checks.RsuReport` s (device key entries are skipped);
   quarantined records become :class:`~analytics.warnings.detectors.QuarantinedRecord` s
   (reason from the ``reason`` header; seq and ts when the bytes parse);
2. detect: verified points first (they feed the per-device tracks the quarantine checks
   consult) through the track detectors and every check of
   :data:`~analytics.warnings.judge.CHECKS` (speeding, geofences, congestion, RSU
   contradictions, odometer vs GNSS), then the RSU reports, then the quarantined records; for
   ``bad_signature`` one query asks ``device_messages`` which (device, seq) had a genuine
   message accepted. A rules version's ledger entry in the batch (``roadledger rules
   publish`` puts it on ``telemetry.verified``) reloads the rule book first, so new rules
   apply at once rather than at the next periodic refresh;
3. store: ``INSERT ... ON CONFLICT (warning_id) DO NOTHING`` (ids are deterministic);
4. publish every warning of the batch on ``warnings`` (key = device id or segment), await
   the acknowledgements, then commit the offsets.

So a crash anywhere repeats at most one batch: storing is idempotent, and the ``warnings``
topic is at least once (readers dedupe by ``warning_id``). Detector state (tracks, runs under
way) lives in memory; before consuming, the engine rebuilds it from the telemetry stored in
the ``analytics_warmup_s`` seconds before its group's last commit
(:mod:`analytics.warnings.warmup`), so an event that spans a restart is still found, once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg

from analytics.warnings.checks import RsuReport
from analytics.warnings.detectors import Point, RuleSource
from analytics.warnings.judge import Judge
from analytics.warnings.model import Warning
from analytics.warnings.store import store_warnings
from analytics.warnings.warmup import (
    fresh_warnings,
    load_progress,
    recent_telemetry,
    save_progress,
)
from contracts.topics import QUARANTINE, VERIFIED, WARNINGS, recv_ms_of
from roadledger.metrics import Sample, counters
from roadledger.resilience import Dependency, RetryPolicy, is_rebalance, patiently
from roadledger.settings import Settings
from roadledger.stream import Consumer, OutgoingRecord, Producer, Stream, StreamRecord, next_offsets
from roadledger.stream.errors import StreamError

__all__ = ["GROUP_ID", "AnalyticsEngine", "EngineStats"]

log = logging.getLogger(__name__)

GROUP_ID = "roadledger-analytics"
_POLL_MS = 250
# The warm-up reads this far past its group's progress (records stored but not yet analysed),
# and, since records reach the stream in not quite their arrival order, keeps skipping the ones
# it judged until the stream is this far past the newest of them.
_REPLAY_MARGIN_MS = 60_000
_NO_ROADS_RETRY_S = 2.0

T = TypeVar("T")


class _Stopped(Exception):
    """Asked to stop while waiting out an outage: the batch under way is abandoned, uncommitted
    (the next start reads it again, and its warm-up rebuilds the detectors' state)."""


@dataclass
class EngineStats:
    """Counters since start."""

    records: int = 0
    batches: int = 0
    stored: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    warmup_records: int = 0
    warmup_seconds: float = 0.0
    warmup_skipped: int = 0  # records the stream delivered again after the warm-up judged them

    def samples(self) -> list[Sample]:
        """Prometheus samples: records judged, warnings stored, warnings by type."""
        done = {"records": self.records, "batches": self.batches, "stored": self.stored}
        return [
            *counters("roadledger_analytics", done),
            *(
                Sample("roadledger_warnings_total", n, (("type", kind),))
                for kind, n in sorted(self.by_type.items())
            ),
        ]


class AnalyticsEngine:
    """Runs the detectors over the stream until stopped (see the module docstring).

    ``rules``: where thresholds, limits and geofences come from (default: the built-in
    thresholds and each segment's own limit). ``load_rules``, if
    given, is awaited at start and every ``rules_refresh_s``, so that newly published rules
    versions apply without a restart (each applies from its own effective time).
    """

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        pool: asyncpg.Pool,
        rules: RuleSource | None = None,
        *,
        load_rules: Callable[[], Awaitable[RuleSource]] | None = None,
        group_id: str | None = None,
        client_id: str = "roadledger-analytics",
        rules_refresh_s: float = 30.0,
        retry: RetryPolicy | None = None,
        database: Dependency | None = None,
        kafka: Dependency | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.pool = pool
        self.rules_refresh_s = rules_refresh_s
        self.verified_topic = settings.topic(VERIFIED)
        self.quarantine_topic = settings.topic(QUARANTINE)
        self.judge = Judge(pool, self._in_database, self.quarantine_topic, rules, load_rules)
        self.warnings_topic = settings.topic(WARNINGS)
        self.group_id = group_id or settings.group(GROUP_ID)
        self.client_id = client_id
        self.stats = EngineStats()
        # (device, seq) judged by the warm-up: skipped when the stream delivers them again.
        self._replayed: set[tuple[str, int]] = set()
        self._replayed_until_ms = 0
        # Outages are waited out step by step (each step below is a read, an idempotent write
        # or an at-least-once publish; a whole batch is not: detecting updates the tracks).
        self.database = database or Dependency("PostgreSQL", log)
        self.kafka = kafka or Dependency("Kafka", log)
        self._retry = retry or RetryPolicy()
        self._stop = asyncio.Event()

    async def _retrying(self, operation: Callable[[], Awaitable[T]], dependency: Dependency) -> T:
        """``operation()`` through ``dependency``'s outages (backoff, one line each way);
        :class:`_Stopped` if asked to stop meanwhile."""
        results: list[T] = []

        async def once() -> None:
            results.append(await operation())

        if not await self._retry.run(once, dependency, self._stop):
            raise _Stopped
        return results[-1]

    async def _in_database(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation()`` through PostgreSQL's outages: the judge's reads."""
        return await self._retrying(operation, self.database)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume, detect, store, publish and commit until ``stop`` is set.

        PostgreSQL and Kafka outages, at start too, are waited out (see :meth:`_retrying`); a
        commit refused because the group rebalanced is not an error (the records come again).
        """
        self._stop = stop
        try:
            await self._run(stop)
        except _Stopped:
            log.info("analytics stopped during an outage; the batch under way is read again")

    async def _run(self, stop: asyncio.Event) -> None:
        await self._in_database(self.judge.refresh_rules)
        refreshed = time.monotonic()
        producer = self.stream.producer(client_id=self.client_id)
        consumer = self.stream.consumer(
            [self.verified_topic, self.quarantine_topic],
            group_id=self.group_id,
            client_id=self.client_id,
        )
        await self._retrying(producer.start, self.kafka)
        try:
            await self.warm_up(producer)
            await self._retrying(consumer.start, self.kafka)
            try:
                log.info("analytics started: %s + %s -> %s, group %s", self.verified_topic,
                         self.quarantine_topic, self.warnings_topic, self.group_id)  # fmt: skip
                while not stop.is_set():
                    # Without a road network yet (a fresh system), look again soon.
                    every = (
                        self.rules_refresh_s if self.judge.detector.off_road else _NO_ROADS_RETRY_S
                    )
                    if time.monotonic() - refreshed >= every:
                        await self._in_database(self.judge.refresh_rules)
                        refreshed = time.monotonic()
                    fetch = functools.partial(
                        consumer.getmany, timeout_ms=_POLL_MS, max_records=self.settings.batch_size
                    )
                    records = await self._retry.call(fetch, self.kafka, stop)
                    if records is None:  # stopped while Kafka was away
                        break
                    if not records:
                        continue
                    warnings = await self.judge.detect(records, self._seen_in_warm_up)
                    await self.emit(producer, warnings)
                    await self._commit(consumer, records)
                    progress_ms = max(recv_ms_of(r) for r in records)
                    await self._retrying(
                        functools.partial(save_progress, self.pool, self.group_id, progress_ms),
                        self.database,
                    )
                    self.stats.records += len(records)
                    self.stats.batches += 1
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        log.info("analytics stopped: %s", self.stats)

    async def _commit(self, consumer: Consumer, records: Sequence[StreamRecord]) -> None:
        """Commit the batch's offsets; a failure is not fatal: the warnings are stored (once)
        and published, so records read again (after a rebalance) change nothing."""
        try:
            await patiently(consumer.commit(next_offsets(records)), self.kafka, "commit")
        except StreamError as exc:
            if is_rebalance(exc):
                log.info("analytics: offsets not committed, the group rebalanced: read again")
            else:
                self.kafka.down(exc, "commit")

    async def warm_up(self, producer: Producer) -> None:
        """Replay the telemetry stored in the ``analytics_warmup_s`` seconds before this group's
        last commit through the detectors, then store and publish what it reveals that was not
        found before (nothing to do on a group's first start)."""
        window_s = self.settings.analytics_warmup_s
        if window_s == 0:
            return
        progress_ms = await self._retrying(
            lambda: load_progress(self.pool, self.group_id), self.database
        )
        if progress_ms is None:
            log.info("analytics warm-up: group %s has no progress yet, nothing to replay",
                     self.group_id)  # fmt: skip
            return
        started = time.monotonic()
        records = await self._retrying(
            lambda: recent_telemetry(
                self.pool,
                since_ms=progress_ms - window_s * 1000,
                until_ms=progress_ms + _REPLAY_MARGIN_MS,
                limit=self.settings.analytics_warmup_rows,
            ),
            self.database,
        )
        found: list[Warning] = []
        step = self.settings.batch_size
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            points = [r for r in chunk if isinstance(r, Point)]
            reports = [r for r in chunk if isinstance(r, RsuReport)]
            found.extend(await self.judge.judge(points, reports))
        self._replayed = {(r.device_id, r.seq) for r in records}
        self._replayed_until_ms = max((r.recv_ms for r in records), default=0)
        fresh = await self._retrying(lambda: fresh_warnings(self.pool, found), self.database)
        await self.emit(producer, fresh)
        self.stats.warmup_records = len(records)
        self.stats.warmup_seconds = time.monotonic() - started
        log.info("analytics warm-up: %d stored records of the %d s before the last commit "
                 "replayed in %.1f s; %d warnings, %d of them new", len(records), window_s,
                 self.stats.warmup_seconds, len(found), len(fresh))  # fmt: skip

    def _seen_in_warm_up(self, device_id: str, seq: int, recv_ms: int) -> bool:
        if not self._replayed:
            return False
        if recv_ms > self._replayed_until_ms + _REPLAY_MARGIN_MS:
            # The stream is past everything the warm-up read: forget it.
            self._replayed.clear()
            return False
        if (device_id, seq) in self._replayed:
            self.stats.warmup_skipped += 1
            return True
        return False

    async def emit(self, producer: Producer, warnings: Sequence[Warning]) -> None:
        """Store the warnings (once) and publish them all, acknowledged, on ``warnings``."""
        if not warnings:
            return
        new = await self._retrying(lambda: store_warnings(self.pool, warnings), self.database)
        self.stats.stored += len(new)
        for warning in {w.warning_id: w for w in warnings}.values():  # a batch may repeat one
            if warning.warning_id in new:
                self.stats.by_type[warning.type.value] += 1
                log.info("warning %s %s %s", warning.type.value, warning.device_id or
                         warning.segment_id, warning.warning_id)  # fmt: skip
        out = [
            OutgoingRecord(
                (w.device_id or str(w.segment_id)).encode(),
                w.to_json(),
                (("warning_id", w.warning_id.encode()), ("type", w.type.value.encode())),
            )
            for w in warnings
        ]

        async def publish() -> None:
            await (await producer.send_many(self.warnings_topic, out))

        # At least once: a publish repeated after a failure may duplicate (readers dedupe).
        await self._retrying(lambda: patiently(publish(), self.kafka, "publish"), self.kafka)
