"""``roadledger ledger check``: is every stored message in the ledger, and is each log whole?"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from app.commands._args import non_negative_int
from contracts.errors import CommandError

if TYPE_CHECKING:
    from roadledger.db.ledger_check import LedgerReport
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "check the ledger against the stored telemetry: rows without a leaf, broken logs"

DESCRIPTION = """\
Compares what the store writer kept with what the sequencer logged, in the database named by
ROADLEDGER_DATABASE_URL:

  - every stored telemetry row and RSU report must be a leaf of some log (matched by the RFC
    9162 leaf hash of its verbatim JWS); a row without a leaf is a message the ledger lost;
  - every log must hold as many entries as its tree size, with no hole in the leaf indices,
    no leaf twice, and a root (recomputed from the stored nodes) equal to its checkpoint's.

Rows received in the last --settle seconds are left out: they may still be on their way to the
sequencer. Exit status: 0 all consistent, 1 something is missing or inconsistent (each item is
printed), 2 the database cannot be read.

examples:
  roadledger ledger check                 # a running pipeline: rows older than 60 s
  roadledger ledger check --settle 0      # a quiet pipeline: every row counts"""


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="ledger_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check", help=HELP, description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    check.add_argument(
        "--settle",
        type=non_negative_int,
        default=60,
        metavar="SECONDS",
        help="leave out rows received in the last SECONDS (default 60)",
    )
    check.add_argument(
        "--show",
        type=non_negative_int,
        default=20,
        metavar="N",
        help="print at most N of the rows without a leaf (default 20)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the check; print the report; 0 when consistent."""
    settled_before = datetime.now(UTC) - timedelta(seconds=args.settle) if args.settle else None
    report = asyncio.run(_check(settings, settled_before))
    for log in report.logs:
        problems = log.problems
        state = "ok" if not problems else "BROKEN: " + "; ".join(problems)
        print(f"{log.origin}: {log.tree_size} leaves, {state}")
    print(
        f"stored: {report.telemetry_rows} telemetry rows, {report.rsu_reports} RSU reports; "
        f"without a leaf: {len(report.missing)}"
    )
    for row in report.missing[: args.show]:
        print(f"  missing {row.device_id} seq {row.seq} ({row.ts.isoformat()})")
    if len(report.missing) > args.show:
        print(f"  ... and {len(report.missing) - args.show} more")
    print("ledger check: " + ("consistent" if report.ok else "INCONSISTENT"))
    return 0 if report.ok else 1


async def _check(settings: Settings, settled_before: datetime | None) -> LedgerReport:
    import asyncpg

    from roadledger.db.ledger_check import check_ledger
    from roadledger.db.pool import open_database

    pool = await open_database(settings)  # unreachable: one line, exit 2
    try:
        return await check_ledger(pool, settled_before=settled_before)
    except asyncpg.UndefinedTableError as exc:
        raise CommandError(f"this database has no RoadLedger tables ({exc})", exit_code=2) from None
    finally:
        await pool.close()
