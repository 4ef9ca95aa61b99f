"""``roadledger ingest``: the ingest components on Kafka and PostgreSQL, until stopped.

Two components: the verifier (``ingest/verifier.py``) and the store writer
(``ingest/store_writer.py``), each its own consumer group. Every component has
``async run(stop)``: it works until ``stop`` is set, then finishes the batch under way,
commits and returns. SIGTERM or SIGINT sets ``stop``; a second one stops at once (the
stream's at-least-once delivery makes that safe too, only slower to recover).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from contracts.errors import CommandError

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "verify raw telemetry into telemetry.verified, or telemetry.quarantine with a reason"

DESCRIPTION = """\
Consumes telemetry.raw (consumer group roadledger-verifier) and checks every record, in this
order; the first failure decides the reason code:

  oversize         more than 16,384 bytes (checked before any parsing)
  malformed        not a compact JWS: segments, base64url, whitespace, JSON, 64-byte signature
  unsupported_alg  alg other than Ed25519 / EdDSA (none, HS256, ...)
  bad_header       header members missing or not allowed; kid is not the device id of the
                   MQTT topic the message came on; kid differs from the payload's dev
  unknown_device   no key was ever registered for the device
  bad_signature    the signature verifies under none of the device's keys
  schema           payload members, types or ranges; vehicle/RSU kind differs from the key's
  revoked_key      the key that signed was not valid at the message's ts (revoked before it,
                   or not yet valid); messages from before a revocation stay valid
  clock_skew       ts later than receive time + ROADLEDGER_CLOCK_SKEW_MS, or older than
                   ROADLEDGER_MAX_MESSAGE_AGE_MS when received
  duplicate        the same bytes were accepted before from another raw record
  conflict         other bytes were accepted before for the same (device, seq)

Valid records go verbatim to telemetry.verified (key = device id; headers recv_ms, src =
raw:<partition>:<offset>); all others verbatim to telemetry.quarantine with headers reason,
detail, recv_ms and src. Offsets are committed only after every record of a batch was
acknowledged by Kafka, so a crash loses nothing; the records of an uncommitted batch are
verified and forwarded again after a restart, with the same verdicts (device_messages keeps
the first accepted bytes per (device, seq) and where they came from).

Configuration: ROADLEDGER_VERIFY_WORKERS processes that run the checks (0: in-process),
ROADLEDGER_BATCH_SIZE records per batch, ROADLEDGER_CLOCK_SKEW_MS, ROADLEDGER_MAX_MESSAGE_AGE_MS,
ROADLEDGER_KAFKA_BOOTSTRAP, ROADLEDGER_DATABASE_URL. Device keys come from the registry
(`roadledger devices`) and are re-read every 3 seconds, so a revocation applies within that.

The store writer (consumer group roadledger-store) writes telemetry.verified into PostgreSQL
(TimescaleDB hypertables when the server has the extension, day partitions otherwise) with
binary COPY, idempotent on (device, seq, ts), committing offsets after the database commit.

examples:
  roadledger ingest                           # both, until Ctrl-C / SIGTERM
  roadledger ingest --only store              # just the store writer
  ROADLEDGER_VERIFY_WORKERS=0 roadledger ingest --stats-interval 5"""


class Component(Protocol):
    """What ``roadledger ingest`` runs: works until ``stop`` is set, then returns."""

    async def run(self, stop: asyncio.Event) -> None: ...


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        choices=("verifier", "store"),
        help="run one component (default: both the verifier and the store writer)",
    )
    parser.add_argument(
        "--stats-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how often to log the per-reason counters (default 30)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.stats_interval <= 0:
        raise CommandError("--stats-interval must be positive", 2)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    from roadledger.resilience import quiet_client_retries

    quiet_client_retries()
    asyncio.run(_main(settings, args.stats_interval, args.only))
    return 0


async def _main(settings: Settings, stats_interval_s: float, only: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal() -> None:
        stop.set()
        for signum in signals:  # a second signal takes the default action: stop at once
            loop.remove_signal_handler(signum)

    for signum in signals:
        loop.add_signal_handler(signum, on_signal)
    from roadledger.resilience import serve_until_stopped

    # The grace is short: a SIGTERM during an outage must end the process within seconds.
    await serve_until_stopped(
        serve(settings, stop, stats_interval_s=stats_interval_s, only=only),
        stop,
        grace_s=2.0,
        cleanup_s=1.5,
    )


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    stats_interval_s: float = 30.0,
    only: str | None = None,
) -> None:
    """Run the verifier and the store writer on Kafka and PostgreSQL until ``stop`` is set."""

    from contracts.topics import VERIFIED
    from ingest.store_writer import StoreWriter
    from ingest.verifier import Verifier
    from roadledger.db.pool import wait_for_pool
    from roadledger.db.schema import apply_schema
    from roadledger.health import start_reporting_health
    from roadledger.metrics import MetricsBoard
    from roadledger.registry import DeviceRegistry
    from roadledger.resilience import Dependency, RetryPolicy
    from roadledger.stream.errors import StreamError
    from roadledger.stream.lag import watch_lag
    from roadledger.stream.opening import open_stream

    # One per service for the whole process: an outage is one line down and one line back,
    # however many of the components notice it.
    log = logging.getLogger("roadledger.ingest")
    database, kafka = Dependency("PostgreSQL", log), Dependency("Kafka", log)
    component = "ingest" if only is None else f"ingest-{only}"
    board = MetricsBoard()  # the verifier and the store writer join once they exist
    start_reporting_health(settings, component, [database, kafka], stop, metrics=board)
    pool = await wait_for_pool(
        settings, stop, database, max_size=4
    )  # a wrong password: DatabaseUnavailable, one line
    if pool is None:
        return
    try:

        async def schema() -> None:
            async with pool.acquire() as conn:
                await apply_schema(conn, retention_days=settings.retention_days)

        if not await RetryPolicy().run(schema, database, stop):
            return
        stream = open_stream(settings)
        board.add(watch_lag(stream, stop, settings.health_interval_s))
        verifier = Verifier(
            settings,
            stream,
            pool,
            DeviceRegistry(pool),
            stats_interval_s=stats_interval_s,
            database=database,
            kafka=kafka,
        )
        store = StoreWriter(
            settings,
            stream,
            pool,
            topic=settings.topic(VERIFIED),
            group_id=settings.group("roadledger-store"),
            database=database,
            kafka=kafka,
        )
        components: list[Component] = []
        if only in (None, "verifier"):
            components.append(verifier)
            board.add(verifier.stats.samples)
        if only in (None, "store"):
            components.append(store)
            board.add(lambda: store.totals.samples())
        try:
            await run_components(components, stop)
        except StreamError as exc:
            raise CommandError(str(exc)) from None
        if only in (None, "verifier"):
            counts = verifier.stats.snapshot()
            print("ingest: verifier stopped; " + " ".join(f"{k}={v}" for k, v in counts.items()))
        if only in (None, "store"):
            print(f"ingest: store writer stopped; {store.totals}")
    finally:
        try:
            await asyncio.wait_for(pool.close(), timeout=1)
        except Exception:  # a server that is down or paused: the process is ending anyway
            pool.terminate()


async def run_components(components: Sequence[Component], stop: asyncio.Event) -> None:
    """Run every component until ``stop``; if one fails, stop the others, then raise."""

    async def guarded(component: Component) -> None:
        try:
            await component.run(stop)
        finally:
            stop.set()  # one component ending (or failing) stops them all

    results = await asyncio.gather(*(guarded(c) for c in components), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
