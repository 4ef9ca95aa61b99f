"""Grants through the API: created and revoked by an admin of the owner only, on the owner's
own devices, listed as given or received, with their status now."""

from __future__ import annotations

import time

import asyncpg
import httpx
import pytest

from tests.integration.api.access_support import DAY_MS, add_devices, grant_body
from tests.integration.api.conftest import bearer

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def devices(api_pool: asyncpg.Pool) -> None:
    await add_devices(api_pool, "fleet-a", "veh-a1", "veh-a2")
    await add_devices(api_pool, "fleet-b", "veh-b1")


@pytest.mark.usefixtures("devices")
async def test_an_owner_admin_grants_and_both_sides_list_it(api: httpx.AsyncClient) -> None:
    admin = await bearer(api, "fleet-a-admin")
    now_ms = int(time.time() * 1000)
    made = await api.post("/v1/grants", json=grant_body(["veh-a2", "veh-a1"], ["mileage"], now_ms),
                          headers=admin)  # fmt: skip
    assert made.status_code == 201, made.text
    grant = made.json()
    assert (grant["owner_org"], grant["grantee_org"], grant["device_ids"], grant["status"]) == (
        "fleet-a", "insurer-x", ["veh-a1", "veh-a2"], "active",
    )  # fmt: skip
    given = (await api.get("/v1/grants", headers=admin)).json()
    assert [g["grant_id"] for g in given] == [grant["grant_id"]]
    insurer = await bearer(api, "insurer-x-agent")
    received = await api.get("/v1/grants", params={"direction": "received"}, headers=insurer)
    assert [g["grant_id"] for g in received.json()] == [grant["grant_id"]]
    assert (await api.get("/v1/grants", headers=insurer)).json() == []  # it gave none
    one = await api.get(f"/v1/grants/{grant['grant_id']}", headers=insurer)
    assert one.status_code == 200
    outsider = await bearer(api, "fleet-b-admin")
    assert (await api.get(f"/v1/grants/{grant['grant_id']}", headers=outsider)).status_code == 404
    assert (await api.get("/v1/grants", params={"direction": "received"},
                          headers=outsider)).json() == []  # fmt: skip


@pytest.mark.usefixtures("devices")
@pytest.mark.parametrize("username", ["fleet-a-analyst", "insurer-x-admin", "ops"])
async def test_only_an_admin_of_the_owner_grants(api: httpx.AsyncClient, username: str) -> None:
    now_ms = int(time.time() * 1000)
    body = grant_body(["veh-a1"], ["mileage"], now_ms, grantee_org="police")
    answer = await api.post("/v1/grants", json=body, headers=await bearer(api, username))
    # An analyst lacks the role (403); another org's admin does not own veh-a1 (404).
    assert answer.status_code == (403 if username == "fleet-a-analyst" else 404), answer.text


@pytest.mark.usefixtures("devices")
async def test_devices_must_be_the_owners(api: httpx.AsyncClient) -> None:
    admin = await bearer(api, "fleet-a-admin")
    now_ms = int(time.time() * 1000)
    for devices in (["veh-a1", "veh-b1"], ["veh-none"]):
        answer = await api.post("/v1/grants", json=grant_body(devices, ["track"], now_ms),
                                headers=admin)  # fmt: skip
        assert answer.status_code == 404
        assert answer.json()["detail"].startswith("device_ids")
    bad = await api.post("/v1/grants", json=grant_body(["veh-a1"], ["track"], now_ms,
                         valid_until_ms=now_ms - DAY_MS), headers=admin)  # fmt: skip
    assert bad.status_code == 422
    assert "valid_until" in bad.json()["detail"]
    self_grant = await api.post("/v1/grants", json=grant_body(["veh-a1"], ["track"], now_ms,
                                grantee_org="fleet-a"), headers=admin)  # fmt: skip
    assert self_grant.status_code == 422
    assert "grantee_org" in self_grant.json()["detail"]


@pytest.mark.usefixtures("devices")
async def test_revoke_by_the_owner_admin_only(api: httpx.AsyncClient) -> None:
    admin = await bearer(api, "fleet-a-admin")
    now_ms = int(time.time() * 1000)
    grant_id = (await api.post("/v1/grants", json=grant_body(["veh-a1"], ["track"], now_ms),
                               headers=admin)).json()["grant_id"]  # fmt: skip
    for username, status in (("insurer-x-admin", 404), ("fleet-a-analyst", 403)):
        answer = await api.post(f"/v1/grants/{grant_id}/revoke",
                                headers=await bearer(api, username))  # fmt: skip
        assert answer.status_code == status
    revoked = await api.post(f"/v1/grants/{grant_id}/revoke", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_by"] is not None
    again = await api.post(f"/v1/grants/{grant_id}/revoke", headers=admin)
    assert again.json()["revoked_at_ms"] == revoked.json()["revoked_at_ms"]


@pytest.mark.usefixtures("devices")
async def test_status_is_active_expired_revoked_or_pending(api: httpx.AsyncClient) -> None:
    admin = await bearer(api, "fleet-a-admin")
    now_ms = int(time.time() * 1000)
    periods = {
        "active": (now_ms - DAY_MS, now_ms + DAY_MS),
        "expired": (now_ms - 2 * DAY_MS, now_ms - DAY_MS),
        "pending": (now_ms + DAY_MS, now_ms + 2 * DAY_MS),
        "revoked": (now_ms - DAY_MS, now_ms + DAY_MS),
    }
    ids = {}
    for name, (start, end) in periods.items():
        body = grant_body(["veh-a1"], ["track"], now_ms, valid_from_ms=start, valid_until_ms=end)
        answer = await api.post("/v1/grants", json=body, headers=admin)
        assert answer.status_code == 201, answer.text
        ids[answer.json()["grant_id"]] = name
    revoke = next(g for g, name in ids.items() if name == "revoked")
    assert (await api.post(f"/v1/grants/{revoke}/revoke", headers=admin)).status_code == 200
    listed = (await api.get("/v1/grants", headers=admin)).json()
    assert {g["grant_id"]: g["status"] for g in listed} == ids
