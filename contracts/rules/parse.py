"""The strict rules format (docs/rules.md): JSON bytes -> :class:`RuleVersion`, or the reason.

Every refusal is a :class:`~contracts.rules.errors.RulesInvalid` (a ``RulesError``, re-exported
here) whose ``path`` names the field, e.g. ``geofences[2].windows[0].start_min``. Unknown
fields, wrong types, non-integers (floats, booleans), bad polygons and unknown threshold names
are refused, and so is a document over a bound of ``limits.py``: its size before it is decoded,
its counts before any item is checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any, Final, TypeVar

from chain.errors import EncodingError
from chain.strict_json import dumps_canonical, loads_object
from contracts.roads import RoadClass
from contracts.rules import limits
from contracts.rules.errors import RulesError, RulesInvalid
from contracts.rules.geometry import Vertex, polygon_problem
from contracts.rules.model import GEOFENCE_KINDS, Geofence, RuleVersion, SpeedLimit, TimeWindow
from contracts.rules.thresholds import SPEED_LIMIT_KMH, THRESHOLDS

__all__ = ["FORMAT", "RulesError", "parse_rules", "to_json"]

FORMAT: Final = "roadledger-rules/1"
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_MAX_INT: Final = 2**53 - 1
_ROAD_CLASSES: Final = frozenset(c.value for c in RoadClass)
T = TypeVar("T")


def parse_rules(data: bytes) -> RuleVersion:
    """Parse and check one rules document (the signed payload); ``signed`` is left empty."""
    if len(data) > limits.MAX_DOCUMENT_BYTES:
        raise RulesInvalid("", f"{len(data)} bytes, limit is {limits.MAX_DOCUMENT_BYTES}")
    try:
        doc = loads_object(data, "rules")
    except EncodingError as exc:
        raise RulesInvalid("", str(exc)) from None
    _fields(
        doc,
        "",
        required={"format", "org_id", "rule_set", "version", "effective_from_ms"},
        optional={"speed_limits", "geofences", "thresholds", "description"},
    )
    if doc["format"] != FORMAT:
        raise RulesInvalid("format", f"must be {FORMAT!r}")
    if "description" in doc:
        text = _str(doc["description"], "description")
        if len(text) > limits.MAX_DESCRIPTION_CHARS:
            raise RulesInvalid(
                "description", f"{len(text)} characters, limit is {limits.MAX_DESCRIPTION_CHARS}"
            )
    _check_counts(doc)
    speed = _list(doc.get("speed_limits", []), "speed_limits", _speed_limit)
    fences = _list(doc.get("geofences", []), "geofences", _geofence)
    seen: set[str] = set()
    for i, g in enumerate(fences):
        if g.id in seen:
            raise RulesInvalid(f"geofences[{i}].id", f"duplicate id {g.id!r}")
        seen.add(g.id)
    org_id = _ident(doc["org_id"], "org_id")
    rule_set = _ident(doc["rule_set"], "rule_set")
    number = _int(doc["version"], "version", lo=1)
    label = f"{org_id}/{rule_set}@{number}"
    return RuleVersion(
        org_id=org_id,
        rule_set=rule_set,
        version=number,
        effective_from_ms=_int(doc["effective_from_ms"], "effective_from_ms", lo=0),
        speed_limits=tuple(speed),
        geofences=tuple(_labelled(g, label) for g in fences),
        thresholds=_thresholds(doc.get("thresholds", {})),
    )


def to_json(rules: RuleVersion) -> bytes:
    """The rules document for ``rules`` (canonical JSON); :func:`parse_rules` reads it back."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "org_id": rules.org_id,
        "rule_set": rules.rule_set,
        "version": rules.version,
        "effective_from_ms": rules.effective_from_ms,
        "speed_limits": [
            {
                k: v
                for k, v in (
                    ("max_kmh", s.max_kmh),
                    ("road_class", s.road_class),
                    ("segment_id", s.segment_id),
                    ("vehicle_class", s.vehicle_class),
                )
                if v is not None
            }
            for s in rules.speed_limits
        ],
        "geofences": [_geofence_json(g) for g in rules.geofences],
        "thresholds": dict(rules.thresholds),
    }
    return dumps_canonical(doc).encode()


