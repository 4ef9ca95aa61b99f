"""``congestion``: a road segment on which several vehicles crawl.

Time is cut into windows of ``congestion_window_ms`` (aligned to the epoch). A point is a
*slow sample* of its map-matched segment when the vehicle moves (``spd_cms > 0``) slower than
``congestion_speed_pct`` % of the limit for its class there, at least
:data:`~contracts.rules.thresholds.CONGESTION_END_MARGIN_M` (20 m) from either end of the
segment (measured along it). A (segment, window) is congested when at least
``congestion_min_vehicles`` distinct vehicles have a slow sample in it.

- A queue at a red light or a give-way is not congestion: its vehicles stand still (speed 0)
  at the end of the link, inside the margin.
- Map matching and the true road agree on every sample counted: a moving vehicle's heading
  rules out the opposite and the crossing segments, and a noisy position matched to the
  segment before or after it in line lies within the GNSS error (15 m) of that segment's end,
  inside the margin. So this check counts the vehicles the simulator's truth
  (:class:`device_sim.incidents.CongestionTruth`, stated on its own from the road each vehicle
  is truly on, its true place along it and its true speed) counts.
- More points can only add vehicles to a window, so a window is warned the moment it
  qualifies, while the stream flows (the last window of a run needs no later point), once:
  the id is ``warning_id(CONGESTION, "segment:<id>", "window:<start_ms>")``.
- Points may arrive late and shuffled (a buffer flushed after an outage): each joins its own
  window, kept for :data:`RETENTION_MS` of event time behind the newest point seen.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Final

from analytics.warnings.checks import Check
from analytics.warnings.detectors import Point, RuleSource
from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from contracts.map_matching import M_PER_E7
from contracts.roads import RoadSegment
from contracts.rules.model import BUILTIN_LABEL
from contracts.rules.thresholds import CONGESTION_END_MARGIN_M

__all__ = [
    "RETENTION_MS",
    "CongestionCheck",
    "is_slow",
    "offset_m",
    "slow_sample",
    "window_start",
]

RETENTION_MS: Final = 600_000
_EVIDENCE_PER_VEHICLE: Final = 3
_RAD_PER_E7: Final = math.pi / 180.0 / 1e7


def window_start(ts_ms: int, window_ms: int) -> int:
    """The start of the window ``ts_ms`` falls in."""
    return ts_ms - ts_ms % window_ms


def is_slow(spd_cms: int, limit_kmh: int, speed_pct: int) -> bool:
    """Moving, but slower than ``speed_pct`` % of ``limit_kmh`` (exact: km/h = cm/s x 0.036)."""
    return spd_cms > 0 and spd_cms * 36 < limit_kmh * speed_pct * 10


def offset_m(segment: RoadSegment, lat_e7: int, lon_e7: int) -> tuple[float, float, float]:
    """(metres along the segment to the position's projection, metres across from it, the
    segment's length), on a flat projection at the position."""
    kx = M_PER_E7 * math.cos(lat_e7 * _RAD_PER_E7)
    px, py = (lon_e7 - segment.a_lon_e7) * kx, (lat_e7 - segment.a_lat_e7) * M_PER_E7
    dx = (segment.b_lon_e7 - segment.a_lon_e7) * kx
    dy = (segment.b_lat_e7 - segment.a_lat_e7) * M_PER_E7
    length = math.hypot(dx, dy)
    if length == 0.0:
        return 0.0, math.hypot(px, py), 0.0
    t = min(1.0, max(0.0, (px * dx + py * dy) / (length * length)))
    return t * length, math.hypot(px - t * dx, py - t * dy), length


def slow_sample(
    segment: RoadSegment, lat_e7: int, lon_e7: int, spd_cms: int, limit_kmh: int, speed_pct: int
) -> bool:
    """Whether a report on ``segment`` is a slow sample of it (see the module docstring)."""
    if not is_slow(spd_cms, limit_kmh, speed_pct):
        return False
    along, _, length = offset_m(segment, lat_e7, lon_e7)
    return CONGESTION_END_MARGIN_M <= along <= length - CONGESTION_END_MARGIN_M


@dataclass(slots=True)
class _Window:
    """The slow samples of one segment in one window, per vehicle."""

    end_ms: int
    samples: dict[str, list[Point]] = field(default_factory=dict)
    warned: bool = False


class CongestionCheck(Check):
    """See the module docstring."""

    def __init__(self, rules: RuleSource) -> None:
        super().__init__(rules)
        self._windows: dict[tuple[int, int], _Window] = {}
        self._newest_ms = 0

    def on_point(self, point: Point) -> list[Warning]:
        self._newest_ms = max(self._newest_ms, point.ts_ms)
        segment = point.segment
        if segment is None or point.spd_cms <= 0:
            return []
        rules = self.rules.in_force(point.ts_ms).at(point.lat_e7, point.lon_e7)
        pct, pct_label = rules.threshold("congestion_speed_pct")
        limit, limit_label = rules.speed_limit_kmh(segment, point.vehicle_class)
        if not slow_sample(segment, point.lat_e7, point.lon_e7, point.spd_cms, limit, pct):
            return []
        window_ms, _ = rules.threshold("congestion_window_ms")
        start = window_start(point.ts_ms, window_ms)
        if start + window_ms < self._newest_ms - RETENTION_MS:
            return []  # its window is forgotten: too late to judge
        window = self._windows.setdefault((segment.segment_id, start), _Window(start + window_ms))
        window.samples.setdefault(point.device_id, []).append(point)
        needed, needed_label = rules.threshold("congestion_min_vehicles")
        if window.warned or len(window.samples) < needed:
            return []
        window.warned = True
        # Cite a published version that set a threshold or the limit, if any did.
        labels = (pct_label, needed_label, limit_label)
        label = next((x for x in labels if x != BUILTIN_LABEL), BUILTIN_LABEL)
        return [_warning(segment.segment_id, start, window, limit, pct, label)]

    def on_batch_end(self) -> list[Warning]:
        horizon = self._newest_ms - RETENTION_MS
        for key in [k for k, w in self._windows.items() if w.end_ms < horizon]:
            del self._windows[key]
        return []


def _warning(
    segment_id: int, start: int, window: _Window, limit: int, pct: int, label: str
) -> Warning:
    points = [p for samples in window.samples.values() for p in samples]
    evidence = [
        p.evidence
        for samples in window.samples.values()
        for p in sorted(samples, key=lambda p: p.ts_ms)[:_EVIDENCE_PER_VEHICLE]
    ]
    median_cms = statistics.median(p.spd_cms for p in points)
    return Warning(
        warning_id(WarningType.CONGESTION, f"segment:{segment_id}", f"window:{start}"),
        WarningType.CONGESTION,
        Severity.WARNING,
        None,
        segment_id,
        min(p.ts_ms for p in points),
        max(p.ts_ms for p in points),
        label,
        tuple(evidence),
        {
            "vehicles": len(window.samples),
            "median_speed_kmh": round(median_cms * 0.036),
            "limit_kmh": limit,
            "speed_pct": pct,
            "window_from_ms": start,
            "window_ms": window.end_ms - start,
        },
    )
