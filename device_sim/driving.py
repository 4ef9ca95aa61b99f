"""Vehicles driving: trips along fastest routes, stops, odometers and noisy GNSS readings.

A :class:`DrivenVehicle` parks, picks a random destination, drives the fastest route there at
the speed :class:`~device_sim.traffic.RoadState` allows (limit, rush hour, congestion), waits at
red lights and yields at local crossings, parks again. Its odometer is the exact distance it
has driven along the segments (``contracts.roads.RoadSegment.length_m``) plus its initial
reading; its reported position is the true one plus GNSS error (:class:`GnssReceiver`).
"""

from __future__ import annotations

import enum
import math
import random
from typing import Final, NamedTuple

from device_sim.fleet import Vehicle, VehicleType
from device_sim.network import RoadNetwork
from device_sim.routing import Router
from device_sim.traffic import RoadState, stop_rule

__all__ = ["GNSS_MAX_ERROR_M", "DrivenVehicle", "GnssReceiver", "VehicleReading"]

GNSS_MAX_ERROR_M: Final = 15.0
_GNSS_BIAS_SIGMA_M: Final = 2.5  # slowly varying (multipath, atmosphere), per axis
_GNSS_BIAS_TAU_S: Final = 30.0
_GNSS_WHITE_SIGMA_M: Final = 1.5  # per fix, per axis
_HEADING_SIGMA_CDEG: Final = 150.0
# Seconds parked at a destination. Short on purpose: a fleet that mostly drives makes the
# telemetry worth looking at (deliveries, taxis, car sharing, buses at stops).
_DWELL_S: Final = {
    VehicleType.CAR: (10.0, 180.0),
    VehicleType.VAN: (30.0, 240.0),
    VehicleType.TRUCK: (60.0, 300.0),
    VehicleType.BUS: (10.0, 40.0),
}


class VehicleReading(NamedTuple):
    """What a vehicle's telemetry unit measures at ``ts`` (payload fields of a message)."""

    ts: int
    odo_m: int
    lat_e7: int
    lon_e7: int
    spd_cms: int
    hdg_cdeg: int


