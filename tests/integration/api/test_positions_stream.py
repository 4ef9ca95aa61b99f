"""``GET /v1/positions/stream`` on the real PostgreSQL: the latest position of each vehicle the
caller may track (its own, or granted ``track``), then each new one; an authority sees none
without a grant; each vehicle's first position on a stream is in the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from roadledger.identity.principal import Principal
from roadledger.positions import trackable
from roadledger.settings import Settings
from tests.integration.api.access_support import audit_entries
from tests.integration.api.conftest import bearer
from tests.integration.api.places import CITY, add_places, add_telemetry, middle
from tests.integration.api.sse import Feed
from tests.support.served import served_api

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


async def _positions(feed: Feed) -> list[dict[str, Any]]:
    event = await feed.next()
    assert event["event"] == "positions"
    found: list[dict[str, Any]] = json.loads(event["data"])["positions"]
    return found


async def _first_event(live: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    async with live.stream("GET", "/v1/positions/stream", headers=headers) as answer:
        assert answer.status_code == 200
        return await _positions(Feed(answer.aiter_lines()))


@pytest.fixture
async def live(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``roadledger api serve`` (a real process: streams end when the client
    leaves) on the test's schema."""
    async with served_api(api_settings, api_pool) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


@pytest.fixture
async def driving(live: httpx.AsyncClient, api_pool: asyncpg.Pool) -> int:
    """veh-a1 (fleet-a) and veh-b1 (fleet-b) heard a minute ago, veh-a2 an hour ago; fleet-b
    grants insurer-x ``track`` on veh-b1; the time of the latest messages."""
    api = live
    await add_places(api_pool)
    now = int(time.time() * 1000) - 60_000
    at = middle(CITY)
    await add_telemetry(api_pool, [
        ("veh-a1", 1, now - 1000, at, 7, 1000), ("veh-a1", 2, now, at, 7, 1100),
        ("veh-b1", 1, now, at, 7, 900), ("veh-a2", 1, now - 3_600_000, at, 7, 800),
    ])  # fmt: skip
    body = {"grantee_org": "insurer-x", "scopes": ["track"], "device_ids": ["veh-b1"],
            "valid_from_ms": now - 60_000, "valid_until_ms": now + 3_600_000,
            "purpose": "t"}  # fmt: skip
    made = await api.post("/v1/grants", json=body, headers=await bearer(api, "fleet-b-admin"))
    assert made.status_code == 201, made.text
    return now


async def test_each_caller_gets_the_vehicles_it_may_track_and_then_new_positions(
    live: httpx.AsyncClient, api_pool: asyncpg.Pool, driving: int
) -> None:
    headers = await bearer(live, "fleet-a-analyst")
    async with live.stream("GET", "/v1/positions/stream", headers=headers) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        feed = Feed(answer.aiter_lines())
        first = await _positions(feed)
        # Its own vehicle heard a minute ago, at its latest message; not the silent veh-a2.
        assert [(p["device_id"], p["seq"], p["ts_ms"]) for p in first] == [("veh-a1", 2, driving)]
        assert (first[0]["lat_e7"], first[0]["lon_e7"]) == middle(CITY)
        await add_telemetry(api_pool, [("veh-a1", 3, driving + 1000, middle(CITY, 500), 7, 1200)])
        # Only what changed comes next.
        assert [(p["device_id"], p["seq"]) for p in await _positions(feed)] == [("veh-a1", 3)]
    found = [
        e for e in await audit_entries(api_pool, "data_access")
        if e["action"] == "GET /v1/positions/stream"
    ]  # fmt: skip
    assert [(e["device_id"], e["scope"], e["grant_id"]) for e in found] == [
        ("veh-a1", "track", "owner")
    ]


async def test_a_grantee_sees_the_granted_vehicle_alone(
    live: httpx.AsyncClient, driving: int
) -> None:
    first = await _first_event(live, await bearer(live, "insurer-x-agent"))
    assert [p["device_id"] for p in first] == ["veh-b1"]


async def test_an_authority_sees_no_vehicle_without_a_grant(
    live: httpx.AsyncClient, api_pool: asyncpg.Pool, driving: int
) -> None:
    headers = await bearer(live, "police-analyst")
    assert await _first_event(live, headers) == []
    me = (await live.get("/v1/auth/me", headers=headers)).json()
    police = Principal(me["subject"], "police", me["org_kind"], frozenset(me["roles"]), "session")
    assert await trackable(api_pool, police) == {}


async def test_the_stream_needs_a_login(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/positions/stream")).status_code == 401
