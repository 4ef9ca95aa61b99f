"""The authorisation matrix (``matrix_table.TABLE``) against the real PostgreSQL: one request
per cell (route x situation), each compared with what the table says; every route of the app
is in the table and every route of the table is the app's; a read of a vehicle's data, allowed
or refused, is in the audit log with its outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from roadledger.settings import Settings
from tests.integration.api import matrix_table as t
from tests.integration.api.access_support import audit_entries
from tests.integration.api.conftest import bearer
from tests.integration.api.matrix_calls import CALLS
from tests.integration.api.matrix_world import World, build_world

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

CELLS = [
    pytest.param(route, situation, expected, id=f"{route} | {situation} -> {expected}")
    for route, row in t.TABLE.items()
    for situation, expected in row.expect.items()
]
# What a list shows of the world: the vehicle (devices) or its warning (warnings).
LISTED = {"GET /v1/devices": ("device_id", "veh-a1"), "GET /v1/warnings": ("warning_id", "w-a1")}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    async for built in build_world(settings, tmp_path_factory.mktemp("matrix")):
        yield built


async def test_the_table_names_every_route_of_the_app_and_no_other(settings: Settings) -> None:
    paths = create_app(settings).openapi()["paths"]
    routes = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}
    assert sorted(routes - set(t.TABLE)) == [], "routes the matrix does not cover"
    assert sorted(set(t.TABLE) - routes) == [], "routes in the matrix the app does not have"
    assert set(CALLS) == set(t.TABLE), "each route needs a request in matrix_calls.CALLS"
    assert len(CELLS) > 400


async def _send(world: World, route: str, situation: str) -> httpx.Response:
    method, template = route.split(" ", 1)
    row = t.TABLE[route]
    request = CALLS[route](world, situation)
    headers = dict(request.headers)
    if situation == t.FRESH_SESSION:
        headers |= await bearer(world.api, "fleet-a-analyst")
    else:
        headers |= world.headers(situation, row.scope)
    url = template.format(**request.path)
    return await world.api.request(
        method, url, params=request.params, json=request.json, content=request.content,
        data=request.data, headers=headers,
    )  # fmt: skip


async def _last_index(world: World) -> int:
    found = await world.pool.fetchval("SELECT coalesce(max(leaf_index), -1) FROM audit_entries")
    return int(found)


@pytest.mark.parametrize(("route", "situation", "expected"), CELLS)
async def test_cell(world: World, route: str, situation: str, expected: t.Expect) -> None:
    before = await _last_index(world)
    answer = await _send(world, route, situation)
    status = 200 if expected in (t.LISTS, t.OMITS) else expected
    assert answer.status_code == status, f"{route} as {situation}: {answer.text[:300]}"
    if route in LISTED and expected in (t.LISTS, t.OMITS):
        key, wanted = LISTED[route]
        shown = [item[key] for item in answer.json()["items"]]
        assert (wanted in shown) == (expected == t.LISTS), shown
    row = t.TABLE[route]
    if row.audited and status != 401:
        # A refused read is in the audit log as such; an allowed one as read (an authority
        # sees a warning by where it happened, after its device read was refused: not_found).
        outcome = {403: "forbidden", 404: "not_found"}.get(int(status), "ok")
        if situation == t.AUTHORITY:
            outcome = "not_found"
        new = [e for e in await audit_entries(world.pool, "data_access") if e["index"] > before]
        found = [(e.get("action"), e.get("scope"), e.get("outcome")) for e in new]
        assert (route, str(row.scope), outcome) in found, found


async def test_every_cell_is_a_request_with_credentials_of_its_situation(world: World) -> None:
    """The situations are who the table says: each credential authenticates as its member
    or key (a typo in the world would otherwise pass as 401 or 403)."""
    seen: dict[str, Any] = {}
    for situation in {s for row in t.TABLE.values() for s in row.expect}:
        headers = world.headers(situation, None)
        if not headers:
            continue
        me = await world.api.get("/v1/auth/me", headers=headers)
        assert me.status_code == 200, situation
        seen[situation] = me.json()
    assert seen[t.OWNER_ADMIN]["org_id"] == "fleet-a"
    assert seen[t.GRANTEE_EXPIRED]["org_id"] == "insurer-exp"
    assert seen[t.NO_DATA_ROLE]["roles"] == ["operator"]
    assert seen[t.KEY_SCOPED]["via"] == "api_key"
