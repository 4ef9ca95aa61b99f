"""``roadledger sim``: run the simulated fleet and publish its signed telemetry over MQTT.

The work is done by :mod:`device_sim`; this module turns flags into a
:class:`device_sim.simulation.SimulationConfig`, registers the fleet, shows progress and maps
``device_sim`` errors to one-line messages.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands._args import non_negative_int, positive_float
from contracts.errors import CommandError

if TYPE_CHECKING:
    from device_sim.runner import RunResult
    from device_sim.simulation import Simulation
    from roadledger.settings import Settings

__all__ = ["DESCRIPTION", "HELP", "configure", "run"]

HELP = "simulate vehicles and roadside units that sign telemetry and publish it over MQTT"

DESCRIPTION = """\
Simulates a city: a street grid with arterials and a ring motorway, vehicles driving between
random destinations (slower in rush hours and in congestion), and roadside units (RSUs) that
sign sightings of passing vehicles. Every device signs each message (Ed25519 JWS, hash
chained) and publishes it with QoS 1 to roadledger/v1/telemetry/<device id>. The run is
deterministic for --seed and --start-ms. Scenarios inject fraud and faults; the truth file
(JSON lines, see device_sim/truth.py) says for every published message what the pipeline
should do with it, and which warnings analytics should raise.

Getting started (the services must run: `roadledger services up`):

  roadledger sim                                     100 vehicles, 10 RSUs, 100 msg/s, 60 s
  roadledger sim --scenario all --truth run.jsonl    every scenario once, ground truth
  roadledger sim --scenario teleport:count=3,at=20,duration=30 --scenario revoked_key
  roadledger sim --scenarios my-scenarios.json       scenarios from a file
  roadledger sim --vehicles 5000 --rsus 0 --rate 6000 --duration 60 \\
      --presign --no-pace --publish-rate 0           benchmark: sign first, publish flat out

