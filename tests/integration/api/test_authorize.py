"""The kernel's one access question, :func:`roadledger.identity.grants.authorize`, on the real
PostgreSQL: owner, granted, not granted, expired, revoked, not yet valid, another scope, a role
without data access, and an API key's scopes."""

from __future__ import annotations

import asyncpg
import pytest

from contracts.access import OrgKind, Role, Scope
from roadledger.identity.errors import NotPermitted
from roadledger.identity.grants import UnknownDevice, authorize, create_grant, revoke_grant
from roadledger.identity.principal import Principal
from tests.integration.api.access_support import DAY_MS, add_devices

pytestmark = [pytest.mark.postgres]

NOW = 1_800_000_000_000
OWNER_ADMIN = Principal("m_owner", "fleet-a", OrgKind.FLEET_OWNER, frozenset({Role.ADMIN}),
                        "session")  # fmt: skip
INSURER = Principal("m_ins", "insurer-x", OrgKind.INSURER, frozenset({Role.INSURER}), "session")
POLICE = Principal("m_pol", "police", OrgKind.AUTHORITY, frozenset({Role.ANALYST}), "session")


async def _grant(
    pool: asyncpg.Pool, start: int, end: int, scopes: tuple[str, ...] = ("mileage",)
) -> str:
    async with pool.acquire() as conn:
        made = await create_grant(conn, OWNER_ADMIN, "insurer-x", scopes, ["veh-a1"], start, end,
                                  "test")  # fmt: skip
    return made.grant_id


@pytest.fixture
async def pool(api_pool: asyncpg.Pool) -> asyncpg.Pool:
    await add_devices(api_pool, "fleet-a", "veh-a1", "veh-a2")
    return api_pool


async def test_the_owner_reads_its_own_devices(pool: asyncpg.Pool) -> None:
    analyst = Principal("m_a", "fleet-a", OrgKind.FLEET_OWNER, frozenset({Role.ANALYST}),
                        "session")  # fmt: skip
    for scope in Scope:
        assert await authorize(pool, analyst, "veh-a2", scope, now_ms=NOW) == "owner"


async def test_a_live_grant_allows_its_scope_and_names_itself(pool: asyncpg.Pool) -> None:
    grant_id = await _grant(pool, NOW - DAY_MS, NOW + DAY_MS)
    assert await authorize(pool, INSURER, "veh-a1", Scope.MILEAGE, now_ms=NOW) == grant_id


async def test_without_a_grant_the_device_is_not_revealed(pool: asyncpg.Pool) -> None:
    await _grant(pool, NOW - DAY_MS, NOW + DAY_MS)
    with pytest.raises(UnknownDevice):  # granted veh-a1, not veh-a2: as if it did not exist
        await authorize(pool, INSURER, "veh-a2", Scope.MILEAGE, now_ms=NOW)
    with pytest.raises(UnknownDevice):
        await authorize(pool, POLICE, "veh-a1", Scope.MILEAGE, now_ms=NOW)
    with pytest.raises(UnknownDevice):
        await authorize(pool, INSURER, "veh-nowhere", Scope.MILEAGE, now_ms=NOW)


@pytest.mark.parametrize(
    ("start", "end", "why"),
    [
        (NOW - 2 * DAY_MS, NOW - DAY_MS, "expired"),
        (NOW + DAY_MS, NOW + 2 * DAY_MS, "pending"),
        (NOW - DAY_MS, NOW, "expired"),  # valid_until is exclusive
    ],
)
async def test_a_grant_outside_its_period_is_403_saying_why(
    pool: asyncpg.Pool, start: int, end: int, why: str
) -> None:
    grant_id = await _grant(pool, start, end)
    with pytest.raises(NotPermitted, match=f"{grant_id}: {why}"):
        await authorize(pool, INSURER, "veh-a1", Scope.MILEAGE, now_ms=NOW)


async def test_valid_from_is_inclusive(pool: asyncpg.Pool) -> None:
    grant_id = await _grant(pool, NOW, NOW + DAY_MS)
    assert await authorize(pool, INSURER, "veh-a1", Scope.MILEAGE, now_ms=NOW) == grant_id


async def test_a_revoked_grant_is_403(pool: asyncpg.Pool) -> None:
    grant_id = await _grant(pool, NOW - DAY_MS, NOW + DAY_MS)
    assert await authorize(pool, INSURER, "veh-a1", Scope.MILEAGE, now_ms=NOW) == grant_id
    async with pool.acquire() as conn:
        await revoke_grant(conn, OWNER_ADMIN, grant_id)
    with pytest.raises(NotPermitted, match=f"{grant_id}: revoked"):
        await authorize(pool, INSURER, "veh-a1", Scope.MILEAGE, now_ms=NOW)


async def test_another_scope_is_403_and_a_second_grant_can_open_it(pool: asyncpg.Pool) -> None:
    first = await _grant(pool, NOW - DAY_MS, NOW + DAY_MS)
    with pytest.raises(NotPermitted, match=f"{first}: not for track"):
        await authorize(pool, INSURER, "veh-a1", Scope.TRACK, now_ms=NOW)
    second = await _grant(pool, NOW - DAY_MS, NOW + DAY_MS, ("track", "certificate"))
    assert await authorize(pool, INSURER, "veh-a1", Scope.TRACK, now_ms=NOW) == second
    assert await authorize(pool, INSURER, "veh-a1", Scope.MILEAGE, now_ms=NOW) == first


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.WITNESS])
async def test_a_role_without_data_access_is_403_even_for_the_owner(
    pool: asyncpg.Pool, role: Role
) -> None:
    member = Principal("m_x", "fleet-a", OrgKind.FLEET_OWNER, frozenset({role}), "session")
    with pytest.raises(NotPermitted, match="needs one of the roles"):
        await authorize(pool, member, "veh-a1", Scope.TRACK, now_ms=NOW)


async def test_an_api_key_reads_only_its_scopes(pool: asyncpg.Pool) -> None:
    await _grant(pool, NOW - DAY_MS, NOW + DAY_MS, ("mileage", "track"))
    key = Principal("k_1", "insurer-x", OrgKind.INSURER, frozenset({Role.INSURER}), "api_key",
                    scopes=frozenset({Scope.TRACK}))  # fmt: skip
    assert await authorize(pool, key, "veh-a1", Scope.TRACK, now_ms=NOW) != "owner"
    with pytest.raises(NotPermitted, match="not scoped for mileage"):
        await authorize(pool, key, "veh-a1", Scope.MILEAGE, now_ms=NOW)
    owner_key = Principal("k_2", "fleet-a", OrgKind.FLEET_OWNER, frozenset({Role.ADMIN}),
                          "api_key", scopes=frozenset({Scope.EXPORT}))  # fmt: skip
    with pytest.raises(NotPermitted, match="not scoped for track"):  # even on its own devices
        await authorize(pool, owner_key, "veh-a1", Scope.TRACK, now_ms=NOW)
