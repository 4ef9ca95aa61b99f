"""``GET /v1/segments/stream`` on the real PostgreSQL, served by ``roadledger api serve``: a
snapshot of the segments the caller sees (those ``GET /v1/segments`` lists), then the
segments whose speed, flow or state changed in the store; an authority sees nothing outside
its and its units' jurisdictions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest

from api.routes.segment_feed import state_of
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.integration.api.places import CITY, COUNTY, NORTH, add_places, add_telemetry, middle
from tests.integration.api.sse import Feed
from tests.support.pipeline import wait_until
from tests.support.served import served_api

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

PATH = "/v1/segments/stream"


@dataclass
class Seen:
    """The events of one open stream, read by a task: each event's items, by segment id."""

    events: list[dict[int, dict[str, Any]]] = field(default_factory=list)

    def latest(self) -> dict[int, dict[str, Any]]:
        return {k: v for event in self.events for k, v in event.items()}


@asynccontextmanager
async def watching(live: httpx.AsyncClient, username: str) -> AsyncIterator[Seen]:
    seen = Seen()
    async with live.stream("GET", PATH, headers=await bearer(live, username)) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")

        async def read() -> None:
            async for event in Feed(answer.aiter_lines()).events():
                assert event["event"] == "segments"
                items = json.loads(event["data"])["segments"]
                seen.events.append({item["segment_id"]: item for item in items})

        reader = asyncio.create_task(read())
        try:
            await wait_until(lambda: bool(seen.events), "the snapshot", 20, every_s=0.05)
            yield seen
        finally:
            reader.cancel()


@pytest.fixture
async def live(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with served_api(api_settings, api_pool) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


@pytest.fixture
async def now(api_pool: asyncpg.Pool) -> int:
    """Three vehicles on 7 a minute ago (72 km/h, limit 50), one on 9; none on 8."""
    await add_places(api_pool)
    at = int(time.time() * 1000) - 60_000
    await add_telemetry(api_pool, [
        ("veh-a1", 100, at, middle(CITY), 7, 1000), ("veh-a2", 100, at, middle(CITY), 7, 2000),
        ("veh-b1", 100, at, middle(CITY), 7, 3000), ("veh-b2", 100, at, middle(NORTH), 9, 1500),
    ])  # fmt: skip
    return at


def test_states_follow_the_speed_against_the_limit() -> None:
    assert [state_of(s, 50) for s in (None, 35.0, 34.9, 20.0, 19.9)] == [
        "unknown", "free", "slow", "slow", "jammed",
    ]  # fmt: skip


async def test_a_snapshot_then_the_segments_whose_state_changed(
    live: httpx.AsyncClient, api_pool: asyncpg.Pool, now: int
) -> None:
    async with watching(live, "police-analyst") as seen:
        # Its city's 7 and its unit's 9, as the list shows them: not county's 8.
        assert seen.events[0] == {
            7: {"segment_id": 7, "mean_speed_kmh": 72.0, "vehicles": 3, "state": "free"},
            9: {"segment_id": 9, "mean_speed_kmh": None, "vehicles": 1, "state": "unknown"},
        }
        listed = await live.get("/v1/segments", headers=await bearer(live, "police-analyst"))
        assert [s["segment_id"] for s in listed.json()["items"]] == [7, 9]
        # Three more vehicles crawl on 9: 18.9 km/h over four, under 40 % of 50.
        await add_telemetry(api_pool, [
            (d, 101, now + 1000, middle(NORTH), 9, 200) for d in ("veh-a1", "veh-a2", "veh-b1")
        ])  # fmt: skip
        await wait_until(
            lambda: seen.latest()[9]["state"] == "jammed", "9 jammed", 20, every_s=0.05,
            observed=seen.latest,
        )  # fmt: skip
        update = next(e for e in seen.events[1:] if 9 in e)
        assert update == {
            9: {"segment_id": 9, "mean_speed_kmh": 18.9, "vehicles": 4, "state": "jammed"}
        }  # 7 did not change: not sent again


async def test_an_authority_sees_nothing_outside_its_jurisdiction(
    live: httpx.AsyncClient, api_pool: asyncpg.Pool, now: int
) -> None:
    async with watching(live, "county-analyst") as county, watching(live, "north-analyst") as north:
        assert list(county.events[0]) == [8]
        assert list(north.events[0]) == [9]
        # One transaction changes 7 (police's city), 8 (county's) and 9 (police-north's).
        points = [(d, 102, now + 2000, middle(COUNTY), 8, 1400) for d in ("veh-a1", "veh-a2")]
        points += [("veh-b1", 102, now + 2000, middle(NORTH), 9, 100)]
        points += [("veh-b2", 102, now + 2000, middle(CITY), 7, 100)]
        await add_telemetry(api_pool, points)
        await wait_until(lambda: county.latest()[8]["vehicles"] == 2, "8 changed", 20, every_s=0.05)
        await wait_until(lambda: north.latest()[9]["vehicles"] == 2, "9 changed", 20, every_s=0.05)
        assert set(county.latest()) == {8}
        assert set(north.latest()) == {9}


async def test_others_see_every_segment_and_the_stream_needs_a_login(
    live: httpx.AsyncClient, now: int
) -> None:
    async with watching(live, "fleet-a-analyst") as seen:
        assert sorted(seen.events[0]) == [7, 8, 9]
    assert (await live.get(PATH)).status_code == 401
