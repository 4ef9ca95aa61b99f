"""The API under concurrent load, beside a bare FastAPI endpoint measured in the same run.

Run from the project root, with the services up (PostgreSQL is enough)::

    .venv/bin/python bench/api_load.py                 # 1,000,000 leaves, 20,000 requests a kind
    .venv/bin/python bench/api_load.py --quick         # a smoke run, under a minute
    .venv/bin/python bench/api_load.py --only fan-out  # one part (proofs, certificates, fan-out)
    .venv/bin/python bench/api_load.py --only certificates --certificates 10000 20000 40000

In a scratch schema (``tests/support/scratch_schema.py``, dropped afterwards): an organisation
with an API key, vehicles with 10,000, 20,000 and 40,000 signed messages sequenced by the
pipeline's own ledger writer (``bench/api_setup.py``), and a log of ``--leaves`` leaves. Then
two servers, each a separate process under uvicorn with the same settings: the real API
(``roadledger api serve`` on the scratch schema) and ``bench/bare_api.py``, one trivial route
(the limit: what FastAPI and uvicorn cost per request on this machine, nothing else).

This process is the load generator (``bench/http_load.py``: raw keep-alive HTTP/1.1 over
``--clients`` connections) and measures, each after a warm-up:

- the bare endpoint and the inclusion (random leaf, random tree size) and consistency (random
  pair of sizes) proof routes, saturated: every client sends its next request as soon as the
  answer arrived; requests/s, p50, p99;
- the proof routes paced: the same clients offered ``--paced`` of the route's saturated rate,
  latency counted from when each request was due;
- ``POST /v1/vehicles/{id}/certificates`` over every message of each vehicle, one at a time,
  ``--repeats`` times: time to the full body (median), size, the API process's CPU (with its
  children: the signature worker), ratio of times across sizes;
- ``--subscribers`` clients on ``/v1/warnings/stream`` while ``--warnings`` warnings are stored
  one every ``--interval`` s: delay from each commit to each client's event, p50/p99 (the
  feed is pushed: LISTEN/NOTIFY, ``api/routes/warning_feed.py``).

In a closed loop, latency is clients / rate (Little's law): 200 clients under 20 ms would need
10,000 requests/s, more than the bare endpoint manages on two cores. So the issue's p99 floor
is judged on the paced run, and the saturated p99 of the bare endpoint is printed beside it.
Progress goes to stderr, figures to stdout; exits 1 when a floor is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

# Run as a script: the project root on the path, for the helpers in tests/ (not installed).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx
from api_setup import add_cast, add_proof_log, add_vehicles
from cpu_accounting import CpuAccounting, service_matchers
from http_load import Load, get, hammer, percentile, subscribe

from analytics.warnings.model import WarningType
from analytics.warnings.store import store_warnings
from roadledger.settings import load_settings
from tests.integration.api.places import warning
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until
from tests.support.scratch_schema import scratch_schema_pool
from tests.support.served import served_api, served_process

PROOF_P99_FLOOR_MS = 20.0
PROOF_RATE_FLOOR = 0.5  # x the bare endpoint's rate
CERTIFICATE_FLOOR_S = 1.0  # 10,000 messages
LINEAR_SLACK = 1.25  # a doubling of messages may cost at most 2 x this in time
BENCH = Path(__file__).resolve().parent
PARTS = ("proofs", "certificates", "fan-out")


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


class Report:
    """Figure lines for stdout and the floors missed."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.missed: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def exit_code(self) -> int:
        """1 (after naming them) when floors were missed, else 0."""
        if not self.missed:
            return 0
        print(f"floors MISSED: {', '.join(self.missed)}", flush=True)
        return 1

    def floor(self, name: str, ok: bool, detail: str) -> None:
        self.add(f"  floor {name:<52} {detail:<30} {'ok' if ok else 'MISSED'}")
        if not ok:
            self.missed.append(name)

    def load(self, name: str, load: Load, bare: Load | None) -> None:
        ratio = f"{load.rate / bare.rate:5.2f}x bare" if bare else "   the limit"
        cpu = sum(load.cpu_us.values())
        cpu_ratio = f"{sum(bare.cpu_us.values()) / cpu:5.2f}x bare" if bare and cpu else ""
        self.add(
            f"{name:<44} {load.rate:>9,.0f} req/s  p50 {load.p50:7.1f} ms  "
            f"p99 {load.p99:7.1f} ms  {ratio}"
        )
        self.add(
            f"  CPU per request: server {load.cpu_us.get('server', 0):6.0f} us + PostgreSQL "
            f"{load.cpu_us.get('postgres', 0):5.0f} us  {cpu_ratio}"
        )
        if load.failures:
            self.add(f"  {load.failures} failed, first: {load.first_failure}")
            self.missed.append(f"{name}: failures")


