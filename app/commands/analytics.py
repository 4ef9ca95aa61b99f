"""``roadledger analytics``: warnings from the verified stream; scoring against ground truth."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.errors import CommandError
from roadledger.settings import Settings

if TYPE_CHECKING:
    from analytics.warnings.model import Warning

HELP = "warnings from the stream (run), one with its ledger evidence (show), scoring (score)"
DESCRIPTION = """\
run: consumes telemetry.verified and telemetry.quarantine (consumer group
roadledger-analytics), detects odometer rollbacks, odometer vs GNSS distance mismatches,
teleports, drifts off the road, RSU sightings that contradict a vehicle, speeding and no-entry
zones against the rules in force, congestion per segment, late (silent) devices, forged
signatures, tampered payloads, replays, conflicts, unknown devices, revoked-key use and clock
skew, stores each warning once in PostgreSQL (table warnings) and publishes it on the warnings
topic. Limits, zones and thresholds come from the published rules in force at each record's
time (roadledger rules, docs/rules.md), reloaded every 30 s and as soon as a new version passes
in the ledger; the built-in defaults where none is published.

show: one stored warning as JSON, each evidence record with its place in the ledger (log
origin and leaf index, for `roadledger proof` / the API's inclusion proofs; null while the
sequencer has not reached it).

score: compares the warnings stored in the database with the `warning` lines of a
`roadledger sim --truth` file: precision and recall per warning type (docs/warnings.md says
how warnings are matched to events). Exit status 1 when a type is below --floor.

examples:
  roadledger analytics run                       # until Ctrl-C / SIGTERM
  roadledger analytics score run.jsonl --floor 0.95
  roadledger analytics show 3f9c0a...                # a warning and its ledger evidence"""


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("run", help="detect, store and publish warnings until stopped")
    show = sub.add_parser("show", help="one warning, its evidence placed in the ledger")
    show.add_argument("warning_id", help="the warning's id (32 hex digits)")
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
    if args.action == "show":
        print(asyncio.run(_show(settings, args.warning_id)))
        return 0
    if args.action == "score":
        return _score(args, settings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    from roadledger.resilience import quiet_client_retries

    quiet_client_retries()  # aiokafka's and asyncpg's per-retry lines: the outage is one line
    asyncio.run(_serve(settings))
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    from app.scoring import score_warnings
    from device_sim.truth import read_truth

    if not 0 <= args.floor <= 1:
        raise CommandError(f"--floor must be between 0 and 1, got {args.floor}", 2)
    if not args.truth.is_file():
        raise CommandError(f"truth file {args.truth} does not exist", 2)
    truth = read_truth(args.truth)
    warnings = asyncio.run(_load(settings))
    report = score_warnings(
        truth.warnings, warnings, optional=truth.optional, tolerance_ms=args.tolerance_ms
    )
    print(report.table())
    missed = report.below(args.floor)
    if missed:
        print(f"below {args.floor}: {', '.join(missed)}")
        return 1
    print(f"every warning type at or above {args.floor}")
    return 0


async def _show(settings: Settings, warning_id: str) -> str:
    """The warning as indented JSON, its evidence with ``log`` and ``leaf_index``."""
    import json

    from analytics.warnings.store import ledger_positions, load_warning
    from roadledger.db.pool import open_database

    if not re.fullmatch(r"[0-9a-f]{32}", warning_id):
        raise CommandError(f"warning_id: expected 32 lowercase hex digits, got {warning_id!r}", 2)
    pool = await open_database(settings, max_size=1)
    try:
        warning = await load_warning(pool, warning_id)
        if warning is None:
            raise CommandError(f"no warning {warning_id}", 1)
        hashes = [e.leaf_hash for e in warning.evidence if e.leaf_hash is not None]
        placed = await ledger_positions(pool, hashes)
    finally:
        await pool.close()
    obj = json.loads(warning.to_json())
    for item, evidence in zip(obj["evidence"], warning.evidence, strict=True):
        log, index = placed.get(evidence.leaf_hash or b"", (None, None))
        item["log"], item["leaf_index"] = log, index
    return json.dumps(obj, indent=2, sort_keys=True)


async def _load(settings: Settings) -> list[Warning]:
    from analytics.warnings.store import load_warnings
    from roadledger.db.pool import open_database

    pool = await open_database(settings, max_size=1)
    try:
        return await load_warnings(pool)
    finally:
        await pool.close()


async def _serve(settings: Settings) -> None:
    from roadledger.resilience import serve_until_stopped

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # A short grace: a SIGTERM during an outage must end the process within seconds.
    await serve_until_stopped(_analyse(settings, stop), stop, grace_s=3.0, cleanup_s=1.5)


async def _analyse(settings: Settings, stop: asyncio.Event) -> None:
    """Analyse until ``stop``; PostgreSQL and Kafka outages, at start too, are waited out."""

    from analytics.warnings.engine import AnalyticsEngine
    from roadledger.db.pool import wait_for_pool
    from roadledger.db.schema import apply_schema
    from roadledger.health import start_reporting_health
    from roadledger.metrics import MetricsBoard
    from roadledger.resilience import Dependency, RetryPolicy
    from roadledger.rules_store import load_rulebook
    from roadledger.stream.lag import watch_lag
    from roadledger.stream.opening import open_stream

    log = logging.getLogger("roadledger.analytics")
    # One per service for the whole process: one line per outage.
    database, kafka = Dependency("PostgreSQL", log), Dependency("Kafka", log)
    board = MetricsBoard()  # the engine joins once it exists
    start_reporting_health(settings, "analytics", [database, kafka], stop, metrics=board)
    pool = await wait_for_pool(
        settings, stop, database, max_size=4
    )  # a wrong password: DatabaseUnavailable, one line
    if pool is None:
        return
    try:

        async def schema() -> None:
            async with pool.acquire() as conn:
                await apply_schema(conn)

        if not await RetryPolicy().run(schema, database, stop):
            return
        stream = open_stream(settings)
        board.add(watch_lag(stream, stop, settings.health_interval_s))
        engine = AnalyticsEngine(
            settings,
            stream,
            pool,
            load_rules=functools.partial(load_rulebook, pool),
            database=database,
            kafka=kafka,
        )
        board.add(engine.stats.samples)
        await engine.run(stop)
        print(f"analytics: stopped after {engine.stats.records} records, "
              f"{engine.stats.stored} warnings stored")  # fmt: skip
    finally:
        try:
            await asyncio.wait_for(pool.close(), timeout=1)
        except Exception:  # a server that is down or paused: the process is ending anyway
            pool.terminate()
