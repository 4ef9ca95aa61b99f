"""``GET /v1/warnings/stream``: new warnings the caller may see, as Server-Sent Events.

Each event is ``event: warning``, ``id: <cursor>`` and ``data:`` the warning's JSON. The cursor
is ``<stored_at in microseconds since the epoch>.<warning_id>``: the feed's order (when the
row was stored, then id), so it only ever increases. A client that reconnects with the
``Last-Event-ID`` header gets the events after that one first, then the live ones; without it,
the feed starts at the connection.

The feed is pushed: every insert into ``warnings`` notifies at commit (a trigger, migration 10),
and the API process's one listening connection (:func:`feed_wakeups`,
``roadledger/db/listener.py``) wakes every open feed at once. Each feed then reads the table
itself by its key (a pooled connection per query: no session state,
``roadledger/db/pool.py``), reading only up to ``feed_horizon`` so that a row committed late is
never skipped. The notification is only a wake-up, so a missed one costs latency, never an
event: a feed also reads every :data:`SAFETY_POLL_S`; every :data:`CATCH_UP_S` while a warning
it was told of lies beyond its horizon (an open transaction holds it back); and every
:data:`POLL_S`, as before notifications, while the listening connection is down or a warning
waits to be located. A comment line every :data:`HEARTBEAT_S` keeps proxies from closing an
idle stream. The caller's visibility
(grants, jurisdictions) is read again every :data:`VISIBILITY_S`. The stream ends when the
client goes away (Starlette cancels it) or the server stops (``api.server``).

An authority sees a vehicle's warning by where it happened, which its evidence's telemetry
says; analytics may store the warning before the store writer stores that telemetry. So the
feed of a caller with a jurisdiction does not pass a device warning without a location until
it is :data:`LOCATE_GRACE_S` old: what follows it waits (the order stays the stored order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import StreamingResponse

from analytics.warnings.store import FeedItem, feed_horizon, feed_warnings
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.routes.warnings import public
from api.server import stopping
from api.sse import described, event_stream
from contracts.access import Scope
from contracts.errors import Invalid
from roadledger.db.listener import TableWakeups
from roadledger.db.warnings_feed_schema import WARNINGS_CHANNEL
from roadledger.identity.principal import Principal
from roadledger.identity.visibility import Visibility, visibility
from roadledger.settings import Settings

__all__ = [
    "CATCH_UP_S",
    "HEARTBEAT_S",
    "POLL_S",
    "SAFETY_POLL_S",
    "event_id",
    "feed_wakeups",
    "parse_event_id",
    "router",
]

POLL_S = 0.5
CATCH_UP_S = 0.2
SAFETY_POLL_S = 5.0
HEARTBEAT_S = 15.0
VISIBILITY_S = 30.0
LOCATE_GRACE_S = 10.0
BATCH = 500
RETRY_MS = 2000  # what a client waits before reconnecting
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EVENT_ID = re.compile(r"^(\d{1,18})\.([A-Za-z0-9_-]{1,128})$")

log = logging.getLogger("roadledger.api")

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


class SharedReads:
    """The feeds' reads, each by its own key, with the work they have in common done once.

    A notification wakes every feed at once; each would then ask for a horizon and read the
    rows after its key. The horizon after a notification is the same for all of them: the
    first feed woken by it computes it (after the notification, so below the new row's
    commit) and the others take it (any horizon is safe; a later one is only sooner). Feeds
    with the same visibility and key (the same caller, or the same organisation, subscribed
    twice) make the same read: one runs it, all take its rows.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._horizon: tuple[asyncio.Event, asyncio.Future[datetime]] | None = None
        self._fresh: asyncio.Future[datetime] | None = None
        self._reads: dict[tuple[Visibility, tuple[datetime, str], datetime], _Read] = {}

    async def horizon(self, woken_by: asyncio.Event | None) -> datetime:
        """A :func:`feed_horizon` computed after ``woken_by`` was set; None: a fresh one (one
        under way is fresh enough: the feeds polling together share it too)."""
        if woken_by is None:
            if self._fresh is None or self._fresh.done():
                self._fresh = asyncio.ensure_future(feed_horizon(self._pool))
            return await asyncio.shield(self._fresh)
        if self._horizon is None or self._horizon[0] is not woken_by:
            self._horizon = woken_by, asyncio.ensure_future(feed_horizon(self._pool))
        return await asyncio.shield(self._horizon[1])

    async def warnings(
        self, seen: Visibility, after: tuple[datetime, str], until: datetime
    ) -> list[FeedItem]:
        """:func:`feed_warnings` of ``seen`` after ``after`` up to ``until``."""
        key = (seen, after, until)
        read = self._reads.get(key)
        if read is None:
            read = asyncio.ensure_future(
                feed_warnings(self._pool, seen, after=after, until=until, limit=BATCH)
            )
            self._reads[key] = read
            read.add_done_callback(lambda _done: self._reads.pop(key, None))
        return await asyncio.shield(read)


