"""A vehicle's data over a time window: its track (GeoJSON) and its odometer history. Every
read goes through :func:`api.access.require_access` with its scope (``track``, ``mileage``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.access import require_access
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.models.vehicles import (
    MileageBucketPublic,
    MileagePage,
    TrackFeature,
    TrackPage,
    TrackPointGeometry,
    TrackProperties,
)
from api.pagination import BadCursor, CursorQuery, LimitQuery, decode_cursor, encode_cursor
from api.time_window import WindowDep
from contracts.access import Scope
from roadledger.db.telemetry_read import BUCKET_MS, TrackPoint, mileage_page, track_page

__all__ = ["router"]

router = APIRouter(prefix="/v1/vehicles", tags=["vehicle data"], responses=ERROR_RESPONSES)

TRACK = "GET /v1/vehicles/{device_id}/track"
MILEAGE = "GET /v1/vehicles/{device_id}/mileage"


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"


def _ints(cursor: str | None, arity: int) -> list[int] | None:
    key = decode_cursor(cursor, arity)
    if key is not None and not all(type(v) is int for v in key):
        raise BadCursor("cursor: not a cursor of this list")
    return key


def _feature(point: TrackPoint) -> TrackFeature:
    return TrackFeature(
        geometry=TrackPointGeometry(coordinates=(point.lon_e7 / 1e7, point.lat_e7 / 1e7)),
        properties=TrackProperties(
            seq=point.seq,
            ts_ms=point.ts_ms,
            lat_e7=point.lat_e7,
            lon_e7=point.lon_e7,
            odo_m=point.odo_m,
            spd_cms=point.spd_cms,
            hdg_cdeg=point.hdg_cdeg,
            segment_id=point.segment_id,
        ),
    )


@router.get("/{device_id}/track", response_model=TrackPage, response_class=GeoJSONResponse)
async def track(
    device_id: str,
    window: WindowDep,
    principal: PrincipalDep,
    pool: PoolDep,
    limit: LimitQuery = 500,
    cursor: CursorQuery = None,
) -> TrackPage:
    """Where the vehicle was in ``[from_ms, to_ms)``: one GeoJSON Point feature per stored
    message, in device time order (scope ``track``)."""
    await require_access(pool, principal, device_id, Scope.TRACK, action=TRACK)
    after = _ints(cursor, 2)
    points = await track_page(
        pool,
        device_id,
        window.from_ms,
        window.to_ms,
        after=None if after is None else (after[0], after[1]),
        limit=limit + 1,
    )
    page = points[:limit]
    more = len(points) > limit
    return TrackPage(
        device_id=device_id,
        features=[_feature(p) for p in page],
        next_cursor=encode_cursor([page[-1].ts_us, page[-1].seq]) if more else None,
    )


@router.get("/{device_id}/mileage", response_model=MileagePage)
async def mileage(
    device_id: str,
    window: WindowDep,
    principal: PrincipalDep,
    pool: PoolDep,
    resolution: Literal["day", "hour"] = Query(default="day", description="UTC days or hours"),
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> MileagePage:
    """The odometer in ``[from_ms, to_ms)`` per UTC day or hour with readings: first, last,
    lowest and highest reading, distance, rollback, message count (scope ``mileage``)."""
    await require_access(pool, principal, device_id, Scope.MILEAGE, action=MILEAGE)
    after = _ints(cursor, 1)
    buckets = await mileage_page(
        pool,
        device_id,
        window.from_ms,
        window.to_ms,
        resolution,
        after_start_ms=None if after is None else after[0],
        limit=limit + 1,
    )
    page = buckets[:limit]
    more = len(buckets) > limit
    span = BUCKET_MS[resolution]
    return MileagePage(
        device_id=device_id,
        resolution=resolution,
        items=[
            MileageBucketPublic(
                start_ms=b.start_ms,
                end_ms=b.start_ms + span,
                first_odo_m=b.first_odo_m,
                last_odo_m=b.last_odo_m,
                min_odo_m=b.min_odo_m,
                max_odo_m=b.max_odo_m,
                distance_m=b.distance_m,
                rollback_m=b.rollback_m,
                messages=b.messages,
            )
            for b in page
        ],
        next_cursor=encode_cursor([page[-1].start_ms]) if more else None,
    )
