"""Reading a Server-Sent Events stream of the API in tests: events, comments, subscription."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from tests.integration.api.conftest import bearer

WAIT_S = 20.0


@dataclass
class Feed:
    """The events of one open stream, read line by line."""

    lines: AsyncIterator[str]
    comments: list[str] = field(default_factory=list)

    async def _next(self) -> dict[str, str]:
        event: dict[str, str] = {}
        async for line in self.lines:
            if not line:
                if "data" in event or "id" in event:
                    return event
                continue
            name, _, value = line.partition(":")
            if not name:
                self.comments.append(value.strip())
                continue
            event[name] = value.removeprefix(" ")
        raise EOFError("the stream ended")

    async def events(self) -> AsyncIterator[dict[str, str]]:
        """Every event until the stream ends, without a time limit (for a reader task)."""
        while True:
            try:
                yield await self._next()
            except EOFError:
                return

    async def next(self) -> dict[str, str]:
        """The next event (id, event, data), waiting at most WAIT_S."""
        return await asyncio.wait_for(self._next(), WAIT_S)

    async def ids(self, n: int) -> list[str]:
        """The warning ids of the next ``n`` events."""
        return [json.loads((await self.next())["data"])["warning_id"] for _ in range(n)]

    async def until_comment(self, text: str) -> None:
        async def seen() -> None:
            async for line in self.lines:
                if line.startswith(":") and line[1:].strip() == text:
                    return
            raise EOFError("the stream ended")

        await asyncio.wait_for(seen(), WAIT_S)


@asynccontextmanager
async def opened(
    client: httpx.AsyncClient,
    username: str,
    last_event_id: str | None = None,
    path: str = "/v1/warnings/stream",
) -> AsyncIterator[Feed]:
    """An open stream (``path``: by default the warnings') of ``username``, subscribed (its
    first comment read)."""
    headers = await bearer(client, username)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", path, headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        feed = Feed(answer.aiter_lines())
        await feed.until_comment("connected")
        yield feed
