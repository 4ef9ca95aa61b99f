"""The simulated fleet: vehicles and roadside units, their owners, VINs and signing keys.

Everything is derived from the seed: a device's Ed25519 key is the SHA-256 of the seed and its
device id (:func:`device_private_key`), so a fleet can be rebuilt, re-registered and re-run
without storing any secret. Vehicles are ``veh-000123`` (cars, vans, trucks, buses owned by a
few fleet operators); roadside units are ``rsu-0007``, owned by the traffic authority and
placed at the busiest intersections first.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Final

from chain.device_keys import DeviceKey
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind
from contracts.roads import RoadClass
from device_sim.errors import ConfigError
from device_sim.network import RoadNetwork
from device_sim.rand import seeded

__all__ = [
    "AUTHORITY",
    "ORGANISATIONS",
    "Fleet",
    "Organisation",
    "RoadsideUnit",
    "Vehicle",
    "VehicleType",
    "build_fleet",
    "device_private_key",
    "fleet_mix",
    "ghost_vehicle",
    "make_vin",
]

MAX_VEHICLES: Final = 999_999
MAX_RSUS: Final = 9_999


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation of the registry (``DeviceRegistry.ensure_organisation`` arguments)."""

    org_id: str
    name: str
    kind: str


AUTHORITY: Final = Organisation("city-traffic-authority", "City Traffic Authority", "authority")
_TRANSIT = Organisation("fleet-metro-transit", "Metro Transit", "fleet_owner")
_FREIGHT = Organisation("fleet-northwind-freight", "Northwind Freight", "fleet_owner")
_PARCEL = Organisation("fleet-parcelway", "Parcelway Deliveries", "fleet_owner")
_CARSHARE = Organisation("fleet-urbanshare", "UrbanShare Car Sharing", "fleet_owner")
_TAXI = Organisation("fleet-citycab", "CityCab Taxis", "fleet_owner")
ORGANISATIONS: Final = (AUTHORITY, _TRANSIT, _FREIGHT, _PARCEL, _CARSHARE, _TAXI)


class VehicleType(enum.StrEnum):
    """What a vehicle is; :attr:`unece_class` goes into the key record's ``vehicle_class``."""

    CAR = "car"
    VAN = "van"
    TRUCK = "truck"
    BUS = "bus"

    @property
    def unece_class(self) -> str:
        return _UNECE[self]

    @property
    def max_kmh(self) -> int:
        """The vehicle's own speed cap (trucks and buses are limited to 80 km/h)."""
        return _MAX_KMH[self]


_UNECE: Final = {
    VehicleType.CAR: "M1",
    VehicleType.VAN: "N1",
    VehicleType.TRUCK: "N3",
    VehicleType.BUS: "M3",
}
_MAX_KMH: Final = {
    VehicleType.CAR: 130,
    VehicleType.VAN: 120,
    VehicleType.TRUCK: 80,
    VehicleType.BUS: 80,
}
_MIX: Final = (
    (VehicleType.CAR, 60),
    (VehicleType.VAN, 20),
    (VehicleType.TRUCK, 10),
    (VehicleType.BUS, 10),
)
_OWNERS: Final = {
    VehicleType.CAR: (_CARSHARE, _TAXI),
    VehicleType.VAN: (_PARCEL, _FREIGHT),
    VehicleType.TRUCK: (_FREIGHT,),
    VehicleType.BUS: (_TRANSIT,),
}
_INITIAL_KM: Final = {
    VehicleType.CAR: (5_000, 200_000),
    VehicleType.VAN: (20_000, 300_000),
    VehicleType.TRUCK: (50_000, 900_000),
    VehicleType.BUS: (100_000, 800_000),
}
_VIN_CHARS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779: no I, O, Q
_VIN_VALUES: Final = dict(
    zip("ABCDEFGHJKLMNPRSTUVWXYZ", map(int, "12345678123457923456789"), strict=True)
)  # ISO 3779 transliteration
_VIN_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_YEARS: Final = "KLMNPRS"  # model years 2019..2025


