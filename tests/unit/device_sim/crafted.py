"""Hand-made vehicle reports for the truth observers: a vehicle placed on a chosen link, at a
chosen true speed, without running a simulation, so a test can put a case exactly on a rule's
boundary and check the truth's own answer against the plain statement of the event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

from analytics.warnings.detectors import Point
from chain.errors import RejectReason
from device_sim.driving import DrivenVehicle, VehicleReading
from device_sim.network import Link, generate_network
from device_sim.observers import VehicleReport

from .conftest import SMALL_CITY

if TYPE_CHECKING:
    from device_sim.simulation import Simulation

NETWORK = generate_network(SMALL_CITY)
T0 = 1_767_254_400_000  # a whole hour: a multiple of every window length used
MIN_LINK_M = 150.0


def long_link(min_length_m: float = MIN_LINK_M) -> Link:
    """The first link at least ``min_length_m`` long."""
    return next(link for link in NETWORK.links if link.length_m >= min_length_m)


def simulation() -> Simulation:
    """What an observer reads of its simulation: the network, and no scenarios."""
    return cast("Simulation", SimpleNamespace(network=NETWORK, scenarios=()))


def position(link: Link, pos_m: float, *, across_m: float = 0.0) -> tuple[int, int]:
    """The position ``pos_m`` along ``link`` (straight), ``across_m`` north of it."""
    s, share = link.segment, pos_m / link.length_m
    lat = s.a_lat_e7 + share * (s.b_lat_e7 - s.a_lat_e7) + across_m / 0.011_119_5
    lon = s.a_lon_e7 + share * (s.b_lon_e7 - s.a_lon_e7)
    return round(lat), round(lon)


@dataclass
class Driven:
    """The part of a :class:`DrivenVehicle` the observers read: the true state."""

    link: int
    pos_m: float
    speed_mps: float


def report(
    device: str,
    seq: int,
    ts: int,
    link: Link,
    pos_m: float,
    speed_mps: float,
    *,
    stored: bool = True,
    across_m: float = 0.0,
    labels: Sequence[str] = (),
) -> VehicleReport:
    """A vehicle's report as signed: truly at ``pos_m`` on ``link`` at ``speed_mps``, and
    reporting exactly that (``across_m``: its reported position moved off the road)."""
    lat, lon = position(link, pos_m, across_m=across_m)
    reading = VehicleReading(ts, 10_000 + round(pos_m), lat, lon, round(speed_mps * 100), 0)
    driven = cast(DrivenVehicle, Driven(link.index, pos_m, speed_mps))
    intended = None if stored else RejectReason.BAD_SIGNATURE
    return VehicleReport(device, ts, seq, reading, driven, intended, tuple(labels))


def point(vehicle_report: VehicleReport) -> Point:
    """What analytics makes of a stored report (matched to the link it was made on)."""
    r, driven = vehicle_report.reading, vehicle_report.driven
    segment = NETWORK.links[driven.link].segment
    return Point(
        vehicle_report.device, vehicle_report.seq, r.ts, r.ts + 50, r.odo_m, r.lat_e7, r.lon_e7,
        bytes(32), None, r.spd_cms, r.hdg_cdeg, segment,
    )  # fmt: skip
