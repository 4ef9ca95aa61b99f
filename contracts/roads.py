"""The road network: segments with a class, a speed limit and a straight-line geometry.

One place owns the shape of a road segment; the simulator generates networks of them, the
store writer matches positions to them, analytics and rules refer to them by ``segment_id``.
Stored in the ``road_segments`` table (``roadledger/db/schema.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from chain.geodesy import EARTH_RADIUS_M, great_circle_m

__all__ = [
    "EARTH_RADIUS_M",
    "RoadClass",
    "RoadSegment",
    "haversine_m",
    "load_segments",
    "save_segments",
]

# One great-circle formula for certificates and warnings alike (chain.geodesy).
haversine_m = great_circle_m


class RoadClass(StrEnum):
    MOTORWAY = "motorway"
    ARTERIAL = "arterial"
    COLLECTOR = "collector"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class RoadSegment:
    """A directed straight segment from ``a`` to ``b`` (degrees x 1e7, like telemetry)."""

    segment_id: int
    name: str
    road_class: RoadClass
    speed_limit_kmh: int
    a_lat_e7: int
    a_lon_e7: int
    b_lat_e7: int
    b_lon_e7: int

    @property
    def length_m(self) -> float:
        return haversine_m(self.a_lat_e7, self.a_lon_e7, self.b_lat_e7, self.b_lon_e7)


async def save_segments(conn: asyncpg.Connection, segments: Iterable[RoadSegment]) -> int:
    """Insert or update segments by id; returns how many were written."""
    rows = [
        (s.segment_id, s.name, s.road_class.value, s.speed_limit_kmh, s.a_lat_e7, s.a_lon_e7,
         s.b_lat_e7, s.b_lon_e7)
        for s in segments
    ]  # fmt: skip
    await conn.executemany(
        """
        INSERT INTO road_segments (segment_id, name, road_class, speed_limit_kmh,
                                   a_lat_e7, a_lon_e7, b_lat_e7, b_lon_e7)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (segment_id) DO UPDATE SET
            name = EXCLUDED.name, road_class = EXCLUDED.road_class,
            speed_limit_kmh = EXCLUDED.speed_limit_kmh,
            a_lat_e7 = EXCLUDED.a_lat_e7, a_lon_e7 = EXCLUDED.a_lon_e7,
            b_lat_e7 = EXCLUDED.b_lat_e7, b_lon_e7 = EXCLUDED.b_lon_e7
        """,
        rows,
    )
    return len(rows)


async def load_segments(conn: asyncpg.Connection) -> Sequence[RoadSegment]:
    """Every segment, by id."""
    rows = await conn.fetch(
        "SELECT segment_id, name, road_class, speed_limit_kmh, a_lat_e7, a_lon_e7, b_lat_e7, "
        "b_lon_e7 FROM road_segments ORDER BY segment_id"
    )
    return [
        RoadSegment(
            segment_id=row["segment_id"],
            name=row["name"],
            road_class=RoadClass(row["road_class"]),
            speed_limit_kmh=row["speed_limit_kmh"],
            a_lat_e7=row["a_lat_e7"],
            a_lon_e7=row["a_lon_e7"],
            b_lat_e7=row["b_lat_e7"],
            b_lon_e7=row["b_lon_e7"],
        )
        for row in rows
    ]
