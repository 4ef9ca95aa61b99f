"""API keys through the API: created by a logged-in admin and shown once, accepted as
``X-API-Key`` and as a bearer token, refused once revoked or expired, never more than their
creator, unable to make keys, and limited to their scopes."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx
import pytest

from api.access import require_access
from contracts.access import Scope
from roadledger.identity.api_keys import principal_of_api_key
from roadledger.identity.credentials import secret_hash
from roadledger.identity.errors import NotPermitted
from tests.integration.api.access_support import add_devices, grant_body
from tests.integration.api.conftest import bearer

pytestmark = [pytest.mark.postgres]


async def _key(api: httpx.AsyncClient, username: str, **body: Any) -> dict[str, Any]:
    request = {"label": "test key", "roles": ["admin"], "scopes": [], "days": 30} | body
    answer = await api.post("/v1/api-keys", json=request, headers=await bearer(api, username))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def test_a_key_is_shown_once_and_stored_as_a_hash(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    created = await _key(api, "fleet-a-admin", roles=["admin"], scopes=["mileage"])
    assert created["key"].startswith("rlk_")
    assert (created["org_id"], created["roles"], created["scopes"], created["revoked"]) == (
        "fleet-a", ["admin"], ["mileage"], False,
    )  # fmt: skip
    listed = await api.get("/v1/api-keys", headers=await bearer(api, "fleet-a-admin"))
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["key_id"] == created["key_id"]
    assert "key" not in item
    assert created["key"].split("_")[-1] not in listed.text
    stored = await api_pool.fetchval("SELECT secret_hash FROM api_keys")
    assert created["key"].encode() not in bytes(stored)
    assert len(bytes(stored)) == 32
    assert bytes(stored) != secret_hash(created["key"])  # the secret part's hash, not the key's


@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
async def test_a_key_authenticates_as_its_organisation(api: httpx.AsyncClient, header: str) -> None:
    created = await _key(api, "insurer-x-admin")
    headers = ({"X-API-Key": created["key"]} if header == "x-api-key"
               else {"Authorization": f"Bearer {created['key']}"})  # fmt: skip
    me = await api.get("/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    assert (me.json()["via"], me.json()["subject"], me.json()["org_id"], me.json()["roles"]) == (
        "api_key", created["key_id"], "insurer-x", ["admin"],
    )  # fmt: skip


async def test_a_revoked_key_is_401(api: httpx.AsyncClient) -> None:
    created = await _key(api, "fleet-a-admin")
    headers = {"X-API-Key": created["key"]}
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    admin = await bearer(api, "fleet-a-admin")
    revoked = await api.post(f"/v1/api-keys/{created['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 204
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 401
    [item] = (await api.get("/v1/api-keys", headers=admin)).json()
    assert item["revoked"] is True
    # Another organisation cannot revoke fleet-a's keys: not one of its own.
    other = await api.post(f"/v1/api-keys/{created['key_id']}/revoke",
                           headers=await bearer(api, "fleet-b-admin"))  # fmt: skip
    assert other.status_code == 404


async def test_an_expired_key_is_401(api: httpx.AsyncClient, api_pool: asyncpg.Pool) -> None:
    created = await _key(api, "fleet-a-admin")
    await api_pool.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_id = $1",
        created["key_id"],
    )
    answer = await api.get("/v1/auth/me", headers={"X-API-Key": created["key"]})
    assert answer.status_code == 401


async def test_a_malformed_or_forged_key_is_401(api: httpx.AsyncClient) -> None:
    created = await _key(api, "fleet-a-admin")
    forged = created["key"][:-4] + ("AAAA" if not created["key"].endswith("AAAA") else "BBBB")
    for key in ("rlk_nonsense", forged):
        assert (await api.get("/v1/auth/me", headers={"X-API-Key": key})).status_code == 401


async def test_a_key_cannot_hold_roles_its_creator_lacks(api: httpx.AsyncClient) -> None:
    request = {"label": "too much", "roles": ["admin", "operator"], "days": 30}
    answer = await api.post(
        "/v1/api-keys", json=request, headers=await bearer(api, "fleet-a-admin")
    )
    assert answer.status_code == 403
    assert "operator" in answer.json()["detail"]


async def test_only_a_logged_in_admin_creates_keys(api: httpx.AsyncClient) -> None:
    created = await _key(api, "fleet-a-admin")
    request = {"label": "child", "roles": ["admin"], "days": 30}
    by_key = await api.post("/v1/api-keys", json=request, headers={"X-API-Key": created["key"]})
    assert by_key.status_code == 403
    by_analyst = await api.post("/v1/api-keys", json=request,
                                headers=await bearer(api, "fleet-a-analyst"))  # fmt: skip
    assert by_analyst.status_code == 403
    too_long = await api.post("/v1/api-keys", json=request | {"days": 100_000},
                              headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    assert too_long.status_code == 422
    assert "days" in too_long.json()["detail"]


async def test_a_scoped_key_reads_only_its_scopes(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    await add_devices(api_pool, "fleet-a", "veh-a1")
    now_ms = int(time.time() * 1000)
    body = grant_body(["veh-a1"], ["mileage", "track"], now_ms)
    granted = await api.post("/v1/grants", json=body, headers=await bearer(api, "fleet-a-admin"))
    assert granted.status_code == 201
    created = await _key(api, "insurer-x-admin", scopes=["mileage"])
    key = await principal_of_api_key(api_pool, created["key"])
    route = "GET /v1/vehicles/{device_id}/mileage"
    assert (
        await require_access(api_pool, key, "veh-a1", Scope.MILEAGE, action=route)
        == (granted.json()["grant_id"])
    )
    # The grant opens track too, but the key is not scoped for it.
    with pytest.raises(NotPermitted, match="not scoped for track"):
        await require_access(api_pool, key, "veh-a1", Scope.TRACK, action=route)
