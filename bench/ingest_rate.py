"""Ingest benchmark: sustained end-to-end messages/s on the real services, with its limits.

Run from the project root, with the services up::

    .venv/bin/python bench/ingest_rate.py                      # 6,000 msg/s offered for 60 s
    .venv/bin/python bench/ingest_rate.py --rate 2000 --duration 30

In one run:

1. the limits, measured here and now: raw PyNaCl Ed25519 verifications/s on one core, and raw
   asyncpg COPY rows/s of telemetry-shaped rows;
2. a private pipeline (scratch schema, prefixed topics: ``tests/support/pipeline.py``)
   running the real ``roadledger bridge``, ``ingest`` and ``sequencer`` processes;
3. ``roadledger sim --presign`` signing the whole run first, then publishing at ``--rate``;
4. once a second, how far each stage got (raw, verified + quarantined, stored rows, ledger
   leaves), until everything published is accounted for (stored + quarantined = published).

It prints the sustained end-to-end rate (messages published / time from the first message in
telemetry.raw to the last one accounted for), each stage's rate, and the ratios to the limits.
Issue 4's floor: >= 5,000 msg/s sustained for 60 s. The script exits 1 when it is missed. The
default offers 20 % more than the floor: the end-to-end rate can never exceed the offered one,
and the once-a-second sampling adds up to a second to the measured time, so offering exactly
5,000 msg/s reads a little under 5,000 even when the pipeline keeps up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nacl.signing
from cpu_accounting import CpuAccounting, service_matchers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the harness

from contracts.topics import QUARANTINE, RAW, VERIFIED
from roadledger.db.pool import create_pool
from roadledger.settings import Settings, load_settings
from tests.support.pipeline import ROADLEDGER, KafkaProbe, pipeline_env, wait_until

FLOOR = 5000.0


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def pynacl_verifications_per_second(count: int = 20_000) -> float:
    key = nacl.signing.SigningKey.generate()
    message = os.urandom(300)
    signed = key.sign(message)
    verify = key.verify_key.verify
    started = time.perf_counter()
    for _ in range(count):
        verify(signed)
    return count / (time.perf_counter() - started)


async def copy_rows_per_second(settings: Settings, count: int = 100_000) -> float:
    pool = await create_pool(settings, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "CREATE TEMP TABLE bench_rows (device_id text, seq bigint, ts timestamptz, "
                "odo_m bigint, lat_e7 int, lon_e7 int, spd_cms int, hdg_cdeg int, "
                "leaf_hash bytea) ON COMMIT DROP"
            )
            from datetime import UTC, datetime

            now = datetime.now(UTC)
            rows = [
                (f"veh-{i % 2000:06d}", i, now, i * 10, 525_200_000, 134_050_000, 1200, 9000,
                 os.urandom(32))
                for i in range(count)
            ]  # fmt: skip
            started = time.perf_counter()
            await conn.copy_records_to_table("bench_rows", records=rows)
            return count / (time.perf_counter() - started)
    finally:
        await pool.close()


@dataclass
class Sample:
    at: float
    raw: int
    judged: int
    stored: int
    leaves: int


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    published: int = 0
    cpu: CpuAccounting = field(default_factory=lambda: CpuAccounting(matchers=service_matchers()))


async def run_pipeline(args: argparse.Namespace, settings: Settings, tmp: Path) -> Run:
    result = Run()
    async with pipeline_env(settings, tmp) as pipeline:
        env = pipeline.settings
        kafka = KafkaProbe(env)
        await kafka.start()
        try:
            cpu = result.cpu
            cpu.sample()  # the services' CPU counts from here
            for name in ("bridge", "sequencer"):
                pipeline.component(name).start()
            workers = {"ROADLEDGER_VERIFY_WORKERS": str(args.verify_workers)}
            for n in range(args.ingest_processes):
                pipeline.component(f"ingest-{n}", command="ingest", env=workers).start()
            for name, component in pipeline.components.items():
                assert component.process is not None
                cpu.watch(name, component.process.pid)
            truth = tmp / "truth.jsonl"
            progress(f"signing {args.rate * args.duration:,} messages, then publishing")
            sim = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waited for in a thread
                [ROADLEDGER, "sim", "--vehicles", str(args.vehicles), "--rsus", "0",
                 "--rate", str(args.rate), "--duration", str(args.duration), "--seed", "5",
                 "--presign", "--publish-rate", str(args.rate), "--truth", str(truth),
                 "--id-prefix", f"b{uuid.uuid4().hex[:6]}", "--quiet"],
                env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )  # fmt: skip
            waiting = asyncio.create_task(asyncio.to_thread(sim.communicate))
            cpu.watch("sim (publishing)", sim.pid)

            async def sample() -> Sample:
                raw = await kafka.end_offsets(env.topic(RAW))
                judged = await kafka.end_offsets(env.topic(VERIFIED)) + await kafka.end_offsets(
                    env.topic(QUARANTINE)
                )
                stored = await pipeline.pool.fetchval("SELECT count(*) FROM telemetry")
                leaves = await pipeline.pool.fetchval(
                    "SELECT coalesce(sum(tree_size), 0) FROM ledger_logs"
                )
                return Sample(time.monotonic(), raw, judged, int(stored), int(leaves))

            async def finished() -> bool:
                pipeline.check_alive()
                cpu.sample()
                current = await sample()
                if current.raw and not result.samples:
                    cpu.exclude_so_far("sim (publishing)")  # signing is not publishing
                if current.raw:
                    result.samples.append(current)
                    if len(result.samples) % 5 == 0:
                        progress(
                            f"raw {current.raw:,} judged {current.judged:,} "
                            f"stored {current.stored:,} ledger {current.leaves:,}"
                        )
                if not waiting.done():
                    return False
                output, _ = waiting.result()
                if sim.returncode != 0:
                    raise SystemExit(f"roadledger sim failed:\n{output.decode()[-2000:]}")
                result.published = sum(1 for line in truth.open() if '"kind":"message"' in line)
                return current.stored >= result.published and current.leaves >= current.stored

            await wait_until(finished, "every published message stored and sequenced", 1800)
        finally:
            await kafka.stop()
    return result


def rate(samples: list[Sample], attribute: str) -> float:
    """Messages/s of one stage between its first and last progress."""
    values = [(s.at, getattr(s, attribute)) for s in samples]
    start = next((at for at, value in values if value > 0), None)
    end_value = values[-1][1]
    end = next(at for at, value in values if value == end_value)
    return end_value / (end - start) if start is not None and end > start else 0.0


def print_cpu(seconds: dict[str, float], published: int) -> None:
    """Where the time goes: CPU per message of each process, and what that allows."""
    if not seconds or not published:
        print("CPU per process: not available (needs Linux /proc)")
        return
    print("CPU per message, by process (services counted from the pipeline's start):")
    for label, used in seconds.items():
        print(f"  {label:<42} {used / published * 1e6:>9,.0f} us/msg")
    total = sum(seconds.values()) / published
    cores = os.cpu_count() or 1
    print(f"  {'all':<42} {total * 1e6:>9,.0f} us/msg")
    print(f"{f'CPU-bound ceiling on {cores} cores':<44} {cores / total:>12,.0f} msg/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=6000, help="messages/s offered (6000)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of traffic (60)")
    parser.add_argument("--vehicles", type=int, default=6000, help="fleet size (6000)")
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=1,
        help="`roadledger ingest` processes in one consumer group (1)",
    )
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=2,
        help="ROADLEDGER_VERIFY_WORKERS of each ingest process (2)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    print(f"ingest benchmark: {args.rate:,} msg/s offered for {args.duration} s, "
          f"{args.vehicles:,} vehicles")  # fmt: skip
    progress("limits: raw PyNaCl verifications on one core, raw asyncpg COPY")
    verify_limit = pynacl_verifications_per_second()
    copy_limit = asyncio.run(copy_rows_per_second(settings))
    with tempfile.TemporaryDirectory(prefix="roadledger-bench-") as tmp:
        run = asyncio.run(run_pipeline(args, settings, Path(tmp)))
    first = next(s.at for s in run.samples if s.raw)
    last = run.samples[-1].at
    end_to_end = run.published / (last - first)
    stages = {
        "bridge (MQTT -> telemetry.raw)": rate(run.samples, "raw"),
        "verifier (raw -> verified/quarantine)": rate(run.samples, "judged"),
        "store writer (rows)": rate(run.samples, "stored"),
        "ledger writer (leaves)": rate(run.samples, "leaves"),
    }
    print(f"{'raw PyNaCl verify, one core':<44} {verify_limit:>12,.0f} /s")
    print(f"{'raw asyncpg COPY, telemetry rows':<44} {copy_limit:>12,.0f} rows/s")
    for name, value in stages.items():
        print(f"{name:<44} {value:>12,.0f} msg/s")
    print(f"{'end to end, sustained':<44} {end_to_end:>12,.0f} msg/s "
          f"({run.published:,} messages in {last - first:.1f} s)")  # fmt: skip
    print_cpu(run.cpu.seconds(), run.published)
    print(f"{'end to end / raw PyNaCl verify':<44} {end_to_end / verify_limit:>12.2f}x")
    print(f"{'end to end / raw COPY':<44} {end_to_end / copy_limit:>12.2f}x")
    ok = end_to_end >= FLOOR and args.duration >= 60
    print(f"{'floor 5,000 msg/s for 60 s':<44} {'ok' if ok else 'MISSED':>12}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
