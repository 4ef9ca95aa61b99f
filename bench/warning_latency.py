"""Warning latency: MQTT publish -> warning stored, on the real services (issue 5's floor).

Run from the project root, with the services up::

    .venv/bin/python bench/warning_latency.py                  # 1,000 msg/s for 60 s
    .venv/bin/python bench/warning_latency.py --rate 500 --duration 30

A private pipeline (scratch schema, prefixed topics: ``tests/support/pipeline.py``) runs
the real ``roadledger bridge``, ``ingest``, ``sequencer`` and ``analytics run`` processes. Once
the bridge has subscribed, ``roadledger sim`` publishes a fleet at ``--rate`` on the wall clock
(simulated time = wall time) with every scenario, each type injected ``--events`` times.

For each stored warning, its latency is ``warnings.stored_at`` (set by PostgreSQL when the row
is inserted) minus the scheduled publish time (the truth file's ``publish_at_ms``) of the
latest message among its evidence: the message that completed the evidence. A message is
published at or after its scheduled time, so this overstates the latency by the publisher's
lag, never understates it. Prints p50/p95/p99/max per type and overall, against the floor
(p95 < 2 s); exits 1 when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ holds the harness

from roadledger.settings import load_settings
from tests.support.pipeline import ROADLEDGER, PipelineEnv, pipeline_env, wait_until

FLOOR_P95_S = 2.0
SCENARIOS = (
    "odometer_rollback", "teleport", "drift_off_road:rate_mps=8,bearing_deg=45", "replay",
    "forged_signature", "tampered_payload", "unknown_device", "revoked_key", "clock_skew",
    "offline_burst", "duplicate_delivery", "conflict", "speeding", "geofence_breach",
    "odometer_blocker:at=5,duration=50,counted_fraction=0.3", "rsu_displaced:at=0,duration=60",
    "incident",
)  # fmt: skip


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, list[float]]:
    """Latencies in seconds per warning type."""
    from device_sim.truth import read_truth

    settings = load_settings()
    async with pipeline_env(settings, tmp) as pipeline:
        for name in ("bridge", "ingest", "sequencer"):
            pipeline.component(name).start()
        pipeline.component("analytics", command="analytics run").start()
        await _subscribed(pipeline)
        truth_path = tmp / "truth.jsonl"
        command = [ROADLEDGER, "sim", "--vehicles", str(args.vehicles), "--rsus", "10",
                   "--rate", str(args.rate), "--duration", str(args.duration), "--seed", "7",
                   "--truth", str(truth_path), "--id-prefix", f"l{uuid.uuid4().hex[:6]}",
                   "--start-ms", str(int(time.time() * 1000) + args.lead_s * 1000),
                   "--quiet"]  # fmt: skip
        for scenario in SCENARIOS:
            command += ["--scenario", scenario] * args.events
        progress(f"publishing {args.rate:,} msg/s for {args.duration} s")
        sim = await asyncio.to_thread(
            subprocess.run, command, env=pipeline.env, capture_output=True, check=False
        )
        if sim.returncode != 0:
            raise SystemExit(f"roadledger sim failed:\n{sim.stdout.decode()[-2000:]}")
        truth = read_truth(truth_path)
        published: dict[tuple[str, int], int] = {}
        for message in truth.messages:
            if message.seq is not None:
                key = (message.device, message.seq)
                published[key] = max(published.get(key, 0), message.publish_at_ms)

        async def settled() -> bool:
            pipeline.check_alive()
            before = await pipeline.pool.fetchval("SELECT count(*) FROM warnings")
            await asyncio.sleep(3.0)  # no new warning for 3 s: the tail has been analysed
            return bool(before) and before == await pipeline.pool.fetchval(
                "SELECT count(*) FROM warnings"
            )

        await wait_until(settled, "warnings to stop arriving", 300)
        rows = await pipeline.pool.fetch(
            "SELECT type, evidence, extract(epoch FROM stored_at) * 1000 AS stored_ms FROM warnings"
        )
    latencies: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        times = [
            published[(e["device_id"], e["seq"])]
            for e in json.loads(row["evidence"])
            if (e["device_id"], e["seq"]) in published
        ]
        if times:
            latencies[row["type"]].append((float(row["stored_ms"]) - max(times)) / 1000)
    return latencies


async def _subscribed(pipeline: PipelineEnv) -> None:
    bridge = pipeline.component("bridge")

    async def ready() -> bool:
        pipeline.check_alive()
        return "subscribed to" in bridge.log_tail()

    await wait_until(ready, "the bridge to subscribe", 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="messages/s published (1000)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of traffic (60)")
    parser.add_argument("--vehicles", type=int, default=1000, help="fleet size (1000)")
    parser.add_argument("--events", type=int, default=3, help="injections of each type (3)")
    parser.add_argument(
        "--lead-s",
        type=int,
        default=20,
        help="simulated time starts this far ahead, so that registering the fleet does not "
        "make the first messages late (20)",
    )
    args = parser.parse_args(argv)
    print(f"warning latency: {args.rate:,} msg/s for {args.duration} s, "
          f"{args.vehicles:,} vehicles, every scenario x{args.events}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="roadledger-latency-") as tmp:
        latencies = asyncio.run(measure(args, Path(tmp)))
    every = [value for values in latencies.values() for value in values]
    if not every:
        print("no warnings were stored: nothing to measure")
        return 1
    print(f"{'type':<20} {'n':>5} {'p50 s':>7} {'p95 s':>7} {'p99 s':>7} {'max s':>7}")
    for kind, values in [*sorted(latencies.items()), ("all", every)]:
        print(f"{kind:<20} {len(values):>5} {statistics.median(values):>7.2f} "
              f"{percentile(values, 0.95):>7.2f} {percentile(values, 0.99):>7.2f} "
              f"{max(values):>7.2f}")  # fmt: skip
    p95 = percentile(every, 0.95)
    ok = p95 < FLOOR_P95_S and args.rate >= 1000
    print(f"{'floor: p95 < 2 s at 1,000 msg/s':<44} {'ok' if ok else 'MISSED'} "
          f"(p95 {p95:.2f} s, {p95 / FLOOR_P95_S:.2f}x the floor)")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
