"""``roadledger analytics``: warnings from the verified stream; scoring against ground truth."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from roadledger.errors import CommandError
from roadledger.settings import Settings

if TYPE_CHECKING:
    from analytics.warnings.model import Warning

HELP = "warnings from the stream (run), and their precision/recall against a truth file (score)"
DESCRIPTION = """\
run: consumes telemetry.verified and telemetry.quarantine (consumer group
roadledger-analytics), detects odometer rollbacks, teleports, late (silent) devices, forged
signatures, tampered payloads, replays, conflicts, unknown devices, revoked-key use and clock
skew, stores each warning once in PostgreSQL (table warnings) and publishes it on the warnings
topic. Thresholds come from the published rules in force at each record's time (roadledger rules,
docs/rules.md), reloaded every 30 s; the built-in defaults where none is published.

score: compares the warnings stored in the database with the `warning` lines of a
`roadledger sim --truth` file: precision and recall per warning type (docs/warnings.md says
how warnings are matched to events). Exit status 1 when a type is below --floor.

examples:
  roadledger analytics run                       # until Ctrl-C / SIGTERM
  roadledger analytics score run.jsonl --floor 0.95"""


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("run", help="detect, store and publish warnings until stopped")
    score = sub.add_parser("score", help="score stored warnings against a truth file")
    score.add_argument("truth", type=Path, help="truth file written by `roadledger sim --truth`")
    score.add_argument(
        "--floor", type=float, default=0.95, help="least precision and recall per type (0.95)"
    )
    score.add_argument(
        "--tolerance-ms",
        type=int,
        default=10_000,
        help="how far outside an event's time span a warning may lie and still match (10000)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "score":
        return _score(args, settings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(settings))
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from analytics.scoring import score_warnings
    from device_sim.truth import read_truth

    if not 0 <= args.floor <= 1:
        raise CommandError(f"--floor must be between 0 and 1, got {args.floor}", 2)
    if not args.truth.is_file():
        raise CommandError(f"truth file {args.truth} does not exist", 2)
    truth = read_truth(args.truth)
    warnings = asyncio.run(_load(settings))
    report = score_warnings(truth.warnings, warnings, tolerance_ms=args.tolerance_ms)
    print(report.table())
    missed = report.below(args.floor)
    if missed:
        print(f"below {args.floor}: {', '.join(missed)}")
        return 1
    print(f"every warning type at or above {args.floor}")
    return 0


async def _load(settings: Settings) -> list[Warning]:
    from analytics.warnings.store import load_warnings
    from roadledger.db.pool import create_pool

    pool = await create_pool(settings, max_size=1)
    try:
        return await load_warnings(pool)
    finally:
        await pool.close()


async def _serve(settings: Settings) -> None:
    from analytics.rules.store import load_rulebook
    from analytics.warnings.engine import AnalyticsEngine
    from roadledger.db.pool import create_pool
    from roadledger.db.schema import apply_schema
    from roadledger.stream.kafka import KafkaStream

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pool = await create_pool(settings, max_size=4)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)

        engine = AnalyticsEngine(
            settings, KafkaStream(settings), pool, load_rules=functools.partial(load_rulebook, pool)
        )
        await engine.run(stop)
        print(f"analytics: stopped after {engine.stats.records} records, "
              f"{engine.stats.stored} warnings stored")  # fmt: skip
    finally:
        await pool.close()