Scenarios (NAME[:key=value,...]; keys count, at, duration (seconds), kind=rsu, devices=a+b,
and the scenario's parameters): odometer_rollback (drop_fraction), teleport (distance_m),
drift_off_road (rate_mps), replay (messages), forged_signature (messages), tampered_payload
(messages), unknown_device, revoked_key, clock_skew (skew_ms), offline_burst (shuffle),
duplicate_delivery (fraction), conflict (messages), malformed (messages), bad_schema
(messages), speeding (factor), odometer_blocker (counted_fraction), geofence_breach (a truck
into the authority's no-entry zone), rsu_displaced (distance_m; RSUs), incident (speed_pct;
4 vehicles caught in the jam), or `all`. The simulator also publishes the authority's signed
rules (a no-entry zone for heavy trucks at the centre) with the fleet.

Time: messages carry simulated time, which starts at --start-ms (default now) and is paced on
the wall clock. A --start-ms in the past is a backfill: give a --publish-rate above --rate and
the run catches up with the wall clock, then continues in real time.

Exit status: 0 every message published and acknowledged; 1 registration or publishing failed;
2 bad arguments or scenarios."""


def _rate_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else positive_float(text)


def _centre(text: str) -> tuple[float, float]:
    lat, _, lon = text.partition(",")
    try:
        return float(lat), float(lon)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LAT,LON in degrees") from None


def configure(parser: argparse.ArgumentParser) -> None:
    """Register the ``sim`` options."""
    count, number = non_negative_int, positive_float
    # fmt: off
    run = parser.add_argument_group("fleet and run")
    run.add_argument("--vehicles", type=count, default=100, metavar="N",
                     help="vehicles (default 100)")
    run.add_argument("--rsus", type=count, default=10, metavar="K",
                     help="roadside units (default 10)")
    run.add_argument("--rate", type=number, default=100.0, metavar="R",
                     help="messages per second over the whole fleet (default 100): each device "
                          "reports every (N+K)/R seconds")
    run.add_argument("--duration", type=number, default=60.0, metavar="S",
                     help="simulated seconds (default 60)")
    run.add_argument("--seed", type=count, default=1, metavar="X", help="random seed (default 1)")
    run.add_argument("--start-ms", type=count, metavar="MS",
                     help="simulated start, ms since the epoch (default now)")
    run.add_argument("--id-prefix", default="", metavar="P",
                     help="prefix for every device id, to keep runs apart")
    city = parser.add_argument_group("city")
    city.add_argument("--centre", type=_centre, default=(52.52, 13.405), metavar="LAT,LON",
                      help="city centre (default Berlin)")
    city.add_argument("--streets", type=count, default=12, metavar="N",
                      help="streets each way (default 12)")
    city.add_argument("--network-seed", type=count, default=0, metavar="X",
                      help="seed of the city layout (default 0)")
    truth = parser.add_argument_group("scenarios and ground truth")
    truth.add_argument("--scenarios", type=Path, metavar="FILE", help="JSON scenario file")
    truth.add_argument("--scenario", action="append", default=[], metavar="NAME[:k=v,...]",
                       help="inject a scenario (repeatable; `all` for every one)")
    truth.add_argument("--truth", type=Path, metavar="FILE",
                       help="ground truth as JSON lines "
                            "(default <data_dir>/sim/truth-SEED-START.jsonl)")
    publish = parser.add_argument_group("publishing")
    publish.add_argument("--no-register", action="store_true",
                         help="do not write the fleet and the roads to PostgreSQL")
    publish.add_argument("--dry-run", action="store_true",
                         help="only write the truth file: no registry, no MQTT")
    publish.add_argument("--presign", action="store_true",
                         help="sign the whole run in memory before publishing")
    publish.add_argument("--no-pace", action="store_true",
                         help="do not wait for each message's simulated time")
    publish.add_argument("--publish-rate", type=_rate_or_zero, metavar="R",
                         help="publishes per second at most (default --rate; 0: unlimited)")
    publish.add_argument("--max-inflight", type=count, default=5000, metavar="N",
                         help="unacknowledged publishes at most (default 5000)")
    publish.add_argument("--quiet", action="store_true", help="no progress display")
    # fmt: on


def _simulation(args: argparse.Namespace) -> Simulation:
    from device_sim.network import NetworkSpec
    from device_sim.scenarios import load_scenarios, parse_scenario_flag
    from device_sim.simulation import Simulation, SimulationConfig

    specs = load_scenarios(args.scenarios) if args.scenarios else []
    for flag in args.scenario:
        specs.extend(parse_scenario_flag(flag))
    lat, lon = args.centre
    network = NetworkSpec(
        centre_lat=lat, centre_lon=lon, streets=args.streets, seed=args.network_seed
    )
    config = SimulationConfig(
        vehicles=args.vehicles, rsus=args.rsus, rate=args.rate, duration_s=args.duration,
        seed=args.seed, start_ms=args.start_ms, scenarios=tuple(specs), network=network,
        id_prefix=args.id_prefix,
    )  # fmt: skip
    return Simulation(config)


async def _register(settings: Settings, simulation: Simulation) -> str:
    from device_sim.registration import register_simulation
    from roadledger.db.pool import open_database
    from roadledger.db.schema import apply_schema

    pool = await open_database(settings)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn)
        report = await register_simulation(pool, simulation.registration(), simulation.end_ms)
    finally:
        await pool.close()
    return (
        f"registered {report.new_keys} new device keys ({report.already_registered} already "
        f"known), {report.revocations} revocations, {report.segments} road segments, "
        + (
            f"the authority's zones as rules version {report.rules_version}"
            if report.rules_version is not None
            else "the authority's zones already in force"
        )
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Build the run, register it, publish it; print a summary."""
    from device_sim.errors import ConfigError, ScenarioError, SimulationError

    try:
        simulation = _simulation(args)
        paced = not args.no_pace
        problems = simulation.timing_problems(
            time.time_ns() // 1_000_000,
            settings.clock_skew_ms,
            settings.max_message_age_ms,
            paced=paced,
        )
        if problems and not args.dry_run:
            raise CommandError("; ".join(problems), exit_code=2)
        truth = (
            args.truth
            or settings.data_dir / "sim" / f"truth-{args.seed}-{simulation.start_ms}.jsonl"
        )
        print(
            f"simulating {args.vehicles} vehicles and {args.rsus} RSUs for {args.duration:g} s: "
            f"{simulation.rate:g} msg/s (every {simulation.interval_ms} ms per device), "
            f"{len(simulation.scenarios)} scenarios, seed {args.seed}, start {simulation.start_ms}"
        )
        if not (args.no_register or args.dry_run):
            print(asyncio.run(_register(settings, simulation)))
        result = _publish(args, settings, simulation, truth, paced)
    except (ConfigError, ScenarioError) as exc:
        raise CommandError(str(exc), exit_code=2) from None
    except SimulationError as exc:
        raise CommandError(str(exc)) from None
    _print_result(result)
    return 0


def _publish(
    args: argparse.Namespace, settings: Settings, simulation: Simulation, truth: Path, paced: bool
) -> RunResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from device_sim.publisher import MqttPublisher, PublishProgress
    from device_sim.runner import run_simulation
    from roadledger.mqtt_auth import sim_account

    expected = simulation.expected_genuine_messages()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, disable=args.quiet) as progress:
        signing = progress.add_task("signing", total=expected, rate="", visible=args.presign)
        sending = progress.add_task("publishing", total=expected, rate="", visible=not args.dry_run)

        def on_progress(p: PublishProgress) -> None:
            progress.update(
                sending,
                completed=p.acked,
                total=p.total or max(expected, p.published),
                rate=f"{p.rate:,.0f} msg/s",
            )

        publisher = None
        if not args.dry_run:
            publish_rate = args.rate if args.publish_rate is None else args.publish_rate or None
            publisher = MqttPublisher(
                settings.mqtt, account=sim_account(settings), rate=publish_rate, realtime=paced,
                max_inflight=max(1, args.max_inflight), progress=on_progress,
                keep_acked_s=settings.mqtt_keep_acked_s,
            )  # fmt: skip
        return run_simulation(
            simulation, truth_path=truth, publisher=publisher, presign=args.presign,
            on_signed=lambda n: progress.update(signing, completed=n, total=max(n, expected)),
        )  # fmt: skip


def _print_result(result: RunResult) -> None:
    if result.signing_s is not None:
        print(f"signed {result.messages} messages in {result.signing_s:.1f} s")
    report = result.report
    if report is not None:
        acked = (
            "all acknowledged"
            if report.acked == report.published
            else f"{report.acked} acknowledged"
        )
        print(
            f"published {report.published} messages in {report.elapsed_s:.1f} s "
            f"({report.rate:,.0f} msg/s), {acked}"
            + (f", {report.reconnects} reconnects" if report.reconnects else "")
        )
    print(
        "expected: " + ", ".join(f"{outcome} {count}" for outcome, count in result.expected.items())
    )
    print(f"warnings for analytics: {result.warnings}; truth: {result.truth_path}")
