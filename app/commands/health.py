"""``roadledger health``: is every long-running process alive and its services reachable?"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "show each long-running process's health (for operators and supervisors)"

DESCRIPTION = """\
Reads the health reports that bridge, ingest, sequencer, analytics run and forecast run --every
write every ROADLEDGER_HEALTH_INTERVAL_S seconds (default 5) into ROADLEDGER_HEALTH_DIR
(default <data dir>/health), and judges each process:

  ok        every service it needs is up
  degraded  a service is down; the process is waiting it out (backoff, one log line)
  stale     no report for --stale-after seconds: killed, crashed, or its event loop is stuck
  stopped   it ended cleanly

Exit status: 0 when every process listed (or named with --require) is ok, 1 otherwise, 2 when
there is no report at all. A supervisor can use it as a health check.

examples:
  roadledger health
  roadledger health --require sequencer --require ingest   # these two must be ok"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stale-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="a report older than this is stale (default: 3 reporting intervals)",
    )
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="NAME",
        help="judge only these processes (file names without .json); a missing one fails",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print one line per process; the exit status says whether all are ok."""
    from roadledger.health import read_health

    stale_after = args.stale_after or 3 * settings.health_interval_s
    reports = read_health(settings.health_path, stale_after_s=stale_after)
    if args.require:
        known = {report.name for report in reports}
        missing = [name for name in args.require if name not in known]
        reports = [report for report in reports if report.name in args.require]
        for name in missing:
            print(f"{name:<24} missing   no report in {settings.health_path}")
        if missing:
            return 1
    if not reports:
        print(f"roadledger health: no process reports in {settings.health_path}")
        return 2
    for report in reports:
        pid = f"pid {report.pid}" if report.pid is not None else "pid ?"
        print(f"{report.name:<24} {report.state:<9} {pid:<10} {report.detail}")
    return 0 if all(report.ok for report in reports) else 1
