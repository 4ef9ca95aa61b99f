"""The audit log records every login, token and key change, grant, revocation and data read,
exactly once, with ids and codes only (never a username, password, token or key secret)."""

from __future__ import annotations

import time

import asyncpg
import httpx
import pytest

from api.access import require_access
from contracts.access import Scope
from roadledger.audit.events import username_ref
from roadledger.identity.errors import NotPermitted
from roadledger.identity.grants import UnknownDevice
from tests.integration.api.access_support import (
    add_devices,
    audit_entries,
    grant_body,
    member_id,
    principal,
    raw_entries,
)
from tests.integration.api.conftest import PASSWORD, bearer, login

pytestmark = [pytest.mark.postgres]


def _fields(entry: dict[str, object], *names: str) -> tuple[object, ...]:
    return tuple(entry.get(name) for name in names)


async def test_logins_are_audited_success_and_failure_without_personal_data(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    before_ms = int(time.time() * 1000)
    tokens = await login(api, "fleet-a-analyst")
    wrong = {"username": "fleet-a-analyst", "password": "wrong password 1"}
    assert (await api.post("/v1/auth/token", data=wrong)).status_code == 401
    unknown = {"username": "nobody-here", "password": "wrong password 2"}
    assert (await api.post("/v1/auth/token", data=unknown)).status_code == 401
    for _ in range(2):  # the limit is 3 failures: the third is refused before the password
        assert (await api.post("/v1/auth/token", data=wrong)).status_code in (401, 429)
    assert (await api.post("/v1/auth/token", data=wrong)).status_code == 429

    analyst = await member_id(api_pool, "fleet-a-analyst")
    session = await api_pool.fetchval("SELECT session_id FROM api_sessions")
    [ok] = await audit_entries(api_pool, "login")
    assert _fields(ok, "actor", "actor_org", "via", "target", "action", "outcome") == (
        analyst, "fleet-a", "session", session, "POST /v1/auth/token", "ok",
    )  # fmt: skip
    assert before_ms <= ok["at_ms"] <= int(time.time() * 1000)
    failed = await audit_entries(api_pool, "login_failed")
    # A member's username is named by its member id (its organisation sees the attempts);
    # an unknown one only by a hash.
    assert [(e["actor"], e.get("actor_org"), e["outcome"]) for e in failed] == [
        (analyst, "fleet-a", "bad_credentials"),
        (username_ref("nobody-here"), None, "bad_credentials"),
        (analyst, "fleet-a", "bad_credentials"),
        (analyst, "fleet-a", "bad_credentials"),
        (analyst, "fleet-a", "rate_limited"),
    ]
    everything = await raw_entries(api_pool)
    for secret in ("fleet-a-analyst", "nobody-here", PASSWORD, "wrong password",
                   tokens["access_token"], tokens["refresh_token"]):  # fmt: skip
        assert secret.encode() not in everything


async def test_refresh_and_logout_are_audited_once_each(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    tokens = await login(api, "police-admin")
    renewed = await api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert renewed.status_code == 200
    headers = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    assert (await api.post("/v1/auth/revoke", headers=headers)).status_code == 204
    admin = await member_id(api_pool, "police-admin")
    session = await api_pool.fetchval("SELECT session_id FROM api_sessions")
    events = [(e["event"], e["actor"], e["actor_org"], e["target"])
              for e in await audit_entries(api_pool)]  # fmt: skip
    assert events == [
        ("login", admin, "police", session),
        ("token_refresh", admin, "police", session),
        ("token_revoke", admin, "police", session),
    ]


async def test_a_refused_refresh_is_audited_and_a_reused_one_names_its_session(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    tokens = await login(api, "police-admin")
    first = await api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    reused = await api.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    forged = await api.post("/v1/auth/refresh", json={"refresh_token": "rlr_not-a-token"})
    assert forged.status_code == 401
    admin = await member_id(api_pool, "police-admin")
    session = await api_pool.fetchval("SELECT session_id FROM api_sessions")
    refreshes = await audit_entries(api_pool, "token_refresh")
    assert [_fields(e, "actor", "actor_org", "target", "outcome") for e in refreshes] == [
        (admin, "police", session, "ok"),
        (admin, "police", session, "reused"),
        ("unknown", None, None, "bad_credentials"),
    ]
    assert tokens["refresh_token"].encode() not in await raw_entries(api_pool)


async def test_api_key_creation_and_revocation_are_audited_without_the_secret(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    headers = await bearer(api, "fleet-a-admin")
    body = {"label": "exporter", "roles": ["admin"], "scopes": [], "days": 30}
    created = await api.post("/v1/api-keys", json=body, headers=headers)
    assert created.status_code == 201
    key_id, secret = created.json()["key_id"], created.json()["key"]
    assert (await api.post(f"/v1/api-keys/{key_id}/revoke", headers=headers)).status_code == 204
    admin = await member_id(api_pool, "fleet-a-admin")
    [made] = await audit_entries(api_pool, "api_key_create")
    [revoked] = await audit_entries(api_pool, "api_key_revoke")
    for entry, action in ((made, "POST /v1/api-keys"),
                          (revoked, "POST /v1/api-keys/{key_id}/revoke")):  # fmt: skip
        assert _fields(entry, "actor", "actor_org", "target", "action") == (
            admin, "fleet-a", key_id, action,
        )  # fmt: skip
    assert secret.encode() not in await raw_entries(api_pool)
    # Revoking an unknown key is a 404 and writes nothing: the entry shares the transaction.
    assert (await api.post("/v1/api-keys/k_none/revoke", headers=headers)).status_code == 404
    assert len(await audit_entries(api_pool, "api_key_revoke")) == 1


async def test_grants_and_their_revocation_are_audited_in_the_same_transaction(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    await add_devices(api_pool, "fleet-a", "veh-a1", "veh-a2")
    headers = await bearer(api, "fleet-a-admin")
    now_ms = int(time.time() * 1000)
    body = grant_body(["veh-a1", "veh-a2"], ["track", "mileage"], now_ms)
    created = await api.post("/v1/grants", json=body, headers=headers)
    assert created.status_code == 201, created.text
    grant_id = created.json()["grant_id"]
    revoked = await api.post(f"/v1/grants/{grant_id}/revoke", headers=headers)
    assert revoked.status_code == 200
    admin = await member_id(api_pool, "fleet-a-admin")
    names = ("actor", "actor_org", "owner_org", "grant_id", "scope", "target")
    expected = (admin, "fleet-a", "fleet-a", grant_id, "mileage,track", "insurer-x")
    [made] = await audit_entries(api_pool, "grant_create")
    [gone] = await audit_entries(api_pool, "grant_revoke")
    assert _fields(made, *names) == _fields(gone, *names) == expected
    # A refused grant (a device that is not fleet-a's) leaves no entry behind.
    await add_devices(api_pool, "fleet-b", "veh-b1")
    refused = await api.post("/v1/grants", json=grant_body(["veh-b1"], ["track"], now_ms),
                             headers=headers)  # fmt: skip
    assert refused.status_code == 404
    assert len(await audit_entries(api_pool, "grant_create")) == 1


async def test_a_data_read_is_audited_with_what_allowed_it_and_so_is_a_refusal(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    await add_devices(api_pool, "fleet-a", "veh-a1")
    now_ms = int(time.time() * 1000)
    answer = await api.post("/v1/grants", json=grant_body(["veh-a1"], ["mileage"], now_ms),
                            headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    grant_id = answer.json()["grant_id"]
    owner = await principal(api, api_pool, "fleet-a-analyst")
    insurer = await principal(api, api_pool, "insurer-x-agent")
    route = "GET /v1/vehicles/{device_id}/mileage"
    assert await require_access(api_pool, owner, "veh-a1", Scope.TRACK, action=route) == "owner"
    assert await require_access(api_pool, insurer, "veh-a1", Scope.MILEAGE, action=route) == (
        grant_id
    )
    with pytest.raises(NotPermitted):
        await require_access(api_pool, insurer, "veh-a1", Scope.TRACK, action=route)
    with pytest.raises(UnknownDevice):
        await require_access(api_pool, insurer, "veh-none", Scope.MILEAGE, action=route)
    reads = await audit_entries(api_pool, "data_access")
    names = ("actor", "actor_org", "owner_org", "device_id", "scope", "grant_id", "outcome")
    me, them = owner.subject, insurer.subject
    assert [_fields(e, *names) for e in reads] == [
        (me, "fleet-a", "fleet-a", "veh-a1", "track", "owner", "ok"),
        (them, "insurer-x", "fleet-a", "veh-a1", "mileage", grant_id, "ok"),
        # Refused: the owner sees the attempt; an unknown device has no owner to tell.
        (them, "insurer-x", "fleet-a", "veh-a1", "track", None, "forbidden"),
        (them, "insurer-x", None, "veh-none", "mileage", None, "not_found"),
    ]
    assert all(_fields(e, "via", "action") == ("session", route) for e in reads)
