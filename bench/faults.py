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
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the harness lives in tests/

from roadledger.settings import Settings, load_settings
from tests.integration.fault_harness import (
    RECOVERY_FLOOR_S,
    FaultRun,
    Tally,
    fault_run,
)

CYCLE_S = 12  # one sequencer kill/restart cycle: ~10 s Kafka session timeout, then work


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


Inject = Callable[[FaultRun, argparse.Namespace], Awaitable[list[float]]]


@dataclass(frozen=True)
class Fault:
    name: str
    label: str
    inject: Inject
    private_services: bool = False


@dataclass
class Outcome:
    fault: Fault
    tally: Tally | None = None
    recovered: bool = False
    back_s: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.tally is not None
            and self.tally.ok
            and self.recovered
            and self.back_s is not None
            and self.back_s <= RECOVERY_FLOOR_S
        )


async def _sequencer_kills(run: FaultRun, args: argparse.Namespace) -> list[float]:
    return await run.kill_cycles("sequencer", args.cycles, (300, 3000))


def _one_kill(name: str) -> Inject:
    async def inject(run: FaultRun, args: argparse.Namespace) -> list[float]:
        return [await run.kill_when_progressing(name, args.rate * 10, f"before killing {name}")]

    return inject


FAULTS = [
    Fault("sequencer-kill", "sequencer kill -9 x{cycles}", _sequencer_kills),
    Fault("ingest-kill", "ingest kill -9", _one_kill("ingest")),
    Fault("bridge-kill", "bridge kill -9", _one_kill("bridge")),
]


def _messages(fault: Fault, args: argparse.Namespace) -> int:
    if fault.name == "sequencer-kill":  # publishing must outlast every kill
        cycles, rate = int(args.cycles), int(args.rate)
        return max(int(args.messages), (cycles * CYCLE_S + 20) * rate)
    return int(args.messages)


async def run_fault(fault: Fault, settings: Settings, args: argparse.Namespace) -> Outcome:
    outcome = Outcome(fault)
    with tempfile.TemporaryDirectory(prefix="roadledger-faults-") as tmp:
        async with fault_run(settings, Path(tmp)) as run:
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
                returns = await fault.inject(run, args)
                progress(f"{fault.name}: injected; waiting for the pipeline to settle")
                await run.settle(publish_within_s=messages / args.rate + 600)
                run.check_recovered()
                outcome.recovered = True
            except AssertionError as exc:
                outcome.error = str(exc)
            recoveries = [run.recovery_s(at) for at in returns]
            known = [r for r in recoveries if r is not None]
            outcome.back_s = max(known) if known and len(known) == len(recoveries) else None
            try:
                outcome.tally = await run.tally()
            except Exception as exc:  # a dead service: say so in the table, go on
                outcome.error = outcome.error or f"counting failed: {exc!r}"
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
        label = o.fault.label.format(cycles=args.cycles)
        print(
            f"{label:<28} {t.published:>9,} {t.raw:>9,} {t.stored:>9,} {t.quarantined:>8,} "
            f"{t.ledger:>9,} {t.lost:>6,} {t.duplicated:>5,} "
            f"{'yes' if o.recovered else 'NO':>9} {back:>8}"
        )
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
        "--only", action="append", choices=[f.name for f in FAULTS], help="run this fault only"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    chosen = [f for f in FAULTS if not args.only or f.name in args.only]
    print(f"fault matrix: {len(chosen)} faults, {args.messages:,} messages at {args.rate:,} "
          f"msg/s each, {args.vehicles:,} vehicles")  # fmt: skip
    outcomes = [asyncio.run(run_fault(fault, settings, args)) for fault in chosen]
    print_table(outcomes, args)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
