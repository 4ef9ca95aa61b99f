"""``GET /v1/warnings/stream``: new warnings the caller may see, as Server-Sent Events.

Each event is ``event: warning``, ``id: <cursor>`` and ``data:`` the warning's JSON. The cursor
is ``<stored_at in microseconds since the epoch>.<warning_id>``: the feed's order (when the
row was stored, then id), so it only ever increases. A client that reconnects with the
``Last-Event-ID`` header gets the events after that one first, then the live ones; without it,
the feed starts at the connection.

The feed polls the ``warnings`` table every :data:`POLL_S` by that key (a pooled connection
per query: no session state, ``roadledger/db/pool.py``), reading only up to
``feed_horizon`` so that a row committed late is never skipped. A comment line every
:data:`HEARTBEAT_S` keeps proxies from closing an idle stream. The caller's visibility
(grants, jurisdictions) is read again every :data:`VISIBILITY_S`. The stream ends when the
client goes away (Starlette cancels it) or the server stops (``api.server``).

An authority sees a vehicle's warning by where it happened, which its evidence's telemetry
says; analytics may store the warning before the store writer stores that telemetry. So the
feed of a caller with a jurisdiction does not pass a device warning without a location until
it is :data:`LOCATE_GRACE_S` old: what follows it waits (the order stays the stored order).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from analytics.warnings.store import FeedItem, feed_horizon, feed_warnings
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.routes.warnings import public
from api.server import stopping
from api.sse import described, event_stream, pause
from contracts.access import Scope
from contracts.errors import Invalid
from roadledger.identity.principal import Principal
from roadledger.identity.visibility import Visibility, visibility

__all__ = ["HEARTBEAT_S", "POLL_S", "event_id", "parse_event_id", "router"]

POLL_S = 0.5
HEARTBEAT_S = 15.0
VISIBILITY_S = 30.0
LOCATE_GRACE_S = 10.0
BATCH = 500
RETRY_MS = 2000  # what a client waits before reconnecting
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVENT_ID = re.compile(r"^(\d{1,18})\.([A-Za-z0-9_-]{1,128})$")

router = APIRouter(prefix="/v1/warnings", tags=["warnings"], responses=ERROR_RESPONSES)


class BadEventId(Invalid):
    """A ``Last-Event-ID`` this stream did not hand out."""


def event_id(stored_at: datetime, warning_id: str) -> str:
    """The cursor of a warning stored at ``stored_at``."""
    micros = (stored_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{warning_id}"


def parse_event_id(value: str) -> tuple[datetime, str]:
    """The feed key in an event id (:class:`BadEventId` if it is not one)."""
    match = _EVENT_ID.match(value.strip())
    if match is None:
        raise BadEventId("Last-Event-ID: not an event id of this stream")
    return _EPOCH + timedelta(microseconds=int(match[1])), match[2]


def ready(
    items: list[FeedItem], after: tuple[datetime, str], now: datetime
) -> tuple[list[FeedItem], tuple[datetime, str], bool]:
    """Of a batch in stored order: the events to send, the key after which to read next, and
    whether a warning waits to be located (the batch was cut at it)."""
    send: list[FeedItem] = []
    for item in items:
        if not item.visible and now - item.stored_at < timedelta(seconds=LOCATE_GRACE_S):
            return send, after, True
        after = (item.stored_at, item.warning.warning_id)
        if item.visible:
            send.append(item)
    return send, after, False


def _event(item: FeedItem) -> str:
    data = public(item.warning).model_dump_json()
    key = event_id(item.stored_at, item.warning.warning_id)
    return f"id: {key}\nevent: warning\ndata: {data}\n\n"


async def _events(
    pool: asyncpg.Pool,
    principal: Principal,
    seen: Visibility,
    after: tuple[datetime, str],
    stop: asyncio.Event,
) -> AsyncIterator[str]:
    seen_at = sent_at = time.monotonic()
    yield f"retry: {RETRY_MS}\n: connected\n\n"  # the client knows it is subscribed
    while not stop.is_set():
        if time.monotonic() - seen_at >= VISIBILITY_S:
            seen, seen_at = await visibility(pool, principal, Scope.WARNINGS), time.monotonic()
        until = await feed_horizon(pool)
        items = await feed_warnings(pool, seen, after=after, until=until, limit=BATCH)
        send, after, held = ready(items, after, until)
        for item in send:
            yield _event(item)
            sent_at = time.monotonic()
        if len(items) == BATCH and not held:
            continue  # more waiting: no pause
        if time.monotonic() - sent_at >= HEARTBEAT_S:
            yield ": heartbeat\n\n"
            sent_at = time.monotonic()
        await pause(stop, POLL_S)


@router.get("/stream", response_class=StreamingResponse, responses=described("Warning events"))
async def stream(
    request: Request,
    principal: PrincipalDep,
    pool: PoolDep,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=200, description="Resume after it")
    ] = None,
) -> StreamingResponse:
    """New warnings the caller may see (as ``GET /v1/warnings`` decides), as Server-Sent
    Events; with ``Last-Event-ID``, first those stored after that event."""
    seen = await visibility(pool, principal, Scope.WARNINGS)  # refused before it starts
    if last_event_id is not None:
        after = parse_event_id(last_event_id)
    else:
        after = (await feed_horizon(pool), "")
    return event_stream(_events(pool, principal, seen, after, stopping(request.app)))
