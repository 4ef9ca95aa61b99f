"""What the API's Server-Sent Events feeds share (``/v1/warnings/stream``,
``/v1/positions/stream``, ``/v1/segments/stream``): the answer, its OpenAPI description, the
pause between polls, and the loop of a feed that polls for what changed (:func:`polled`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import StreamingResponse

__all__ = ["EVENT_STREAM", "described", "event_stream", "pause", "polled"]

EVENT_STREAM = "text/event-stream"


def described(what: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a feed route: a 200 of Server-Sent Events of ``what``."""
    return {200: {"content": {EVENT_STREAM: {}}, "description": what}}


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """``events`` (each a complete SSE block) as a streamed answer, never cached or buffered
    by a proxy."""
    return StreamingResponse(
        events,
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds`` (a feed's poll period), or less when ``stop`` is set (the server
    stopping)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def polled(
    stop: asyncio.Event,
    poll: Callable[[], Awaitable[list[dict[str, Any]]]],
    name: str,
    every_s: float,
    heartbeat_s: float,
) -> AsyncIterator[str]:
    """A feed's events: ``: connected``, then every ``every_s`` until ``stop`` is set, the
    items ``poll`` returns (what changed since its last call) as ``event: name`` with ``data:
    {name: [...]}``; the first poll's always (the snapshot, empty or not: the client knows), a
    later one's only when not empty, ``: heartbeat`` after ``heartbeat_s`` without an event."""
    sent_at = time.monotonic()
    first = True
    yield ": connected\n\n"
    while not stop.is_set():
        items = await poll()
        if items or first:
            first = False
            data = json.dumps({name: items}, separators=(",", ":"))
            yield f"event: {name}\ndata: {data}\n\n"
            sent_at = time.monotonic()
        elif time.monotonic() - sent_at >= heartbeat_s:
            yield ": heartbeat\n\n"
            sent_at = time.monotonic()
        await pause(stop, every_s)
