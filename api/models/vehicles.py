"""Vehicle data: the track as GeoJSON, the odometer history."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "MileageBucketPublic",
    "MileagePage",
    "TrackFeature",
    "TrackPage",
    "TrackPointGeometry",
    "TrackProperties",
]


class TrackPointGeometry(BaseModel):
    """A GeoJSON Point: ``[longitude, latitude]`` in degrees (WGS 84, RFC 7946 order)."""

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(examples=[[13.4049, 52.52]])


class TrackProperties(BaseModel):
    """One stored message: its sequence number and device time, the exact stored position
    (``lat_e7``/``lon_e7``, degrees x 1e7) and what it says of the motion (None for an RSU)."""

    seq: int
    ts_ms: int
    lat_e7: int
    lon_e7: int
    odo_m: int | None
    spd_cms: int | None = Field(description="Speed, cm/s")
    hdg_cdeg: int | None = Field(description="Heading, 1/100 degree clockwise from north")
    segment_id: int | None = Field(description="Map-matched road segment, if any")


class TrackFeature(BaseModel):
    """A GeoJSON Feature per message."""

    type: Literal["Feature"] = "Feature"
    geometry: TrackPointGeometry
    properties: TrackProperties


class TrackPage(BaseModel):
    """One page of a track: a GeoJSON FeatureCollection of Point features in ``(ts, seq)``
    order, with the page's ``next_cursor`` (null on the last page) as a foreign member."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    device_id: str
    features: list[TrackFeature]
    next_cursor: str | None


class MileageBucketPublic(BaseModel):
    """The odometer over one UTC day or hour (see docs/api.md, "Vehicle data")."""

    start_ms: int
    end_ms: int
    first_odo_m: int
    last_odo_m: int
    min_odo_m: int
    max_odo_m: int
    distance_m: int = Field(description="Sum of the odometer's increases into this bucket")
    rollback_m: int = Field(description="Sum of its decreases (an odometer never goes back)")
    messages: int


class MileagePage(BaseModel):
    """One page of buckets with readings, oldest first."""

    device_id: str
    resolution: Literal["day", "hour"]
    items: list[MileageBucketPublic]
    next_cursor: str | None