_Read = asyncio.Future[list[FeedItem]]


@asynccontextmanager
async def feed_wakeups(app: FastAPI, settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Run the process's listener of new warnings while in the block (the app's lifespan);
    it ends, and with it every feed, when the server stops or the block is left."""
    wakeups = TableWakeups(settings, WARNINGS_CHANNEL, "warnings", log)
    app.state.warning_wakeups = wakeups
    app.state.warning_reads = SharedReads(pool)
    stop = stopping(app)
    task = asyncio.create_task(wakeups.run(pool, stop))
    try:
        yield
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError):  # a connect under way may not end at once
            await asyncio.wait_for(task, 2)


def _wakeups(app: FastAPI) -> tuple[TableWakeups | None, SharedReads | None]:
    return getattr(app.state, "warning_wakeups", None), getattr(app.state, "warning_reads", None)


async def _pause(
    stop: asyncio.Event, wakeups: TableWakeups | None, changed: asyncio.Event, period_s: float
) -> asyncio.Event | None:
    """Until the next notification (returned) or ``period_s``; :data:`POLL_S` at most while
    the listener is down (it wakes every feed when it listens again, and when the server
    stops). Without a listener, until ``stop`` or :data:`POLL_S`."""
    if wakeups is None:
        changed = stop
    if wakeups is None or not wakeups.live:
        period_s = min(period_s, POLL_S)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(changed.wait(), period_s)
    return changed if changed.is_set() and changed is not stop else None


async def _events(
    pool: asyncpg.Pool,
    principal: Principal,
    seen: Visibility,
    after: tuple[datetime, str],
    stop: asyncio.Event,
    wakeups: TableWakeups | None,
    shared: SharedReads | None,
) -> AsyncIterator[str]:
    reads = shared or SharedReads(pool)
    woken_by: asyncio.Event | None = None
    seen_at = sent_at = time.monotonic()
    yield f"retry: {RETRY_MS}\n: connected\n\n"  # the client knows it is subscribed
    while not stop.is_set():
        changed = wakeups.next_change() if wakeups is not None else stop  # before the read
        if time.monotonic() - seen_at >= VISIBILITY_S:
            seen, seen_at = await visibility(pool, principal, Scope.WARNINGS), time.monotonic()
        until = await reads.horizon(woken_by)
        items = await reads.warnings(seen, after, until)
        send, after, held = ready(items, after, until)
        for item in send:
            yield _event(item)
            sent_at = time.monotonic()
        if len(items) == BATCH and not held:
            continue  # more waiting: no pause
        if time.monotonic() - sent_at >= HEARTBEAT_S:
            yield ": heartbeat\n\n"
            sent_at = time.monotonic()
        behind = wakeups is not None and wakeups.behind(until)
        period_s = POLL_S if held else CATCH_UP_S if behind else SAFETY_POLL_S
        period_s = min(period_s, max(HEARTBEAT_S - (time.monotonic() - sent_at), 0.0))
        woken_by = await _pause(stop, wakeups, changed, period_s)


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
    return event_stream(
        _events(pool, principal, seen, after, stopping(request.app), *_wakeups(request.app))
    )