async def _load(
    url: str, requests: list[bytes], args: argparse.Namespace, rate: float | None = None
) -> Load:
    await hammer(url, requests[: args.warmup], args.clients)
    port = f" --port {urlsplit(url).port} "
    # What the server and PostgreSQL spend per request: a figure the machine's other load
    # disturbs far less than the rate, since a busy neighbour slows time, not work.
    cpu = CpuAccounting(
        matchers={
            "server": lambda cmd: port in cmd + " ",
            "postgres": service_matchers()["postgres"],
        }
    )
    cpu.sample()
    load = await hammer(url, requests, args.clients, rate)
    cpu.sample()
    used = cpu.seconds()
    load.cpu_us = {k: used.get(k, 0.0) / len(requests) * 1e6 for k in ("server", "postgres")}
    return load


async def _proofs(
    api: str, bare: str, key: str, log_id: int, size: int, args: argparse.Namespace, report: Report
) -> None:
    rng = random.Random(args.seed)
    headers = {"X-API-Key": key}
    base = f"/v1/ledger/logs/{log_id}/proofs"
    inclusion, consistency = [], []
    for _ in range(args.requests):
        tree_size = rng.randint(1, size)
        path = f"{base}/inclusion?leaf_index={rng.randrange(tree_size)}&tree_size={tree_size}"
        inclusion.append(get(api, path, headers))
        second = rng.randint(1, size)
        path = f"{base}/consistency?first={rng.randint(0, second)}&second={second}"
        consistency.append(get(api, path, headers))
    progress(f"bare endpoint: {args.requests:,} requests over {args.clients} connections")
    limit = await _load(bare, [get(bare, "/health", {})] * args.requests, args)
    report.add(
        f"\n{args.clients} clients, {args.requests:,} requests a run (after "
        f"{args.warmup:,} to warm up)"
    )
    report.load("bare FastAPI endpoint, saturated", limit, None)
    runs: dict[str, tuple[Load, Load]] = {}
    for kind, requests in (("inclusion", inclusion), ("consistency", consistency)):
        progress(f"{kind} proofs, saturated, then paced at {args.paced:.0%} of that rate")
        saturated = await _load(api, requests, args)
        report.load(f"{kind} proof, saturated", saturated, limit)
        paced = await _load(api, requests, args, args.paced * saturated.rate)
        report.load(f"{kind} proof, paced {args.paced:.0%}", paced, limit)
        runs[kind] = saturated, paced
    for kind, (saturated, paced) in runs.items():
        report.floor(
            f"{kind} p99 < {PROOF_P99_FLOOR_MS:.0f} ms (paced)",
            paced.p99 < PROOF_P99_FLOOR_MS,
            f"{paced.p99:.1f} ms",
        )
        report.floor(
            f"{kind} rate >= {PROOF_RATE_FLOOR}x bare",
            saturated.rate >= PROOF_RATE_FLOOR * limit.rate,
            f"{saturated.rate / limit.rate:.2f}x",
        )


