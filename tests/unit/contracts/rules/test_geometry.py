"""Polygon simplicity at scale: the sweep decides exactly what a pair-by-pair scan decides, and
its work grows as n log n whatever the outline's shape or orientation."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

import contracts.rules.geometry as geometry
from contracts.rules.geometry import Vertex, _on_segment, _segments_meet, polygon_problem
from contracts.rules.parse import parse_rules
from tests.unit.contracts.rules.conftest import document


def circle(n: int, radius: int = 50_000_000, lat: int = 520_000_000) -> list[Vertex]:
    return [
        (lat + round(radius * math.sin(2 * math.pi * k / n)),
         134_000_000 + round(radius * math.cos(2 * math.pi * k / n)))
        for k in range(n)
    ]  # fmt: skip


def corridor(n: int, *, north_south: bool = True) -> list[Vertex]:
    """A road corridor 1 km wide and 10 km long: n / 2 vertices up one side, n / 2 down the
    other. North-south, every edge of a side overlaps the others in longitude."""
    half = n // 2
    west = [(520_000_000 + k * 1_000_000 // half, 134_000_000 + k % 3 * 100) for k in range(half)]
    east = [(lat, lon + 100_000) for lat, lon in reversed(west)]
    outline = west + east
    return outline if north_south else [(lon - 134_000_000 + 520_000_000, lat - 386_000_000)
                                        for lat, lon in outline]  # fmt: skip


def pairwise(polygon: list[Vertex]) -> bool:
    """Whether the polygon is not simple, by the plain O(n^2) scan the sweep replaced: two
    non-neighbouring edges meet, or two neighbours overlap beyond their shared vertex."""
    n = len(polygon)
    for i in range(n):
        a, b, c = polygon[i], polygon[(i + 1) % n], polygon[(i + 2) % n]
        if geometry._cross(a, b, c) == 0 and (_on_segment(*a, *b, *c) or _on_segment(*b, *c, *a)):
            return True
    for i, j in itertools.combinations(range(n), 2):
        if j == i + 1 or (i == 0 and j == n - 1):
            continue
        if _segments_meet(polygon[i], polygon[i + 1], polygon[j], polygon[(j + 1) % n]):
            return True
    return False


def swept(polygon: list[Vertex]) -> bool:
    if geometry._folding_edge(polygon) is not None:
        return True
    found = geometry._crossing_edges(polygon)
    if found is None:
        return False
    i, j = found  # what the message names really meets
    assert j > i + 1
    assert not (i == 0 and j == len(polygon) - 1)
    assert _segments_meet(polygon[i], polygon[i + 1], polygon[j], polygon[(j + 1) % len(polygon)])
    return True


@pytest.mark.parametrize("seed", range(100))
def test_the_sweep_decides_as_a_pairwise_scan_on_degenerate_outlines(seed: int) -> None:
    """Random vertices on small grids: collinear runs, vertices on edges, overlaps, spikes."""
    rng = random.Random(seed)
    for _ in range(50):
        span = rng.choice([3, 5, 10, 40])
        points = [(rng.randint(0, span), rng.randint(0, span)) for _ in range(rng.randint(3, 14))]
        polygon = list(dict.fromkeys(points))
        if len(polygon) >= 3:
            assert swept(polygon) == pairwise(polygon), polygon


@pytest.mark.parametrize("seed", range(100))
def test_the_sweep_decides_as_a_pairwise_scan_on_mostly_simple_outlines(seed: int) -> None:
    """Star-shaped outlines (simple unless collinear), some with two vertices swapped."""
    rng = random.Random(seed)
    for _ in range(30):
        span = rng.choice([6, 10, 30, 1000])
        points = list({(rng.randint(0, span), rng.randint(0, span)) for _ in range(40)})
        cy = sum(p[0] for p in points) / len(points)
        cx = sum(p[1] for p in points) / len(points)
        points.sort(key=lambda p: (math.atan2(p[0] - cy, p[1] - cx), (p[0] - cy) ** 2))
        if rng.random() < 0.3:
            a, b = rng.sample(range(len(points)), 2)
            points[a], points[b] = points[b], points[a]
        assert swept(points) == pairwise(points), points


def test_a_fold_and_a_crossing_are_named() -> None:
    assert polygon_problem([(0, 0), (0, 10), (10, 10), (0, 5)]) == (
        "edges 3 and 0 overlap (the outline turns back on itself)"
    )
    assert polygon_problem([(0, 0), (10, 10), (0, 10), (10, 0)]) == (
        "edges 0 and 2 intersect (the polygon must be simple)"
    )


def comparisons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the orientation tests: the sweep's ordering (``_below``) and the edge checks
    (``_segments_meet`` makes four ``_cross``)."""
    calls = [0]
    real_cross, real_below = geometry._cross, geometry._below

    def cross(o: Vertex, a: Vertex, b: Vertex) -> int:
        calls[0] += 1
        return real_cross(o, a, b)

    def below(edge: tuple[Vertex, Vertex], other: tuple[Vertex, Vertex], point: Vertex) -> bool:
        calls[0] += 1
        return real_below(edge, other, point)

    monkeypatch.setattr(geometry, "_cross", cross)
    monkeypatch.setattr(geometry, "_below", below)
    return calls


@pytest.mark.parametrize(
    "outline",
    [circle, corridor, lambda n: corridor(n, north_south=False)],
    ids=["circle", "north-south corridor", "east-west corridor"],
)
def test_work_grows_as_n_log_n_whatever_the_shape(
    monkeypatch: pytest.MonkeyPatch, outline: object
) -> None:
    assert callable(outline)
    calls = comparisons(monkeypatch)
    counts = []
    for n in (100, 1000):
        calls[0] = 0
        assert polygon_problem(outline(n)) is None
        counts.append(calls[0])
    # 10 times the edges: n log n gives ~15 times the work, n^2 100 times. A pairwise scan
    # makes ~2 million orientation tests at 1,000 edges; the longitude-only sweep made as
    # many on the north-south corridor.
    assert counts[1] < 20 * counts[0], counts
    assert counts[1] < 60 * 1000, counts


def test_a_document_of_34_zones_of_1000_vertices_parses_in_n_log_n_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The issue's attack (33 s): the same work per vertex as a document of 100-vertex zones
    but for the log factor."""

    def encoded(n: int) -> bytes:
        fences = [
            {"id": f"zone-{k}", "kind": "no_entry",
             "polygon": [list(v) for v in (corridor(n) if k % 2 else circle(n, 1_000_000 + k))]}
            for k in range(34)
        ]  # fmt: skip
        return json.dumps(document(geofences=fences), separators=(",", ":")).encode()

    large, small = encoded(1000), encoded(100)
    assert len(large) > 700_000  # the document was 733 KB
    calls = comparisons(monkeypatch)
    assert len(parse_rules(small).geofences) == 34
    per_small = calls[0]
    calls[0] = 0
    assert len(parse_rules(large).geofences) == 34
    assert calls[0] < 20 * per_small, (calls[0], per_small)
