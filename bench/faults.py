"""Fault matrix: every fault of issue 9 injected into a loaded pipeline, every message counted.

Run from the project root, with the services up::

    .venv/bin/python bench/faults.py                     # every fault: 60,000 msgs at 1,000 msg/s
    .venv/bin/python bench/faults.py --only sequencer-kill --cycles 20
    .venv/bin/python bench/faults.py --messages 20000 --rate 500 --only ingest-kill

Each fault gets a fresh private pipeline (``tests/integration/fault_harness.py``: scratch
schema, prefixed topics, the real ``roadledger bridge``, ``ingest`` and ``sequencer``
processes) fed by ``roadledger sim`` (signed first, then published at ``--rate``, with a few
injected rejections). About ten seconds into the load the fault is injected:

- ``sequencer-kill``: ``--cycles`` (20) SIGKILL/restart cycles of the sequencer, each once the
  ledger has grown by 300-3,000 leaves (seeded), so kills land at varied points of its work;
  its run publishes for as long as the kills take (about 12 s each), so every kill is under
  load;
- ``ingest-kill``, ``bridge-kill``: one SIGKILL and restart of that process;
- ``postgres-restart``: ``pg_ctl stop -m immediate``, up again ``--outage`` (5) s later;
- ``kafka-kill``: the broker SIGKILLed and started again at once;
- ``kafka-pause``: the broker SIGSTOPped for ``--pause`` (20) s, then SIGCONT;
- ``mosquitto-kill``: the broker SIGKILLed and started again at once.

The service faults run on private PostgreSQL, Kafka and Mosquitto instances (free ports, own
data directories: ``tests/integration/private_services.py``), never on the shared ones. Once
the pipeline is quiet, the simulator's ground truth is counted at every stage by (device,
seq) and leaf hash, the ledger checked (``ledger check``, consistency between successive
checkpoints, sampled inclusion proofs) and every process must be alive without an outside
restart. The table: published, in telemetry.raw, stored rows, quarantined, ledger leaves, lost,
duplicated, recovered (every process alive and the pipeline quiet), and seconds from the
service's (or process's) return until throughput was back (the ledger and the telemetry table
growing by half the offered rate again; for repeated kills the slowest). Exit 1 when any fault
lost or duplicated a message, did not recover, or took more than 15 s to get throughput back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives in tests/

from roadledger.resilience import quiet_client_retries
from roadledger.settings import Settings, load_settings
from tests.integration.fault_counting import Tally
from tests.integration.fault_harness import RECOVERY_FLOOR_S, FaultRun, fault_run
from tests.integration.private_mosquitto import private_mosquitto

CYCLE_S = 12  # one sequencer kill/restart cycle: ~10 s Kafka session timeout, then work


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# A process fault returns the times the process was restarted; a service fault gets the
# private service (``private`` names which) and returns when it was back.
Inject = Callable[[FaultRun, argparse.Namespace], Awaitable[list[float]]]
ServiceInject = Callable[[FaultRun, argparse.Namespace, Any], Awaitable[float]]


@dataclass(frozen=True)
class Fault:
    name: str
    label: str
    inject: Inject | ServiceInject
    private: str | None = None  # "postgres", "kafka" or "mosquitto": a private instance


@dataclass
class Outcome:
    fault: Fault
    tally: Tally | None = None
    recovered: bool = False
    back_s: float | None = None
    recoveries: list[float | None] = field(default_factory=list)  # per return, in order
    stopped: bool = False  # every process exited 0 within 15 s of SIGTERM at the end
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.tally is not None
            and self.tally.ok
            and self.recovered
            and self.stopped
            and self.back_s is not None
            and self.back_s <= RECOVERY_FLOOR_S
        )


async def _sequencer_kills(run: FaultRun, args: argparse.Namespace) -> list[float]:
    return await run.kill_cycles("sequencer", args.cycles, (300, 3000))


def _one_kill(name: str) -> Inject:
    async def inject(run: FaultRun, args: argparse.Namespace) -> list[float]:
        return [await run.kill_when_progressing(name, args.rate * 10, f"before killing {name}")]

    return inject


async def _postgres_restart(run: FaultRun, args: argparse.Namespace, services: Any) -> float:
    services.postgres_immediate_stop()
    await asyncio.sleep(args.outage)  # the outage's length is the fault, not a synchronisation
    await asyncio.to_thread(services.postgres_start)
    return time.monotonic()


async def _kafka_kill(run: FaultRun, args: argparse.Namespace, services: Any) -> float:
    services.kafka_signal(signal.SIGKILL)  # returns once the broker is gone
    await asyncio.to_thread(services.kafka_start)
    return time.monotonic()


async def _kafka_pause(run: FaultRun, args: argparse.Namespace, services: Any) -> float:
    services.kafka_signal(signal.SIGSTOP)
    await asyncio.sleep(args.pause)  # the pause's length is the fault, not a synchronisation
    services.kafka_signal(signal.SIGCONT)
    return time.monotonic()


async def _mosquitto_kill(run: FaultRun, args: argparse.Namespace, broker: Any) -> float:
    broker.kill()
    await asyncio.to_thread(broker.start)
    return time.monotonic()


FAULTS = [
    Fault("sequencer-kill", "sequencer kill -9 x{cycles}", _sequencer_kills),
    Fault("ingest-kill", "ingest kill -9", _one_kill("ingest")),
    Fault("bridge-kill", "bridge kill -9", _one_kill("bridge")),
    Fault("postgres-restart", "postgres stop -m immediate", _postgres_restart, "postgres"),
    Fault("kafka-kill", "kafka kill -9 + restart", _kafka_kill, "kafka"),
    Fault("kafka-pause", "kafka SIGSTOP {pause:.0f} s", _kafka_pause, "kafka"),
    Fault("mosquitto-kill", "mosquitto kill -9 + restart", _mosquitto_kill, "mosquitto"),
]


@contextlib.asynccontextmanager
async def _services(fault: Fault, settings: Settings) -> AsyncIterator[tuple[Settings, Any]]:
    """The settings a fault's pipeline runs on, and the private service it may hurt."""
    if fault.private is None:
        yield settings, None
    elif fault.private == "mosquitto":
        async with private_mosquitto(settings) as broker:
            yield broker.settings, broker
    else:
        from tests.integration.private_services import private_services

        wanted = {"postgres": fault.private == "postgres", "kafka": fault.private == "kafka"}
        async with private_services(settings, **wanted) as services:
            yield services.settings, services


