"""Where an authority's rules apply: its jurisdiction, and the checks a version must pass there.

An :class:`Area` is the publishing authority's jurisdiction: its own polygon and those of its
units below it (a parent authority's jurisdiction covers its units'), with its ``depth`` in
the hierarchy (0 for an authority with no parent authority). Rules apply only inside their
publisher's area. Where areas overlap (a parent and its unit), the deeper authority's rule
wins inside its own area: the unit's threshold or speed limit, where it sets one; otherwise
the parent's; otherwise the built-in default.

:mod:`contracts.rules.sovereignty` checks a version against its publisher's area when it is
published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts.rules.geometry import Vertex, polygon_contains

__all__ = ["Area", "polygon_within"]

Polygon = tuple[Vertex, ...]


@dataclass(frozen=True, slots=True)
class Area:
    """An authority's jurisdiction: the polygons it covers (its own, its units'), its depth."""

    org_id: str
    polygons: tuple[Polygon, ...]
    depth: int = 0

    def contains(self, lat_e7: int, lon_e7: int) -> bool:
        """Whether the point lies in (or on the edge of) one of the polygons."""
        return any(polygon_contains(p, lat_e7, lon_e7) for p in self.polygons)

    def covers(self, polygon: Sequence[Vertex]) -> bool:
        """Whether ``polygon`` lies inside one of the area's polygons."""
        return any(polygon_within(polygon, p) for p in self.polygons)


def polygon_within(inner: Sequence[Vertex], outer: Sequence[Vertex]) -> bool:
    """Whether the simple polygon ``inner`` lies inside (or on the boundary of) ``outer``.

    Every vertex and the midpoint of every edge of ``inner`` inside ``outer``, and no edge of
    ``inner`` properly crossing one of ``outer``: exact for a convex ``outer`` and for the
    outlines of districts and zones (a reflex vertex of ``outer`` lying exactly on an edge of
    ``inner`` is the case it may misjudge). O(n x m) orientation tests.
    """
    if not all(polygon_contains(outer, lat, lon) for lat, lon in inner):
        return False
    n, m = len(inner), len(outer)
    for i in range(n):
        a, b = inner[i], inner[(i + 1) % n]
        if not polygon_contains(outer, (a[0] + b[0]) // 2, (a[1] + b[1]) // 2):
            return False
        lo_lat, hi_lat = min(a[0], b[0]), max(a[0], b[0])
        lo_lon, hi_lon = min(a[1], b[1]), max(a[1], b[1])
        for j in range(m):
            c, d = outer[j], outer[(j + 1) % m]
            if max(c[0], d[0]) < lo_lat or min(c[0], d[0]) > hi_lat:
                continue
            if max(c[1], d[1]) < lo_lon or min(c[1], d[1]) > hi_lon:
                continue
            if _cross_properly(a, b, c, d):
                return False
    return True


def _cross_properly(a: Vertex, b: Vertex, c: Vertex, d: Vertex) -> bool:
    """Whether segments ab and cd cross at one point interior to both."""
    d1, d2 = _orient(c, d, a), _orient(c, d, b)
    d3, d4 = _orient(a, b, c), _orient(a, b, d)
    return d1 * d2 < 0 and d3 * d4 < 0


def _orient(o: Vertex, a: Vertex, b: Vertex) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
