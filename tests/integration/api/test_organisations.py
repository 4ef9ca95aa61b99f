"""Organisations and members through the API: who may create what, and the refusals that name
their reason (409 for a duplicate, 422 naming the field, 403 for the wrong caller)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.api.conftest import PASSWORD, bearer, login

pytestmark = [pytest.mark.postgres]

AREA = [[523000000, 133000000], [523000000, 135000000], [525000000, 134000000]]


def _org(org_id: str, kind: str = "authority", **extra: Any) -> dict[str, Any]:
    return {"org_id": org_id, "name": org_id.title(), "kind": kind, **extra}


async def test_an_operator_admin_creates_any_organisation(api: httpx.AsyncClient) -> None:
    headers = await bearer(api, "ops")
    made = await api.post("/v1/organisations", json=_org("ins-new", "insurer"), headers=headers)
    assert made.status_code == 201, made.text
    assert (made.json()["org_id"], made.json()["kind"], made.json()["parent_id"]) == (
        "ins-new", "insurer", None,
    )  # fmt: skip
    area = await api.post(
        "/v1/organisations", json=_org("police-east", jurisdiction=AREA), headers=headers
    )
    assert area.status_code == 201, area.text
    assert area.json()["jurisdiction"] == AREA
    listed = await api.get("/v1/organisations", headers=headers)
    assert {"ins-new", "police-east"} <= {o["org_id"] for o in listed.json()}
    one = await api.get("/v1/organisations/police-east", headers=headers)
    assert one.json()["jurisdiction"] == AREA
    assert (await api.get("/v1/organisations/none", headers=headers)).status_code == 404


async def test_an_authority_admin_creates_district_units_only_under_itself(
    api: httpx.AsyncClient,
) -> None:
    police = await bearer(api, "police-admin")
    unit = await api.post(
        "/v1/organisations", json=_org("police-d1", parent_id="police"), headers=police
    )
    assert unit.status_code == 201, unit.text
    assert unit.json()["parent_id"] == "police"
    # Under its own unit, too.
    sub = await api.post(
        "/v1/organisations", json=_org("police-d1a", parent_id="police-d1"), headers=police
    )
    assert sub.status_code == 201, sub.text
    for body in (
        _org("police-x", "insurer", parent_id="police"),  # not an authority
        _org("police-y"),  # no parent: not a district unit
    ):
        refused = await api.post("/v1/organisations", json=body, headers=police)
        assert refused.status_code == 403, refused.text
    ops = await bearer(api, "ops")
    other = await api.post("/v1/organisations", json=_org("police-2"), headers=ops)
    assert other.status_code == 201
    under_other = await api.post(
        "/v1/organisations", json=_org("police-z", parent_id="police-2"), headers=police
    )
    assert under_other.status_code == 403
    assert "parent_id" in under_other.json()["detail"]


async def test_a_duplicate_organisation_is_409(api: httpx.AsyncClient) -> None:
    headers = await bearer(api, "ops")
    answer = await api.post("/v1/organisations", json=_org("fleet-a", "fleet_owner"),
                            headers=headers)  # fmt: skip
    assert answer.status_code == 409
    assert "fleet-a" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        _org("p-bad1", jurisdiction=[[0, 0], [1, 1]]),  # not a polygon
        _org("p-bad2", "insurer", jurisdiction=AREA),  # only an authority has one
        _org("p-bad3", jurisdiction=[[0, 0], [10, 10], [0, 10], [10, 0]]),  # crosses itself
    ],
)
async def test_a_bad_jurisdiction_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    answer = await api.post("/v1/organisations", json=body, headers=await bearer(api, "ops"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("jurisdiction")


@pytest.mark.parametrize("username", ["fleet-a-admin", "fleet-a-analyst", "insurer-x-agent"])
async def test_others_cannot_create_organisations(api: httpx.AsyncClient, username: str) -> None:
    answer = await api.post(
        "/v1/organisations", json=_org("p-new"), headers=await bearer(api, username)
    )
    assert answer.status_code == 403


async def test_an_org_admin_or_operator_admin_adds_members(api: httpx.AsyncClient) -> None:
    body = {"username": "fleet-a-new", "password": PASSWORD, "roles": ["analyst"]}
    made = await api.post("/v1/organisations/fleet-a/members", json=body,
                          headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    assert made.status_code == 201, made.text
    assert (made.json()["org_id"], made.json()["roles"]) == ("fleet-a", ["analyst"])
    assert "password" not in made.text
    await login(api, "fleet-a-new")  # the member can log in
    by_ops = await api.post(
        "/v1/organisations/fleet-b/members",
        json=body | {"username": "fleet-b-new"},
        headers=await bearer(api, "ops"),
    )
    assert by_ops.status_code == 201
    listed = await api.get("/v1/organisations/fleet-a/members",
                           headers=await bearer(api, "fleet-a-admin"))  # fmt: skip
    assert {m["username"] for m in listed.json()} == {
        "fleet-a-admin", "fleet-a-analyst", "fleet-a-new",
    }  # fmt: skip


@pytest.mark.parametrize("username", ["fleet-b-admin", "fleet-a-analyst", "police-admin"])
async def test_others_cannot_add_or_list_members(api: httpx.AsyncClient, username: str) -> None:
    headers = await bearer(api, username)
    body = {"username": "intruder", "password": PASSWORD, "roles": ["admin"]}
    assert (await api.post("/v1/organisations/fleet-a/members", json=body,
                           headers=headers)).status_code == 403  # fmt: skip
    assert (await api.get("/v1/organisations/fleet-a/members", headers=headers)).status_code == 403


async def test_an_api_key_cannot_add_members(api: httpx.AsyncClient) -> None:
    """A key holding the admin role (here scoped to mileage, for a day) would otherwise make
    an admin who logs in and keeps everything the key was limited from."""
    request = {"label": "narrow", "roles": ["admin"], "scopes": ["mileage"], "days": 1}
    made = await api.post("/v1/api-keys", json=request, headers=await bearer(api, "fleet-a-admin"))
    assert made.status_code == 201, made.text
    body = {"username": "minted", "password": PASSWORD, "roles": ["admin"]}
    by_key = await api.post("/v1/organisations/fleet-a/members", json=body,
                            headers={"X-API-Key": made.json()["key"]})  # fmt: skip
    assert by_key.status_code == 403
    assert "logged-in" in by_key.json()["detail"]
    listed = await api.get("/v1/organisations/fleet-a/members",
                           headers={"X-API-Key": made.json()["key"]})  # fmt: skip
    assert "minted" not in {m["username"] for m in listed.json()}


async def test_a_weak_password_is_422_and_a_taken_username_409(api: httpx.AsyncClient) -> None:
    headers = await bearer(api, "fleet-a-admin")
    weak = {"username": "fleet-a-weak", "password": "short", "roles": ["analyst"]}
    answer = await api.post("/v1/organisations/fleet-a/members", json=weak, headers=headers)
    assert answer.status_code == 422
    assert "password" in answer.json()["detail"]
    assert "short" not in answer.text  # the rejected password is not echoed
    taken = {"username": "fleet-b-admin", "password": PASSWORD, "roles": ["analyst"]}
    answer = await api.post("/v1/organisations/fleet-a/members", json=taken, headers=headers)
    assert answer.status_code == 409
    assert "fleet-b-admin" in answer.json()["detail"]