class GnssReceiver:
    """Position error: a Gauss-Markov bias (2.5 m, 30 s) plus white noise (1.5 m) per axis,
    about 4 m RMS horizontally and never more than ``GNSS_MAX_ERROR_M``."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._bias_x = rng.gauss(0.0, _GNSS_BIAS_SIGMA_M)
        self._bias_y = rng.gauss(0.0, _GNSS_BIAS_SIGMA_M)

    def error_m(self, dt_s: float) -> tuple[float, float]:
        """The error (east, north) in metres of a fix ``dt_s`` seconds after the previous one."""
        rng = self._rng
        keep = math.exp(-dt_s / _GNSS_BIAS_TAU_S)
        fresh = _GNSS_BIAS_SIGMA_M * math.sqrt(1.0 - keep * keep)
        self._bias_x = self._bias_x * keep + rng.gauss(0.0, fresh)
        self._bias_y = self._bias_y * keep + rng.gauss(0.0, fresh)
        ex = self._bias_x + rng.gauss(0.0, _GNSS_WHITE_SIGMA_M)
        ey = self._bias_y + rng.gauss(0.0, _GNSS_WHITE_SIGMA_M)
        norm = math.hypot(ex, ey)
        if norm > GNSS_MAX_ERROR_M:
            ex, ey = ex * GNSS_MAX_ERROR_M / norm, ey * GNSS_MAX_ERROR_M / norm
        return ex, ey


class _Phase(enum.Enum):
    DRIVING = "driving"
    STOPPED = "stopped"  # at the end of its link: red light or give way
    PARKED = "parked"  # at its destination


class DrivenVehicle:
    """One vehicle's motion and measurements; call :meth:`report` at increasing times."""

    def __init__(
        self,
        vehicle: Vehicle,
        network: RoadNetwork,
        router: Router,
        roads: RoadState[DrivenVehicle],
        rng: random.Random,
        start_ms: int,
    ) -> None:
        self.vehicle = vehicle
        self._network = network
        self._router = router
        self._roads = roads
        self._rng = rng
        self._gnss = GnssReceiver(rng)
        self.t_ms = start_ms
        self.distance_m = 0.0
        self.speed_mps = 0.0
        self.link = rng.randrange(len(network.links))
        self.pos_m = rng.uniform(0.0, network.links[self.link].length_m)
        self._route: list[int] = []
        self._route_i = 0
        self._link_factor = 1.0
        self._heading = network.links[self.link].heading_cdeg
        self.last_report_ms: int | None = None
        # Set by the speeding scenario: drive at this multiple of the limit (capped by the
        # vehicle), whatever the traffic, without stopping at lights or parking.
        self.reckless_factor: float | None = None
        self.true_lat_e7, self.true_lon_e7 = network.position_e7(
            network.links[self.link], self.pos_m
        )
        roads.enter(self.link, vehicle.device_id, self)
        self._wait_s = 0.0
        if rng.random() < 0.2:
            self._phase = _Phase.PARKED
            self.pos_m = network.links[self.link].length_m
            roads.park(self.link)
            self._wait_s = rng.uniform(0.0, 120.0)
        else:
            self._phase = _Phase.DRIVING
            self._plan_trip()

    @property
    def odo_m(self) -> int:
        """The odometer: initial reading plus the whole metres driven so far."""
        return self.vehicle.initial_odo_m + int(self.distance_m)

    def _plan_trip(self) -> None:
        here = self._network.links[self.link].to_node
        route: list[int] = []
        while not route:
            route = self._router.route(here, self._rng.randrange(len(self._network.nodes)))
        self._route, self._route_i = route, 0

    def _enter_next(self) -> None:
        self._roads.leave(self.link, self.vehicle.device_id)
        self.link = self._route[self._route_i]
        self._route_i += 1
        self.pos_m = 0.0
        self._link_factor = self._rng.uniform(0.95, 1.03)
        self._roads.enter(self.link, self.vehicle.device_id, self)
        self._phase = _Phase.DRIVING

    def _end_of_link(self) -> None:
        rng = self._rng
        if self.reckless_factor is not None:
            if self._route_i >= len(self._route):
                self._plan_trip()
            self._enter_next()
            return
        if self._route_i >= len(self._route):
            self._phase = _Phase.PARKED
            self._wait_s = rng.uniform(*_DWELL_S[self.vehicle.vehicle_type])
            self._roads.park(self.link)
            return
        rule = stop_rule(self._network, self._network.links[self.link])
        if rule is not None and rng.random() < rule[0]:
            self._wait_s = rng.uniform(*rule[1])
        if self._wait_s > 0.0:
            self._phase = _Phase.STOPPED
        else:
            self._enter_next()

    @property
    def network(self) -> RoadNetwork:
        return self._network

    @property
    def router(self) -> Router:
        return self._router

    @property
    def roads(self) -> RoadState[DrivenVehicle]:
        """Who is on which link (shared by the fleet)."""
        return self._roads

    def start_on(self, link: int, pos_m: float, route: list[int], wait_s: float = 0.0) -> None:
        """Before the first report: be on ``link`` at ``pos_m``, stopped for ``wait_s`` seconds
        if given, then drive ``route`` (the links to take after ``link``). For a scenario's
        vehicle that must be somewhere at the start; nothing jumps, as nothing was reported."""
        assert self.last_report_ms is None, "a vehicle that has reported cannot be moved"
        if self._phase is _Phase.PARKED:
            self._roads.unpark(self.link)
        self._roads.leave(self.link, self.vehicle.device_id)
        here = self._network.links[link]
        self.link, self.pos_m, self.speed_mps, self._wait_s = link, pos_m, 0.0, wait_s
        self._roads.enter(link, self.vehicle.device_id, self)
        self._phase = _Phase.STOPPED if wait_s > 0.0 else _Phase.DRIVING
        self._route, self._route_i = route, 0
        self._heading = here.heading_cdeg
        self.true_lat_e7, self.true_lon_e7 = self._network.position_e7(here, pos_m)

    def drive_recklessly(self, factor: float | None) -> None:
        """From now on drive at ``factor`` x the limit, ignoring traffic, lights and parking
        (None: drive normally again). A waiting vehicle sets off at once."""
        if factor is not None and self._phase is not _Phase.DRIVING:
            self._wait_s = 0.0
        self.reckless_factor = factor

    def reckless_speed_mps(self, limit_kmh: int) -> float:
        """The speed of a reckless driver on a road with ``limit_kmh``."""
        assert self.reckless_factor is not None
        return min(self.vehicle.vehicle_type.max_kmh, limit_kmh * self.reckless_factor) / 3.6

    def advance(self, now_ms: int) -> None:
        """Move on to ``now_ms`` (>= the previous time)."""
        remaining = (now_ms - self.t_ms) / 1000.0
        self.t_ms = now_ms
        links = self._network.links
        while remaining > 0.0:
            if self._phase is not _Phase.DRIVING:
                self.speed_mps = 0.0
                if self._wait_s > remaining:
                    self._wait_s -= remaining
                    break
                remaining -= self._wait_s
                self._wait_s = 0.0
                if self._phase is _Phase.PARKED:
                    self._roads.unpark(self.link)
                    self._plan_trip()
                self._enter_next()
                continue
            link = links[self.link]
            if self.reckless_factor is not None:
                v = self.reckless_speed_mps(link.segment.speed_limit_kmh)
            else:
                v = self._roads.speed_mps(
                    link,
                    self.vehicle.driver_factor * self._link_factor,
                    self.vehicle.vehicle_type.max_kmh,
                    now_ms,
                )
            self.speed_mps = v
            left = link.length_m - self.pos_m
            if v * remaining < left:
                self.pos_m += v * remaining
                self.distance_m += v * remaining
                break
            remaining -= left / v
            self.pos_m = link.length_m
            self.distance_m += left
            self._end_of_link()
        self.true_lat_e7, self.true_lon_e7 = self._network.position_e7(links[self.link], self.pos_m)

    def report(self, now_ms: int) -> VehicleReading:
        """Advance to ``now_ms`` and measure: exact odometer, noisy position and heading."""
        dt_s = (
            now_ms - (self.last_report_ms if self.last_report_ms is not None else now_ms)
        ) / 1000.0
        self.advance(now_ms)
        self.last_report_ms = now_ms
        ex, ey = self._gnss.error_m(dt_s)
        d_lat, d_lon = self._network.frame.shift_e7(ex, ey)
        if self.speed_mps > 0.0:
            noisy = self._network.links[self.link].heading_cdeg + self._rng.gauss(
                0.0, _HEADING_SIGMA_CDEG
            )
            self._heading = round(noisy) % 36_000
        return VehicleReading(
            ts=now_ms,
            odo_m=self.odo_m,
            lat_e7=round(self.true_lat_e7 + d_lat),
            lon_e7=round(self.true_lon_e7 + d_lon),
            spd_cms=round(self.speed_mps * 100.0),
            hdg_cdeg=self._heading,
        )
