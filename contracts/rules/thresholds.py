"""The detection thresholds a rules version may set (integers only, like the wire format).

A rules version names thresholds from :data:`THRESHOLDS`; any other name is refused, and so is
a value outside the threshold's published bounds ``[lo, hi]`` (a rollback tolerance of 1e10 m
would switch the rollback warning off; bounds keep a published value a judgement, not a
veto). A name no version in force sets keeps its default here, cited as ``builtin@0``.
:data:`SPEED_LIMIT_KMH` bounds every published speed limit (``max_kmh``, ``max_speed_kmh``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "CONGESTION_END_MARGIN_M",
    "RSU_PASS_GAP_MS",
    "SPEED_LIMIT_KMH",
    "THRESHOLDS",
    "Threshold",
]

# The published speed limits a rules version may set, km/h: walking pace to the highest posted
# motorway limits (140 km/h in a few countries); 400 km/h is a typo or an attack, not a limit.
SPEED_LIMIT_KMH: Final = (5, 150)


@dataclass(frozen=True, slots=True)
class Threshold:
    """One named detection threshold: its built-in default, unit, meaning and sane bounds."""

    name: str
    default: int
    unit: str
    doc: str
    lo: int
    hi: int


def _table(*items: Threshold) -> Mapping[str, Threshold]:
    return MappingProxyType({t.name: t for t in items})


THRESHOLDS: Final[Mapping[str, Threshold]] = _table(
    Threshold(
        "rollback_tolerance_m", 10, "m", "odometer decrease tolerated between points", 0, 1000
    ),
    Threshold("odo_gnss_mismatch_pct", 20, "%", "odometer vs GNSS distance disagreement", 1, 100),
    # 200 m: long enough that honest odometers never came near the 20 % limit (lowest 96 % of
    # GNSS, 80 vehicles x 300 s and 40 x 50 s runs, any time of day), short enough to judge a
    # vehicle within a minute of city driving.
    Threshold(
        "odo_gnss_min_distance_m", 200, "m", "GNSS distance before comparing odometer", 50, 10000
    ),
    Threshold(
        "teleport_max_speed_kmh", 300, "km/h", "fastest plausible move between points", 150, 1000
    ),
    Threshold(
        "teleport_min_distance_m", 1000, "m", "shortest jump reported as a teleport", 100, 50000
    ),
    Threshold("drift_off_road_m", 30, "m", "distance from every road counted as off-road", 5, 500),
    Threshold(
        "drift_min_messages", 3, "messages", "off-road points in a row before warning", 1, 100
    ),
    Threshold(
        "rsu_contradiction_m", 500, "m", "RSU sighting vs reported position distance", 50, 5000
    ),
    Threshold(
        "rsu_match_window_ms",
        30000,
        "ms",
        "time window pairing RSU and vehicle points",
        1000,
        300000,
    ),
    Threshold("speeding_tolerance_kmh", 5, "km/h", "speed above the limit tolerated", 0, 30),
    Threshold(
        "speeding_min_duration_ms", 10000, "ms", "speeding lasting at least this long", 0, 300000
    ),
    Threshold(
        "congestion_speed_pct", 40, "%", "segment speed below this share of the limit", 5, 90
    ),
    Threshold(
        "congestion_min_vehicles", 3, "vehicles", "vehicles needed to call congestion", 2, 100
    ),
    Threshold(
        "congestion_window_ms", 30000, "ms", "time window congestion is judged in", 5000, 600000
    ),
    Threshold(
        "geofence_exit_points", 5, "messages", "points outside in a row ending a stay", 1, 100
    ),
    Threshold(
        "silent_after_ms", 10000, "ms", "delivery delay counted as a silent device", 1000, 600000
    ),
    Threshold(
        "replay_min_seq_lag", 3, "seq", "duplicate this far behind counts as a replay", 1, 1000
    ),
)

RSU_PASS_GAP_MS: Final = 10_000
"""``rsu_contradiction``: contradicting sightings of one vehicle by one RSU less than this apart
(by the ``ts`` they name) are one pass, one event (a vehicle waiting at a light is sighted at
every report); a sighting this long or longer after the previous one begins a new pass."""

CONGESTION_END_MARGIN_M: Final = 20.0
"""``congestion``: a vehicle counts towards its segment's congestion only at least this far from
either end of the segment, measured along it (a queue standing at a light is not congestion,
and near a junction map matching may pick the segment in line; more than the 15 m worst GNSS
error)."""
