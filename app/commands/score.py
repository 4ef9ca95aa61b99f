"""``roadledger score``: a simulated scenario through the pipeline, warnings scored per type."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.commands import demo

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "run a simulated scenario through the pipeline and analytics; precision/recall per type"

DESCRIPTION = """\
Runs what `roadledger demo` runs (embedded services by default; a real service where its
ROADLEDGER_DATABASE_URL / ROADLEDGER_MQTT_URL / ROADLEDGER_KAFKA_BOOTSTRAP is set), with the
analytics engine in the pipeline, then scores the warnings it stored against the simulator's
ground truth (app.scoring: same type, same device, time spans overlapping within 10 s):
precision and recall per warning type.

examples:
  roadledger score                                          every scenario, 100 vehicles, 60 s
  roadledger score --vehicles 20 --rsus 4 --rate 100 --duration 30 --floor 0.95
  roadledger score --scenario teleport --scenario replay

Exit status: 0 every type at or above --floor; 1 a type below it, or the pipeline did not
account for every message; 2 bad arguments; 130 interrupted."""


def _floor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--floor must be a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"--floor must be between 0 and 1, got {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    demo.configure(parser)
    parser.set_defaults(no_dashboard=True)  # a score run prints plain progress lines
    parser.add_argument(
        "--dashboard",
        dest="no_dashboard",
        action="store_false",
        help="the demo's live display instead of plain progress lines",
    )
    parser.add_argument(
        "--floor",
        type=_floor,
        default=0.95,
        metavar="F",
        help="least precision and recall per warning type (default 0.95)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    result = demo.run_from_args(args, settings, "score")
    if result is None or result.interrupted:
        return 130
    report = result.warning_report
    if report is None or not report.scores:
        print("roadledger score: no warning events and no warnings to score", file=sys.stderr)
        return 1
    missed = report.below(args.floor)
    if missed:
        print(f"below {args.floor}: {', '.join(missed)}")
        return 1
    if not result.accounted:
        print("every warning type scored, but the pipeline did not account for every message")
        return 1
    print(f"every warning type at or above {args.floor} in precision and recall")
    return 0
