"""How fast traffic flows: speed limits scaled by time of day and by congestion.

A vehicle's speed on a link is ``min(limit x driver, vehicle cap) x rush-hour factor x
congestion factor x incident factor``. Rush hours (07:00-09:00 and 16:00-19:00 local time)
slow everything to about 55-65 %; congestion follows Greenshields' linear speed-density model,
so a link filling up with vehicles slows down for everyone on it; an incident (a breakdown, an
accident) makes a link crawl for a while. :class:`RoadState` keeps who is on which link.
"""

from __future__ import annotations

import bisect
from typing import Final, Generic, TypeVar

from contracts.roads import RoadClass
from device_sim.network import Link, RoadNetwork

__all__ = [
    "JAM_DENSITY_PER_KM",
    "SIGNAL",
    "YIELD",
    "RoadState",
    "congestion_factor",
    "expected_stop_s",
    "stop_rule",
    "time_of_day_factor",
]

JAM_DENSITY_PER_KM: Final = 130.0  # vehicles per km per lane at standstill
# (probability of having to stop, (shortest, longest) wait in seconds) at the end of a link.
SIGNAL: Final = (0.45, (4.0, 40.0))  # traffic lights where two main streets cross
YIELD: Final = (0.25, (1.0, 5.0))  # giving way when leaving a local street
_MIN_CONGESTION_FACTOR: Final = 0.1
# (local hour, share of free-flow speed); linear in between.
_DAY_CURVE: Final = (
    (0.0, 1.0), (5.0, 1.0), (6.5, 0.85), (7.5, 0.6), (9.0, 0.65), (10.0, 0.85),
    (15.0, 0.8), (17.0, 0.55), (18.5, 0.6), (20.0, 0.85), (22.0, 1.0), (24.0, 1.0),
)  # fmt: skip
_HOURS: Final = [h for h, _ in _DAY_CURVE]

T = TypeVar("T")


def stop_rule(network: RoadNetwork, link: Link) -> tuple[float, tuple[float, float]] | None:
    """Whether and how long a vehicle may have to stop at the end of ``link``."""
    if network.nodes[link.to_node].signalised:
        return SIGNAL
    return YIELD if link.segment.road_class is RoadClass.LOCAL else None


def expected_stop_s(network: RoadNetwork, link: Link) -> float:
    """Mean wait at the end of ``link`` (routing counts it: drivers know where lights are)."""
    rule = stop_rule(network, link)
    return 0.0 if rule is None else rule[0] * (rule[1][0] + rule[1][1]) / 2


def time_of_day_factor(ts_ms: int, utc_offset_h: float) -> float:
    """Share of free-flow speed at ``ts_ms`` (UTC ms) in a city ``utc_offset_h`` ahead of UTC."""
    hour = (ts_ms / 3_600_000 + utc_offset_h) % 24.0
    k = bisect.bisect_right(_HOURS, hour) - 1
    (h0, f0), (h1, f1) = _DAY_CURVE[k], _DAY_CURVE[min(k + 1, len(_DAY_CURVE) - 1)]
    return f0 if h1 == h0 else f0 + (f1 - f0) * (hour - h0) / (h1 - h0)


def congestion_factor(others: int, link: Link) -> float:
    """Share of free-flow speed with ``others`` other vehicles driving on ``link``."""
    density = others / (link.length_m / 1000.0 * link.lanes)
    return max(_MIN_CONGESTION_FACTOR, 1.0 - density / JAM_DENSITY_PER_KM)


class RoadState(Generic[T]):
    """Which vehicles are on which link; parked ones are seen but do not congest.

    ``occupants[link]`` is insertion-ordered (a dict, never a set), so iterating it is
    deterministic.
    """

    def __init__(self, network: RoadNetwork, utc_offset_h: float = 1.0) -> None:
        self.network = network
        self.utc_offset_h = utc_offset_h
        self.moving = [0] * len(network.links)
        self.occupants: list[dict[str, T]] = [{} for _ in network.links]
        self._incidents: dict[int, set[tuple[float, int, int]]] = {}

    def enter(self, link: int, key: str, vehicle: T) -> None:
        self.moving[link] += 1
        self.occupants[link][key] = vehicle

    def leave(self, link: int, key: str) -> None:
        self.moving[link] -= 1
        del self.occupants[link][key]

    def park(self, link: int) -> None:
        """A vehicle at the end of ``link`` stops for a while: it no longer congests it."""
        self.moving[link] -= 1

    def unpark(self, link: int) -> None:
        self.moving[link] += 1

    def slow_down(self, link: int, factor: float, from_ms: int, to_ms: int) -> None:
        """From ``from_ms`` until ``to_ms`` traffic on ``link`` moves at ``factor`` (> 0) of its
        speed: an incident. Registering the same incident again changes nothing."""
        self._incidents.setdefault(link, set()).add((factor, from_ms, to_ms))

    def incident_factor(self, link: int, ts_ms: int) -> float:
        """Share of its speed traffic on ``link`` keeps at ``ts_ms`` (the worst incident)."""
        spans = self._incidents.get(link, ())
        return min((f for f, start, end in spans if start <= ts_ms < end), default=1.0)

    def speed_mps(self, link: Link, driver_factor: float, max_kmh: float, ts_ms: int) -> float:
        """Speed on ``link`` now of a driver doing ``driver_factor`` x the limit in free flow,
        in a vehicle capped at ``max_kmh`` (always > 0)."""
        free_flow = min(max_kmh, link.segment.speed_limit_kmh * driver_factor)
        others = max(0, self.moving[link.index] - 1)
        factor = time_of_day_factor(ts_ms, self.utc_offset_h) * congestion_factor(others, link)
        if self._incidents:
            factor *= self.incident_factor(link.index, ts_ms)
        return free_flow / 3.6 * factor
