"""Polygons in degrees x 1e7: containment and the checks a published geofence must pass.

Coordinates are treated as planar (lat, lon) integers, which is exact for the even-odd test
and fine at city scale. Polygons may not cross the antimeridian (refused by the parser: an
edge spanning more than 180 degrees of longitude).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from contracts.rules.limits import MAX_VERTICES

__all__ = ["Vertex", "edges_contain", "polygon_contains", "polygon_problem"]

Vertex = tuple[int, int]  # (lat_e7, lon_e7)


def polygon_contains(polygon: Sequence[Vertex], lat_e7: int, lon_e7: int) -> bool:
    """Even-odd rule; a point on an edge or vertex counts as inside."""
    n = len(polygon)
    return edges_contain(((polygon[i], polygon[(i + 1) % n]) for i in range(n)), lat_e7, lon_e7)


def edges_contain(edges: Iterable[tuple[Vertex, Vertex]], lat_e7: int, lon_e7: int) -> bool:
    """:func:`polygon_contains` over ``edges``: a polygon's, or those of them whose latitude
    range may hold ``lat_e7`` (no other edge changes the answer)."""
    inside = False
    for (y1, x1), (y2, x2) in edges:
        if _on_segment(y1, x1, y2, x2, lat_e7, lon_e7):
            return True
        if (y1 > lat_e7) != (y2 > lat_e7):
            # Integer cross-multiplication: no rounding near edges.
            lhs = (lon_e7 - x1) * (y2 - y1)
            rhs = (x2 - x1) * (lat_e7 - y1)
            if (lhs < rhs) == (y2 > y1):
                inside = not inside
    return inside


def polygon_problem(polygon: Sequence[Vertex]) -> str | None:
    """Why ``polygon`` is not a usable simple polygon, or None."""
    n = len(polygon)
    if n < 3:
        return f"needs at least 3 vertices, got {n}"
    if n > MAX_VERTICES:
        return f"{n} vertices, limit is {MAX_VERTICES}"
    if len(set(polygon)) != n:
        return "repeats a vertex (do not close the ring: the last vertex joins the first)"
    for i in range(n):
        if abs(polygon[i][1] - polygon[(i + 1) % n][1]) > 1_800_000_000:
            return f"edge {i} crosses the antimeridian"
    if (fold := _folding_edge(polygon)) is not None:
        return f"edges {fold} and {(fold + 1) % n} overlap (the outline turns back on itself)"
    if crossing := _crossing_edges(polygon):
        return f"edges {crossing[0]} and {crossing[1]} intersect (the polygon must be simple)"
    if _twice_area(polygon) == 0:
        return "has zero area"
    return None


def _folding_edge(polygon: Sequence[Vertex]) -> int | None:
    """The first edge i that edge i + 1 runs back along (a spike of zero width), or None.

    Neighbours may meet only at their shared vertex; the sweep below does not compare them,
    and one folded back over the other would also leave their order along the sweep line
    undefined.
    """
    n = len(polygon)
    for i in range(n):
        a, b, c = polygon[i], polygon[(i + 1) % n], polygon[(i + 2) % n]
        if (
            _cross(a, b, c) == 0
            and (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1]) < 0
        ):
            return i
    return None


def _crossing_edges(polygon: Sequence[Vertex]) -> tuple[int, int] | None:
    """A pair of non-neighbouring edges (i < j) that meet, or None when there is none.

    Shamos and Hoey's sweep: the edges' end points in (lon, lat) order; the edges the sweep
    line crosses are kept ordered along it, and each edge is compared only with the edges next
    to it when it enters and with each other when an edge between them leaves. If any two
    edges meet, two that meet become neighbours in that order no later than the leftmost
    meeting point, so O(n log n) comparisons decide it whatever the shape (comparing every
    pair was O(n^2): 34 zones of 1,000 vertices took 33 s; a sweep that compared each edge with
    every edge overlapping it in longitude was still O(n^2) on a north-south corridor).
    """
    n = len(polygon)
    # Work in (lon, lat): sweeping in lexicographic order treats an edge along a meridian as
    # if the sweep line were turned slightly, so vertical edges need no special case.
    points = [(lon, lat) for lat, lon in polygon]
    ends = [
        (min(points[i], points[(i + 1) % n]), max(points[i], points[(i + 1) % n])) for i in range(n)
    ]
    # At one point, edges enter before any leaves: edges touching there are both in the order.
    events = sorted([(left, 0, i) for i, (left, _) in enumerate(ends)] +
                    [(right, 1, i) for i, (_, right) in enumerate(ends)])  # fmt: skip
    order: list[int] = []  # the edges the sweep line crosses, bottom to top

    def meet(i: int, j: int) -> tuple[int, int] | None:
        a, b = min(i, j), max(i, j)
        if b == a + 1 or (a == 0 and b == n - 1):
            return None  # neighbours share a vertex
        if _segments_meet(polygon[a], polygon[a + 1], polygon[b], polygon[(b + 1) % n]):
            return (a, b)
        return None

    for point, leaving, i in events:
        if not leaving:
            lo, hi = 0, len(order)
            while lo < hi:  # the first edge above this one where it enters
                mid = (lo + hi) // 2
                if _below(ends[i], ends[order[mid]], point):
                    hi = mid
                else:
                    lo = mid + 1
            order.insert(lo, i)
            for k in (lo - 1, lo + 1):
                if 0 <= k < len(order) and (found := meet(i, order[k])):
                    return found
        else:
            k = order.index(i)
            del order[k]
            if 0 < k < len(order) and (found := meet(order[k - 1], order[k])):
                return found
    return None


def _below(edge: tuple[Vertex, Vertex], other: tuple[Vertex, Vertex], point: Vertex) -> bool:
    """Whether ``edge``, entering the sweep at ``point``, goes below ``other`` (points in
    (lon, lat)): by the side of ``other`` that ``point`` is on, else the side its far end is on."""
    (ox, oy), (dx, dy) = other[0], (other[1][0] - other[0][0], other[1][1] - other[0][1])
    side = dx * (point[1] - oy) - dy * (point[0] - ox)  # _cross, inline: the sweep's hot path
    if side == 0:
        side = dx * (edge[1][1] - oy) - dy * (edge[1][0] - ox)
    return side < 0


def _twice_area(polygon: Sequence[Vertex]) -> int:
    n = len(polygon)
    return sum(
        polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1]
        for i in range(n)
    )


def _cross(o: Vertex, a: Vertex, b: Vertex) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(y1: int, x1: int, y2: int, x2: int, y: int, x: int) -> bool:
    if _cross((y1, x1), (y2, x2), (y, x)) != 0:
        return False
    return min(y1, y2) <= y <= max(y1, y2) and min(x1, x2) <= x <= max(x1, x2)


def _segments_meet(a: Vertex, b: Vertex, c: Vertex, d: Vertex) -> bool:
    d1, d2 = _cross(c, d, a), _cross(c, d, b)
    d3, d4 = _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True
    return (
        (d1 == 0 and _on_segment(*c, *d, *a))
        or (d2 == 0 and _on_segment(*c, *d, *b))
        or (d3 == 0 and _on_segment(*a, *b, *c))
        or (d4 == 0 and _on_segment(*a, *b, *d))
    )
