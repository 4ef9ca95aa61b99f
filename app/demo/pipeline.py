"""The pipeline's components as asyncio tasks on one stream and one PostgreSQL pool."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

    from analytics.warnings.engine import AnalyticsEngine
    from ingest.bridge import Bridge
    from ingest.ledger_writer import LedgerWriter
    from ingest.store_writer import StoreWriter
    from ingest.verifier import Verifier
    from roadledger.settings import Settings
    from roadledger.stream import Producer, Stream

__all__ = ["Pipeline", "PipelineCounts"]


@dataclass(frozen=True, slots=True)
class PipelineCounts:
    """A snapshot of every component's counters."""

    bridged: int = 0
    raw: int = 0
    verified: int = 0
    replayed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    stored_records: int = 0
    stored_rows: int = 0
    stored_new: int = 0
    observations: int = 0
    ledger_entries: int = 0
    ledger_blocks: int = 0
    tree_sizes: dict[int, int] = field(default_factory=dict)

    @property
    def quarantined(self) -> int:
        return sum(self.rejected.values())


class Pipeline:
    """Bridge, verifier, store writer, ledger writer and outbox relay, started by
    :meth:`start` as tasks that run until :attr:`stop` is set (or one of them fails)."""

    def __init__(self, settings: Settings, stream: Stream, pool: asyncpg.Pool) -> None:
        from analytics.warnings.engine import AnalyticsEngine
        from contracts.topics import VERIFIED
        from ingest.bridge import Bridge
        from ingest.classifier_pool import ClassifierPool
        from ingest.ledger_writer import LedgerWriter
        from ingest.store_writer import StoreWriter
        from ingest.verifier import Verifier
        from roadledger.db.ledger_store import PostgresLedgerStore
        from roadledger.log_key import load_log_key
        from roadledger.registry import DeviceRegistry
        from roadledger.rules_store import load_rulebook

        self.settings = settings
        self.stream = stream
        self.pool = pool
        self.stop = asyncio.Event()
        verified = settings.topic(VERIFIED)
        self.verified_topic = verified
        self.bridge: Bridge = Bridge(settings, stream)
        # Started (and closed) here rather than by the verifier: see _start_classifier.
        self.classifier = ClassifierPool(settings.verify_workers)
        self.verifier: Verifier = Verifier(
            settings,
            stream,
            pool,
            DeviceRegistry(pool),
            stats_interval_s=3600.0,
            classifier=self.classifier,
        )
        self.store: StoreWriter = StoreWriter(
            settings,
            stream,
            pool,
            topic=verified,
            group_id=settings.group("roadledger-store"),
        )
        self.ledger: LedgerWriter = LedgerWriter(
            settings,
            stream,
            PostgresLedgerStore(pool),
            load_log_key(settings),
            topic=verified,
            group_id=settings.group("roadledger-ledger"),
        )
        self.analytics: AnalyticsEngine = AnalyticsEngine(
            settings, stream, pool, load_rules=functools.partial(load_rulebook, pool)
        )
        self._producer: Producer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, subscribe_timeout_s: float = 30.0) -> None:
        """Start every component; return once the bridge's MQTT subscription is confirmed."""
        from app.commands.ingest import Component, run_components
        from ingest.outbox_relay import run_outbox_relay

        await self._start_classifier()
        producer = self.stream.producer(client_id="roadledger-outbox")
        await producer.start()
        self._producer = producer
        stop, pool, topic = self.stop, self.pool, self.verified_topic

        class _Relay:
            async def run(self, stop: asyncio.Event) -> None:
                await run_outbox_relay(pool, producer, stop, topic=topic)

        class _Bridge:
            def __init__(self, bridge: Bridge) -> None:
                self.bridge = bridge

            async def run(self, stop: asyncio.Event) -> None:
                await self.bridge.run(stop)

        components: list[Component] = [
            _Bridge(self.bridge),
            self.verifier,
            self.store,
            self.ledger,
            self.analytics,
            _Relay(),
        ]
        self._task = asyncio.create_task(run_components(components, stop), name="demo-pipeline")
        subscribed = asyncio.ensure_future(self.bridge.wait_subscribed())
        done, _ = await asyncio.wait(
            [subscribed, self._task],
            timeout=subscribe_timeout_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if subscribed not in done:
            subscribed.cancel()
            if self._task in done:
                await self.close()  # raises the component's error
            raise TimeoutError(f"the bridge did not subscribe within {subscribe_timeout_s:g} s")

    async def _start_classifier(self) -> None:
        """Start the verifier's worker processes so that a Ctrl-C cannot kill them mid-start.

        A Ctrl-C in a terminal reaches the whole process group, and the workers ignore SIGINT
        only once they have imported the checks (about a second): one arriving meanwhile
        killed them and broke the pool. A spawned child inherits an *ignored* SIGINT (not a
        blocked one, not a handler), so SIGINT is ignored here just while the pool's first
        step spawns them (synchronously, before its first await), which is milliseconds.
        """
        previous = signal.getsignal(signal.SIGINT)
        restorable = previous is not None and threading.current_thread() is threading.main_thread()
        if restorable:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        starting = asyncio.ensure_future(self.classifier.start())
        try:
            await asyncio.sleep(0)  # the task's first step runs: the processes are spawned
        finally:
            if restorable:
                signal.signal(signal.SIGINT, previous)
        await starting

    @property
    def failed(self) -> bool:
        """A component ended (they only end on their own when one failed)."""
        return self._task is not None and self._task.done()

    def counts(self) -> PipelineCounts:
        verifier, store, ledger = self.verifier.stats, self.store.totals, self.ledger.stats
        return PipelineCounts(
            bridged=self.bridge.stats().produced,
            raw=verifier.received,
            verified=verifier.forwarded,
            replayed=verifier.replayed,
            rejected=Counter(verifier.rejected),
            stored_records=store.records,
            stored_rows=store.telemetry,
            stored_new=store.telemetry_inserted,
            observations=store.observations_inserted,
            ledger_entries=ledger.entries,
            ledger_blocks=ledger.blocks,
            tree_sizes=dict(ledger.tree_sizes),
        )

    def drained(self, published: int) -> bool:
        """Everything published went through every component."""
        c = self.counts()
        return (
            c.bridged >= published
            and c.raw >= published
            and c.stored_rows >= c.verified
            and c.ledger_entries >= c.stored_records
            and self.analytics.stats.records >= c.verified + c.quarantined
        )

    async def close(self) -> None:
        """Stop every component (each finishes its batch), then the outbox producer."""
        self.stop.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                self._producer = None
            await self.classifier.close()