def device_private_key(seed: int, device_id: str, role: str = "device") -> Ed25519PrivateKey:
    """The Ed25519 key of ``device_id`` in the fleet of ``seed`` (``role``: another key family,
    e.g. the forger's keys of the forged-signature scenario)."""
    material = f"roadledger-sim/{role}-key/{seed}/{device_id}".encode()
    return Ed25519PrivateKey.from_bytes(hashlib.sha256(material).digest())


def make_vin(wmi: str, vds: str, year_code: str, plant: str, serial: int) -> str:
    """An ISO 3779 VIN with a valid North-American check digit in position 9."""
    body = f"{wmi}{vds}0{year_code}{plant}{serial:06d}"
    total = sum(
        (int(ch) if ch.isdigit() else _VIN_VALUES[ch]) * w
        for ch, w in zip(body, _VIN_WEIGHTS, strict=True)
    )
    check = "X" if total % 11 == 10 else str(total % 11)
    return body[:8] + check + body[9:]


@dataclass(frozen=True, slots=True)
class Vehicle:
    """A simulated vehicle; ``registered`` is False for the unknown-device scenario's ghosts."""

    device_id: str
    vehicle_type: VehicleType
    vin: str
    owner_org: str
    initial_odo_m: int
    driver_factor: float
    """Share of the speed limit this driver drives at in free flow (0.9 .. 1.08)."""
    key: Ed25519PrivateKey = field(repr=False)
    registered: bool = True

    def device_key(self, valid_from_ms: int) -> DeviceKey:
        """The registry record of this vehicle's key."""
        return DeviceKey(
            device_id=self.device_id,
            public_key=self.key.public_key,
            owner_org=self.owner_org,
            kind=DeviceKind.VEHICLE,
            valid_from_ms=valid_from_ms,
            vin=self.vin,
            vehicle_class=self.vehicle_type.unece_class,
        )


@dataclass(frozen=True, slots=True)
class RoadsideUnit:
    """A roadside unit next to intersection ``node_id``, at its own surveyed position."""

    device_id: str
    node_id: int
    lat_e7: int
    lon_e7: int
    key: Ed25519PrivateKey = field(repr=False)
    owner_org: str = AUTHORITY.org_id

    def device_key(self, valid_from_ms: int) -> DeviceKey:
        """The registry record of this unit's key."""
        return DeviceKey(
            device_id=self.device_id,
            public_key=self.key.public_key,
            owner_org=self.owner_org,
            kind=DeviceKind.RSU,
            valid_from_ms=valid_from_ms,
        )


@dataclass(frozen=True, slots=True)
class Fleet:
    """The registered devices of one simulation."""

    vehicles: tuple[Vehicle, ...]
    rsus: tuple[RoadsideUnit, ...]
    organisations: tuple[Organisation, ...] = ORGANISATIONS

    def device_keys(self, valid_from_ms: int) -> list[DeviceKey]:
        """Key records of every registered vehicle and RSU, vehicles first."""
        records = [v.device_key(valid_from_ms) for v in self.vehicles if v.registered]
        return records + [r.device_key(valid_from_ms) for r in self.rsus]

    @property
    def device_ids(self) -> list[str]:
        return [v.device_id for v in self.vehicles] + [r.device_id for r in self.rsus]


def fleet_mix(seed: int, vehicles: int) -> list[VehicleType]:
    """The types of a fleet of ``vehicles``, in fleet order: each type's share of :data:`_MIX`
    rounded by largest remainder, then shuffled by the seed. The composition is fixed by the
    size alone (20 vehicles: 12 cars, 4 vans, 2 trucks, 2 buses), so a scenario that needs a
    truck does not depend on the luck of the draw or on the device ids."""
    total = sum(weight for _, weight in _MIX)
    exact = [(vehicle_type, vehicles * weight / total) for vehicle_type, weight in _MIX]
    counts = {vehicle_type: int(share) for vehicle_type, share in exact}
    by_remainder = sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)
    for vehicle_type, _ in by_remainder[: vehicles - sum(counts.values())]:
        counts[vehicle_type] += 1
    types = [vehicle_type for vehicle_type, _ in _MIX for _ in range(counts[vehicle_type])]
    seeded(seed, "fleet-mix").shuffle(types)
    return types


