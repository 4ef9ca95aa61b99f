"""The authorisation matrix (``matrix_table``) against the real PostgreSQL: one request per
cell, every route x every situation, each compared with what the table says; every route of
the app is in the table and every route of the table is the app's; a read of a vehicle's data,
allowed or refused, is in the audit log with its outcome. The matrix can fail: an access check
removed from the app, or a rule of the table widened, fails the cells it decides."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from api.routes import organisations
from contracts.access import Scope
from roadledger.identity import visibility
from roadledger.identity.grants import Grant
from roadledger.settings import Settings
from tests.integration.api import matrix_docs
from tests.integration.api import matrix_table as t
from tests.integration.api.access_support import audit_entries
from tests.integration.api.conftest import bearer
from tests.integration.api.matrix_calls import CALLS
from tests.integration.api.matrix_world import World, build_world

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]

CELLS = [
    pytest.param(route, situation, expected, id=f"{route} | {situation} -> {expected}")
    for route, situation, expected in t.cells()
]
# What a list shows of the world: the vehicle, its warning, the segment in police's city,
# fleet-a's grant to insurer-x, one of fleet-a's API keys, an audit entry about its vehicle.
LISTED: Mapping[str, tuple[str, Callable[[World], object]]] = {
    "GET /v1/devices": ("device_id", lambda w: "veh-a1"),
    "GET /v1/warnings": ("warning_id", lambda w: "w-a1"),
    "GET /v1/segments": ("segment_id", lambda w: 7),
    "GET /v1/grants": ("grant_id", lambda w: w.ids["grant_id"]),
    "GET /v1/api-keys": ("key_id", lambda w: w.ids["listed_key_id"]),
    "GET /v1/audit": ("index", lambda w: w.ids["audit_index"]),
}
WARNING = "GET /v1/warnings/{warning_id}"
TRACK = "GET /v1/vehicles/{device_id}/track"


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
    assert len(CELLS) == len(t.TABLE) * len(t.SITUATIONS)


async def test_each_exception_names_a_situation_and_departs_from_its_rule() -> None:
    for route, row in t.TABLE.items():
        for situation, expected in row.exceptions.items():
            assert row.rule(t.SITUATIONS[situation]) != expected, (route, situation)


async def test_docs_show_the_situations_and_rules_of_the_table() -> None:
    """``docs/api.md`` shows the table's situations and rules as ``matrix_docs`` makes them."""
    shown = (Path(__file__).parents[3] / "docs" / "api.md").read_text()
    for table in (matrix_docs.situations(), matrix_docs.rules()):
        assert table in shown, "run python -m tests.integration.api.matrix_docs"


async def _send(world: World, route: str, situation: str) -> httpx.Response:
    method, template = route.split(" ", 1)
    row = t.TABLE[route]
    made = CALLS[route](world, situation)
    request = await made if inspect.isawaitable(made) else made
    headers = dict(request.headers)
    user = world.user(situation, row.scope)
    if row.fresh and user is not None and not t.SITUATIONS[situation].ended:
        headers |= await bearer(world.api, user)  # the request ends this session
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


async def mismatch(world: World, route: str, situation: str, expected: t.Expect) -> str | None:
    """How the cell's answer departs from ``expected``; None when it does not."""
    row = t.TABLE[route]
    before = await _last_index(world) if row.audited else -1
    answer = await _send(world, route, situation)
    status = 200 if expected in (t.LISTS, t.OMITS) else int(expected)
    if answer.status_code != status:
        return f"{route} as {situation}: {answer.status_code} {answer.text[:300]}"
    if route in LISTED and expected in (t.LISTS, t.OMITS):
        key, wanted_in = LISTED[route]
        wanted = wanted_in(world)
        items = answer.json()
        shown = [item[key] for item in (items if isinstance(items, list) else items["items"])]
        if (wanted in shown) != (expected == t.LISTS):
            return f"{route} as {situation}: {expected}, but the items are {shown}"
    if row.audited and status != 401:
        # A refused read is in the audit log as such; an allowed one as read (an authority
        # sees a warning by where it happened, after its device read was refused: not_found).
        outcome = {403: "forbidden", 404: "not_found"}.get(status, "ok")
        by_grant = t.SITUATIONS[situation].vehicle in (t.Vehicle.OWNER, t.Vehicle.GRANTED)
        if route == WARNING and outcome == "ok" and not by_grant:
            outcome = "not_found"
        new = await audit_entries(world.pool, "data_access", after=before)
        found = [(e.get("action"), e.get("scope"), e.get("outcome")) for e in new]
        if (route, str(row.scope), outcome) not in found:
            return f"{route} as {situation}: not in the audit log as {outcome}: {found}"
    return None


