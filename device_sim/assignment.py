"""Binding scenarios to a fleet: which devices each one affects, and when.

Explicit ``devices`` are taken as given (and must belong to the fleet); ``count`` devices are
drawn by the seed from those of the scenario's kind that no other scenario uses, so scenarios
do not overlap unless the user says so. Times are relative to the run's start: ``at_s``
defaults to 20 % of the run, ``duration_s`` to 30 %.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain.telemetry import DeviceKind
from device_sim.errors import ScenarioError
from device_sim.rand import seeded
from device_sim.scenarios import DEFAULT_PARAMS, VEHICLE_ONLY, ScenarioSpec, ScenarioType

__all__ = ["ResolvedScenario", "resolve_scenarios"]


@dataclass(frozen=True, slots=True)
class ResolvedScenario:
    """A scenario bound to devices and to a window ``[from_ms, to_ms)`` of simulated time."""

    spec: ScenarioSpec
    name: str
    devices: tuple[str, ...]
    from_ms: int
    to_ms: int
    params: Mapping[str, float]

    @property
    def type(self) -> ScenarioType:
        return self.spec.type

    def param(self, key: str) -> float:
        return self.params[key]

    def to_dict(self) -> dict[str, Any]:
        """The ``scenarios`` element of the truth file's run line."""
        return {
            "name": self.name,
            "type": self.type.value,
            "devices": list(self.devices),
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "params": dict(self.params),
        }


def _names(specs: Sequence[ScenarioSpec]) -> list[str]:
    names, seen = [], set[str]()
    for spec in specs:
        base = spec.name or spec.type.value
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}-{k}"
        seen.add(name)
        names.append(name)
    return names


def resolve_scenarios(
    specs: Sequence[ScenarioSpec],
    *,
    vehicle_ids: Sequence[str],
    rsu_ids: Sequence[str],
    ghost_ids: Iterable[str],
    start_ms: int,
    duration_ms: int,
    seed: int,
    eligible: Mapping[ScenarioType, Collection[str]] | None = None,
) -> list[ResolvedScenario]:
    """Bind ``specs`` to devices and times: explicit devices first, then ``count`` devices per
    scenario drawn (by the seed) from those no other scenario uses. ``ghost_ids`` supplies the
    ids of unregistered devices for ``unknown_device``; ``eligible`` limits a type to some
    devices (``geofence_breach``: trucks), and such types draw first."""
    eligible = eligible or {}
    pools = {DeviceKind.VEHICLE: list(vehicle_ids), DeviceKind.RSU: list(rsu_ids)}
    known = set(vehicle_ids) | set(rsu_ids)
    used: set[str] = set()
    for spec in specs:
        for device in spec.devices:
            if spec.type is ScenarioType.UNKNOWN_DEVICE:
                raise ScenarioError(
                    "unknown_device: give count, not devices (they are unregistered)"
                )
            if device not in known:
                raise ScenarioError(
                    f"{spec.name or spec.type}: {device!r} is not a device of this fleet"
                )
            if spec.type in VEHICLE_ONLY and device not in pools[DeviceKind.VEHICLE]:
                raise ScenarioError(f"{spec.name or spec.type}: {device!r} is not a vehicle")
            if spec.type in eligible and device not in eligible[spec.type]:
                raise ScenarioError(
                    f"{spec.name or spec.type}: {device!r} cannot have this scenario "
                    f"(eligible: {', '.join(sorted(eligible[spec.type])) or 'none'})"
                )
            used.add(device)
    rng = seeded(seed, "scenario-devices")
    ghosts = iter(ghost_ids)
    resolved: dict[int, ResolvedScenario] = {}
    named = list(zip(specs, _names(specs), strict=True))
    # Types limited to a few devices draw first, so that others do not take them all.
    order = sorted(range(len(named)), key=lambda i: named[i][0].type not in eligible)
    for index in order:
        spec, name = named[index]
        if spec.type is ScenarioType.UNKNOWN_DEVICE:
            devices = tuple(next(ghosts) for _ in range(spec.count))
        elif spec.devices:
            devices = spec.devices
        else:
            free = [d for d in pools[spec.kind] if d not in used]
            if spec.type in eligible:
                free = [d for d in free if d in eligible[spec.type]]
            if len(free) < spec.count:
                raise ScenarioError(
                    f"{name}: needs {spec.count} {spec.kind.value}(s) that no other scenario uses, "
                    f"only {len(free)} left; add devices or lower count"
                )
            devices = tuple(sorted(rng.sample(free, spec.count)))
            used.update(devices)
        at_ms = round(1000 * spec.at_s) if spec.at_s is not None else duration_ms // 5
        length = (
            round(1000 * spec.duration_s) if spec.duration_s is not None else duration_ms * 3 // 10
        )
        params = {**DEFAULT_PARAMS[spec.type], **spec.params}
        resolved[index] = ResolvedScenario(
            spec, name, devices, start_ms + at_ms, start_ms + at_ms + length, params
        )
    return [resolved[i] for i in range(len(named))]
