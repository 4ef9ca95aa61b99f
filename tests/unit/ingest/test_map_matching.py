"""The grid-bucket segment index: same answers as an exhaustive search, and fast.

``grid_city`` and ``point_on`` are also used by the store writer's integration tests.
"""

from __future__ import annotations

import math
import random
import time

import pytest

from contracts.map_matching import HEADING_PENALTY_M, M_PER_E7, SegmentIndex
from contracts.roads import RoadClass, RoadSegment, haversine_m

BERLIN = (525_200_000, 134_050_000)


def grid_city(
    size: int, spacing_m: float = 150.0, origin: tuple[int, int] = BERLIN
) -> list[RoadSegment]:
    """``size`` x ``size`` junctions; each street is two directed segments (ids from 1)."""
    lat0, lon0 = origin
    dlat = round(spacing_m / M_PER_E7)
    dlon = round(spacing_m / (M_PER_E7 * math.cos(math.radians(lat0 / 1e7))))
    segments: list[RoadSegment] = []
    for r in range(size):
        for c in range(size):
            a = (lat0 + r * dlat, lon0 + c * dlon)
            for b in ((a[0] + dlat, a[1]), (a[0], a[1] + dlon)):
                if b[0] > lat0 + (size - 1) * dlat or b[1] > lon0 + (size - 1) * dlon:
                    continue
                for p, q in ((a, b), (b, a)):
                    n = len(segments) + 1
                    segments.append(
                        RoadSegment(n, f"street {n}", RoadClass.LOCAL, 50, p[0], p[1], q[0], q[1])
                    )
    return segments


def point_on(segment: RoadSegment, fraction: float, offset_m: float = 0.0) -> tuple[int, int]:
    """A position ``fraction`` along ``segment``, ``offset_m`` to its right."""
    lat = segment.a_lat_e7 + fraction * (segment.b_lat_e7 - segment.a_lat_e7)
    lon = segment.a_lon_e7 + fraction * (segment.b_lon_e7 - segment.a_lon_e7)
    kx = M_PER_E7 * math.cos(math.radians(lat / 1e7))
    east = (segment.b_lon_e7 - segment.a_lon_e7) * kx
    north = (segment.b_lat_e7 - segment.a_lat_e7) * M_PER_E7
    norm = math.hypot(east, north) or 1.0
    # right of the direction of travel: (north, -east) rotated
    return round(lat - offset_m * east / norm / M_PER_E7), round(lon + offset_m * north / norm / kx)


def heading_of(segment: RoadSegment) -> int:
    """Centidegrees clockwise from north along the segment."""
    kx = math.cos(math.radians(segment.a_lat_e7 / 1e7))
    east = (segment.b_lon_e7 - segment.a_lon_e7) * kx
    north = segment.b_lat_e7 - segment.a_lat_e7
    return round(math.degrees(math.atan2(east, north)) * 100) % 36_000


def cost(segment: RoadSegment, lat: int, lon: int, hdg: int | None) -> float:
    """The index's rule, computed independently: metres to the segment + heading penalty."""
    s = segment
    kx = M_PER_E7 * math.cos(lat * math.pi / 180 / 1e7)
    px, py = (lon - s.a_lon_e7) * kx, (lat - s.a_lat_e7) * M_PER_E7
    dx, dy = (s.b_lon_e7 - s.a_lon_e7) * kx, (s.b_lat_e7 - s.a_lat_e7) * M_PER_E7
    length2 = dx * dx + dy * dy
    t = min(1.0, max(0.0, (px * dx + py * dy) / length2)) if length2 else 0.0
    distance = math.hypot(px - t * dx, py - t * dy)
    if distance > 25.0:
        return math.inf
    if hdg is None:
        return distance
    mid = (s.a_lat_e7 + s.b_lat_e7) / 2
    east = (s.b_lon_e7 - s.a_lon_e7) * math.cos(mid * math.pi / 180 / 1e7)
    north = s.b_lat_e7 - s.a_lat_e7
    norm = math.hypot(east, north)
    angle = math.radians(hdg / 100)
    dot = (math.sin(angle) * east + math.cos(angle) * north) / norm if norm else 0.0
    return distance + HEADING_PENALTY_M / 2 * (1 - dot)


