"""``roadledger sequencer``: telemetry.verified -> one signed, witnessed log per partition."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from roadledger.settings import Settings

HELP = "sequence verified telemetry into the ledger (one log per Kafka partition)"
DESCRIPTION = """\
Consumes telemetry.verified and appends every entry, verbatim, to the RFC 9162 log of its
partition: one block and one signed C2SP checkpoint per batch, offsets committed only once the
block is durable. The consumer that owns a partition is its log's only writer; a fencing epoch
refuses a stale one. Also publishes registry changes (device keys) into the devices' logs.

Run as many as there are partitions to scale out; each log has origin
<ROADLEDGER_ORIGIN_PREFIX>/telemetry/<partition> and is signed with the key in
ROADLEDGER_LOG_KEY_FILE (created on first use in development).

examples:
  roadledger sequencer                 # run until Ctrl-C / SIGTERM
  roadledger sequencer --print-keys    # the verifier key of each log, for witnesses"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-keys",
        action="store_true",
        help="print each log's origin and verifier key (vkey) and exit",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from roadledger.log_key import load_log_key

    key = load_log_key(settings)
    if args.print_keys:
        for partition in range(settings.kafka_partitions):
            origin = settings.log_origin(partition)
            print(f"{origin}\t{key.vkey(origin)}")
        return 0
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    from roadledger.resilience import quiet_client_retries

    quiet_client_retries()
    asyncio.run(_main(settings))
    return 0


async def _main(settings: Settings) -> None:
    from roadledger.resilience import serve_until_stopped

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # A short grace: a SIGTERM during an outage must end the process within seconds.
    await serve_until_stopped(_serve(settings, stop), stop, grace_s=5.0)


async def _serve(settings: Settings, stop: asyncio.Event) -> None:
    """Sequence until ``stop``; PostgreSQL and Kafka outages, at start too, are waited out."""

    from contracts.topics import VERIFIED
    from ingest.ledger_writer import LedgerWriter
    from ingest.outbox_relay import run_outbox_relay
    from roadledger.db.ledger_store import PostgresLedgerStore
    from roadledger.db.pool import wait_for_pool
    from roadledger.db.schema import apply_schema
    from roadledger.health import start_reporting_health
    from roadledger.log_key import load_log_key
    from roadledger.metrics import MetricsBoard
    from roadledger.resilience import Dependency, RetryPolicy
    from roadledger.stream.lag import watch_lag
    from roadledger.stream.opening import open_stream

    log = logging.getLogger("roadledger.sequencer")
    retry = RetryPolicy()
    # One per service for the whole process: an outage is one line down and one line back.
    database, kafka = Dependency("PostgreSQL", log), Dependency("Kafka", log)
    board = MetricsBoard()  # the ledger writer joins once it exists
    start_reporting_health(settings, "sequencer", [database, kafka], stop, metrics=board)
    pool = await wait_for_pool(
        settings, stop, database, max_size=8, retry=retry
    )  # a wrong password: DatabaseUnavailable, one line
    if pool is None:
        return
    stream = open_stream(settings)
    board.add(watch_lag(stream, stop, settings.health_interval_s))
    producer = stream.producer(client_id="roadledger-outbox")
    try:

        async def schema() -> None:
            async with pool.acquire() as conn:
                await apply_schema(conn)

        if not await retry.run(schema, database, stop):
            return
        if not await retry.run(producer.start, kafka, stop):
            return
        verified = settings.topic(VERIFIED)
        writer = LedgerWriter(
            settings,
            stream,
            PostgresLedgerStore(pool),
            load_log_key(settings),
            topic=verified,
            group_id=settings.group("roadledger-ledger"),
            retry=retry,
        )
        writer.database, writer.kafka = database, kafka  # the process's, see above
        board.add(writer.stats.samples)
        relay = run_outbox_relay(
            pool, producer, stop, topic=verified, retry=retry, database=database, kafka=kafka
        )
        await asyncio.gather(writer.run(stop), relay)
        print(f"sequencer: stopped after {writer.stats.entries} entries in "
              f"{writer.stats.blocks} blocks ({writer.stats.rewinds} rewinds)")  # fmt: skip
    finally:
        await _close(producer.stop(), log)
        await _close(pool.close(), log, pool.terminate)


async def _close(
    closing: Coroutine[Any, Any, None], log: logging.Logger, abort: Callable[[], None] | None = None
) -> None:
    """Close a client, but not for longer than a few seconds: its server may be paused."""
    try:
        await asyncio.wait_for(closing, timeout=2)
    except Exception as exc:  # closing is best effort; the process is ending
        log.info("closing did not finish cleanly (%s)", type(exc).__name__)
        if abort is not None:
            abort()
