"""GET /v1/warnings/stream over a real HTTP server (uvicorn on a free port; httpx's in-process
transport would buffer the endless response): live events, resumption with Last-Event-ID,
jurisdiction filtering, heartbeats, and the stream ending with the client or the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from analytics.warnings.model import Warning, WarningType
from analytics.warnings.store import FeedItem, feed_horizon, feed_warnings
from api.app import create_app
from api.routes import warning_feed
from api.server import ApiServer
from roadledger.db.listener import TableWakeups
from roadledger.identity.visibility import Visibility
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
    app: FastAPI


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
            yield Live(server, client, task, app)
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


def no_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Feeds that poll only after a minute: what arrives sooner was pushed."""
    monkeypatch.setattr(warning_feed, "SAFETY_POLL_S", 60.0)
    monkeypatch.setattr(warning_feed, "POLL_S", 60.0)


async def listening(live: Live) -> TableWakeups:
    wakeups: TableWakeups = live.app.state.warning_wakeups
    await wait_until(lambda: wakeups.live, "the feed's listener to listen", WAIT_S, every_s=0.05)
    return wakeups


async def test_one_listening_connection_wakes_every_feed_at_once(
    live: Live, api_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_polls(monkeypatch)
    wakeups = await listening(live)
    schema = await api_pool.fetchval("SELECT current_schema()")
    async with contextlib.AsyncExitStack() as stack:
        feeds = [
            await stack.enter_async_context(opened(live.client, user))
            for user in ["fleet-a-analyst"] * 6 + ["police-analyst"] * 2
        ]
        await add_warnings(api_pool, [warning("w-push", WarningType.SPEEDING, "veh-a1", [1], T0)])
        ids = await asyncio.wait_for(asyncio.gather(*(f.ids(1) for f in feeds)), 5)
        assert ids == [["w-push"]] * len(feeds)
        listeners = await api_pool.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            f"roadledger warnings listener {schema}",
        )
        assert [r["pid"] for r in listeners] == [wakeups.backend_pid]


async def test_the_listener_heals_when_its_connection_is_lost(
    live: Live, api_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """What a PostgreSQL restart does to it (the server ends the backend), without restarting
    the shared server: its backend is terminated."""
    caplog.set_level(logging.INFO, "roadledger.api")
    no_polls(monkeypatch)
    wakeups = await listening(live)
    lost = wakeups.backend_pid
    async with opened(live.client, "fleet-a-analyst") as feed:
        assert await api_pool.fetchval("SELECT pg_terminate_backend($1)", lost)
        await wait_until(lambda: wakeups.live and wakeups.backend_pid != lost,
                         "the listener to listen again", WAIT_S, every_s=0.05)  # fmt: skip
        await add_warnings(api_pool, [warning("w-after", WarningType.SPEEDING, "veh-a1", [1], T0)])
        assert await asyncio.wait_for(feed.ids(1), 5) == ["w-after"]
    lines = [
        r.getMessage() for r in caplog.records if "roadledger_warnings listener" in r.getMessage()
    ]
    assert len(lines) == 2, lines  # the outage once when it starts, once when it ends
    assert "unavailable" in lines[0]
    assert "is back" in lines[1]


async def test_feeds_woken_together_share_the_horizon_and_identical_reads(
    api_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"horizon": 0, "read": 0}

    async def horizon(*args: Any) -> datetime:
        calls["horizon"] += 1
        return await feed_horizon(*args)

    async def read(*args: Any, **kwargs: Any) -> list[FeedItem]:
        calls["read"] += 1
        return await feed_warnings(*args, **kwargs)

    monkeypatch.setattr(warning_feed, "feed_horizon", horizon)
    monkeypatch.setattr(warning_feed, "feed_warnings", read)
    await add_places(api_pool)
    await add_warnings(api_pool, [warning("w-1", WarningType.SPEEDING, "veh-a1", [1], T0)])
    reads = warning_feed.SharedReads(api_pool)
    woken_by = asyncio.Event()
    woken_by.set()
    untils = await asyncio.gather(*(reads.horizon(woken_by) for _ in range(10)))
    assert len(set(untils)) == 1
    assert calls["horizon"] == 1
    mine, others = Visibility("fleet-a", (), ()), Visibility("fleet-b", (), ())
    # Not the horizon: other sessions' open transactions may hold it before w-1.
    until = datetime.now(UTC) + timedelta(hours=1)
    start = (until - timedelta(days=1), "")
    found = await asyncio.gather(
        *(reads.warnings(seen, start, until) for seen in [mine] * 10 + [others] * 5)
    )
    assert [[i.warning.warning_id for i in items] for items in found] == [["w-1"]] * 10 + [[]] * 5
    assert calls["read"] == 2
    await reads.horizon(None)  # not woken: a fresh horizon, shared only while under way
    await asyncio.gather(reads.horizon(None), reads.horizon(None))
    assert calls["horizon"] == 3
