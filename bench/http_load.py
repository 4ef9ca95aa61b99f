"""The load generator of ``bench/api_load.py``: HTTP/1.1 keep-alive connections on raw asyncio
streams (no HTTP client library: on two cores shared with the server, httpx's own work per
request would cap the rate before the server does), and Server-Sent Events subscribers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from warning_latency import percentile

__all__ = ["Load", "get", "hammer", "percentile", "subscribe"]


@dataclass
class Load:
    """What one load run measured: latency per request (ms), wall time, failures."""

    latencies_ms: list[float]
    seconds: float
    failures: int
    first_failure: str = ""
    cpu_us: dict[str, float] = field(default_factory=dict)  # per request, by process

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def get(url: str, path: str, headers: Mapping[str, str]) -> bytes:
    """The bytes of a keep-alive ``GET path`` to ``url``'s host."""
    host = urlsplit(url).netloc
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of the next response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
    if not chunked:
        return status, await reader.readexactly(length)
    body = bytearray()
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        body += await reader.readexactly(size + 2)
        del body[-2:]
    await reader.readuntil(b"\r\n")
    return status, bytes(body)


async def hammer(
    url: str, requests: Sequence[bytes], clients: int, rate: float | None = None
) -> Load:
    """Send ``requests`` over ``clients`` keep-alive connections, opened first.

    ``rate`` None: each client sends its next request as soon as it has the previous answer
    (a closed loop: the server's saturated rate). Otherwise requests are due at ``rate`` per
    second overall, round robin over the clients, and each latency counts from when its
    request was due, so a server that falls behind is charged for the wait (no coordinated
    omission).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections = [await asyncio.open_connection(host, port) for _ in range(clients)]
    pending: Iterator[tuple[int, bytes]] = iter(enumerate(requests))
    latencies: list[float] = []
    failures: list[str] = []
    began = time.perf_counter()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for number, request in pending:
            due = time.perf_counter()
            if rate is not None:
                due = began + number / rate
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)  # pacing the offered load, not synchronisation
            writer.write(request)
            status, body = await _response(reader)
            latencies.append((time.perf_counter() - due) * 1000)
            if status != 200:
                failures.append(f"{status} {body[:300].decode(errors='replace')}")
        writer.close()

    await asyncio.gather(*(client(*connection) for connection in connections))
    seconds = time.perf_counter() - began
    return Load(latencies, seconds, len(failures), failures[0] if failures else "")


async def subscribe(
    url: str,
    headers: Mapping[str, str],
    received: dict[str, float],
    opened: asyncio.Event,
    wanted: int,
) -> None:
    """Follow ``/v1/warnings/stream``, noting when each warning id arrived in ``received``;
    set ``opened`` once the response has begun, end after ``wanted`` events."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("GET", "/v1/warnings/stream", headers=headers) as response,
    ):
        response.raise_for_status()
        opened.set()
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                received[json.loads(line[5:])["warning_id"]] = time.perf_counter()
                if len(received) == wanted:
                    return
