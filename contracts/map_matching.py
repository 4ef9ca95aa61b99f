"""Map matching: which road segment a reported position is on (a grid-bucket spatial index).

Positions and segment ends are degrees x 1e7, as on the wire. The index cuts the plane into
cells of about ``cell_m`` metres and stores, for each cell, every segment that passes within
``radius_m`` of some point of the cell. A lookup therefore reads exactly one cell and measures
the distance to its few candidates, in metres on a local flat projection at the position's
latitude (exact enough at 25 m: the error of the flat approximation is below a millimetre).

When the caller knows the heading (vehicles report one), a candidate that points the other way
costs extra metres (:data:`HEADING_PENALTY_M` when opposite, half of it when perpendicular):
a two-way road is two directed segments on the same line, and near a junction the crossing road
is often about as close as the road being driven.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from contracts.roads import EARTH_RADIUS_M, RoadSegment

__all__ = ["DEFAULT_RADIUS_M", "HEADING_PENALTY_M", "SegmentIndex", "segment_distance_m"]

DEFAULT_RADIUS_M: Final = 25.0
HEADING_PENALTY_M: Final = 30.0
M_PER_E7: Final = EARTH_RADIUS_M * math.pi / 180.0 / 1e7  # metres per 1e-7 degree of latitude
_RAD_PER_E7: Final = math.pi / 180.0 / 1e7
_RAD_PER_CDEG: Final = math.pi / 18_000.0
_STRIDE: Final = 1 << 21  # cell key = row * _STRIDE + column; |column| < 2**20 (see _check)
_MAX_PIECE_CELLS: Final = 4  # long segments are indexed piece by piece (tight cell sets)

# One candidate: segment id, start (lat, lon), vector to the end (dlat, dlon), all in 1e-7
# degrees, and the unit direction (east, north) in metres.
_Candidate = tuple[int, int, int, int, int, float, float]


def _distance_m(
    lat: float, lon: float, a_lat: float, a_lon: float, d_lat: float, d_lon: float
) -> float:
    """Metres from a point to the segment a -> a + d (flat projection at the point)."""
    kx = M_PER_E7 * math.cos(lat * _RAD_PER_E7)
    px, py = (lon - a_lon) * kx, (lat - a_lat) * M_PER_E7
    dx, dy = d_lon * kx, d_lat * M_PER_E7
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0.0 else min(1.0, max(0.0, (px * dx + py * dy) / length2))
    return math.hypot(px - t * dx, py - t * dy)


def segment_distance_m(segment: RoadSegment, lat_e7: int, lon_e7: int) -> float:
    """Metres from a position to ``segment``."""
    return _distance_m(
        lat_e7,
        lon_e7,
        segment.a_lat_e7,
        segment.a_lon_e7,
        segment.b_lat_e7 - segment.a_lat_e7,
        segment.b_lon_e7 - segment.a_lon_e7,
    )


class SegmentIndex:
    """Nearest road segment within ``radius_m`` of a position; immutable once built.

    >>> index = SegmentIndex(segments)
    >>> index.nearest(lat_e7, lon_e7, hdg_cdeg)  # a segment_id, or None when none is near
    """

    def __init__(
        self,
        segments: Iterable[RoadSegment],
        *,
        radius_m: float = DEFAULT_RADIUS_M,
        cell_m: float = 50.0,
    ) -> None:
        if not radius_m > 0 or not cell_m > 0:
            raise ValueError("radius_m and cell_m must be positive")
        self.radius_m = radius_m
        self._radius2 = radius_m * radius_m
        ordered = sorted(segments, key=lambda s: s.segment_id)
        mean_lat = (
            sum(s.a_lat_e7 + s.b_lat_e7 for s in ordered) / (2 * len(ordered)) if ordered else 0.0
        )
        self._lat_cell = max(1, round(cell_m / M_PER_E7))
        self._lon_cell = max(
            self._lat_cell, round(cell_m / (M_PER_E7 * max(0.05, math.cos(mean_lat * _RAD_PER_E7))))
        )
        cells: dict[int, list[_Candidate]] = {}
        for segment in ordered:
            candidate = self._candidate(segment)
            for key in self._cells_near(segment):
                cells.setdefault(key, []).append(candidate)
        # Tuples, in segment id order (ties go to the lowest id): read-only and fast to iterate.
        self._cells: dict[int, tuple[_Candidate, ...]] = {k: tuple(v) for k, v in cells.items()}
        self._count = len(ordered)

    def __len__(self) -> int:
        return self._count

    @property
    def cell_count(self) -> int:
        """Cells holding at least one candidate (a measure of the index's size)."""
        return len(self._cells)

    @staticmethod
    def _candidate(segment: RoadSegment) -> _Candidate:
        d_lat = segment.b_lat_e7 - segment.a_lat_e7
        d_lon = segment.b_lon_e7 - segment.a_lon_e7
        mid_lat = (segment.a_lat_e7 + segment.b_lat_e7) / 2
        east, north = d_lon * M_PER_E7 * math.cos(mid_lat * _RAD_PER_E7), d_lat * M_PER_E7
        norm = math.hypot(east, north)
        ux, uy = (east / norm, north / norm) if norm > 0 else (0.0, 0.0)
        return (segment.segment_id, segment.a_lat_e7, segment.a_lon_e7, d_lat, d_lon, ux, uy)

    def _key(self, lat_e7: int, lon_e7: int) -> int:
        return (lat_e7 // self._lat_cell) * _STRIDE + lon_e7 // self._lon_cell

    def _cells_near(self, segment: RoadSegment) -> set[int]:
        """Keys of the cells some point of which lies within radius_m of the segment."""
        lat_cell, lon_cell = self._lat_cell, self._lon_cell
        d_lat = segment.b_lat_e7 - segment.a_lat_e7
        d_lon = segment.b_lon_e7 - segment.a_lon_e7
        span = max(abs(d_lat) / lat_cell, abs(d_lon) / lon_cell)
        pieces = max(1, math.ceil(span / _MAX_PIECE_CELLS))
        keys: set[int] = set()
        for piece in range(pieces):
            lat0 = segment.a_lat_e7 + d_lat * piece / pieces
            lon0 = segment.a_lon_e7 + d_lon * piece / pieces
            lat1, lon1 = lat0 + d_lat / pieces, lon0 + d_lon / pieces
            # Margin: radius plus one cell each way; the distance test below is exact.
            worst_cos = max(0.05, math.cos(max(abs(lat0), abs(lat1)) * _RAD_PER_E7))
            margin_lat = self.radius_m / M_PER_E7 + lat_cell
            margin_lon = self.radius_m / (M_PER_E7 * worst_cos) + lon_cell
            rows = range(
                int((min(lat0, lat1) - margin_lat) // lat_cell),
                int((max(lat0, lat1) + margin_lat) // lat_cell) + 1,
            )
            cols = range(
                int((min(lon0, lon1) - margin_lon) // lon_cell),
                int((max(lon0, lon1) + margin_lon) // lon_cell) + 1,
            )
            for row in rows:
                centre_lat = (row + 0.5) * lat_cell
                half_h = lat_cell * M_PER_E7 / 2
                half_w = lon_cell * M_PER_E7 * math.cos(centre_lat * _RAD_PER_E7) / 2
                reach = self.radius_m + math.hypot(half_h, half_w)
                for col in cols:
                    centre_lon = (col + 0.5) * lon_cell
                    distance = _distance_m(
                        centre_lat, centre_lon, lat0, lon0, lat1 - lat0, lon1 - lon0
                    )
                    if distance <= reach:
                        _check(col)
                        keys.add(row * _STRIDE + col)
        return keys

    def nearest(self, lat_e7: int, lon_e7: int, hdg_cdeg: int | None = None) -> int | None:
        """The id of the best segment within ``radius_m``, or None.

        Best = least distance in metres, plus the heading penalty when ``hdg_cdeg`` (clockwise
        from north, centidegrees) is given; ties go to the lowest segment id.
        """
        candidates = self._cells.get(
            (lat_e7 // self._lat_cell) * _STRIDE + lon_e7 // self._lon_cell
        )
        if candidates is None:
            return None
        kx = M_PER_E7 * math.cos(lat_e7 * _RAD_PER_E7)
        ky = M_PER_E7
        radius2 = self._radius2
        if hdg_cdeg is None:
            hx = hy = 0.0
            weight = 0.0
        else:
            angle = hdg_cdeg * _RAD_PER_CDEG
            hx, hy = math.sin(angle), math.cos(angle)  # east, north
            weight = HEADING_PENALTY_M / 2
        best: int | None = None
        best_cost = math.inf
        for segment_id, a_lat, a_lon, d_lat, d_lon, ux, uy in candidates:
            px = (lon_e7 - a_lon) * kx
            py = (lat_e7 - a_lat) * ky
            dx = d_lon * kx
            dy = d_lat * ky
            length2 = dx * dx + dy * dy
            t = (px * dx + py * dy) / length2 if length2 > 0.0 else 0.0
            if t < 0.0:
                t = 0.0
            elif t > 1.0:
                t = 1.0
            ex = px - t * dx
            ey = py - t * dy
            d2 = ex * ex + ey * ey
            if d2 > radius2:
                continue
            cost = math.sqrt(d2) + weight * (1.0 - (hx * ux + hy * uy))
            if cost < best_cost:
                best, best_cost = segment_id, cost
        return best


def _check(col: int) -> None:
    if not -(_STRIDE >> 1) < col < _STRIDE >> 1:  # pragma: no cover - needs cells < 1 m
        raise ValueError("cell size too small for the longitude range")
