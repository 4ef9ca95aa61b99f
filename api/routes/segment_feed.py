"""``GET /v1/segments/stream``: the live state of the segments the caller sees, as Server-Sent
Events (the dashboard's network colours).

Each event is ``event: segments`` with ``data: {"segments": [...]}``, one item per segment:
``segment_id``, ``mean_speed_kmh`` (None below :data:`~api.routes.segments.MIN_VEHICLES`
vehicles, as ``GET /v1/segments`` shows it), ``vehicles`` (the flow: distinct vehicles over
the last 5 minutes) and ``state`` (:func:`state_of`). The first event holds every segment the
caller sees; each later one the segments whose item changed, at most one event every
:data:`POLL_S`. Who sees which segment is decided as for ``GET /v1/segments`` (an authority:
its and its units' jurisdictions; read again every :data:`VISIBILITY_S`). A comment line every
:data:`HEARTBEAT_S` without an event keeps proxies from closing the stream; it ends when the
client leaves or the server stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from analytics.forecast.store import Traffic, load_segments_in, recent_traffic
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.routes.segments import CURRENT, areas_of, shown_speed
from api.server import stopping
from api.sse import described, event_stream, polled
from contracts.roads import RoadSegment
from roadledger.identity.principal import Principal

__all__ = ["HEARTBEAT_S", "POLL_S", "SegmentState", "router", "state_of"]

POLL_S = 1.0
HEARTBEAT_S = 15.0
VISIBILITY_S = 30.0
PAGE = 1000

router = APIRouter(prefix="/v1/segments", tags=["segments"], responses=ERROR_RESPONSES)


@dataclass(frozen=True, slots=True)
class SegmentState:
    """One segment's live item (see the module docstring)."""

    segment_id: int
    mean_speed_kmh: float | None
    vehicles: int
    state: str


def state_of(speed_kmh: float | None, limit_kmh: int) -> str:
    """``free`` at 70 % of the limit or more, ``slow`` from 40 %, ``jammed`` below, ``unknown``
    without a shown speed (the dashboard's colours)."""
    if speed_kmh is None or limit_kmh <= 0:
        return "unknown"
    ratio = speed_kmh / limit_kmh
    return "free" if ratio >= 0.7 else "slow" if ratio >= 0.4 else "jammed"


async def _visible(pool: asyncpg.Pool, principal: Principal) -> list[RoadSegment]:
    areas = await areas_of(pool, principal)
    found: list[RoadSegment] = []
    while True:
        after = found[-1].segment_id if found else None
        page = await load_segments_in(pool, areas, after=after, limit=PAGE)
        found += page
        if len(page) < PAGE:
            return found


async def _states(pool: asyncpg.Pool, segments: Sequence[RoadSegment]) -> list[SegmentState]:
    end = datetime.now(UTC)
    traffic = await recent_traffic(pool, [s.segment_id for s in segments], end - CURRENT, end)
    empty = Traffic(end - CURRENT, None, 0, 0)
    states = []
    for s in segments:
        t = traffic.get(s.segment_id, empty)
        speed = shown_speed(t)
        states.append(
            SegmentState(s.segment_id, speed, t.vehicles, state_of(speed, s.speed_limit_kmh))
        )
    return states


def _events(
    pool: asyncpg.Pool, principal: Principal, segments: list[RoadSegment], stop: asyncio.Event
) -> AsyncIterator[str]:
    seen_at = time.monotonic()
    last: dict[int, SegmentState] = {}

    async def poll() -> list[dict[str, Any]]:
        nonlocal segments, seen_at
        if time.monotonic() - seen_at >= VISIBILITY_S:
            segments, seen_at = await _visible(pool, principal), time.monotonic()
        changed = [s for s in await _states(pool, segments) if last.get(s.segment_id) != s]
        last.update({s.segment_id: s for s in changed})
        return [asdict(s) for s in changed]

    return polled(stop, poll, "segments", POLL_S, HEARTBEAT_S)


@router.get("/stream", response_class=StreamingResponse, responses=described("Segment events"))
async def stream(request: Request, principal: PrincipalDep, pool: PoolDep) -> StreamingResponse:
    """The live speed, flow and state of each segment the caller sees, then each change, as
    Server-Sent Events."""
    segments = await _visible(pool, principal)
    return event_stream(_events(pool, principal, segments, stopping(request.app)))
