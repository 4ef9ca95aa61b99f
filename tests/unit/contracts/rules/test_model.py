"""Rules in force: effective times, merging rule sets, limits, geofences and their windows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.roads import RoadClass, RoadSegment
from contracts.rules.geometry import polygon_contains, polygon_problem
from contracts.rules.model import Geofence, RuleBook, RuleVersion, SpeedLimit, TimeWindow
from contracts.rules.parse import parse_rules
from contracts.rules.thresholds import THRESHOLDS
from tests.unit.contracts.rules.conftest import document, encode

DAY = 86_400_000
MONDAY = 4 * DAY  # 1970-01-05, a Monday (UTC)
FRIDAY, SATURDAY = MONDAY + 4 * DAY, MONDAY + 5 * DAY
MIN = 60_000


def _segment(segment_id: int = 1, road_class: RoadClass = RoadClass.LOCAL) -> RoadSegment:
    return RoadSegment(segment_id, "Main St", road_class, 50, 0, 0, 10, 10)


def _version(version: int, effective: int, **changes: object) -> RuleVersion:
    return parse_rules(encode(document(version=version, effective_from_ms=effective, **changes)))


def test_nothing_published_is_the_builtin_defaults() -> None:
    rules = RuleBook.default().in_force(MONDAY)
    assert rules.label == "builtin@0"
    assert rules.speed_limit_kmh(_segment(), "car") == (50, "builtin@0")
    assert rules.threshold("speeding_tolerance_kmh") == (
        THRESHOLDS["speeding_tolerance_kmh"].default,
        "builtin@0",
    )
    assert rules.geofences(MONDAY, "car") == []
    with pytest.raises(KeyError):
        rules.threshold("no_such_threshold")


def test_a_version_applies_from_its_effective_time_exactly() -> None:
    book = RuleBook(
        (
            _version(1, 1000, thresholds={"speeding_tolerance_kmh": 1}),
            _version(2, 2000, thresholds={"speeding_tolerance_kmh": 2}),
        )
    )
    assert book.in_force(999).label == "builtin@0"
    assert book.in_force(1000).threshold("speeding_tolerance_kmh") == (1, "metro-police/city@1")
    assert book.in_force(1999).label == "metro-police/city@1"
    assert book.in_force(2000).threshold("speeding_tolerance_kmh") == (2, "metro-police/city@2")
    assert book.in_force(10**13).label == "metro-police/city@2"


def test_the_latest_effective_version_wins_even_if_published_out_of_order() -> None:
    # v3 was published after v2 but takes effect earlier: from 2000 on, v2 is the later one.
    book = RuleBook((_version(2, 2000), _version(3, 1500)))
    assert book.in_force(1700).label == "metro-police/city@3"
    assert book.in_force(2000).label == "metro-police/city@2"


def test_rule_sets_merge_and_the_newest_sets_a_shared_threshold() -> None:
    city = _version(1, 1000, thresholds={"speeding_tolerance_kmh": 4, "silent_after_ms": 9000})
    region = parse_rules(
        encode(
            document(
                org_id="region",
                rule_set="roads",
                version=5,
                effective_from_ms=1500,
                thresholds={"speeding_tolerance_kmh": 6},
                geofences=[],
            )
        )
    )
    rules = RuleBook((region, city)).in_force(2000)
    assert rules.label == "region/roads@5"
    assert rules.threshold("speeding_tolerance_kmh") == (6, "region/roads@5")
    assert rules.threshold("silent_after_ms") == (9000, "metro-police/city@1")
    assert {g.id for g in rules.geofences(SATURDAY, None)} == {"old-town"}


def test_speed_limits_prefer_segment_then_vehicle_class() -> None:
    rules = RuleBook((_version(1, 0),)).in_force(0)
    label = "metro-police/city@1"
    assert rules.speed_limit_kmh(_segment(1), "car") == (30, label)
    assert rules.speed_limit_kmh(_segment(1), "truck") == (20, label)
    assert rules.speed_limit_kmh(_segment(7), "truck") == (40, label)
    assert rules.speed_limit_kmh(_segment(2, RoadClass.MOTORWAY), "car") == (50, "builtin@0")


def test_a_more_specific_limit_wins_over_a_newer_general_one() -> None:
    old = RuleVersion("a", "x", 1, 0, speed_limits=(SpeedLimit(25, segment_id=1),))
    new = RuleVersion("b", "y", 1, 10, speed_limits=(SpeedLimit(60, road_class="local"),))
    rules = RuleBook((old, new)).in_force(20)
    assert rules.speed_limit_kmh(_segment(1), None) == (25, "a/x@1")
    assert rules.speed_limit_kmh(_segment(2), None) == (60, "b/y@1")


def test_polygon_containment_inside_outside_and_on_the_edge() -> None:
    concave = [(0, 0), (0, 100), (100, 100), (100, 0), (50, 50)]  # a notch from below
    assert polygon_contains(concave, 80, 50)
    assert not polygon_contains(concave, 50, 20)  # in the notch (lon < lat below 50)
    assert not polygon_contains(concave, 50, 49)
    assert polygon_contains(concave, 50, 51)
    assert polygon_contains(concave, 0, 30)  # on an edge
    assert polygon_contains(concave, 100, 100)  # a vertex
    assert not polygon_contains(concave, 101, 50)
    assert not polygon_contains(concave, 50, -1)
    # Real coordinates (Berlin-sized numbers) do not overflow or round.
    fence = Geofence(
        "g",
        "no_entry",
        (
            (524800000, 133900000),
            (524800000, 134100000),
            (525000000, 134100000),
            (525000000, 133900000),
        ),
    )
    assert fence.contains(524900000, 134000000)
    assert not fence.contains(524799999, 134000000)


@pytest.mark.parametrize(
    ("ts", "inside"),
    [
        (FRIDAY + 1319 * MIN, False),
        (FRIDAY + 1320 * MIN, True),  # Friday 22:00
        (SATURDAY - 1, True),
        (SATURDAY, True),  # past midnight into Saturday
        (SATURDAY + 359 * MIN, True),
        (SATURDAY + 360 * MIN, False),  # 06:00 ends it
        (FRIDAY + 100 * MIN, False),  # Friday early hours: Thursday is not listed
        (SATURDAY + 1320 * MIN, False),  # Saturday evening: not listed
    ],
)
def test_a_window_past_midnight_runs_into_the_next_day(ts: int, inside: bool) -> None:
    assert TimeWindow(frozenset({4}), 1320, 360).contains(ts) is inside


def test_a_sunday_window_past_midnight_wraps_to_monday() -> None:
    window = TimeWindow(frozenset({6}), 1380, 60)
    assert window.contains(MONDAY + 59 * MIN)
    assert not window.contains(MONDAY + 60 * MIN)


def test_geofences_filter_by_vehicle_class_and_window() -> None:
    rules = RuleBook((_version(1, 0),)).in_force(0)
    friday_night = FRIDAY + 23 * 60 * MIN
    assert {g.id for g in rules.geofences(friday_night, "car")} == {"old-town", "school"}
    assert {g.id for g in rules.geofences(friday_night, "truck")} == {"old-town"}
    assert {g.id for g in rules.geofences(MONDAY + 12 * 60 * MIN, "car")} == {"old-town"}
    assert {g.id for g in rules.geofences(friday_night, None)} == {"old-town"}


def test_the_warnings_detectors_can_use_the_rule_book() -> None:
    from analytics.warnings.detectors import DEFAULT_THRESHOLDS, RuleSource

    source: RuleSource = RuleBook.default()  # mypy checks the protocol
    assert source.in_force(0).label == "builtin@0"
    for name, value in DEFAULT_THRESHOLDS.items():
        assert THRESHOLDS[name].default == value, name


@given(
    lat0=st.integers(-800_000_000, 800_000_000),
    lon0=st.integers(-1_700_000_000, 1_700_000_000),
    height=st.integers(1, 10_000_000),
    width=st.integers(1, 10_000_000),
    lat=st.integers(-900_000_000, 900_000_000),
    lon=st.integers(-1_800_000_000, 1_800_000_000),
)
def test_a_rectangle_contains_exactly_its_box(
    lat0: int, lon0: int, height: int, width: int, lat: int, lon: int
) -> None:
    box = [(lat0, lon0), (lat0, lon0 + width), (lat0 + height, lon0 + width), (lat0 + height, lon0)]
    assert polygon_problem(box) is None
    for point in ((lat, lon), (lat0 + height // 2, lon0 + width // 2), (lat0 - 1, lon0)):
        inside = lat0 <= point[0] <= lat0 + height and lon0 <= point[1] <= lon0 + width
        assert polygon_contains(box, *point) is inside
        assert polygon_contains(box[::-1], *point) is inside  # orientation does not matter