def _messages(fault: Fault, args: argparse.Namespace) -> int:
    if fault.name == "sequencer-kill":  # publishing must outlast every kill
        cycles, rate = int(args.cycles), int(args.rate)
        return max(int(args.messages), (cycles * CYCLE_S + 20) * rate)
    return int(args.messages)


async def run_fault(fault: Fault, settings: Settings, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(fault)
    with tempfile.TemporaryDirectory(prefix="roadledger-faults-") as scratch:
        tmp = Path(scratch)
        if args.keep_logs:  # the processes' logs outlive the run
            tmp = Path(tempfile.mkdtemp(prefix=f"roadledger-faults-{fault.name}-"))
            progress(f"{fault.name}: logs in {tmp / 'logs'}")
        async with _services(fault, settings) as (env, service), fault_run(env, tmp) as run:
            run.start()
            await run.open_front_door()
            run.start_sampling()
            messages = _messages(fault, args)
            progress(f"{fault.name}: signing {messages:,} messages, then {args.rate:,} msg/s")
            run.publish(messages, args.rate, vehicles=args.vehicles)
            returns: list[float] = []
            started = time.monotonic()
            try:
                await run.wait_first_published(300)
                if fault.private is None:
                    returns = await cast(Inject, fault.inject)(run, args)
                else:
                    await run.wait_ledger_growth(args.rate * 10, f"before {fault.name}")
                    returns = [await cast(ServiceInject, fault.inject)(run, args, service)]
                progress(f"{fault.name}: injected; waiting for the pipeline to settle")
                await run.settle(publish_within_s=messages / args.rate + 600)
                run.check_recovered()
                outcome.recovered = True
            except Exception as exc:  # a fault the pipeline did not survive: recorded, go on
                outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.recoveries = [run.recovery_s(at) for at in returns]
            known = [r for r in outcome.recoveries if r is not None]
            outcome.back_s = max(known) if returns and len(known) == len(returns) else None
            try:
                async with asyncio.timeout(600):
                    outcome.tally = await run.tally()
            except Exception as exc:  # a dead service: say so in the table, go on
                outcome.error = outcome.error or f"counting failed: {exc!r}"
            try:
                run.stop_all()
                outcome.stopped = True
            except AssertionError as exc:
                outcome.error += f"\n{exc}"
            progress(f"{fault.name}: done in {time.monotonic() - started:.0f} s")
    return outcome


def print_table(outcomes: list[Outcome], args: argparse.Namespace) -> None:
    header = (
        f"{'fault':<28} {'published':>9} {'raw':>9} {'stored':>9} {'quarant.':>8} "
        f"{'ledger':>9} {'lost':>6} {'dup':>5} {'recovered':>9} {'back (s)':>8}"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        t = o.tally or Tally()
        back = f"{o.back_s:.1f}" if o.back_s is not None else "never"
        label = o.fault.label.format(cycles=args.cycles, pause=args.pause)
        print(
            f"{label:<28} {t.published:>9,} {t.raw:>9,} {t.stored:>9,} {t.quarantined:>8,} "
            f"{t.ledger:>9,} {t.lost:>6,} {t.duplicated:>5,} "
            f"{'yes' if o.recovered else 'NO':>9} {back:>8}"
        )
    for o in outcomes:
        if len(o.recoveries) > 1:
            each = ", ".join("never" if r is None else f"{r:.1f}" for r in o.recoveries)
            print(f"{o.fault.name}: seconds until throughput was back, each return: {each}")
    for o in outcomes:
        if not o.ok:
            print(f"\n{o.fault.name}:")
            if o.error:
                print("  " + o.error[:3000].replace("\n", "\n  "))
            if o.tally is not None and o.tally.problems:
                print("  " + "\n  ".join(o.tally.problems[:20]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=60_000, help="per fault (60,000)")
    parser.add_argument("--rate", type=int, default=1000, help="messages/s offered (1,000)")
    parser.add_argument("--vehicles", type=int, default=1000, help="fleet size (1,000)")
    parser.add_argument("--cycles", type=int, default=20, help="sequencer kills (20)")
    parser.add_argument("--outage", type=float, default=5.0, help="PostgreSQL down, s (5)")
    parser.add_argument("--pause", type=float, default=20.0, help="Kafka SIGSTOPped, s (20)")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep each run's process logs (a temp dir)"
    )
    parser.add_argument(
        "--only", action="append", choices=[f.name for f in FAULTS], help="run this fault only"
    )
    args = parser.parse_args(argv)
    # The bench's own sampling clients retry through the faults it injects: one line per
    # minute for them, not a traceback per failed reconnect (the pipeline processes do the same).
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    quiet_client_retries()
    settings = load_settings()
    chosen = [f for f in FAULTS if not args.only or f.name in args.only]
    print(f"fault matrix: {len(chosen)} faults, {args.messages:,} messages at {args.rate:,} "
          f"msg/s each, {args.vehicles:,} vehicles")  # fmt: skip
    outcomes = [asyncio.run(run_fault(fault, settings, args)) for fault in chosen]
    print_table(outcomes, args)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
