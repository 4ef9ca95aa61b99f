"""Polygon checks at scale: the simplicity sweep agrees with a pair-by-pair scan and stays
near-linear on realistic outlines; a signed document is verified before its geometry is read."""

from __future__ import annotations

import itertools
import math
import random

import pytest

import analytics.rules.geometry as geometry
from analytics.rules.geometry import Vertex, _segments_meet, polygon_problem
from analytics.rules.parse import RulesError, parse_rules
from analytics.rules.signing import SignedRules, sign_rules
from chain.keys import Ed25519PrivateKey
from tests.unit.analytics.rules.conftest import document, encode


def circle(n: int, radius: int = 50_000_000, lat: int = 520_000_000) -> list[Vertex]:
    return [
        (lat + round(radius * math.sin(2 * math.pi * k / n)),
         134_000_000 + round(radius * math.cos(2 * math.pi * k / n)))
        for k in range(n)
    ]  # fmt: skip


def pairwise(polygon: list[Vertex]) -> tuple[int, int] | None:
    """The first crossing pair, by the plain O(n^2) scan the sweep replaced."""
    n = len(polygon)
    for i, j in itertools.combinations(range(n), 2):
        if j == i + 1 or (i == 0 and j == n - 1):
            continue
        if _segments_meet(polygon[i], polygon[i + 1], polygon[j], polygon[(j + 1) % n]):
            return (i, j)
    return None


@pytest.mark.parametrize("seed", range(300))
def test_the_sweep_names_the_same_crossing_as_a_pairwise_scan(seed: int) -> None:
    rng = random.Random(seed)
    polygon = list({(rng.randint(0, 40), rng.randint(0, 40)) for _ in range(rng.randint(3, 12))})
    if len(polygon) < 3:
        return
    assert geometry._crossing_edges(polygon) == pairwise(polygon)


def test_a_large_outline_is_checked_in_near_linear_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = [0]
    real = geometry._segments_meet

    def counted(*args: Vertex) -> bool:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(geometry, "_segments_meet", counted)
    assert polygon_problem(circle(1000)) is None
    # A pairwise scan makes ~498,000 comparisons for 1,000 edges.
    assert calls[0] < 20 * 1000, calls[0]


def test_a_document_of_34_large_zones_parses_without_quadratic_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = [0]
    real = geometry._segments_meet

    def counted(*args: Vertex) -> bool:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(geometry, "_segments_meet", counted)
    fences = [
        {"id": f"zone-{k}", "kind": "no_entry",
         "polygon": [list(v) for v in circle(1000, radius=1_000_000 + k * 10_000)]}
        for k in range(34)
    ]  # fmt: skip
    rules = parse_rules(encode(document(geofences=fences)))
    assert len(rules.geofences) == 34
    assert calls[0] < 34 * 20 * 1000, calls[0]


def test_an_unverified_document_costs_no_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Ed25519PrivateKey.from_bytes(bytes(range(32)))
    signed = sign_rules(key, "k1", encode(document()))

    def no_geometry(polygon: list[Vertex]) -> str | None:
        raise AssertionError("geometry checked before the signature")

    monkeypatch.setattr("analytics.rules.parse.polygon_problem", no_geometry)
    envelope = SignedRules.from_bytes(signed)
    assert envelope.claimed_org() == "metro-police"
    with pytest.raises(RulesError, match="does not verify"):
        envelope.verify(Ed25519PrivateKey.generate().public_key)