def _vehicle(
    seed: int, device_id: str, serial: int, registered: bool, vehicle_type: VehicleType | None
) -> Vehicle:
    rng = seeded(seed, "vehicle", device_id)
    if vehicle_type is None:
        vehicle_type = rng.choices([t for t, _ in _MIX], weights=[w for _, w in _MIX])[0]
    low_km, high_km = _INITIAL_KM[vehicle_type]
    vds = "".join(rng.choice(_VIN_CHARS) for _ in range(5))
    vin = make_vin("RLG", vds, rng.choice(_VIN_YEARS), rng.choice(_VIN_CHARS), serial)
    return Vehicle(
        device_id=device_id,
        vehicle_type=vehicle_type,
        vin=vin,
        owner_org=rng.choice(_OWNERS[vehicle_type]).org_id,
        initial_odo_m=rng.randrange(low_km, high_km) * 1000 + rng.randrange(1000),
        driver_factor=rng.uniform(0.9, 1.08),
        key=device_private_key(seed, device_id),
        registered=registered,
    )


def _rsu_rank(network: RoadNetwork, node_id: int) -> int:
    """Where an RSU sees most traffic: arterial crossings, then ramps, then lights."""
    node = network.nodes[node_id]
    if node.signalised and node.classes == (RoadClass.ARTERIAL,):
        return 0
    if RoadClass.MOTORWAY in node.classes and RoadClass.ARTERIAL in node.classes:
        return 1
    return 2 if node.signalised else 3 if RoadClass.ARTERIAL in node.classes else 4


def build_fleet(
    seed: int, vehicles: int, rsus: int, network: RoadNetwork, id_prefix: str = ""
) -> Fleet:
    """``vehicles`` vehicles and ``rsus`` roadside units; deterministic for the arguments."""
    if not 0 <= vehicles <= MAX_VEHICLES:
        raise ConfigError(f"vehicles: {vehicles} outside [0, {MAX_VEHICLES}]")
    if not 0 <= rsus <= min(MAX_RSUS, len(network.nodes)):
        raise ConfigError(
            f"rsus: {rsus} outside [0, {min(MAX_RSUS, len(network.nodes))}] for this network"
        )
    fleet_vehicles = tuple(
        _vehicle(seed, f"{id_prefix}veh-{i:06d}", i, True, vehicle_type)
        for i, vehicle_type in enumerate(fleet_mix(seed, vehicles), start=1)
    )
    rng = seeded(seed, "rsu-sites")
    order = sorted(range(len(network.nodes)), key=lambda n: (_rsu_rank(network, n), rng.random()))
    units = []
    for j, node_id in enumerate(order[:rsus], start=1):
        device_id = f"{id_prefix}rsu-{j:04d}"
        node = network.nodes[node_id]
        place = seeded(seed, "rsu", device_id)
        d_lat, d_lon = network.frame.shift_e7(place.uniform(-6.0, 6.0), place.uniform(-6.0, 6.0))
        units.append(
            RoadsideUnit(
                device_id=device_id,
                node_id=node_id,
                lat_e7=round(node.lat_e7 + d_lat),
                lon_e7=round(node.lon_e7 + d_lon),
                key=device_private_key(seed, device_id),
            )
        )
    return Fleet(vehicles=fleet_vehicles, rsus=tuple(units))


def ghost_vehicle(seed: int, device_id: str, serial: int) -> Vehicle:
    """An unregistered vehicle (the unknown-device scenario): well-formed and signing, but
    absent from the registry."""
    return _vehicle(seed, device_id, serial, False, None)
