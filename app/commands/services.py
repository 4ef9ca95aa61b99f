"""``roadledger services up|down|status``: the local PostgreSQL, Mosquitto and Kafka."""

from __future__ import annotations

import argparse
import time

from roadledger.settings import Settings

HELP = "start, stop or inspect the local PostgreSQL, Mosquitto and Kafka"
DESCRIPTION = """\
Start, stop or inspect the services RoadLedger runs on (all on loopback, data under
ROADLEDGER_DATA_DIR, default .local/):

  postgres   PostgreSQL from Debian's packages (TimescaleDB when the server has it)
  mosquitto  Mosquitto MQTT broker, persistence on
  kafka      Apache Kafka (KRaft, single node) from the official jars, resolved by Maven

`up` installs what is missing, starts what is not running and waits until each answers;
running again reuses what runs. `down` stops only what `up` started. A service whose
ROADLEDGER_* URL points off this machine is only probed.

examples:
  roadledger services up
  roadledger services status
  roadledger services down kafka"""

NAMES = ("postgres", "mosquitto", "kafka")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status"), help="what to do")
    parser.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help=f"only these services (default: all of {', '.join(NAMES)})",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from contracts.errors import CommandError
    from runtime.services import all_services

    unknown = sorted(set(args.services) - set(NAMES))
    if unknown:
        raise CommandError(f"unknown service {unknown[0]!r}; choose from {', '.join(NAMES)}", 2)

    chosen = [s for s in all_services(settings) if not args.services or s.name in args.services]
    started = time.monotonic()
    if args.action == "up":
        statuses = [service.up() for service in chosen]
    elif args.action == "down":
        statuses = [service.down() for service in reversed(chosen)][::-1]
    else:
        statuses = [service.status() for service in chosen]
    for status in statuses:
        print(status)
    if args.action != "status":
        print(f"services {args.action}: done in {time.monotonic() - started:.1f}s")
    healthy = {"running", "external"} if args.action != "down" else {"stopped", "external"}
    return 0 if all(s.state in healthy for s in statuses) else 3
