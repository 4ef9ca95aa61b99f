"""The ingest verifier: ``telemetry.raw`` -> ``telemetry.verified`` | ``telemetry.quarantine``.

Each batch from the consumer group ``roadledger-verifier`` goes through four steps:

1. **classify** every record (:mod:`ingest.classify`: size, envelope, record key = ``kid``,
   known device, signature, schema and kind, key validity at ``ts``, clock), in worker
   processes (:mod:`ingest.classifier_pool`), with keys from a :class:`~ingest.key_cache.KeyCache`;
2. **claim** the accepted ones in ``device_messages`` (:mod:`ingest.dedupe`, one round trip):
   new, our own replay, duplicate or conflict; a conflict with a *void* claim (its key revoked
   from before its ``ts``) supersedes it, and each forwarded message's hash-chain links to
   its stored neighbours are checked (:mod:`ingest.chain_links`: a broken link is forwarded
   with a ``chain_broken`` header, not quarantined; the verdicts come from the stored rows,
   so a re-read after a crash repeats them);
3. **produce** every record to exactly one topic and await every acknowledgement: forwarded
   ones verbatim to ``telemetry.verified`` (key = device id, headers ``recv_ms``, ``src``),
   the others verbatim to ``telemetry.quarantine`` (key = record key, headers ``reason``,
   ``detail``, ``recv_ms``, ``src``). ``src`` is ``raw:<partition>:<offset>``. Which topic
   and which headers: :mod:`ingest.verifier_routing`;
4. **commit** the batch's offsets.

Why this order survives a SIGKILL anywhere (at least once, nothing lost, no wrong verdict):

- Killed before the claim (2): nothing happened that a re-read does not redo.
- Killed between the claim (2) and the end of the produce (3): the rows are durable but the
  records may not have reached their topics. The records are read again after the restart,
  because their offsets were not committed. Each re-read accepted record finds *its own* row:
  same hash and same source (raw partition and offset). That is the "replay" outcome, which
  forwards again; so the row written before the produce never turns a message into a
  ``duplicate`` and never loses it. A real duplicate has another source, so it stays a
  duplicate, and a conflict stays a conflict: every verdict after a restart is the one the
  first run made. A superseding claim finds its own row too (a replay), and the chain flags
  come from the same stored rows. The one exception is the registry changing in between: a
  key revoked (from before a record's ``ts``) between the first read and the re-read turns an
  acceptance into ``revoked_key``, or a ``conflict`` with the key's claim into a supersession;
  the record is then in both topics, with the same ``src``, each verdict right when made.
- Killed between the produce (3) and the commit (4): the batch is produced again. Forwarded
  records appear twice in ``telemetry.verified``, quarantined ones twice in
  ``telemetry.quarantine``, each copy with the same ``src`` header. This is the documented
  at-least-once case: the store writer is idempotent on (device, seq) and the ledger dedupes
  leaf hashes; quarantine readers count distinct ``src``.
- The commit (4) comes only after every produce future resolved (``acks=all``), so a
  committed record is always durably in its topic.

Why the claim comes *before* the produce, not after: the claim (``INSERT ... ON CONFLICT DO
NOTHING``) is the atomic decision. For each (device, seq) exactly one set of bytes can ever
win, even when two verifiers handle the same device at once (during a rebalance hand-over, or
when a device's raw partition changed because the topic was given more partitions), so
``telemetry.verified`` never carries two different messages for one (device, seq). Deciding
from a read, producing, then recording leaves a window in which two verifiers both read "no
row" and both forward. And every record in ``telemetry.verified`` has its row, so
``device_messages`` indexes everything ever forwarded. The price is the replay rule above: a
crash after the claim must not turn a record into its own duplicate.

Pipelining: while batch N is being claimed, produced and committed (a task), batch N+1 is
fetched and classified (step 1, which has no side effects); its claim waits until batch N is
committed. So claims, produces and commits keep batch order, at most two batches are open, and
a crash abandons at most one batch that had side effects. ``revoked`` (a rebalance) waits
until every open batch is committed, so a partition is never handed over half done.

Duplicates go to the quarantine (reason ``duplicate``) like every other rejection, so every
record of ``telemetry.raw`` ends in exactly one of the two topics (replays of old messages are
visible to analytics). Per-reason counters are logged every ``stats_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Sequence
from typing import Final

import asyncpg

from contracts.topics import QUARANTINE, RAW, VERIFIED, recv_ms_of
from ingest.chain_links import settle_claims
from ingest.classifier_pool import ClassifierPool
from ingest.classify import ClassifyInput, Limits, Verdict, device_id_of
from ingest.dedupe import DeviceMessageStore, PostgresDeviceMessages
from ingest.key_cache import KeyCache, KeyLookup
from ingest.verifier_routing import (
    Decision,
    VerifierStats,
    bridge_dropped,
    claims_of,
    decisions_of,
)
from roadledger.resilience import Dependency, RetryPolicy, is_rebalance, patiently
from roadledger.settings import Settings
from roadledger.stream import (
    Consumer,
    OutgoingRecord,
    Producer,
    Stream,
    StreamRecord,
    TopicPartition,
    next_offsets,
)
from roadledger.stream.errors import StreamError

__all__ = ["GROUP_ID", "Verifier"]

log = logging.getLogger(__name__)

GROUP_ID: Final = "roadledger-verifier"
_POLL_MS: Final = 250


class Verifier:
    """Verifies ``raw_topic`` into ``verified_topic`` / ``quarantine_topic`` until stopped.

    Topics and group default to DESIGN.md's names with ``settings.topic_prefix``.

    ``pool``: the asyncpg pool holding ``device_messages`` (or any
    :class:`~ingest.dedupe.DeviceMessageStore`, e.g. an in-memory one in tests). ``keys``: the
    device registry or any :class:`~ingest.key_cache.KeyLookup`; it is wrapped in a
    :class:`~ingest.key_cache.KeyCache`. Batches of ``settings.batch_size`` records are
    classified in ``settings.verify_workers`` processes, or by ``classifier`` (then the
    caller starts and closes it).
    """

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        pool: asyncpg.Pool | DeviceMessageStore,
        keys: KeyLookup | KeyCache,
        *,
        raw_topic: str | None = None,
        verified_topic: str | None = None,
        quarantine_topic: str | None = None,
        group_id: str | None = None,
        client_id: str = "roadledger-verifier",
        key_refresh_s: float = 3.0,
        stats_interval_s: float = 30.0,
        classifier: ClassifierPool | None = None,
        retry: RetryPolicy | None = None,
        database: Dependency | None = None,
        kafka: Dependency | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.messages: DeviceMessageStore = (
            PostgresDeviceMessages(pool) if isinstance(pool, asyncpg.Pool) else pool
        )
        self.keys = (
            keys if isinstance(keys, KeyCache) else KeyCache(keys, refresh_interval_s=key_refresh_s)
        )
        self.raw_topic = raw_topic or settings.topic(RAW)
        self.verified_topic = verified_topic or settings.topic(VERIFIED)
        self.quarantine_topic = quarantine_topic or settings.topic(QUARANTINE)
        self.group_id = group_id or settings.group(GROUP_ID)
        self.client_id = client_id
        self.limits = Limits.from_settings(settings)
        self.stats = VerifierStats()
        self.stats_interval_s = stats_interval_s
        # A classifier passed in is the caller's to start and close (e.g. shared, pre-started).
        self._own_classifier = classifier is None
        self._classifier = classifier or ClassifierPool(settings.verify_workers)
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._open_batches = 0  # fetched, not yet committed (or abandoned)
        self._idle = asyncio.Condition()
        # Shared with the process's other components: one outage, one pair of log lines.
        self.database = database or Dependency("PostgreSQL", log)
        self.kafka = kafka or Dependency("Kafka", log)
        self._retry = retry or RetryPolicy()
        self._stop = asyncio.Event()

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Verify until ``stop`` is set; the batch under way is finished and committed first.

        Outages of PostgreSQL or Kafka are waited out (backoff, one log line each way): every
        step of a batch is safe to repeat (see the module docstring), so a failed step is
        retried, and a batch abandoned at ``stop`` is read again by the next run.
        """
        self._stop = stop
        producer = self.stream.producer(client_id=self.client_id)
        consumer = self.stream.consumer(
            [self.raw_topic], group_id=self.group_id, client_id=self.client_id, listener=self
        )
        async with contextlib.AsyncExitStack() as resources:
            if self._own_classifier:
                await resources.enter_async_context(self._classifier)
            if not await self._retry.run(producer.start, self.kafka, stop):
                return
            try:
                if not await self._retry.run(consumer.start, self.kafka, stop):
                    return
                self._producer, self._consumer = producer, consumer
                try:
                    await self._loop(consumer, stop)
                finally:
                    self._consumer = None
                    await consumer.stop()
            finally:
                self._producer = None
                await producer.stop()
        self._log_stats()

    async def _loop(self, consumer: Consumer, stop: asyncio.Event) -> None:
        log.info(
            "verifier started: %s -> %s | %s, group %s, %d worker(s)",
            self.raw_topic,
            self.verified_topic,
            self.quarantine_topic,
            self.group_id,
            self._classifier.workers,
        )
        logged_at = time.monotonic()
        finishing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                fetch = functools.partial(
                    consumer.getmany, timeout_ms=_POLL_MS, max_records=self.settings.batch_size
                )
                records = await self._retry.call(fetch, self.kafka, stop)
                if records is None:  # stopped while Kafka was away
                    break
                if records:
                    self._open_batches += 1
                    classified = await self._retry.call(
                        functools.partial(self.classify, records), self.database, stop
                    )
                    if classified is None:  # stopped during an outage: read again next run
                        self._open_batches -= 1
                        break
                    verdicts = classified
                    if finishing is not None:
                        await finishing  # claims, produces and commits stay in batch order
                    finishing = asyncio.create_task(self._finish(consumer, records, verdicts))
                elif finishing is not None and finishing.done():
                    await finishing  # surface its error now rather than at the next batch
                    finishing = None
                if time.monotonic() - logged_at >= self.stats_interval_s:
                    logged_at = time.monotonic()
                    self._log_stats()
            if finishing is not None:
                await finishing
        finally:
            if finishing is not None and not finishing.done():
                finishing.cancel()  # we are being cancelled or failed: abandon, uncommitted
                await asyncio.wait([finishing])
            # Batches not finished now never will be: a rebalance must not wait for them.
            async with self._idle:
                self._open_batches = 0
                self._idle.notify_all()

    async def _finish(
        self, consumer: Consumer, records: Sequence[StreamRecord], verdicts: Sequence[Verdict]
    ) -> None:
        """Claim, produce, await every acknowledgement, then commit: see the module docstring.

        A claim or produce that fails for an outage is repeated (the claim finds its own rows:
        a replay; a second produce is the documented at-least-once copy). Stopped meanwhile,
        the batch is abandoned uncommitted. A failed commit is not: the next one covers it.
        """
        stop = self._stop
        try:
            settled = await self._retry.call(
                lambda: self.settle(records, verdicts), self.database, stop
            )
            if settled is None:
                return
            decisions = settled
            # A paused broker holds deliveries and commits: patiently() reports it.
            emitted = self._retry.run(
                lambda: patiently(self._emit(decisions), self.kafka, "produce"), self.kafka, stop
            )
            if not await emitted:
                return
            try:
                await patiently(consumer.commit(next_offsets(records)), self.kafka, "commit")
            except StreamError as exc:
                # Produced and durable: re-read after a rebalance, they replay to the same
                # verdicts (module docstring). Later commits cover these offsets otherwise.
                if is_rebalance(exc):
                    log.info("verifier: offsets not committed, the group rebalanced: read again")
                else:
                    self.kafka.down(exc, "commit")
            self.stats.count(decisions)
        finally:
            async with self._idle:
                self._open_batches -= 1
                self._idle.notify_all()

    # --- one batch ----------------------------------------------------------------------------

    async def classify(self, records: Sequence[StreamRecord]) -> list[Verdict]:
        """Every per-message check of one batch (no side effects: safe to run ahead)."""
        dropped = [bridge_dropped(r) for r in records]
        kept = [r for r, verdict in zip(records, dropped, strict=True) if verdict is None]
        inputs = [ClassifyInput(r.value, r.key, recv_ms_of(r)) for r in kept]
        device_ids = {device_id_of(r.key) for r in kept}
        keys = await self.keys.keys_for(d for d in device_ids if d is not None)
        classified = iter(await self._classifier.classify(inputs, keys, self.limits))
        return [verdict if verdict is not None else next(classified) for verdict in dropped]

    async def settle(
        self, records: Sequence[StreamRecord], verdicts: Sequence[Verdict]
    ) -> list[Decision]:
        """Claim the accepted records of a batch in ``device_messages``; where each one goes."""
        claims = claims_of(records, verdicts)
        keys = await self.keys.keys_for({c.device_id for c in claims}) if claims else {}
        settled = await settle_claims(self.messages, claims, keys)
        return decisions_of(records, verdicts, iter(settled))

    async def decide(self, records: Sequence[StreamRecord]) -> list[Decision]:
        """:meth:`classify` and :meth:`settle` one batch (claims the accepted ones)."""
        return await self.settle(records, await self.classify(records))

    async def _emit(self, decisions: Sequence[Decision]) -> None:
        """Produce each record to its topic and wait until every one is acknowledged."""
        producer = self._producer
        assert producer is not None, "Verifier._emit outside run()"
        forwarded: list[OutgoingRecord] = []
        quarantined: list[OutgoingRecord] = []
        for d in decisions:
            out = forwarded if d.reason is None else quarantined
            out.append(OutgoingRecord(d.record.key, d.record.value, d.headers()))
        deliveries = []
        if forwarded:
            deliveries.append(await producer.send_many(self.verified_topic, forwarded))
        if quarantined:
            deliveries.append(await producer.send_many(self.quarantine_topic, quarantined))
        await asyncio.gather(*deliveries)

    def _log_stats(self) -> None:
        counts = self.stats.snapshot()
        log.info(
            "verifier counts %s",
            " ".join(f"{name}={value}" for name, value in counts.items()),
            extra={"counts": counts},
        )

    # --- PartitionsListener -------------------------------------------------------------------

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Wait for the batches under way: produced and committed before the handover."""
        async with self._idle:
            await self._idle.wait_for(lambda: self._open_batches == 0)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Nothing to prepare: the committed offsets and ``device_messages`` are the state."""
