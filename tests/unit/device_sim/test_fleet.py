"""The fleet: deterministic keys, valid VINs and records, RSUs at the busiest junctions."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from chain.telemetry import DeviceKind
from contracts.roads import RoadClass, haversine_m
from device_sim.errors import ConfigError
from device_sim.fleet import (
    AUTHORITY,
    ORGANISATIONS,
    VehicleType,
    build_fleet,
    device_private_key,
    fleet_mix,
    ghost_vehicle,
)
from device_sim.network import generate_network

NETWORK = generate_network()
VIN_VALUES = {c: int(c) for c in "0123456789"} | dict(
    zip(
        "ABCDEFGHJKLMNPRSTUVWXYZ",
        [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9],
        strict=True,
    )
)  # ISO 3779 transliteration, written out independently of device_sim
VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit(vin: str) -> str:
    total = sum(VIN_VALUES[c] * w for c, w in zip(vin, VIN_WEIGHTS, strict=True))
    return "X" if total % 11 == 10 else str(total % 11)


def test_keys_are_derived_from_seed_and_device_id() -> None:
    assert device_private_key(1, "veh-000001") == device_private_key(1, "veh-000001")
    assert device_private_key(1, "veh-000001") != device_private_key(2, "veh-000001")
    assert device_private_key(1, "veh-000001") != device_private_key(1, "veh-000002")
    assert device_private_key(1, "veh-000001") != device_private_key(1, "veh-000001", "forger")
    fleet = build_fleet(7, 5, 2, NETWORK)
    again = build_fleet(7, 5, 2, NETWORK)
    assert [v.key for v in fleet.vehicles] == [v.key for v in again.vehicles]
    assert fleet == again


def test_vehicles_have_ids_vins_owners_and_classes() -> None:
    fleet = build_fleet(3, 400, 0, NETWORK, id_prefix="t1-")
    assert [v.device_id for v in fleet.vehicles[:2]] == ["t1-veh-000001", "t1-veh-000002"]
    owners = {org.org_id for org in ORGANISATIONS}
    for vehicle in fleet.vehicles:
        assert re.fullmatch(r"[A-HJ-NPR-Z0-9]{17}", vehicle.vin)
        assert vehicle.vin[8] == vin_check_digit(vehicle.vin)
        assert vehicle.owner_org in owners - {AUTHORITY.org_id}
        assert 0.9 <= vehicle.driver_factor <= 1.08
        assert vehicle.initial_odo_m >= 5_000_000
    assert len({v.vin for v in fleet.vehicles}) == len(fleet.vehicles)
    mix = Counter(v.vehicle_type for v in fleet.vehicles)
    assert mix[VehicleType.CAR] > mix[VehicleType.VAN] > 0
    assert mix[VehicleType.TRUCK] > 0
    assert mix[VehicleType.BUS] > 0
    buses = {v.owner_org for v in fleet.vehicles if v.vehicle_type is VehicleType.BUS}
    assert buses == {"fleet-metro-transit"}


@pytest.mark.parametrize(
    ("vehicles", "cars", "vans", "trucks", "buses"),
    [(20, 12, 4, 2, 2), (10, 6, 2, 1, 1), (7, 4, 1, 1, 1), (1, 1, 0, 0, 0), (0, 0, 0, 0, 0)],
)
def test_the_fleet_mix_is_fixed_by_its_size(
    vehicles: int, cars: int, vans: int, trucks: int, buses: int
) -> None:
    for seed in range(5):
        mix = Counter(fleet_mix(seed, vehicles))
        assert [mix[t] for t in VehicleType] == [cars, vans, trucks, buses]


def test_the_fleet_mix_does_not_depend_on_device_ids() -> None:
    # The demo prefixes ids with its start time: the fleet it gets must not change with it.
    one = build_fleet(7, 20, 0, NETWORK, id_prefix="demo1-")
    other = build_fleet(7, 20, 0, NETWORK, id_prefix="demo2-")
    assert [v.vehicle_type for v in one.vehicles] == [v.vehicle_type for v in other.vehicles]
    assert Counter(v.vehicle_type for v in one.vehicles)[VehicleType.TRUCK] == 2
    shuffled = {tuple(fleet_mix(seed, 20)) for seed in range(5)}
    assert len(shuffled) > 1  # the seed decides who is what


def test_key_records_match_the_devices() -> None:
    fleet = build_fleet(3, 10, 3, NETWORK)
    records = fleet.device_keys(valid_from_ms=1_700_000_000_000)
    assert [r.device_id for r in records] == fleet.device_ids
    for record, vehicle in zip(records, fleet.vehicles, strict=False):
        assert record.kind is DeviceKind.VEHICLE
        assert record.public_key == vehicle.key.public_key
        assert record.vin == vehicle.vin
        assert record.vehicle_class == vehicle.vehicle_type.unece_class
        assert record.valid_from_ms == 1_700_000_000_000
        assert record.revoked_at_ms is None
    for record in records[10:]:
        assert record.kind is DeviceKind.RSU
        assert record.owner_org == AUTHORITY.org_id
        assert record.vin is None


def test_rsus_stand_at_distinct_main_junctions() -> None:
    fleet = build_fleet(3, 0, 20, NETWORK)
    assert [r.device_id for r in fleet.rsus[:2]] == ["rsu-0001", "rsu-0002"]
    assert len({r.node_id for r in fleet.rsus}) == 20
    for rsu in fleet.rsus:
        node = NETWORK.nodes[rsu.node_id]
        assert haversine_m(rsu.lat_e7, rsu.lon_e7, node.lat_e7, node.lon_e7) < 9.0
    first = NETWORK.nodes[fleet.rsus[0].node_id]
    assert first.signalised
    assert first.classes == (RoadClass.ARTERIAL,)


def test_ghosts_are_unregistered() -> None:
    ghost = ghost_vehicle(3, "veh-x00001", 900_001)
    assert ghost.registered is False
    assert ghost.key == device_private_key(3, "veh-x00001")


@pytest.mark.parametrize(("vehicles", "rsus"), [(-1, 0), (1_000_000, 0), (1, 10_000)])
def test_fleet_size_limits(vehicles: int, rsus: int) -> None:
    with pytest.raises(ConfigError):
        build_fleet(1, vehicles, rsus, NETWORK)
