"""Rules as values: one published version, the merged rules in force at an instant, the book.

A :class:`RuleVersion` is one signed, accepted version of one rule set (``org/rule_set@N``).
:meth:`RuleBook.in_force` picks, per rule set, the version with the latest ``effective_from_ms``
at or before the instant (ties: the higher version) and merges them into a :class:`RuleSet`.
Where two rule sets in force set the same thing, the more specific rule wins (segment over road
class, a vehicle class over all classes), then the later-effective version.

A version loaded from the database carries its publisher's jurisdiction (``area``) and applies
only there: :meth:`RuleSet.at` gives the rules at a position, where the deepest authority
whose area holds it (a district unit over its parent) wins first, then the rules above. A
version without an area (built in code, e.g. in tests) applies everywhere, below any
authority's; asked without a position, a :class:`RuleSet` answers with those alone.

Time windows are in UTC: days 0 (Monday) to 6, minutes of the day 0-1440. A window whose end is
before its start runs past midnight into the next day.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from contracts.roads import RoadSegment
from contracts.rules.geometry import Vertex, polygon_contains
from contracts.rules.jurisdiction import Area
from contracts.rules.thresholds import THRESHOLDS

__all__ = [
    "BUILTIN_LABEL",
    "GEOFENCE_KINDS",
    "Geofence",
    "RuleBook",
    "RuleSet",
    "RuleVersion",
    "SpeedLimit",
    "TimeWindow",
]

BUILTIN_LABEL: Final = "builtin@0"
GEOFENCE_KINDS: Final = frozenset({"no_entry", "speed_zone"})
_DAY_MS: Final = 86_400_000
_MIN_MS: Final = 60_000
_EPOCH_WEEKDAY: Final = 3  # 1970-01-01 was a Thursday (Monday = 0)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Days of the week (0 = Monday, UTC) and minutes ``[start_min, end_min)`` of the day."""

    days: frozenset[int]
    start_min: int
    end_min: int

    def contains(self, ts_ms: int) -> bool:
        day = (ts_ms // _DAY_MS + _EPOCH_WEEKDAY) % 7
        minute = (ts_ms % _DAY_MS) // _MIN_MS
        if self.start_min < self.end_min:
            return day in self.days and self.start_min <= minute < self.end_min
        # Past midnight: the evening of a listed day, or the early hours of the day after.
        return (day in self.days and minute >= self.start_min) or (
            (day - 1) % 7 in self.days and minute < self.end_min
        )


@dataclass(frozen=True, slots=True)
class Geofence:
    """An area with a rule: no entry, or a lower speed limit. Empty lists mean "all"."""

    id: str
    kind: str
    polygon: tuple[Vertex, ...]
    max_speed_kmh: int | None = None
    vehicle_classes: frozenset[str] = frozenset()
    windows: tuple[TimeWindow, ...] = ()
    label: str = BUILTIN_LABEL

    def contains(self, lat_e7: int, lon_e7: int) -> bool:
        """Whether the position lies inside (or on the edge of) the polygon."""
        return polygon_contains(self.polygon, lat_e7, lon_e7)

    def active(self, ts_ms: int, vehicle_class: str | None) -> bool:
        """Whether the geofence applies to this vehicle class at ``ts_ms``."""
        if self.vehicle_classes and vehicle_class not in self.vehicle_classes:
            return False
        return not self.windows or any(w.contains(ts_ms) for w in self.windows)


@dataclass(frozen=True, slots=True)
class SpeedLimit:
    """A limit for a road class or one segment, optionally only for one vehicle class."""

    max_kmh: int
    road_class: str | None = None
    segment_id: int | None = None
    vehicle_class: str | None = None

    def applies(self, segment: RoadSegment, vehicle_class: str | None) -> bool:
        if self.vehicle_class is not None and self.vehicle_class != vehicle_class:
            return False
        if self.segment_id is not None:
            return self.segment_id == segment.segment_id
        return self.road_class == segment.road_class.value

    @property
    def specificity(self) -> int:
        return 2 * (self.segment_id is not None) + (self.vehicle_class is not None)


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One accepted version of one rule set. ``signed`` is the verbatim signed bytes;
    ``area`` the publisher's jurisdiction (None: everywhere; only versions built in code)."""

    org_id: str
    rule_set: str
    version: int
    effective_from_ms: int
    speed_limits: tuple[SpeedLimit, ...] = ()
    geofences: tuple[Geofence, ...] = ()
    thresholds: tuple[tuple[str, int], ...] = ()
    signed: bytes = field(default=b"", compare=False, repr=False)
    area: Area | None = field(default=None, compare=False, repr=False)

    @property
    def precedence(self) -> tuple[int, int, str]:
        """Later wins: a deeper authority, then the later effective version (then label)."""
        return (-1 if self.area is None else self.area.depth, self.effective_from_ms, self.label)

    @property
    def key(self) -> tuple[str, str]:
        return (self.org_id, self.rule_set)

    @property
    def label(self) -> str:
        """What a warning cites, e.g. ``metro-police/city@3``."""
        return f"{self.org_id}/{self.rule_set}@{self.version}"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules in force at one instant: every rule set's version in force, merged.

    ``versions`` apply here, ordered by :attr:`RuleVersion.precedence` (later entries win
    ties); ``placed`` are the versions in force that apply only inside their area, added by
    :meth:`at` where the position lies in it.
    """

    versions: tuple[RuleVersion, ...] = ()
    placed: tuple[RuleVersion, ...] = field(default=(), repr=False)
    # The merged rules per combination of areas holding a position (detectors ask per record).
    _here: dict[tuple[int, ...], RuleSet] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def at(self, lat_e7: int, lon_e7: int) -> RuleSet:
        """The rules at this position: those applying everywhere, and those of each authority
        whose jurisdiction holds it (an authority's rules never reach another's area)."""
        if not self.placed:
            return self
        inside = tuple(
            i
            for i, v in enumerate(self.placed)
            if v.area is not None and v.area.contains(lat_e7, lon_e7)
        )
        merged = self._here.get(inside)
        if merged is None:
            here = (*self.versions, *(self.placed[i] for i in inside))
            merged = RuleSet(tuple(sorted(here, key=lambda v: v.precedence)))
            self._here[inside] = merged
        return merged

    @property
    def label(self) -> str:
        """The newest version in force (``builtin@0`` when none is)."""
        return self.versions[-1].label if self.versions else BUILTIN_LABEL

    def speed_limit_kmh(self, segment: RoadSegment, vehicle_class: str | None) -> tuple[int, str]:
        """The limit for ``vehicle_class`` on ``segment``; the label of the version setting it."""
        # (authority depth, specificity): the deepest authority's limit, then the most specific.
        best: tuple[tuple[int, int], int, str] | None = None
        for v in self.versions:
            depth = v.precedence[0]
            for rule in v.speed_limits:
                rank = (depth, rule.specificity)
                if rule.applies(segment, vehicle_class) and (best is None or rank >= best[0]):
                    best = (rank, rule.max_kmh, v.label)
        if best is None:
            return segment.speed_limit_kmh, BUILTIN_LABEL
        return best[1], best[2]

    def geofences(self, ts_ms: int, vehicle_class: str | None) -> Sequence[Geofence]:
        """The geofences active at ``ts_ms`` for ``vehicle_class``."""
        return [g for v in self.versions for g in v.geofences if g.active(ts_ms, vehicle_class)]

    def threshold(self, name: str) -> tuple[int, str]:
        """The value of threshold ``name`` and the label of the version that set it."""
        for v in reversed(self.versions):
            for key, value in v.thresholds:
                if key == name:
                    return value, v.label
        if name not in THRESHOLDS:
            raise KeyError(f"unknown threshold {name!r}")
        return THRESHOLDS[name].default, BUILTIN_LABEL


@dataclass(frozen=True, slots=True)
class RuleBook:
    """Every accepted version of every rule set."""

    versions: tuple[RuleVersion, ...] = ()
    # The rules in force change only at effective times: one RuleSet per interval, cached
    # because the detectors ask for every record.
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _cache: dict[int, RuleSet] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = tuple(sorted({v.effective_from_ms for v in self.versions}))
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_cache", {})

    @classmethod
    def default(cls) -> RuleBook:
        """Nothing published: the built-in defaults."""
        return cls()

    def in_force(self, ts_ms: int) -> RuleSet:
        """The rules in force at ``ts_ms``: per rule set, its latest version effective by then."""
        interval = bisect.bisect_right(self._starts, ts_ms)
        cached = self._cache.get(interval)
        if cached is None:
            cached = self._cache[interval] = self._merge(ts_ms)
        return cached

    def _merge(self, ts_ms: int) -> RuleSet:
        current: dict[tuple[str, str], RuleVersion] = {}
        for v in self.versions:
            if v.effective_from_ms > ts_ms:
                continue
            held = current.get(v.key)
            if held is None or (v.effective_from_ms, v.version) > (
                held.effective_from_ms,
                held.version,
            ):
                current[v.key] = v
        ordered = sorted(current.values(), key=lambda v: v.precedence)
        return RuleSet(
            tuple(v for v in ordered if v.area is None),
            tuple(v for v in ordered if v.area is not None),
        )
