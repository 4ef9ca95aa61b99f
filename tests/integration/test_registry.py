"""The device registry on the real PostgreSQL: idempotent registration, rotation, revocation,
every change queued for the ledger, and each refusal of the kind ``api/`` maps to a status."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import asyncpg
import pytest

from chain.device_keys import DeviceKey
from chain.entries import parse_device_key_entry
from chain.errors import TelemetryError
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind
from contracts.errors import Conflict, DomainError, Forbidden, NotFound
from roadledger.registry import DeviceCredentials, DeviceRegistry, RegistryError
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

T0 = 1_764_000_000_000


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres) as scratch:
        yield scratch


@pytest.fixture
async def registry(pool: asyncpg.Pool) -> DeviceRegistry:
    registry = DeviceRegistry(pool)
    await registry.ensure_organisation("fleet-a", "Fleet A", "fleet_owner")
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


async def test_keys_whose_windows_do_not_overlap_register(registry: DeviceRegistry) -> None:
    """A key history (the simulator registers rotations this way) is no second signer."""
    first = replace(vehicle("veh-1", Ed25519PrivateKey.generate()), revoked_at_ms=T0 + 1000)
    later = replace(vehicle("veh-1", Ed25519PrivateKey.generate()), valid_from_ms=T0 + 1000)
    assert await registry.register_many([first, later]) == 2
    with pytest.raises(RegistryError, match="one valid key at a time"):  # in one batch, too
        await registry.register_many(
            [vehicle("veh-2", Ed25519PrivateKey.generate()),
             vehicle("veh-2", Ed25519PrivateKey.generate())]
        )  # fmt: skip


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


class MemoryCredentials:
    """A credential store in a dict (the real one is the broker's password file)."""

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}

    def issue(self, username: str) -> str:
        self.passwords[username] = f"pw-{username}"
        return self.passwords[username]

    def remove(self, username: str) -> bool:
        return self.passwords.pop(username, None) is not None


OLD = Ed25519PrivateKey.from_bytes(bytes(range(32)))
Refusal = Callable[[DeviceRegistry, DeviceCredentials], Awaitable[object]]


async def _reserved_revoke(_: DeviceRegistry, credentials: DeviceCredentials) -> object:
    return credentials.revoke("svc-bridge")


REFUSALS: dict[str, tuple[Refusal, type[DomainError], str]] = {
    "rotate an unknown device": (
        lambda r, _: r.rotate("veh-9", OLD.public_key, T0),
        NotFound,
        "device veh-9 is not registered",
    ),
    "revoke an unknown device": (
        lambda r, _: r.revoke("veh-9", T0),
        NotFound,
        "device veh-9 is not registered",
    ),
    "register for an unknown organisation": (
        lambda r, _: r.register(vehicle("veh-2", OLD, "nobody")),
        NotFound,
        "organisation 'nobody' is not registered",
    ),
    "a credential for an unknown device": (
        lambda _, c: c.issue("veh-9", now_ms=T0),
        NotFound,
        "device veh-9 is not registered",
    ),
    "register a known device id under another owner": (
        lambda r, _: r.register(vehicle("veh-1", OLD, "authority")),
        Conflict,
        "registered as a vehicle of fleet-a, not a vehicle of authority",
    ),
    "register a known key with other details": (
        lambda r, _: r.register(replace(vehicle("veh-1", OLD), valid_from_ms=T0 + 1)),
        Conflict,
        "is already registered with other details",
    ),
    "a second key while the first is valid": (
        lambda r, _: r.register(vehicle("veh-1", Ed25519PrivateKey.generate())),
        Conflict,
        f"already has key .* valid from {T0}; a device has one valid key at a time",
    ),
    "a second key overlapping a revoked one's window": (
        lambda r, _: r.register(
            replace(vehicle("veh-1", Ed25519PrivateKey.generate()), revoked_at_ms=T0 + 10)
        ),
        Conflict,
        "a device has one valid key at a time",
    ),
    "rotate back to a key used before": (
        lambda r, _: r.rotate("veh-1", OLD.public_key, T0 + 1000),
        Conflict,
        "that key was registered before",
    ),
    "rotate to before the current key's start": (
        lambda r, _: r.rotate("veh-1", Ed25519PrivateKey.generate().public_key, T0 - 1),
        Conflict,
        f"rotation at {T0 - 1} is before the current key's start {T0}",
    ),
    "a credential for a device with no key valid now": (
        lambda _, c: c.issue("veh-1", now_ms=T0 - 1),
        Conflict,
        "has no key valid now",
    ),
    "a credential for a service account's username": (
        lambda _, c: c.issue("svc-bridge", now_ms=T0),
        Forbidden,
        "that id is a service account's username",
    ),
    "removing a service account's credential": (
        _reserved_revoke,
        Forbidden,
        "that id is a service account's username",
    ),
}


@pytest.mark.parametrize(("refuse", "kind", "message"), REFUSALS.values(), ids=REFUSALS.keys())
async def test_each_refusal_is_of_its_kind(
    registry: DeviceRegistry,
    pool: asyncpg.Pool,
    refuse: Refusal,
    kind: type[DomainError],
    message: str,
) -> None:
    await registry.register(vehicle("veh-1", OLD))
    store = MemoryCredentials()
    credentials = DeviceCredentials(registry, store, lambda: True, reserved=["svc-bridge"])
    with pytest.raises(kind, match=message) as caught:
        await refuse(registry, credentials)
    assert isinstance(caught.value, RegistryError), "except RegistryError keeps working"
    assert len(await outbox(pool)) == 1, "a refusal writes nothing"
    assert store.passwords == {}
