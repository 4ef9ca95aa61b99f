"""Road segments: static data, recent traffic, history and forecasts."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["SegmentBucketPublic", "SegmentForecastPublic", "SegmentPublic", "TrafficPublic"]


class TrafficPublic(BaseModel):
    """Vehicle messages matched to the segment over a span starting at ``from_ms``: mean
    speed (null: no sample, or fewer than 3 vehicles, so no one vehicle's speed is shown),
    messages and distinct vehicles."""

    from_ms: int = Field(examples=[1_780_000_000_000])
    mean_speed_kmh: float | None = Field(examples=[43.2])
    samples: int = Field(examples=[120])
    vehicles: int = Field(examples=[7])


class SegmentPublic(BaseModel):
    """A road segment, its geometry (``[[lat_e7, lon_e7], [lat_e7, lon_e7]]``, from ``a`` to
    ``b``) and its traffic over the last 5 minutes."""

    segment_id: int = Field(examples=[17])
    name: str = Field(examples=["Ring road 3"])
    road_class: str = Field(examples=["arterial"])
    speed_limit_kmh: int = Field(examples=[50])
    geometry: list[list[int]] = Field(examples=[[[525200000, 134050000], [525210000, 134070000]]])
    length_m: float = Field(examples=[171.4])
    current: TrafficPublic


class SegmentBucketPublic(TrafficPublic):
    """One 5-minute bucket of ``segment_speed_5m`` (``from_ms``: the bucket start)."""


class SegmentForecastPublic(BaseModel):
    """A forecast of the segment's bucket starting at ``target_at_ms`` (docs/forecasts.md)."""

    issued_at_ms: int = Field(examples=[1_780_000_200_000])
    horizon_min: int = Field(examples=[15])
    target_at_ms: int = Field(examples=[1_780_000_800_000])
    speed_kmh: float | None = Field(examples=[41.5])
    flow_vehicles: float | None = Field(examples=[6.2])
    speed_method: str = Field(examples=["lag-ridge"])
    flow_method: str = Field(examples=["lag-ridge"])
