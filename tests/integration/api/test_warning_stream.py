"""GET /v1/warnings/stream over a real HTTP server (uvicorn on a free port; httpx's in-process
transport would buffer the endless response): live events, resumption with Last-Event-ID,
jurisdiction filtering, heartbeats, and the stream ending with the client or the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from analytics.warnings.model import Warning, WarningType
from analytics.warnings.store import FeedItem, feed_warnings
from api.app import create_app
from api.routes import warning_feed
from api.server import ApiServer
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.integration.api.places import (
    CITY,
    COUNTY,
    NORTH,
    T0,
    add_places,
    add_telemetry,
    add_warnings,
    middle,
    warning,
)
from tests.integration.api.sse import WAIT_S, opened
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until

pytestmark = [pytest.mark.postgres]


@dataclass
class Live:
    """A served API and an HTTP client of it."""

    server: ApiServer
    client: httpx.AsyncClient
    task: asyncio.Task[None]


@pytest.fixture
async def live(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[Live]:
    await add_places(api_pool)
    await add_telemetry(
        api_pool,
        [
            ("veh-a1", 1, T0, middle(CITY), 7, 1500),
            ("veh-a1", 2, T0 + 1000, middle(NORTH), 9, 1500),
            ("veh-b1", 1, T0, middle(COUNTY), 8, 1500),
        ],
    )
    app = create_app(api_settings, api_pool)
    port = free_port()
    server = ApiServer(app, uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), "the API server to start", 30,
                     every_s=0.05)  # fmt: skip
    assert server.started, task
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as client:
        try:
            yield Live(server, client, task)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, WAIT_S)


async def test_live_warnings_reach_exactly_those_who_may_see_them(
    live: Live, api_pool: asyncpg.Pool
) -> None:
    async with (
        opened(live.client, "police-analyst") as police,
        opened(live.client, "county-analyst") as county,
        opened(live.client, "fleet-a-analyst") as owner,
    ):
        for w in (
            warning("w-county", WarningType.TELEPORT, "veh-b1", [1], T0),
            warning("w-city", WarningType.SPEEDING, "veh-a1", [1], T0),
            warning("w-jam", WarningType.CONGESTION, None, [1], T0, segment_id=7),
            warning("w-north", WarningType.ODOMETER_ROLLBACK, "veh-a1", [2], T0 + 1000),
            warning("w-county-2", WarningType.CONGESTION, None, [1], T0, segment_id=8),
        ):
            await add_warnings(api_pool, [w])
        # In stored order; the last of each proves the others before it were left out.
        assert await police.ids(3) == ["w-city", "w-jam", "w-north"]
        assert await county.ids(2) == ["w-county", "w-county-2"]
        assert await owner.ids(2) == ["w-city", "w-north"]


async def test_last_event_id_replays_exactly_the_missed_events(
    live: Live, api_pool: asyncpg.Pool
) -> None:
    def mine(name: str) -> list[Warning]:
        return [warning(name, WarningType.SPEEDING, "veh-a1", [1], T0)]

    async with opened(live.client, "fleet-a-analyst") as feed:
        await add_warnings(api_pool, mine("a1"))
        await add_warnings(api_pool, mine("a2"))
        first, second = await feed.next(), await feed.next()
    assert first["event"] == "warning"
    assert [json.loads(e["data"])["warning_id"] for e in (first, second)] == ["a1", "a2"]
    # Missed while away, with others' warnings in between.
    await add_warnings(api_pool, mine("a3"))
    await add_warnings(api_pool, [warning("b1", WarningType.TELEPORT, "veh-b1", [1], T0)])
    await add_warnings(api_pool, mine("a4"))
    async with opened(live.client, "fleet-a-analyst", last_event_id=second["id"]) as feed:
        replayed = [await feed.next(), await feed.next()]
        await add_warnings(api_pool, mine("a5"))
        fresh = await feed.next()
    got = [json.loads(e["data"])["warning_id"] for e in [*replayed, fresh]]
    assert got == ["a3", "a4", "a5"]
    keys = [warning_feed.parse_event_id(e["id"]) for e in [first, second, *replayed, fresh]]
    assert keys == sorted(keys)  # increasing
    assert len(set(keys)) == len(keys)


async def test_an_idle_stream_sends_heartbeats(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warning_feed, "HEARTBEAT_S", 0.2)
    async with opened(live.client, "police-analyst") as feed:
        await feed.until_comment("heartbeat")
        await feed.until_comment("heartbeat")


async def test_the_stream_ends_when_the_server_stops(live: Live) -> None:
    async with opened(live.client, "police-analyst") as feed:
        live.server.should_exit = True
        with pytest.raises(EOFError):
            await feed.next()
    await asyncio.wait_for(live.task, WAIT_S)


async def test_the_server_lets_go_when_the_client_leaves(live: Live) -> None:
    async with opened(live.client, "police-analyst"):
        assert live.server.server_state.tasks
    await wait_until(lambda: not live.server.server_state.tasks, "the stream's task to end", 10,
                     every_s=0.05)  # fmt: skip


async def test_a_malformed_last_event_id_is_422(live: Live) -> None:
    headers = await bearer(live.client, "police-analyst") | {"Last-Event-ID": "yesterday"}
    answer = await live.client.get("/v1/warnings/stream", headers=headers)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("Last-Event-ID")


async def test_a_warning_located_after_it_was_stored_still_reaches_the_authority(
    live: Live, api_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Count the feed's reads (the real ones) that begin after a point, to know one has run.
    reads_after = asyncio.Event()
    armed = False

    async def counted(*args: Any, **kwargs: Any) -> list[FeedItem]:
        started_armed = armed
        items = await feed_warnings(*args, **kwargs)
        if started_armed:
            reads_after.set()
        return items

    monkeypatch.setattr(warning_feed, "feed_warnings", counted)
    async with opened(live.client, "police-analyst") as police:
        # Analytics stored it before the store writer stored its telemetry.
        await add_warnings(api_pool, [warning("w-late", WarningType.SPEEDING, "veh-a1", [50], T0)])
        await add_warnings(
            api_pool, [warning("w-jam", WarningType.CONGESTION, None, [1], T0, segment_id=7)]
        )
        armed = True
        await asyncio.wait_for(reads_after.wait(), WAIT_S)  # the feed has read both
        await add_telemetry(api_pool, [("veh-a1", 50, T0, middle(CITY), 7, 1500)])
        assert await police.ids(2) == ["w-late", "w-jam"]


async def test_a_warning_never_located_holds_the_feed_only_for_the_grace(
    live: Live, api_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(warning_feed, "LOCATE_GRACE_S", 0.5)
    async with opened(live.client, "police-analyst") as police:
        never = warning("w-never", WarningType.UNKNOWN_DEVICE, "veh-b2", [99], T0)
        jam = warning("w-jam", WarningType.CONGESTION, None, [1], T0, segment_id=7)
        await add_warnings(api_pool, [never])
        await add_warnings(api_pool, [jam])
        assert await police.ids(1) == ["w-jam"]


def test_a_batch_is_cut_at_a_young_unlocated_warning() -> None:
    now = datetime.now(UTC)
    start = (now - timedelta(minutes=1), "")

    def item(name: str, age_s: float, visible: bool = True) -> FeedItem:
        w = warning(name, WarningType.SPEEDING, "veh-a1", [1], T0)
        return FeedItem(now - timedelta(seconds=age_s), w, visible)

    old, young, after = item("old", 30, False), item("young", 1, False), item("after", 0.5)
    assert warning_feed.ready([item("a", 40), old, item("b", 20)], start, now) == (
        [item("a", 40), item("b", 20)], (now - timedelta(seconds=20), "b"), False,
    )  # fmt: skip
    assert warning_feed.ready([item("a", 40), young, after], start, now) == (
        [item("a", 40)], (now - timedelta(seconds=40), "a"), True,
    )  # fmt: skip
