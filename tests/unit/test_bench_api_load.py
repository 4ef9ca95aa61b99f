"""bench/api_load.py: its --help and arguments, and the load generator's HTTP/1.1 reading."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[2] / "bench"


def _module(name: str) -> ModuleType:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the benchmark imports its sibling modules
    return importlib.import_module(name)


def test_help_runs_as_a_newcomer_would_call_it() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "api_load.py"), "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout
    assert "bare FastAPI endpoint" in " ".join(done.stdout.split())  # however it wraps


def test_quick_is_small_and_bad_arguments_are_refused() -> None:
    parse_args = _module("api_load").parse_args
    quick = parse_args(["--quick"])
    assert quick.leaves == 20_000
    assert quick.requests == 2_000
    assert quick.certificates == [1_000, 2_000]
    full = parse_args(["--certificates", "40000", "10000", "20000", "10000"])
    assert full.certificates == [10_000, 20_000, 40_000]
    assert full.clients == 200
    assert full.only == ("proofs", "certificates", "fan-out")
    only = parse_args(["--only", "certificates", "--only", "proofs", "--only", "certificates"])
    assert only.only == ("certificates", "proofs")
    for bad in (["--paced", "0"], ["--clients", "0"], ["--certificates", "0"], ["--only", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


async def test_the_load_generator_reads_every_answer_on_kept_alive_connections() -> None:
    http_load = _module("http_load")
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope",
    ]
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                number = int(request.split(b" ")[1].lstrip(b"/"))
                writer.write(answers[number % 3])
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        requests = [http_load.get(url, f"/{n}", {"X-API-Key": "k"}) for n in range(30)]
        load = await http_load.hammer(url, requests, 4)
        paced = await http_load.hammer(url, requests[:6], 2, rate=1000.0)
    assert len(load.latencies_ms) == 30
    assert load.failures == 10
    assert load.first_failure.startswith("404 nope")
    assert len(paced.latencies_ms) == 6
    assert connections == 6
    assert load.p50 <= load.p99
    assert load.rate > 0
