"""Injectable scenarios: what goes wrong, to which devices, and when.

A scenario is given in a JSON file or with ``--scenario`` flags::

    {"scenarios": [
      {"type": "teleport", "count": 2, "at_s": 30, "duration_s": 20,
       "params": {"distance_m": 8000}},
      {"type": "revoked_key", "devices": ["veh-000007"], "at_s": 45},
      {"type": "forged_signature", "kind": "rsu", "params": {"messages": 5}}
    ]}

    --scenario teleport:count=2,at=30,duration=20,distance_m=8000
    --scenario revoked_key:devices=veh-000007,at=45
    --scenario all                  (every type once, with its defaults)

Members: ``type`` (below), ``name`` (default: the type, suffixed ``-2``, ``-3`` when
repeated), ``devices`` (explicit ids) or ``count`` (default 1, picked by the seed among devices
of ``kind`` that no other scenario uses), ``kind`` (``vehicle`` default, or ``rsu``), ``at_s``
(seconds after the start, default 20 % of the run), ``duration_s`` (default 30 % of the run),
``params`` (numbers, per type; defaults in :data:`DEFAULT_PARAMS`). For ``unknown_device``,
``count`` is the number of unregistered devices that appear during the window; ``incident``
takes 4 vehicles unless told otherwise (the vehicles caught in the jam).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from chain.telemetry import DeviceKind
from device_sim.errors import ScenarioError

__all__ = [
    "DEFAULT_PARAMS",
    "RSU_ONLY",
    "VEHICLE_ONLY",
    "ScenarioSpec",
    "ScenarioType",
    "default_count",
    "default_kind",
    "load_scenarios",
    "parse_scenario_flag",
]


class ScenarioType(enum.StrEnum):
    ODOMETER_ROLLBACK = "odometer_rollback"  # re-flashed device: the odometer drops, stays low
    TELEPORT = "teleport"  # GPS spoofing: the position jumps far away for the window
    DRIFT_OFF_ROAD = "drift_off_road"  # GPS spoofing: the position drifts slowly off the road
    REPLAY = "replay"  # earlier valid messages re-published at the window start
    FORGED_SIGNATURE = "forged_signature"  # extra messages signed by an attacker's key
    TAMPERED_PAYLOAD = "tampered_payload"  # payload altered after signing (replaces original)
    UNKNOWN_DEVICE = "unknown_device"  # unregistered devices publish during the window
    REVOKED_KEY = "revoked_key"  # key revoked at the window start; the device keeps sending
    CLOCK_SKEW = "clock_skew"  # device clock far ahead during the window
    OFFLINE_BURST = "offline_burst"  # messages held during the window, then sent at once
    DUPLICATE_DELIVERY = "duplicate_delivery"  # messages published twice
    CONFLICT = "conflict"  # a second, different, validly signed message for a seq
    MALFORMED = "malformed"  # extra messages that are not a well-formed JWS
    BAD_SCHEMA = "bad_schema"  # extra validly signed messages with a float in the payload
    SPEEDING = "speeding"  # the driver goes ``factor`` x the limit during the window
    ODOMETER_BLOCKER = "odometer_blocker"  # the odometer counts only part of the distance
    GEOFENCE_BREACH = "geofence_breach"  # a restricted vehicle drives into a no-entry zone
    RSU_DISPLACED = "rsu_displaced"  # an RSU reports its sightings ``distance_m`` away
    INCIDENT = "incident"  # a breakdown slows the vehicle's road to ``speed_pct`` of free flow


VEHICLE_ONLY: Final = frozenset(
    {
        ScenarioType.ODOMETER_ROLLBACK,
        ScenarioType.TELEPORT,
        ScenarioType.DRIFT_OFF_ROAD,
        ScenarioType.SPEEDING,
        ScenarioType.ODOMETER_BLOCKER,
        ScenarioType.GEOFENCE_BREACH,
        ScenarioType.INCIDENT,
    }
)
RSU_ONLY: Final = frozenset({ScenarioType.RSU_DISPLACED})
# name -> (minimum, maximum, integer) of every parameter a type accepts.
_PARAM_RANGES: Final[dict[str, tuple[float, float, bool]]] = {
    "drop_fraction": (0.01, 1.0, False),
    "distance_m": (100.0, 1_000_000.0, False),
    "bearing_deg": (0.0, 360.0, False),
    "rate_mps": (0.05, 50.0, False),
    "messages": (1, 10_000, True),
    "skew_ms": (1, 10 * 365 * 86_400_000, True),
    "fraction": (0.0, 1.0, False),
    "shuffle": (0, 1, True),
    "factor": (1.0, 5.0, False),
    "counted_fraction": (0.0, 0.95, False),
    "speed_pct": (1.0, 90.0, False),
}
DEFAULT_PARAMS: Final[dict[ScenarioType, dict[str, float]]] = {
    ScenarioType.ODOMETER_ROLLBACK: {"drop_fraction": 0.35},
    ScenarioType.TELEPORT: {"distance_m": 20_000.0},
    # 3 m/s: off the road within the default window of a one-minute run, unless the random
    # bearing runs along the vehicle's own street.
    ScenarioType.DRIFT_OFF_ROAD: {"rate_mps": 3.0},
    ScenarioType.REPLAY: {"messages": 5},
    ScenarioType.FORGED_SIGNATURE: {"messages": 3},
    ScenarioType.TAMPERED_PAYLOAD: {"messages": 3},
    ScenarioType.UNKNOWN_DEVICE: {},
    ScenarioType.REVOKED_KEY: {},
    ScenarioType.CLOCK_SKEW: {"skew_ms": 86_400_000},
    ScenarioType.OFFLINE_BURST: {"shuffle": 1},
    ScenarioType.DUPLICATE_DELIVERY: {"fraction": 1.0},
    ScenarioType.CONFLICT: {"messages": 1},
    ScenarioType.MALFORMED: {"messages": 3},
    ScenarioType.BAD_SCHEMA: {"messages": 3},
    ScenarioType.SPEEDING: {"factor": 1.4},
    ScenarioType.ODOMETER_BLOCKER: {"counted_fraction": 0.5},
    ScenarioType.GEOFENCE_BREACH: {},
    ScenarioType.RSU_DISPLACED: {"distance_m": 2000.0},
    ScenarioType.INCIDENT: {"speed_pct": 15.0},
}
# How many devices a type takes when ``count`` is not given: a jam needs several vehicles.
_DEFAULT_COUNT: Final = {ScenarioType.INCIDENT: 4}
_OPTIONAL_PARAMS: Final = {
    ScenarioType.TELEPORT: {"bearing_deg"},
    ScenarioType.DRIFT_OFF_ROAD: {"bearing_deg"},
}
_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MEMBERS: Final = frozenset(
    {"type", "name", "devices", "count", "kind", "at_s", "duration_s", "params"}
)


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """One scenario as written by the user (not yet tied to a fleet or a start time)."""

    type: ScenarioType
    name: str | None = None
    devices: tuple[str, ...] = ()
    count: int = 1
    kind: DeviceKind = DeviceKind.VEHICLE
    at_s: float | None = None
    duration_s: float | None = None
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        what = self.name or self.type.value
        if self.name is not None and not _NAME_RE.fullmatch(self.name):
            raise ScenarioError(f"{what}: name must match {_NAME_RE.pattern}")
        if self.count < 1:
            raise ScenarioError(f"{what}: count must be at least 1")
        if self.type in VEHICLE_ONLY and self.kind is not DeviceKind.VEHICLE:
            raise ScenarioError(f"{what}: applies to vehicles only")
        if self.type in RSU_ONLY and self.kind is not DeviceKind.RSU:
            raise ScenarioError(f"{what}: applies to roadside units only (kind rsu)")
        for label, value in (("at_s", self.at_s), ("duration_s", self.duration_s)):
            if value is not None and not value >= 0:
                raise ScenarioError(f"{what}: {label} must be a number >= 0")
        allowed = DEFAULT_PARAMS[self.type].keys() | _OPTIONAL_PARAMS.get(self.type, set())
        for key, value in self.params.items():
            if key not in allowed:
                raise ScenarioError(
                    f"{what}: unknown parameter {key!r} (allowed: {sorted(allowed)})"
                )
            low, high, integer = _PARAM_RANGES[key]
            if type(value) not in (int, float) or not low <= value <= high:
                raise ScenarioError(f"{what}: {key} must be a number in [{low:g}, {high:g}]")
            if integer and value != int(value):
                raise ScenarioError(f"{what}: {key} must be a whole number")

    @classmethod
    def from_dict(cls, obj: object) -> ScenarioSpec:
        """Validate one scenario object of a scenario file."""
        if not isinstance(obj, dict):
            raise ScenarioError("each scenario must be a JSON object")
        if unknown := obj.keys() - _MEMBERS:
            raise ScenarioError(f"scenario: unknown members {sorted(unknown)}")
        try:
            scenario_type = ScenarioType(obj["type"])
            kind = DeviceKind(obj.get("kind", default_kind(scenario_type).value))
        except KeyError:
            raise ScenarioError("scenario: 'type' is required") from None
        except ValueError as exc:
            raise ScenarioError(f"scenario: {exc}; types: {', '.join(ScenarioType)}") from None
        devices = obj.get("devices", [])
        params = obj.get("params", {})
        count = _typed(obj, "count", int)
        if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
            raise ScenarioError(f"{scenario_type}: devices must be a list of device ids")
        if not isinstance(params, dict):
            raise ScenarioError(f"{scenario_type}: params must be an object")
        return cls(
            type=scenario_type,
            name=_typed(obj, "name", str),
            devices=tuple(devices),
            count=count if count is not None else len(devices) or default_count(scenario_type),
            kind=kind,
            at_s=_number(obj, "at_s"),
            duration_s=_number(obj, "duration_s"),
            params=params,
        )

    def to_dict(self) -> dict[str, Any]:
        """The scenario-file form (round-trips through :meth:`from_dict`)."""
        obj: dict[str, Any] = {
            "type": self.type.value,
            "count": self.count,
            "kind": self.kind.value,
        }
        optional = {"name": self.name, "at_s": self.at_s, "duration_s": self.duration_s}
        obj |= {key: value for key, value in optional.items() if value is not None}
        if self.devices:
            obj["devices"] = list(self.devices)
        if self.params:
            obj["params"] = dict(self.params)
        return obj


def default_count(scenario_type: ScenarioType) -> int:
    """How many devices a scenario of ``scenario_type`` takes unless told otherwise."""
    return _DEFAULT_COUNT.get(scenario_type, 1)


def default_kind(scenario_type: ScenarioType) -> DeviceKind:
    """The kind of device a scenario of ``scenario_type`` applies to unless told otherwise."""
    return DeviceKind.RSU if scenario_type in RSU_ONLY else DeviceKind.VEHICLE


def _typed(obj: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = obj.get(key)
    if value is not None and (type(value) is not kind):
        raise ScenarioError(f"scenario: {key} must be a {kind.__name__}")
    return value


def _number(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is not None and type(value) not in (int, float):
        raise ScenarioError(f"scenario: {key} must be a number")
    return None if value is None else float(value)


def load_scenarios(path: Path) -> list[ScenarioSpec]:
    """Scenarios of a JSON file: ``{"scenarios": [...]}`` or a bare list."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not a JSON document ({exc})") from None
    items = document.get("scenarios") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ScenarioError(f'{path}: expected {{"scenarios": [...]}} or a list')
    return [ScenarioSpec.from_dict(item) for item in items]