async def _certificates(
    api: str,
    key: str,
    vehicles: dict[int, tuple[str, int, int]],
    args: argparse.Namespace,
    report: Report,
) -> None:
    report.add(
        f"\ncertificates, one at a time, median of {args.repeats}; CPU: the API process and "
        "its children"
    )
    times: dict[int, float] = {}
    cpu = CpuAccounting()
    cpu.watch("api", _server_pid(api))
    async with httpx.AsyncClient(base_url=api, timeout=300) as client:
        for count, (device_id, from_ms, to_ms) in sorted(vehicles.items()):
            progress(f"certificate of {count:,} messages x{args.repeats}")
            took, used = [], []
            for _ in range(args.repeats):
                cpu.sample()
                before = cpu.seconds().get("api", 0.0)
                began = time.perf_counter()
                answer = await client.post(
                    f"/v1/vehicles/{device_id}/certificates",
                    json={"from_ms": from_ms, "to_ms": to_ms},
                    headers={"X-API-Key": key},
                )
                took.append(time.perf_counter() - began)
                cpu.sample()
                used.append(cpu.seconds().get("api", 0.0) - before)
                if answer.status_code != 201:
                    raise SystemExit(f"certificate: {answer.status_code} {answer.text[:500]}")
            messages = answer.json()["summary"]["message_count"]
            if messages != count:
                raise SystemExit(f"BUG: a certificate of {messages} messages, not {count}")
            times[count] = statistics.median(took)
            report.add(
                f"certificate of {count:>6,} messages {times[count]:8.3f} s  "
                f"{1 / times[count]:6.2f} certificates/s  "
                f"{len(answer.content) / 1e6:6.1f} MB  CPU {statistics.median(used):6.3f} s"
            )
    counts = sorted(times)
    if 10_000 in times:
        report.floor(
            "certificate of 10,000 messages < 1 s",
            times[10_000] < CERTIFICATE_FLOOR_S,
            f"{times[10_000]:.3f} s",
        )
    for small, big in itertools.pairwise(counts):
        ratio = times[big] / times[small]
        allowed = big / small * LINEAR_SLACK
        report.floor(
            f"linear: time {big:,} / {small:,} <= {allowed:.2f}",
            ratio <= allowed,
            f"{ratio:.2f} (messages x{big / small:.0f})",
        )


def _server_pid(url: str) -> int:
    """The pid of the server listening on ``url``'s port (found by its command line)."""
    port = url.rpartition(":")[2]
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in argv and argv[argv.index(b"--port") + 1 :][:1] == [port.encode()]:
            return int(entry.name)
    raise SystemExit(f"BUG: no process serves {url}")


async def _fan_out(
    api: str, key: str, pool: asyncpg.Pool, device_id: str, args: argparse.Namespace, report: Report
) -> None:
    headers = {"X-API-Key": key}
    received: list[dict[str, float]] = [{} for _ in range(args.subscribers)]
    opened = [asyncio.Event() for _ in range(args.subscribers)]
    tasks = [
        asyncio.create_task(subscribe(api, headers, got, ready, args.warnings + 1))
        for got, ready in zip(received, opened, strict=True)
    ]
    progress(
        f"{args.subscribers} subscribers; {args.warnings} warnings, one every {args.interval} s"
    )
    start_ms = int(time.time() * 1000) - 3_600_000
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in opened)), 60)
        # A first warning every subscriber has seen: each feed is live from here on.
        await store_warnings(
            pool, [warning("w-primer", WarningType.SPEEDING, device_id, [1], start_ms)]
        )
        await wait_until(
            lambda: all("w-primer" in got for got in received),
            "every subscriber to see the first warning",
            60,
            every_s=0.01,
        )
        stored: dict[str, float] = {}
        for n in range(args.warnings):
            name = f"w-{n}"
            one = warning(name, WarningType.SPEEDING, device_id, [n + 2], start_ms + n)
            await store_warnings(pool, [one])
            stored[name] = time.perf_counter()
            await asyncio.sleep(args.interval)  # pacing the warnings, not synchronisation
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
    delays = [(got[name] - at) * 1000 for got in received for name, at in stored.items()]
    last = max(max(got[name] for name in stored) for got in received) - min(stored.values())
    report.add(
        f"\nSSE fan-out: {args.subscribers} subscribers x {args.warnings} warnings "
        f"({len(delays):,} deliveries), pushed (LISTEN/NOTIFY)"
    )
    report.add(
        f"commit -> event p50 {percentile(delays, 0.5):7.1f} ms  p99 "
        f"{percentile(delays, 0.99):7.1f} ms  max {max(delays):7.1f} ms; first commit "
        f"-> every client has every event {last:.2f} s"
    )


