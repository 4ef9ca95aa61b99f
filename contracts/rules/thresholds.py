"""The detection thresholds a rules version may set (integers only, like the wire format).

A rules version names thresholds from :data:`THRESHOLDS`; any other name is refused. A name no
version in force sets keeps its default here, cited as ``builtin@0``.

Beside them, the fixed numbers that are part of a published warning definition but that no
rules version sets (:data:`RSU_PASS_GAP_MS`, :data:`CONGESTION_END_MARGIN_M`): the detectors
and the simulator's ground truth both read them here, so neither has to ask the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["CONGESTION_END_MARGIN_M", "RSU_PASS_GAP_MS", "THRESHOLDS", "Threshold"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """One named detection threshold: its built-in default, unit and meaning."""

    name: str
    default: int
    unit: str
    doc: str


def _table(*items: Threshold) -> Mapping[str, Threshold]:
    return MappingProxyType({t.name: t for t in items})


THRESHOLDS: Final[Mapping[str, Threshold]] = _table(
    Threshold("rollback_tolerance_m", 10, "m", "odometer decrease tolerated between points"),
    Threshold("odo_gnss_mismatch_pct", 20, "%", "odometer vs GNSS distance disagreement"),
    # 200 m: long enough that honest odometers never came near the 20 % limit (lowest 96 % of
    # GNSS, 80 vehicles x 300 s and 40 x 50 s runs, any time of day), short enough to judge a
    # vehicle within a minute of city driving.
    Threshold("odo_gnss_min_distance_m", 200, "m", "GNSS distance before comparing odometer"),
    Threshold("teleport_max_speed_kmh", 300, "km/h", "fastest plausible move between points"),
    Threshold("teleport_min_distance_m", 1000, "m", "shortest jump reported as a teleport"),
    Threshold("drift_off_road_m", 30, "m", "distance from every road counted as off-road"),
    Threshold("drift_min_messages", 3, "messages", "off-road points in a row before warning"),
    Threshold("rsu_contradiction_m", 500, "m", "RSU sighting vs reported position distance"),
    Threshold("rsu_match_window_ms", 30000, "ms", "time window pairing RSU and vehicle points"),
    Threshold("speeding_tolerance_kmh", 5, "km/h", "speed above the limit tolerated"),
    Threshold("speeding_min_duration_ms", 10000, "ms", "speeding lasting at least this long"),
    Threshold("congestion_speed_pct", 40, "%", "segment speed below this share of the limit"),
    Threshold("congestion_min_vehicles", 3, "vehicles", "vehicles needed to call congestion"),
    Threshold("congestion_window_ms", 30000, "ms", "time window congestion is judged in"),
    Threshold("geofence_exit_points", 5, "messages", "points outside in a row ending a stay"),
    Threshold("silent_after_ms", 10000, "ms", "delivery delay counted as a silent device"),
    Threshold("replay_min_seq_lag", 3, "seq", "duplicate this far behind counts as a replay"),
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
