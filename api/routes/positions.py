"""``GET /v1/positions/stream``: the live positions of the vehicles the caller may track, as
Server-Sent Events (the dashboard's map).

Each event is ``event: positions`` with ``data: {"positions": [...]}``: the vehicles whose
latest stored message changed since the last event (the first event, sent even when empty:
every vehicle heard in the last :data:`LIVE_S`). The stream polls ``telemetry`` every
:data:`POLL_S` for the latest message of each vehicle the caller may track
(``roadledger.positions``: its own, and those a ``track`` grant opens to it now; read again
every :data:`VISIBILITY_S`). A vehicle's first position on a stream is a read of its track:
it is in the audit log (one entry per vehicle and stream) before it is sent. The stream ends
when the client leaves or the server stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.server import stopping
from api.sse import described, event_stream, polled
from roadledger.identity.principal import Principal
from roadledger.positions import Trackable, latest_positions, record_tracked, trackable

__all__ = ["LIVE_S", "POLL_S", "router"]

POLL_S = 0.5
LIVE_S = 300.0  # a vehicle silent for longer is not on the map
LAG_S = 10.0  # how far behind the newest message a late one is still looked for
HEARTBEAT_S = 15.0
VISIBILITY_S = 30.0
ACTION = "GET /v1/positions/stream"

router = APIRouter(prefix="/v1/positions", tags=["positions"], responses=ERROR_RESPONSES)


def _events(
    pool: asyncpg.Pool, principal: Principal, seen: dict[str, Trackable], stop: asyncio.Event
) -> AsyncIterator[str]:
    seen_at = time.monotonic()
    audited: set[str] = set()
    last: dict[str, tuple[int, int]] = {}  # device -> (ts_ms, seq) sent
    newest_ms = 0

    async def poll() -> list[dict[str, Any]]:
        nonlocal seen, seen_at, newest_ms
        if time.monotonic() - seen_at >= VISIBILITY_S:
            seen, seen_at = await trackable(pool, principal), time.monotonic()
        now_ms = int(time.time() * 1000)
        since = max(now_ms - int(LIVE_S * 1000), newest_ms - int(LAG_S * 1000))
        found = await latest_positions(pool, sorted(seen), since)
        fresh = [p for p in found if last.get(p.device_id, (-1, -1)) < (p.ts_ms, p.seq)]
        await record_tracked(
            pool, principal, [seen[p.device_id] for p in fresh if p.device_id not in audited],
            ACTION,
        )  # fmt: skip
        audited.update(p.device_id for p in fresh)
        last.update({p.device_id: (p.ts_ms, p.seq) for p in fresh})
        newest_ms = max([newest_ms, *(p.ts_ms for p in fresh)])
        return [asdict(p) for p in fresh]

    return polled(stop, poll, "positions", POLL_S, HEARTBEAT_S)


@router.get("/stream", response_class=StreamingResponse, responses=described("Position events"))
async def stream(request: Request, principal: PrincipalDep, pool: PoolDep) -> StreamingResponse:
    """The latest position of each vehicle the caller may track (its own, or by a grant of
    ``track``), then each new one, as Server-Sent Events."""
    seen = await trackable(pool, principal)  # refused (403) before the stream starts
    return event_stream(_events(pool, principal, seen, stopping(request.app)))
