"""Roadside units seeing vehicles: who passed within ``OBSERVATION_RADIUS_M`` of an RSU.

An RSU stands at an intersection, so every vehicle near it is on a link into or out of that
intersection: only those links are searched. An observation is a vehicle's true position at
its latest report (``ts`` = that report's time), plus the RSU's own measurement error of about
a metre, so an RSU sighting and the vehicle's own message can be compared directly.
"""

from __future__ import annotations

import random
from typing import Final, NamedTuple

from chain.telemetry import MAX_OBS
from contracts.roads import haversine_m
from device_sim.driving import DrivenVehicle
from device_sim.fleet import RoadsideUnit
from device_sim.traffic import RoadState

__all__ = ["OBSERVATION_RADIUS_M", "RsuObserver", "Sighting"]

OBSERVATION_RADIUS_M: Final = 30.0
_RSU_SIGMA_M: Final = 0.7


class Sighting(NamedTuple):
    """One ``obs`` element: the vehicle, when and where it was seen (degrees x 1e7)."""

    veh: str
    ts: int
    lat_e7: int
    lon_e7: int


class RsuObserver:
    """Finds the vehicles an RSU sees; one per RSU, with its own seeded measurement noise."""

    def __init__(
        self, rsu: RoadsideUnit, roads: RoadState[DrivenVehicle], rng: random.Random
    ) -> None:
        network = roads.network
        self.rsu = rsu
        self._roads = roads
        self._rng = rng
        self._links = network.in_links[rsu.node_id] + network.out_links[rsu.node_id]
        self._seen: dict[str, int] = {}  # vehicle -> ts of the report last sighted

    def observe(self) -> list[Sighting]:
        """Vehicles within the radius now, nearest first, at most ``MAX_OBS``; a vehicle report
        is sighted once even if the RSU reports again before the vehicle does."""
        rsu, rng = self.rsu, self._rng
        frame = self._roads.network.frame
        found: list[tuple[float, str, DrivenVehicle]] = []
        for link in self._links:
            for device_id, vehicle in self._roads.occupants[link].items():
                ts = vehicle.last_report_ms
                if ts is None or self._seen.get(device_id) == ts:
                    continue
                lat, lon = vehicle.true_lat_e7, vehicle.true_lon_e7
                distance = haversine_m(rsu.lat_e7, rsu.lon_e7, round(lat), round(lon))
                if distance <= OBSERVATION_RADIUS_M:
                    found.append((distance, device_id, vehicle))
        found.sort(key=lambda item: (item[0], item[1]))
        sightings = []
        for _, device_id, vehicle in found[:MAX_OBS]:
            ts = vehicle.last_report_ms
            assert ts is not None
            self._seen[device_id] = ts
            d_lat, d_lon = frame.shift_e7(
                rng.gauss(0.0, _RSU_SIGMA_M), rng.gauss(0.0, _RSU_SIGMA_M)
            )
            sightings.append(
                Sighting(
                    device_id,
                    ts,
                    round(vehicle.true_lat_e7 + d_lat),
                    round(vehicle.true_lon_e7 + d_lon),
                )
            )
        return sightings
