"""Rules sovereignty: sane bounds, only authorities, inside their jurisdiction, applied there."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from contracts.errors import Forbidden, Invalid
from contracts.roads import RoadClass, RoadSegment
from contracts.rules.errors import RulesError
from contracts.rules.geometry import polygon_contains, polygon_problem
from contracts.rules.jurisdiction import Area, _EdgeIndex, polygon_within
from contracts.rules.model import RuleBook, RuleVersion, SpeedLimit
from contracts.rules.parse import parse_rules
from contracts.rules.sovereignty import check_sovereignty
from contracts.rules.thresholds import SPEED_LIMIT_KMH, THRESHOLDS
from tests.unit.contracts.rules.conftest import document, encode

# The document's geofences lie in [0, 200] x [0, 200]; its segment 7 is given ends below.
CITY = ((-10, -10), (-10, 300), (300, 300), (300, -10))
ELSEWHERE = ((1000, 1000), (1000, 2000), (2000, 2000), (2000, 1000))
SEGMENT_7 = {7: ((10, 10), (20, 20))}


@pytest.mark.parametrize(
    ("changes", "field"),
    [  # the two: a rollback tolerance of 10^10 m, a 400 km/h limit
        ({"thresholds": {"rollback_tolerance_m": 10**10}}, "thresholds.rollback_tolerance_m"),
        ({"speed_limits": [{"road_class": "motorway", "max_kmh": 400}]}, "speed_limits[0].max_kmh"),
        ({"thresholds": {"speeding_tolerance_kmh": 31}}, "thresholds.speeding_tolerance_kmh"),
        ({"thresholds": {"congestion_min_vehicles": 1}}, "thresholds.congestion_min_vehicles"),
    ],
)
def test_absurd_values_are_refused_naming_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(encode(document(**changes)))
    assert caught.value.path == field
    assert "must be in [" in caught.value.reason


def test_every_default_lies_within_its_published_bounds() -> None:
    for t in THRESHOLDS.values():
        assert t.lo <= t.default <= t.hi, t.name
    assert SPEED_LIMIT_KMH == (5, 150)


def test_only_an_authority_publishes_and_only_inside_its_jurisdiction() -> None:
    rules = parse_rules(encode(document()))
    check_sovereignty(rules, "authority", Area("metro-police", (CITY,)), SEGMENT_7)
    refusals = [
        ("fleet_owner", Area("metro-police", (CITY,)), SEGMENT_7, Forbidden, "org_id"),
        ("insurer", None, SEGMENT_7, Forbidden, "org_id"),
        ("authority", None, SEGMENT_7, Forbidden, "org_id"),  # no jurisdiction: nowhere
        ("authority", Area("metro-police", (ELSEWHERE,)), SEGMENT_7, Forbidden, "geofences[0]"),
        ("authority", Area("metro-police", (CITY,)), {}, Invalid, "speed_limits[2].segment_id"),
        (
            "authority",
            Area("metro-police", (CITY,)),
            {7: ((10, 10), (500, 500))},
            Forbidden,
            "speed_limits[2].segment_id",
        ),
    ]
    for kind, area, ends, error, field in refusals:
        with pytest.raises(error) as caught:
            check_sovereignty(rules, kind, area, ends)
        assert isinstance(caught.value, RulesError)
        assert caught.value.path.startswith(field), (kind, caught.value)
    # A unit's polygon counts as its parent's: the parent may publish there.
    check_sovereignty(rules, "authority", Area("region", (ELSEWHERE, CITY)), SEGMENT_7)


def test_a_zone_across_a_notch_of_the_jurisdiction_is_outside() -> None:
    u_shape = ((0, 0), (0, 30), (30, 30), (30, 20), (10, 20), (10, 10), (30, 10), (30, 0))
    assert polygon_within(((2, 2), (2, 8), (8, 8), (8, 2)), u_shape)
    # Every vertex inside the U, but the zone spans the notch between its arms.
    assert not polygon_within(((25, 5), (25, 25), (28, 25), (28, 5)), u_shape)


def _version(org: str, rule_set: str, area: Area, **thresholds: int) -> RuleVersion:
    return RuleVersion(org, rule_set, 1, 0, thresholds=tuple(thresholds.items()), area=area)


def test_each_authority_is_judged_by_its_own_rules_and_the_unit_wins_in_its_area() -> None:
    north = Area("north", (ELSEWHERE,))
    region = Area("region", (CITY,))
    unit = Area("district", (((0, 0), (0, 50), (50, 50), (50, 0)),), depth=1)
    book = RuleBook(
        (
            _version("north", "n", north, rollback_tolerance_m=500),
            _version("region", "r", region, rollback_tolerance_m=50, speeding_tolerance_kmh=9),
            _version("district", "d", unit, rollback_tolerance_m=20),
        )
    )
    rules = book.in_force(0)
    assert rules.threshold("rollback_tolerance_m") == (10, "builtin@0")  # no position: none
    assert rules.at(1500, 1500).threshold("rollback_tolerance_m") == (500, "north/n@1")
    assert rules.at(200, 200).threshold("rollback_tolerance_m") == (50, "region/r@1")
    assert rules.at(25, 25).threshold("rollback_tolerance_m") == (20, "district/d@1")
    # The parent's rules still apply in the unit's area where the unit sets nothing.
    assert rules.at(25, 25).threshold("speeding_tolerance_kmh") == (9, "region/r@1")
    assert rules.at(5000, 5000).threshold("rollback_tolerance_m") == (10, "builtin@0")


def test_the_units_speed_limit_wins_over_the_parents_more_specific_one() -> None:
    segment = RoadSegment(7, "Main St", RoadClass.LOCAL, 50, 10, 10, 20, 20)
    region = replace(
        _version("region", "r", Area("region", (CITY,))),
        speed_limits=(SpeedLimit(40, segment_id=7),),
    )
    unit = replace(
        _version("district", "d", Area("district", (CITY,), depth=1)),
        speed_limits=(SpeedLimit(30, road_class="local"),),
    )
    rules = RuleBook((region, unit)).in_force(0)
    assert rules.at(15, 15).speed_limit_kmh(segment, None) == (30, "district/d@1")
    assert rules.at(5000, 5000).speed_limit_kmh(segment, None) == (50, "builtin@0")


def test_the_banded_containment_decides_like_polygon_contains() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(3, 60)
        # A star-shaped outline (simple), on a coarse grid so that points fall on edges too.
        polygon = tuple(
            (
                round(rng.randint(20, 100) * math.sin(2 * math.pi * (i + 0.5) / n)),
                round(rng.randint(20, 100) * math.cos(2 * math.pi * (i + 0.5) / n)),
            )
            for i in range(n)
        )
        if polygon_problem(polygon):
            continue
        index = _EdgeIndex(polygon)
        points = [*polygon, *((rng.randint(-110, 110), rng.randint(-110, 110)) for _ in range(50))]
        for lat, lon in points:
            assert index.contains(lat, lon) == polygon_contains(polygon, lat, lon), (polygon, lat)
