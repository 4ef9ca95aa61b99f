"""The strict rules format: what is accepted, and every refusal naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.rules.parse import RulesError, parse_rules
from tests.unit.contracts.rules.conftest import document, encode


def test_a_valid_document_parses_into_its_rules() -> None:
    rules = parse_rules(encode(document()))
    assert rules.label == "metro-police/city@3"
    assert rules.effective_from_ms == 1_000_000
    assert [s.max_kmh for s in rules.speed_limits] == [30, 20, 40]
    assert rules.speed_limits[2].segment_id == 7
    assert [g.id for g in rules.geofences] == ["old-town", "school"]
    assert rules.geofences[1].max_speed_kmh == 20
    assert rules.geofences[1].label == "metro-police/city@3"
    assert rules.thresholds == (("speeding_tolerance_kmh", 3),)


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def _drop(doc: dict[str, Any], path: list[Any]) -> None:
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]


@pytest.mark.parametrize(
    ("path", "value", "field", "reason"),
    [
        (["format"], "roadledger-rules/2", "format", "must be"),
        (["surprise"], 1, "surprise", "unknown field"),
        (["org_id"], "metro police", "org_id", "characters"),
        (["rule_set"], 5, "rule_set", "must be a string"),
        (["version"], 0, "version", "must be in"),
        (["version"], 3.0, "version", "must be an integer, got float"),
        (["version"], True, "version", "must be an integer, got bool"),
        (["effective_from_ms"], "1000", "effective_from_ms", "must be an integer"),
        (["speed_limits"], {}, "speed_limits", "must be a list"),
        (["speed_limits", 0, "max_kmh"], 30.5, "speed_limits[0].max_kmh", "integer"),
        (["speed_limits", 0, "road_class"], "lane", "speed_limits[0].road_class", "one of"),
        (["speed_limits", 1, "segment_id"], 4, "speed_limits[1]", "exactly one of"),
        (["speed_limits", 2, "colour"], "red", "speed_limits[2].colour", "unknown field"),
        (["geofences", 0, "kind"], "toll", "geofences[0].kind", "one of"),
        (["geofences", 0, "max_speed_kmh"], 30, "geofences[0].max_speed_kmh", "not allowed"),
        (["geofences", 1, "id"], "old-town", "geofences[1].id", "duplicate"),
        (["geofences", 0, "polygon"], [[0, 0], [0, 1]], "geofences[0].polygon", "at least 3"),
        (
            ["geofences", 0, "polygon"],
            [[0, 0], [10, 10], [0, 10], [10, 0]],
            "geofences[0].polygon",
            "intersect",
        ),
        (
            ["geofences", 0, "polygon"],
            [[0, 0], [5, 5], [10, 10]],
            "geofences[0].polygon",
            "overlap",  # the last edge runs back along the first two
        ),
        (
            ["geofences", 0, "polygon"],
            [[0, 0], [0, 10], [10, 10], [0, 5]],  # the last edge runs back along the first
            "geofences[0].polygon",
            "overlap",
        ),
        (
            ["geofences", 0, "polygon"],
            [[0, 0], [0, 9], [9, 9], [0, 0]],
            "geofences[0].polygon",
            "repeats a vertex",
        ),
        (["geofences", 0, "polygon", 1], [100, 200.5], "geofences[0].polygon[1][1]", "integer"),
        (["geofences", 0, "polygon", 1], [900_000_001, 0], "geofences[0].polygon[1][0]", "in"),
        (["geofences", 0, "polygon", 2], [1], "geofences[0].polygon[2]", "[lat_e7, lon_e7]"),
        (
            ["geofences", 1, "windows", 0, "start_min"],
            1440,
            "geofences[1].windows[0].start_min",
            "in",
        ),
        (
            ["geofences", 1, "windows", 0, "end_min"],
            1320,
            "geofences[1].windows[0].end_min",
            "empty",
        ),
        (["geofences", 1, "windows", 0, "days"], [7], "geofences[1].windows[0].days[0]", "in"),
        (["geofences", 1, "windows", 0, "days"], [], "geofences[1].windows[0].days", "at least"),
        (["geofences", 1, "windows", 0, "days"], [1, 1], "geofences[1].windows[0].days", "repeats"),
        (
            ["geofences", 1, "vehicle_classes"],
            ["car", 3],
            "geofences[1].vehicle_classes[1]",
            "string",
        ),
        (["thresholds", "speed_of_light"], 1, "thresholds.speed_of_light", "unknown threshold"),
        (["thresholds", "speeding_tolerance_kmh"], -1, "thresholds.speeding_tolerance_kmh", "in"),
        (["thresholds"], [], "thresholds", "must be an object"),
    ],
)
def test_refusals_name_the_field(path: list[Any], value: Any, field: str, reason: str) -> None:
    doc = document()
    _set(doc, path, value)
    with pytest.raises(RulesError) as caught:
        parse_rules(encode(doc))
    assert caught.value.path == field
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (["org_id"], "org_id"),
        (["version"], "version"),
        (["geofences", 1, "max_speed_kmh"], "geofences[1].max_speed_kmh"),
        (["geofences", 0, "polygon"], "geofences[0].polygon"),
        (["geofences", 1, "windows", 0, "days"], "geofences[1].windows[0].days"),
        (["speed_limits", 0, "max_kmh"], "speed_limits[0].max_kmh"),
    ],
)
def test_missing_fields_are_named(path: list[Any], field: str) -> None:
    doc = document()
    _drop(doc, path)
    with pytest.raises(RulesError, match="missing") as caught:
        parse_rules(encode(doc))
    assert caught.value.path == field


@pytest.mark.parametrize(
    "data",
    [b"", b"[1]", b'{"format": 1, "format": 2}', b"\xff", b'{"version": NaN}'],
)
def test_not_a_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(RulesError):
        parse_rules(data)


def test_lists_and_thresholds_may_be_left_out() -> None:
    doc = document()
    for name in ("speed_limits", "geofences", "thresholds"):
        del doc[name]
    rules = parse_rules(encode(doc))
    assert (rules.speed_limits, rules.geofences, rules.thresholds) == ((), (), ())


def test_to_json_round_trips_and_is_canonical() -> None:
    from contracts.rules.parse import to_json

    rules = parse_rules(encode(document()))
    text = to_json(rules)
    assert parse_rules(text) == rules
    assert to_json(parse_rules(text)) == text
