"""``speeding``: a vehicle over the limit in force for long enough.

A point is over the limit when its reported speed exceeds the limit for its vehicle class on
its matched segment (:meth:`RulesInForce.speed_limit_kmh`; inside an active ``speed_zone``
geofence the zone's limit if lower) by more than ``speeding_tolerance_kmh``. A run of such
points with consecutive seqs lasting ``speeding_min_duration_ms`` or more (first to last
point) is one event, warned once, as soon as it is long enough; a point that is not over the
limit, off the road network, or missing (a seq that never arrives) ends the run.

Points may arrive out of seq order (a buffer flushed after an outage): runs are found among
the device's recent points by seq, whatever the arrival order, and a run overlapping one
already warned is not warned again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from analytics.warnings.checks import Check
from analytics.warnings.detectors import Point, RulesInForce, RuleSource
from analytics.warnings.model import Severity, Warning, WarningType, warning_id

__all__ = ["SpeedingCheck", "is_over_limit", "limit_at"]

_POINTS_PER_DEVICE: Final = 256
_MAX_DEVICES: Final = 200_000


def is_over_limit(spd_cms: int, limit_kmh: int, tolerance_kmh: int) -> bool:
    """Whether ``spd_cms`` (cm/s) exceeds ``limit_kmh`` by more than ``tolerance_kmh``
    (exact integer arithmetic: km/h = cm/s x 0.036)."""
    return spd_cms * 36 > (limit_kmh + tolerance_kmh) * 1000


def limit_at(point: Point, rules: RulesInForce) -> tuple[int, str] | None:
    """The speed limit at ``point`` and the label of the rules that set it (None: the point
    is on no road segment, so no limit is known)."""
    if point.segment is None:
        return None
    limit, label = rules.speed_limit_kmh(point.segment, point.vehicle_class)
    for zone in rules.geofences(point.ts_ms, point.vehicle_class):
        if (
            zone.kind == "speed_zone"
            and zone.max_speed_kmh is not None
            and zone.max_speed_kmh < limit
            and zone.contains(point.lat_e7, point.lon_e7)
        ):
            limit, label = zone.max_speed_kmh, zone.label
    return limit, label


@dataclass(frozen=True, slots=True)
class _Judged:
    point: Point
    limit_kmh: int
    label: str
    over: bool


@dataclass(slots=True)
class _Device:
    judged: dict[int, _Judged] = field(default_factory=dict)  # seq -> point
    warned: set[int] = field(default_factory=set)  # seqs inside runs already warned


class SpeedingCheck(Check):
    """See the module docstring."""

    def __init__(self, rules: RuleSource) -> None:
        super().__init__(rules)
        self._devices: OrderedDict[str, _Device] = OrderedDict()

    def on_point(self, point: Point) -> list[Warning]:
        rules = self.rules.in_force(point.ts_ms).at(point.lat_e7, point.lon_e7)
        found = limit_at(point, rules)
        if found is None:
            judged = _Judged(point, 0, rules.label, False)
        else:
            (limit, label), (tolerance, _) = found, rules.threshold("speeding_tolerance_kmh")
            judged = _Judged(point, limit, label, is_over_limit(point.spd_cms, limit, tolerance))
        device = self._device(point.device_id)
        device.judged[point.seq] = judged
        if len(device.judged) > _POINTS_PER_DEVICE:
            oldest = min(device.judged)
            del device.judged[oldest]
            device.warned.discard(oldest)
        if not judged.over:
            return []
        run = self._run(device, point.seq)
        if any(j.point.seq in device.warned for j in run):
            return []
        first, last = run[0].point, run[-1].point
        needed, _ = rules.threshold("speeding_min_duration_ms")
        if last.ts_ms - first.ts_ms < needed:
            return []
        device.warned.update(j.point.seq for j in run)
        worst = max(run, key=lambda j: j.point.spd_cms * 1000 - j.limit_kmh * 36)
        detail: dict[str, int | str] = {
            "max_speed_kmh": round(worst.point.spd_cms * 0.036),
            "limit_kmh": worst.limit_kmh,
            "duration_ms": last.ts_ms - first.ts_ms,
            "points": len(run),
        }
        if worst.point.segment is not None:
            detail["segment_id"] = worst.point.segment.segment_id
        return [
            Warning(
                warning_id(WarningType.SPEEDING, point.device_id, f"from:{first.seq}"),
                WarningType.SPEEDING,
                Severity.WARNING,
                point.device_id,
                None,
                first.ts_ms,
                last.ts_ms,
                worst.label,
                tuple(dict.fromkeys(j.point.evidence for j in (run[0], worst, run[-1]))),
                detail,
            )
        ]

    def _device(self, device_id: str) -> _Device:
        device = self._devices.get(device_id)
        if device is None:
            device = self._devices[device_id] = _Device()
            if len(self._devices) > _MAX_DEVICES:
                self._devices.popitem(last=False)
        else:
            self._devices.move_to_end(device_id)
        return device

    @staticmethod
    def _run(device: _Device, seq: int) -> list[_Judged]:
        """The run of over-the-limit points with consecutive seqs around ``seq``."""
        judged = device.judged
        low = seq
        while (before := judged.get(low - 1)) is not None and before.over:
            low -= 1
        high = seq
        while (after := judged.get(high + 1)) is not None and after.over:
            high += 1
        return [judged[s] for s in range(low, high + 1)]