@pytest.mark.parametrize(("route", "situation", "expected"), CELLS)
async def test_cell(world: World, route: str, situation: str, expected: t.Expect) -> None:
    assert await mismatch(world, route, situation, expected) is None


async def test_every_situation_authenticates_as_who_the_table_says(world: World) -> None:
    """Each credential is its situation's member or key (a typo in the world would otherwise
    pass as a 401 or a 403)."""
    for name, situation in t.SITUATIONS.items():
        headers = world.headers(name, None)
        assert bool(headers) == (situation.authenticated or situation.ended), name
        if situation.ended:
            me = await world.api.get("/v1/auth/me", headers=headers)
            assert me.status_code == 401, name  # credentials that were good
        if not situation.authenticated:
            continue
        me = (await world.api.get("/v1/auth/me", headers=headers)).json()
        if situation.org != "insurer-y/z":
            assert me["org_id"] == situation.org, name
        assert me["org_kind"] == situation.kind, name
        assert set(me["roles"]) == set(situation.roles), name
        assert me["via"] == ("api_key" if situation.key else "session"), name


async def _failing(world: World, table: t.Table, routes: set[str]) -> set[tuple[str, str]]:
    return {
        (route, situation)
        for route, situation, expected in t.cells(table)
        if route in routes and await mismatch(world, route, situation, expected) is not None
    }


def _differ(wider: t.Table, routes: set[str]) -> set[tuple[str, str]]:
    return {
        (r, s) for r in routes for s in t.SITUATIONS if wider[r].expect(s) != t.TABLE[r].expect(s)
    }


async def test_a_grant_whose_period_is_not_checked_fails_the_pending_and_expired_cells(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remove one check from the app (a grant's validity period) and the cells fail."""
    monkeypatch.setattr(Grant, "status", lambda g, now: "revoked" if g.revoked_at_ms else "active")
    routes = {TRACK, "GET /v1/vehicles/{device_id}/mileage"}
    failing = await _failing(world, t.TABLE, routes)
    assert failing == {(r, s) for r in routes for s in ("grantee-pending", "grantee-expired")}


async def test_a_parent_authority_that_no_longer_sees_its_units_fails_its_cells(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remove the hierarchy from what an authority sees (its units' jurisdictions): the
    parent's cells of the located routes fail, and no other."""

    async def itself(conn: object, org_id: str) -> list[str]:
        return [org_id]

    monkeypatch.setattr(visibility, "descendants", itself)
    located = {r for r in t.TABLE if "segment" in r or r.startswith("GET /v1/warn")}
    # The feeds are refused or not: no places in their answers here.
    routes = located - {"GET /v1/warnings/stream", "GET /v1/segments/stream"}
    assert WARNING in routes
    assert len(routes) == 5
    assert await _failing(world, t.TABLE, routes) == {(r, "authority-parent") for r in routes}


async def test_members_without_the_admin_check_fail_every_refused_cell(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Remove ``require_org_admin`` from the members list: every 403 cell of it fails."""
    monkeypatch.setattr(organisations, "require_org_admin", lambda principal, org_id: None)
    route = "GET /v1/organisations/{org_id}/members"
    refused = {(route, s) for s in t.SITUATIONS if t.TABLE[route].expect(s) == 403}
    assert len(refused) > 10
    assert await _failing(world, t.TABLE, {route}) == refused


async def test_a_widened_rule_fails_the_cells_it_widens(world: World) -> None:
    """The table, not only the app, is held to the cells: say any member may read a track, or
    that an expired grant still opens one, and the app's answers fail those cells."""
    widened = {**t.TABLE, TRACK: t.read(Scope.TRACK, t.member)}
    assert len(_differ(widened, {TRACK})) > 10
    assert await _failing(world, widened, {TRACK}) == _differ(widened, {TRACK})
    row = t.TABLE[TRACK]
    excepted = {**t.TABLE, TRACK: t.Row(row.rule, row.ok, row.scope, row.audited,
                                         {"grantee-expired": t.OK})}  # fmt: skip
    assert await _failing(world, excepted, {TRACK}) == {(TRACK, "grantee-expired")}