async def measure(args: argparse.Namespace, tmp: Path) -> Report:
    report = Report()
    log_key = tmp / "log.skey"
    settings = load_settings().model_copy(update={"log_key_file": log_key})
    async with scratch_schema_pool(settings) as pool:
        cast = await add_cast(pool)
        counts = args.certificates if "certificates" in args.only else [1]
        progress(f"vehicles of {', '.join(f'{c:,}' for c in counts)} messages "
                 "through the ledger writer")  # fmt: skip
        vehicles = await add_vehicles(pool, settings, counts)
        env = {"ROADLEDGER_LOG_KEY_FILE": str(log_key)}
        gc.collect()
        gc.freeze()  # the benchmark's own objects stay out of the collector's walks
        async with served_api(settings, pool, env) as api:
            if "proofs" in args.only:
                await _proofs_against_bare(api, pool, cast.api_key, args, report)
            if "certificates" in args.only:
                await _certificates(api, cast.api_key, vehicles, args, report)
            if "fan-out" in args.only:
                device_id = vehicles[min(vehicles)][0]
                await _fan_out(api, cast.api_key, pool, device_id, args, report)
    return report


async def _proofs_against_bare(
    api: str, pool: asyncpg.Pool, key: str, args: argparse.Namespace, report: Report
) -> None:
    progress(f"a log of {args.leaves:,} leaves")
    log_id, size = await add_proof_log(pool, args.leaves)
    gc.collect()
    gc.freeze()
    port = free_port()
    bare_argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH),
        "bare_api:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-proxy-headers",
    ]
    async with served_process(bare_argv, port, {}) as bare:
        await _proofs(api, bare, key, log_id, size, args, report)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/api_load.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Run from the project root with the services up; see bench/README.md.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 20,000 leaves, 2,000 requests, certificates of "
        "1,000 and 2,000 messages, 10 subscribers",
    )
    parser.add_argument("--leaves", type=int, default=1_000_000, help="leaves of the log")
    parser.add_argument("--clients", type=int, default=200, help="concurrent connections")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per run")
    parser.add_argument("--warmup", type=int, default=2_000, help="requests before each run")
    parser.add_argument(
        "--paced",
        type=float,
        default=0.5,
        help="offered load of the paced runs, x the saturated rate (0.5)",
    )
    parser.add_argument(
        "--certificates",
        type=int,
        nargs="+",
        default=[10_000, 20_000, 40_000],
        help="messages of each certificate's vehicle",
    )
    parser.add_argument("--repeats", type=int, default=3, help="requests per certificate")
    parser.add_argument("--subscribers", type=int, default=100, help="SSE clients")
    parser.add_argument("--warnings", type=int, default=50, help="warnings stored for them")
    parser.add_argument("--interval", type=float, default=0.1, help="s between warnings")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable; default: all of them; fan-out alone: a vehicle "
        "of one message, no log, no bare server)",
    )
    args = parser.parse_args(argv)
    args.only = PARTS if not args.only else tuple(dict.fromkeys(args.only))
    if args.quick:
        args.leaves, args.requests, args.warmup = 20_000, 2_000, 200
        args.certificates, args.repeats = [1_000, 2_000], 1
        args.subscribers, args.warnings = 10, 10
    if (
        min(
            args.leaves,
            args.clients,
            args.requests,
            args.repeats,
            args.subscribers,
            args.warnings,
            *args.certificates,
        )
        < 1
        or not 0 < args.paced <= 1
    ):
        parser.error("counts must be positive, --paced in (0, 1]")
    args.certificates = sorted(set(args.certificates))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"API benchmark: {args.leaves:,} leaves, {args.clients} clients, Python "
        f"{sys.version.split()[0]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        report = asyncio.run(measure(args, Path(tmp)))
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