def _geofence_json(g: Geofence) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": g.id,
        "kind": g.kind,
        "polygon": [list(v) for v in g.polygon],
        "vehicle_classes": sorted(g.vehicle_classes),
        "windows": [
            {"days": sorted(w.days), "start_min": w.start_min, "end_min": w.end_min}
            for w in g.windows
        ],
    }
    if g.max_speed_kmh is not None:
        out["max_speed_kmh"] = g.max_speed_kmh
    return out


def _labelled(g: Geofence, label: str) -> Geofence:
    return Geofence(g.id, g.kind, g.polygon, g.max_speed_kmh, g.vehicle_classes, g.windows, label)


def _fields(
    obj: Any, path: str, *, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> None:
    if not isinstance(obj, dict):
        raise RulesInvalid(path, "must be an object")
    prefix = f"{path}." if path else ""
    for name in sorted(obj.keys() - required - optional):
        raise RulesInvalid(f"{prefix}{name}", "unknown field")
    for name in sorted(required - obj.keys()):
        raise RulesInvalid(f"{prefix}{name}", "missing")


def _int(value: Any, path: str, *, lo: int = -_MAX_INT, hi: int = _MAX_INT) -> int:
    if type(value) is not int:
        raise RulesInvalid(path, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise RulesInvalid(path, f"must be in [{lo}, {hi}], got {value}")
    return value


def _speed(value: Any, path: str) -> int:
    """A published speed limit, km/h, within ``thresholds.SPEED_LIMIT_KMH``."""
    return _int(value, path, lo=SPEED_LIMIT_KMH[0], hi=SPEED_LIMIT_KMH[1])


def _str(value: Any, path: str) -> str:
    if type(value) is not str:
        raise RulesInvalid(path, f"must be a string, got {type(value).__name__}")
    return value


def _ident(value: Any, path: str) -> str:
    text = _str(value, path)
    if not _ID.match(text):
        raise RulesInvalid(path, "must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    return text


def _check_counts(doc: dict[str, Any]) -> None:
    """The document's counts against ``limits``, before any item is checked (a polygon's
    simplicity is the costly check: every bound on it is known before the first one runs)."""
    _count(doc.get("speed_limits"), "speed_limits", limits.MAX_SPEED_LIMITS)
    fences = doc.get("geofences")
    _count(fences, "geofences", limits.MAX_GEOFENCES)
    if type(fences) is not list:
        return  # the type is refused with the field's other checks
    total = 0
    for i, fence in enumerate(fences):
        polygon = fence.get("polygon") if isinstance(fence, dict) else None
        total += _count(polygon, f"geofences[{i}].polygon", limits.MAX_VERTICES, "vertices")
    if total > limits.MAX_TOTAL_VERTICES:
        raise RulesInvalid(
            "geofences", f"{total} vertices in all, limit is {limits.MAX_TOTAL_VERTICES}"
        )


def _count(value: Any, path: str, limit: int, what: str = "items") -> int:
    """``len(value)`` if it is a list within ``limit`` (0 for anything else)."""
    if type(value) is not list:
        return 0
    if len(value) > limit:
        raise RulesInvalid(path, f"{len(value)} {what}, limit is {limit}")
    return len(value)


def _list(
    value: Any, path: str, item: Callable[[Any, str], T], limit: int | None = None
) -> list[T]:
    if type(value) is not list:
        raise RulesInvalid(path, f"must be a list, got {type(value).__name__}")
    if limit is not None:
        _count(value, path, limit)
    return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _speed_limit(obj: Any, path: str) -> SpeedLimit:
    _fields(
        obj,
        path,
        required={"max_kmh"},
        optional={"road_class", "segment_id", "vehicle_class"},
    )
    if ("road_class" in obj) == ("segment_id" in obj):
        raise RulesInvalid(path, "needs exactly one of road_class, segment_id")
    road_class = None
    if "road_class" in obj:
        road_class = _str(obj["road_class"], f"{path}.road_class")
        if road_class not in _ROAD_CLASSES:
            raise RulesInvalid(f"{path}.road_class", f"must be one of {sorted(_ROAD_CLASSES)}")
    return SpeedLimit(
        max_kmh=_speed(obj["max_kmh"], f"{path}.max_kmh"),
        road_class=road_class,
        segment_id=(
            _int(obj["segment_id"], f"{path}.segment_id", lo=0) if "segment_id" in obj else None
        ),
        vehicle_class=(
            _ident(obj["vehicle_class"], f"{path}.vehicle_class")
            if "vehicle_class" in obj
            else None
        ),
    )


def _vertex(obj: Any, path: str) -> Vertex:
    if type(obj) is not list or len(obj) != 2:
        raise RulesInvalid(path, "must be [lat_e7, lon_e7]")
    lat = _int(obj[0], f"{path}[0]", lo=-900_000_000, hi=900_000_000)
    lon = _int(obj[1], f"{path}[1]", lo=-1_800_000_000, hi=1_800_000_000)
    return (lat, lon)


def _window(obj: Any, path: str) -> TimeWindow:
    _fields(obj, path, required={"days", "start_min", "end_min"})
    days = _list(obj["days"], f"{path}.days", lambda v, p: _int(v, p, lo=0, hi=6))
    if not days:
        raise RulesInvalid(f"{path}.days", "must list at least one day (0 = Monday)")
    if len(set(days)) != len(days):
        raise RulesInvalid(f"{path}.days", "repeats a day")
    start = _int(obj["start_min"], f"{path}.start_min", lo=0, hi=1439)
    end = _int(obj["end_min"], f"{path}.end_min", lo=1, hi=1440)
    if start == end:
        raise RulesInvalid(f"{path}.end_min", "equals start_min (an empty window)")
    return TimeWindow(frozenset(days), start, end)


def _geofence(obj: Any, path: str) -> Geofence:
    _fields(
        obj,
        path,
        required={"id", "kind", "polygon"},
        optional={"max_speed_kmh", "vehicle_classes", "windows"},
    )
    kind = _str(obj["kind"], f"{path}.kind")
    if kind not in GEOFENCE_KINDS:
        raise RulesInvalid(f"{path}.kind", f"must be one of {sorted(GEOFENCE_KINDS)}")
    max_speed = None
    if kind == "speed_zone":
        if "max_speed_kmh" not in obj:
            raise RulesInvalid(f"{path}.max_speed_kmh", "missing (required for a speed_zone)")
        max_speed = _speed(obj["max_speed_kmh"], f"{path}.max_speed_kmh")
    elif "max_speed_kmh" in obj:
        raise RulesInvalid(f"{path}.max_speed_kmh", f"not allowed for kind {kind!r}")
    polygon = tuple(_list(obj["polygon"], f"{path}.polygon", _vertex))
    if problem := polygon_problem(polygon):
        raise RulesInvalid(f"{path}.polygon", problem)
    classes = _list(
        obj.get("vehicle_classes", []),
        f"{path}.vehicle_classes",
        _ident,
        limits.MAX_VEHICLE_CLASSES,
    )
    return Geofence(
        id=_ident(obj["id"], f"{path}.id"),
        kind=kind,
        polygon=polygon,
        max_speed_kmh=max_speed,
        vehicle_classes=frozenset(classes),
        windows=tuple(
            _list(obj.get("windows", []), f"{path}.windows", _window, limits.MAX_WINDOWS)
        ),
    )


def _thresholds(obj: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(obj, dict):
        raise RulesInvalid("thresholds", "must be an object")
    out = []
    for name in sorted(obj):
        if name not in THRESHOLDS:
            raise RulesInvalid(f"thresholds.{name}", "unknown threshold")
        bounds = THRESHOLDS[name]
        out.append((name, _int(obj[name], f"thresholds.{name}", lo=bounds.lo, hi=bounds.hi)))
    return tuple(out)
