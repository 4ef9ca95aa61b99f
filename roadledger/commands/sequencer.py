"""``roadledger sequencer``: telemetry.verified -> one signed, witnessed log per partition."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

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
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    from ingest.ledger_writer import LedgerWriter
    from ingest.outbox_relay import run_outbox_relay
    from roadledger.db.ledger_store import PostgresLedgerStore
    from roadledger.db.pool import create_pool
    from roadledger.db.schema import apply_schema
    from roadledger.log_key import load_log_key
    from roadledger.stream.kafka import KafkaStream
    from roadledger.topics import VERIFIED

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pool = await create_pool(settings, max_size=8)
    stream = KafkaStream(settings)
    producer = stream.producer(client_id="roadledger-outbox")
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)
        await producer.start()
        verified = settings.topic(VERIFIED)
        writer = LedgerWriter(
            settings,
            stream,
            PostgresLedgerStore(pool),
            load_log_key(settings),
            topic=verified,
            group_id=settings.group("roadledger-ledger"),
        )
        await asyncio.gather(
            writer.run(stop), run_outbox_relay(pool, producer, stop, topic=verified)
        )
        print(f"sequencer: stopped after {writer.stats.entries} entries in "
              f"{writer.stats.blocks} blocks")  # fmt: skip
    finally:
        await producer.stop()
        await pool.close()