def parse_scenario_flag(text: str) -> list[ScenarioSpec]:
    """``TYPE[:key=value,...]`` or ``all``; keys: count, at, duration, kind, name, devices
    (joined with ``+``), and the type's parameters."""
    if text == "all":
        return [
            ScenarioSpec(type=t, kind=default_kind(t), count=default_count(t)) for t in ScenarioType
        ]
    type_text, _, options = text.partition(":")
    obj: dict[str, Any] = {"type": type_text, "params": {}}
    for option in filter(None, options.split(",")):
        key, sep, value = option.partition("=")
        if not sep or not value:
            raise ScenarioError(f"--scenario {text}: expected key=value, got {option!r}")
        if key in ("kind", "name"):
            obj[key] = value
        elif key == "devices":
            obj["devices"] = value.split("+")
        elif key in ("count", "at", "duration") or key in _PARAM_RANGES:
            try:
                number = float(value)
            except ValueError:
                raise ScenarioError(f"--scenario {text}: {key} must be a number") from None
            as_int = int(number) if number.is_integer() else number
            target = {"count": "count", "at": "at_s", "duration": "duration_s"}.get(key)
            if target is None:
                obj["params"][key] = as_int
            else:
                obj[target] = as_int if key == "count" else number
        else:
            raise ScenarioError(f"--scenario {text}: unknown key {key!r}")
    return [ScenarioSpec.from_dict(obj)]
