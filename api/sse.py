"""What the API's Server-Sent Events feeds share (``/v1/warnings/stream``,
``/v1/positions/stream``): the answer, its OpenAPI description, the pause between polls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

__all__ = ["EVENT_STREAM", "described", "event_stream", "pause"]

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
