"""Flat-earth geometry around a city centre: metres east/north <-> degrees x 1e7.

An equirectangular projection is accurate to well under a metre over a city of a few
kilometres, which is far below the GNSS noise the simulator adds. Distances that matter to the
rest of the project (segment lengths, odometers) use :func:`contracts.roads.haversine_m`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contracts.roads import EARTH_RADIUS_M

__all__ = ["M_PER_DEG_LAT", "LocalFrame", "bearing_cdeg"]

M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180.0  # metres per degree of latitude
_E7 = 1e7


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """A tangent plane at ``(lat0, lon0)`` degrees: x metres east, y metres north."""

    lat0: float
    lon0: float

    @property
    def m_per_deg_lon(self) -> float:
        """Metres per degree of longitude at the centre's latitude."""
        return M_PER_DEG_LAT * math.cos(math.radians(self.lat0))

    def to_e7(self, x_m: float, y_m: float) -> tuple[int, int]:
        """The position ``x_m`` east and ``y_m`` north of the centre, degrees x 1e7."""
        lat = self.lat0 + y_m / M_PER_DEG_LAT
        lon = self.lon0 + x_m / self.m_per_deg_lon
        return round(lat * _E7), round(lon * _E7)

    def to_local(self, lat_e7: float, lon_e7: float) -> tuple[float, float]:
        """Metres east and north of the centre of a position in degrees x 1e7."""
        x = (lon_e7 / _E7 - self.lon0) * self.m_per_deg_lon
        y = (lat_e7 / _E7 - self.lat0) * M_PER_DEG_LAT
        return x, y

    def shift_e7(self, dx_m: float, dy_m: float) -> tuple[float, float]:
        """How many degrees x 1e7 (lat, lon) a shift of ``dx_m`` east, ``dy_m`` north is."""
        return dy_m / M_PER_DEG_LAT * _E7, dx_m / self.m_per_deg_lon * _E7


def bearing_cdeg(dx_m: float, dy_m: float) -> int:
    """Compass bearing of the direction (east, north) in centidegrees, 0..35999."""
    degrees = math.degrees(math.atan2(dx_m, dy_m)) % 360.0
    return round(degrees * 100) % 36_000