@pytest.mark.parametrize(
    "origin",
    [BERLIN, (-338_688_000, 1_512_093_000), (693_000_000, -1_800_000 * 10), (0, 0)],
    ids=["berlin", "sydney", "arctic-west", "null-island"],
)
def test_answers_equal_an_exhaustive_search(origin: tuple[int, int]) -> None:
    segments = grid_city(6, 120.0, origin)
    # plus a long diagonal arterial, indexed piece by piece
    a, b = segments[0], segments[-1]
    segments.append(
        RoadSegment(999, "arterial", RoadClass.ARTERIAL, 70, a.a_lat_e7, a.a_lon_e7, b.b_lat_e7,
                    b.b_lon_e7)
    )  # fmt: skip
    index = SegmentIndex(segments)
    by_id = {s.segment_id: s for s in segments}
    answered = 0
    rng = random.Random(sum(origin))
    lats = [s.a_lat_e7 for s in segments]
    lons = [s.a_lon_e7 for s in segments]
    span = 60 / M_PER_E7  # a little beyond the network on every side
    for _ in range(3000):
        lat = rng.randint(round(min(lats) - span), round(max(lats) + span))
        lon = rng.randint(round(min(lons) - 2 * span), round(max(lons) + 2 * span))
        hdg = rng.choice([None, rng.randrange(36_000)])
        best = min(cost(s, lat, lon, hdg) for s in segments)
        found = index.nearest(lat, lon, hdg)
        if found is None:
            assert best == math.inf, (lat, lon, hdg)
        else:  # the best, or tied with it (a two-way street is two segments on one line)
            assert cost(by_id[found], lat, lon, hdg) <= best + 1e-6, (lat, lon, hdg)
            answered += 1
    assert answered > 1000  # the sample lands on streets often enough to mean something


def test_points_on_a_street_match_its_direction_of_travel() -> None:
    segments = grid_city(5)
    index = SegmentIndex(segments)
    for segment in segments:
        for fraction in (0.2, 0.5, 0.8):
            lat, lon = point_on(segment, fraction, offset_m=4.0)
            assert index.nearest(lat, lon, heading_of(segment)) == segment.segment_id
    # Without a heading a point on a two-way street is on both directions: lowest id wins.
    first, reverse = segments[0], segments[1]
    assert (first.a_lat_e7, first.b_lat_e7) == (reverse.b_lat_e7, reverse.a_lat_e7)
    assert index.nearest(*point_on(first, 0.5)) == first.segment_id


def test_near_a_junction_the_heading_beats_the_crossing_street() -> None:
    segments = grid_city(3)
    index = SegmentIndex(segments)
    north = next(s for s in segments if s.b_lat_e7 > s.a_lat_e7 and s.a_lat_e7 == BERLIN[0])
    # 10 m before the junction at its end, 3 m off the line: the crossing street is 10 m away
    lat, lon = point_on(north, 1 - 10 / north.length_m, offset_m=3.0)
    assert index.nearest(lat, lon, heading_of(north)) == north.segment_id


def test_nothing_beyond_the_radius() -> None:
    segments = grid_city(2, spacing_m=200.0)
    index = SegmentIndex(segments, radius_m=25.0)
    street = segments[0]
    assert index.nearest(*point_on(street, 0.5, offset_m=24.0)) is not None
    assert index.nearest(*point_on(street, 0.5, offset_m=26.0)) in (None, street.segment_id + 2)
    assert index.nearest(street.a_lat_e7 + round(1000 / M_PER_E7), street.a_lon_e7) is None
    assert SegmentIndex([]).nearest(*BERLIN) is None
    assert len(SegmentIndex([])) == 0


def test_the_flat_projection_agrees_with_haversine() -> None:
    segment = grid_city(2)[0]
    for offset in (5.0, 15.0, 25.0):
        lat, lon = point_on(segment, 0.5, offset_m=offset)
        middle = point_on(segment, 0.5)
        assert haversine_m(lat, lon, *middle) == pytest.approx(offset, abs=0.02)


def test_at_least_50k_lookups_per_second() -> None:
    segments = grid_city(30)
    index = SegmentIndex(segments)
    rng = random.Random(7)
    queries = []
    for _ in range(20_000):
        segment = rng.choice(segments)
        lat, lon = point_on(segment, rng.random(), rng.gauss(0, 5))
        queries.append((lat, lon, heading_of(segment)))
    best = 0.0
    for _ in range(3):  # best of three: a busy machine slows some runs
        started = time.perf_counter()
        for lat, lon, hdg in queries:
            index.nearest(lat, lon, hdg)
        best = max(best, len(queries) / (time.perf_counter() - started))
    assert best >= 50_000, f"{best:,.0f} lookups/s"


def test_rejects_nonsense_parameters() -> None:
    with pytest.raises(ValueError, match="positive"):
        SegmentIndex([], radius_m=0)
