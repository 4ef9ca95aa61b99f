"""``geofence``: a vehicle inside a ``no_entry`` zone that applies to its class at the time.

The zones in force come from the published rules (:meth:`RulesInForce.geofences`: the
vehicle's class from the registry, the zone's days and hours). A stay is one event, warned at
its first point (a breach needs no duration: being there is the offence): points inside the
same zone with consecutive seqs, where fewer than ``geofence_exit_points`` points in a row
outside do not end it (GNSS noise at the edge flickers in and out), and a seq that never
arrives does. Points are judged as they arrive; a device's points are kept by seq so that a
shuffled buffer still forms its stays, and a stay is warned once (keyed by zone and first
seq, or joined to a stay already warned).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from analytics.warnings.checks import Check
from analytics.warnings.detectors import Point, RuleSource
from analytics.warnings.model import Severity, Warning, WarningType, warning_id

__all__ = ["GeofenceCheck"]

_POINTS_PER_DEVICE: Final = 256
_MAX_DEVICES: Final = 200_000


class GeofenceCheck(Check):
    """See the module docstring."""

    def __init__(self, rules: RuleSource) -> None:
        super().__init__(rules)
        # device -> seq -> id of the no_entry zone the point is in ("" when none)
        self._inside: OrderedDict[str, dict[int, str]] = OrderedDict()
        self._warned: dict[str, set[int]] = {}

    def on_point(self, point: Point) -> list[Warning]:
        rules = self.rules.in_force(point.ts_ms).at(point.lat_e7, point.lon_e7)
        zone = next(
            (
                g
                for g in rules.geofences(point.ts_ms, point.vehicle_class)
                if g.kind == "no_entry" and g.contains(point.lat_e7, point.lon_e7)
            ),
            None,
        )
        seqs = self._device(point.device_id)
        seqs[point.seq] = zone.id if zone is not None else ""
        warned = self._warned.setdefault(point.device_id, set())
        if len(seqs) > _POINTS_PER_DEVICE:
            oldest = min(seqs)
            del seqs[oldest]
            warned.discard(oldest)
        if zone is None:
            return []
        exit_points, _ = rules.threshold("geofence_exit_points")
        low = _stay_end(seqs, point.seq, zone.id, -1, exit_points)
        high = _stay_end(seqs, point.seq, zone.id, 1, exit_points)
        run = range(low, high + 1)
        if any(s in warned for s in run):
            warned.add(point.seq)  # the run was warned: this point joins it
            return []
        warned.update(run)
        return [
            Warning(
                warning_id(WarningType.GEOFENCE, point.device_id, f"{zone.id}:{low}"),
                WarningType.GEOFENCE,
                Severity.CRITICAL,
                point.device_id,
                point.segment.segment_id if point.segment is not None else None,
                point.ts_ms,
                point.ts_ms,
                zone.label,
                (point.evidence,),
                {"zone": zone.id, "vehicle_class": point.vehicle_class or ""},
            )
        ]

    def _device(self, device_id: str) -> dict[int, str]:
        seqs = self._inside.get(device_id)
        if seqs is None:
            seqs = self._inside[device_id] = {}
            if len(self._inside) > _MAX_DEVICES:
                evicted, _ = self._inside.popitem(last=False)
                self._warned.pop(evicted, None)
        else:
            self._inside.move_to_end(device_id)
        return seqs


def _stay_end(seqs: dict[int, str], seq: int, zone: str, step: int, exit_points: int) -> int:
    """The last seq inside ``zone`` reached from ``seq`` going ``step`` (-1 or +1) through
    fewer than ``exit_points`` outside points in a row and no missing seq."""
    end, outside, s = seq, 0, seq + step
    while (where := seqs.get(s)) is not None:
        if where == zone:
            end, outside = s, 0
        else:
            outside += 1
            if outside >= exit_points:
                break
        s += step
    return end
