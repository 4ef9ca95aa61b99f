"""The device registry on the real PostgreSQL: idempotent registration, rotation, revocation,
and every change queued for the ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from chain.device_keys import DeviceKey
from chain.entries import parse_device_key_entry
from chain.errors import TelemetryError
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind
from roadledger.db.scratch import scratch_schema_pool
from roadledger.registry import DeviceRegistry, RegistryError
from roadledger.settings import Settings

pytestmark = pytest.mark.postgres

T0 = 1_764_000_000_000


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres) as scratch:
        yield scratch


@pytest.fixture
async def registry(pool: asyncpg.Pool) -> DeviceRegistry:
    registry = DeviceRegistry(pool)
    await registry.ensure_organisation("fleet-a", "Fleet A", "fleet")
    await registry.ensure_organisation("authority", "Traffic Authority", "authority")
    return registry


def vehicle(device_id: str, key: Ed25519PrivateKey, owner: str = "fleet-a") -> DeviceKey:
    return DeviceKey(
        device_id=device_id,
        public_key=key.public_key,
        owner_org=owner,
        kind=DeviceKind.VEHICLE,
        valid_from_ms=T0,
        vehicle_class="car",
    )


async def outbox(pool: asyncpg.Pool) -> list[DeviceKey]:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT entry FROM ledger_outbox ORDER BY outbox_id")
    return [parse_device_key_entry(bytes(row["entry"])) for row in rows]


async def test_register_many_is_idempotent_and_queues_each_record_once(
    registry: DeviceRegistry, pool: asyncpg.Pool
) -> None:
    records = [vehicle(f"veh-{i}", Ed25519PrivateKey.generate()) for i in range(50)]
    assert await registry.register_many(records) == 50
    assert await registry.register_many(records) == 0
    assert await registry.register(records[0]) is False
    assert await outbox(pool) == records
    found = await registry.keys_for(["veh-3", "veh-7", "nobody"])
    assert found == {"veh-3": [records[3]], "veh-7": [records[7]]}


async def test_contradicting_records_are_refused_and_nothing_is_written(
    registry: DeviceRegistry, pool: asyncpg.Pool
) -> None:
    key = Ed25519PrivateKey.generate()
    await registry.register(vehicle("veh-1", key))
    with pytest.raises(RegistryError, match="registered as a vehicle of fleet-a, not a vehicle"):
        await registry.register_many(
            [vehicle("veh-2", Ed25519PrivateKey.generate()), vehicle("veh-1", key, "authority")]
        )
    assert await registry.keys("veh-2") == [], "the whole batch is refused"
    with pytest.raises(RegistryError, match="organisation 'nobody' is not registered"):
        await registry.register(vehicle("veh-3", key, "nobody"))
    assert len(await outbox(pool)) == 1


async def test_rotation_ends_the_old_key_where_the_new_one_starts(
    registry: DeviceRegistry, pool: asyncpg.Pool
) -> None:
    old = Ed25519PrivateKey.generate()
    new = Ed25519PrivateKey.generate()
    await registry.register(vehicle("veh-1", old))
    record = await registry.rotate("veh-1", new.public_key, T0 + 1000)
    assert record.valid_from_ms == T0 + 1000
    keys = await registry.keys("veh-1")
    assert [k.public_key for k in keys] == [old.public_key, new.public_key]
    assert keys[0].revoked_at_ms == T0 + 1000
    keys[0].check_valid_at(T0 + 999)
    with pytest.raises(TelemetryError, match="revoked"):
        keys[0].check_valid_at(T0 + 1000)
    keys[1].check_valid_at(T0 + 1000)
    assert [k.revoked_at_ms for k in await outbox(pool)] == [None, T0 + 1000, None]
    with pytest.raises(RegistryError, match="registered before"):
        await registry.rotate("veh-1", old.public_key, T0 + 2000)


async def test_revocation_keeps_earlier_messages_valid(registry: DeviceRegistry) -> None:
    await registry.register(vehicle("veh-1", Ed25519PrivateKey.generate()))
    (ended,) = await registry.revoke("veh-1", T0 + 5000)
    assert ended.revoked_at_ms == T0 + 5000
    assert await registry.revoke("veh-1", T0 + 9000) == [], "revocation only moves earlier"
    (earlier,) = await registry.revoke("veh-1", T0 + 3000)
    assert earlier.revoked_at_ms == T0 + 3000
    (key,) = await registry.keys("veh-1")
    key.check_valid_at(T0 + 2999)
    with pytest.raises(RegistryError, match="veh-9 is not registered"):
        await registry.revoke("veh-9", T0)
