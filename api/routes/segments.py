"""Road segments: static data with the last 5 minutes' traffic, 5-minute history, forecasts.

Authorities see the segments lying in their jurisdiction (midpoint inside; their units'
too); everyone else sees every segment. Traffic figures are aggregates over vehicles, and a
mean speed is shown only over at least :data:`MIN_VEHICLES` vehicles, so no figure is one
vehicle's speed at a place and time (``docs/api.md``, "Segments").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Query

from analytics.forecast.store import (
    Traffic,
    latest_forecasts,
    load_segments_in,
    recent_traffic,
    segment_buckets,
)
from analytics.warnings.store import ms_of, timestamp_of
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.models.common import MAX_EPOCH_MS
from api.models.segments import (
    SegmentBucketPublic,
    SegmentForecastPublic,
    SegmentPublic,
    TrafficPublic,
)
from api.pagination import BadCursor, CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from contracts.access import OrgKind
from contracts.errors import Invalid, NotFound
from contracts.roads import RoadSegment
from contracts.rules.geometry import Vertex
from roadledger.identity.principal import Principal
from roadledger.identity.visibility import jurisdictions

__all__ = ["CURRENT", "MIN_VEHICLES", "areas_of", "router", "shown_speed"]

router = APIRouter(prefix="/v1/segments", tags=["segments"], responses=ERROR_RESPONSES)

MIN_VEHICLES = 3
CURRENT = timedelta(minutes=5)
MAX_HISTORY = timedelta(days=7)
SegmentIdPath = Annotated[int, Path(ge=0, le=2**31 - 1)]


class UnknownSegment(NotFound):
    """No such segment visible to the caller."""


class BadSpan(Invalid):
    """A history span that is empty or too long."""


async def areas_of(
    pool: asyncpg.Pool, principal: Principal
) -> tuple[tuple[Vertex, ...], ...] | None:
    """The polygons an authority sees segments in; None: every segment."""
    if principal.org_kind != OrgKind.AUTHORITY:
        return None
    return await jurisdictions(pool, principal)


def shown_speed(t: Traffic) -> float | None:
    """``t``'s mean speed when it is over at least :data:`MIN_VEHICLES` vehicles, else None."""
    return t.mean_speed_kmh if t.vehicles >= MIN_VEHICLES else None


def _traffic(t: Traffic) -> TrafficPublic:
    return TrafficPublic(
        from_ms=ms_of(t.start), mean_speed_kmh=shown_speed(t), samples=t.samples,
        vehicles=t.vehicles,
    )  # fmt: skip


def _segment(s: RoadSegment, current: TrafficPublic) -> SegmentPublic:
    return SegmentPublic(
        segment_id=s.segment_id,
        name=s.name,
        road_class=s.road_class.value,
        speed_limit_kmh=s.speed_limit_kmh,
        geometry=[[s.a_lat_e7, s.a_lon_e7], [s.b_lat_e7, s.b_lon_e7]],
        length_m=round(s.length_m, 1),
        current=current,
    )


async def _visible_segment(pool: asyncpg.Pool, principal: Principal, segment_id: int) -> None:
    if not await load_segments_in(pool, await areas_of(pool, principal), segment_id=segment_id):
        raise UnknownSegment(f"no segment {segment_id} is visible to you")


@router.get("", response_model=Page[SegmentPublic])
async def segments(
    principal: PrincipalDep, pool: PoolDep, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Page[SegmentPublic]:
    """The segments the caller sees, by id, each with its traffic over the last 5 minutes."""
    key = decode_cursor(cursor, 1)
    if key is not None and type(key[0]) is not int:
        raise BadCursor("cursor: not a cursor of this list")
    found = await load_segments_in(
        pool, await areas_of(pool, principal), after=key[0] if key else None, limit=limit + 1
    )
    page = found[:limit]
    end = datetime.now(UTC)
    start = end - CURRENT
    traffic = await recent_traffic(pool, [s.segment_id for s in page], start, end)
    empty = Traffic(start, None, 0, 0)
    return Page[SegmentPublic](
        items=[_segment(s, _traffic(traffic.get(s.segment_id, empty))) for s in page],
        next_cursor=encode_cursor([page[-1].segment_id]) if len(found) > limit else None,
    )


@router.get("/{segment_id}/history", response_model=list[SegmentBucketPublic])
async def history(
    segment_id: SegmentIdPath,
    principal: PrincipalDep,
    pool: PoolDep,
    from_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="Default: to_ms - 1 h")
    ] = None,
    to_ms: Annotated[int | None, Query(ge=0, le=MAX_EPOCH_MS, description="Default: now")] = None,
) -> list[SegmentBucketPublic]:
    """The segment's 5-minute buckets starting in ``[from_ms, to_ms)`` (at most 7 days): mean
    speed, messages, distinct vehicles. Buckets without a matched message are absent."""
    end = timestamp_of(to_ms) if to_ms is not None else datetime.now(UTC)
    start = timestamp_of(from_ms) if from_ms is not None else end - timedelta(hours=1)
    if end <= start:
        raise BadSpan("to_ms: must be after from_ms")
    if end - start > MAX_HISTORY:
        raise BadSpan("from_ms: the span may be at most 7 days")
    await _visible_segment(pool, principal, segment_id)
    buckets = await segment_buckets(pool, segment_id, start, end)
    return [SegmentBucketPublic(**_traffic(b).model_dump()) for b in buckets]


@router.get("/{segment_id}/forecasts", response_model=list[SegmentForecastPublic])
async def forecasts(
    segment_id: SegmentIdPath, principal: PrincipalDep, pool: PoolDep
) -> list[SegmentForecastPublic]:
    """The segment's latest forecasts (speed and flow 15, 30 and 60 minutes ahead,
    ``docs/forecasts.md``), by horizon; empty before the first refresh."""
    await _visible_segment(pool, principal, segment_id)
    return [
        SegmentForecastPublic(
            issued_at_ms=ms_of(f.issued_at),
            horizon_min=f.horizon_min,
            target_at_ms=ms_of(f.target_at),
            speed_kmh=f.speed_kmh,
            flow_vehicles=f.flow_vehicles,
            speed_method=f.speed_method,
            flow_method=f.flow_method,
        )
        for f in await latest_forecasts(pool, segment_id)
    ]
