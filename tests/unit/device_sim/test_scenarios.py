"""Scenario input: files and flags, validation, and how devices are assigned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.telemetry import DeviceKind
from device_sim.assignment import ResolvedScenario, resolve_scenarios
from device_sim.errors import ScenarioError
from device_sim.scenarios import (
    DEFAULT_PARAMS,
    ScenarioSpec,
    ScenarioType,
    load_scenarios,
    parse_scenario_flag,
)

VEHICLES = [f"veh-{i:06d}" for i in range(1, 21)]
RSUS = [f"rsu-{i:04d}" for i in range(1, 4)]
START = 1_767_225_600_000


def resolve(specs: list[ScenarioSpec], seed: int = 1) -> list[ResolvedScenario]:
    ghosts = (f"veh-x{i:05d}" for i in range(1, 100))
    return resolve_scenarios(
        specs,
        vehicle_ids=VEHICLES,
        rsu_ids=RSUS,
        ghost_ids=ghosts,
        start_ms=START,
        duration_ms=100_000,
        seed=seed,
    )


def test_flags_parse_into_specs() -> None:
    (spec,) = parse_scenario_flag("teleport:count=2,at=30,duration=12.5,distance_m=8000")
    assert spec == ScenarioSpec(
        type=ScenarioType.TELEPORT, count=2, at_s=30.0, duration_s=12.5, params={"distance_m": 8000}
    )
    (spec,) = parse_scenario_flag("forged_signature:kind=rsu,messages=5,name=rsu-forgery")
    assert (spec.kind, spec.name, spec.params) == (DeviceKind.RSU, "rsu-forgery", {"messages": 5})
    (spec,) = parse_scenario_flag("revoked_key:devices=veh-000003+veh-000004")
    assert spec.devices == ("veh-000003", "veh-000004")
    assert spec.count == 2
    assert [s.type for s in parse_scenario_flag("all")] == list(ScenarioType)


def test_files_round_trip(tmp_path: Path) -> None:
    specs = [
        ScenarioSpec(
            type=ScenarioType.CLOCK_SKEW, count=3, at_s=1.0, params={"skew_ms": 7_200_000}
        ),
        ScenarioSpec(
            type=ScenarioType.REPLAY, name="late-replay", kind=DeviceKind.RSU, duration_s=4.0
        ),
        ScenarioSpec(type=ScenarioType.OFFLINE_BURST, devices=("veh-000001",)),
    ]
    path = tmp_path / "scenarios.json"
    path.write_text(json.dumps({"scenarios": [s.to_dict() for s in specs]}))
    assert load_scenarios(path) == specs
    path.write_text(json.dumps([s.to_dict() for s in specs]))
    assert load_scenarios(path) == specs


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("levitation", "types:"),
        ("teleport:count=0", "count must be at least 1"),
        ("teleport:kind=rsu", "vehicles only"),
        ("teleport:speed=3", "unknown key"),
        ("teleport:distance_m=5", r"distance_m must be a number in \[100"),
        ("replay:distance_m=5000", "unknown parameter"),
        ("replay:messages=2.5", "whole number"),
        ("clock_skew:at", "key=value"),
        ("clock_skew:at=soon", "must be a number"),
        ("conflict:name=with space", "name must match"),
    ],
)
def test_bad_flags_are_refused_with_a_reason(flag: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario_flag(flag)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a JSON document"),
        ('{"scenarios": 3}', "expected"),
        ('[{"type": "teleport", "colour": "red"}]', "unknown members"),
        ('[{"count": 1}]', "'type' is required"),
        ('[{"type": "teleport", "count": "2"}]', "count must be a int"),
        ('[{"type": "teleport", "at_s": "soon"}]', "at_s must be a number"),
        ('[{"type": "teleport", "devices": "veh-000001"}]', "list of device ids"),
    ],
)
def test_bad_files_are_refused_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ScenarioError, match=message):
        load_scenarios(path)
    with pytest.raises(ScenarioError, match="No such file"):
        load_scenarios(tmp_path / "missing.json")


def test_devices_are_drawn_without_overlap_and_deterministically() -> None:
    specs = [
        ScenarioSpec(type=ScenarioType.TELEPORT, count=5),
        ScenarioSpec(type=ScenarioType.TELEPORT, count=5),
        ScenarioSpec(type=ScenarioType.REVOKED_KEY, devices=("veh-000001",)),
        ScenarioSpec(type=ScenarioType.REPLAY, kind=DeviceKind.RSU, count=3),
        ScenarioSpec(type=ScenarioType.UNKNOWN_DEVICE, count=2),
    ]
    resolved = resolve(specs)
    assert [r.name for r in resolved] == [
        "teleport",
        "teleport-2",
        "revoked_key",
        "replay",
        "unknown_device",
    ]
    drawn = [d for r in resolved[:2] for d in r.devices]
    assert len(set(drawn)) == 10
    assert "veh-000001" not in drawn
    assert set(resolved[3].devices) == set(RSUS)
    assert resolved[4].devices == ("veh-x00001", "veh-x00002")
    assert [r.devices for r in resolve(specs)] == [r.devices for r in resolved]
    assert [r.devices for r in resolve(specs, seed=2)] != [r.devices for r in resolved]


def test_default_and_explicit_times_and_params() -> None:
    default, explicit = resolve(
        [
            ScenarioSpec(type=ScenarioType.CLOCK_SKEW),
            ScenarioSpec(
                type=ScenarioType.CLOCK_SKEW, at_s=5.0, duration_s=1.5, params={"skew_ms": 9}
            ),
        ]
    )
    assert (default.from_ms, default.to_ms) == (START + 20_000, START + 50_000)
    assert default.params == DEFAULT_PARAMS[ScenarioType.CLOCK_SKEW]
    assert (explicit.from_ms, explicit.to_ms) == (START + 5_000, START + 6_500)
    assert explicit.param("skew_ms") == 9


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ScenarioSpec(type=ScenarioType.TELEPORT, count=21), "only 20 left"),
        (
            ScenarioSpec(type=ScenarioType.TELEPORT, devices=("veh-999999",)),
            "not a device of this fleet",
        ),
        (ScenarioSpec(type=ScenarioType.TELEPORT, devices=("rsu-0001",)), "not a vehicle"),
        (ScenarioSpec(type=ScenarioType.UNKNOWN_DEVICE, devices=("veh-000001",)), "give count"),
    ],
)
def test_unassignable_scenarios_are_refused(spec: ScenarioSpec, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        resolve([spec])
