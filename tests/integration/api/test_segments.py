"""GET /v1/segments, /history and /forecasts on the real PostgreSQL: static data with the
last 5 minutes' traffic, 5-minute buckets of segment_speed_5m, the latest forecasts, and
which segments an authority sees (its jurisdiction and its units')."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.api.conftest import bearer
from tests.integration.api.places import CITY, T0, add_places, add_telemetry, middle, walk_pages
from tests.integration.test_forecast_refresh import bring_aggregate_up_to_date

pytestmark = [pytest.mark.postgres]

BUCKET_MS = 300_000
H0 = T0 // BUCKET_MS * BUCKET_MS  # a bucket two hours ago
ISSUED = [datetime.fromtimestamp(H0 / 1000, UTC) + timedelta(minutes=m) for m in (0, 5)]


@pytest.fixture
async def roads(api: httpx.AsyncClient, api_pool: asyncpg.Pool) -> None:
    await add_places(api_pool)
    now = int(time.time() * 1000) - 60_000  # inside the last 5 minutes
    at = middle(CITY)
    await add_telemetry(
        api_pool,
        [
            # Now: three vehicles on 7 (72 km/h on average), one on 9.
            ("veh-a1", 100, now, at, 7, 1000),
            ("veh-a2", 100, now, at, 7, 2000),
            ("veh-b1", 100, now, at, 7, 3000),
            ("veh-b2", 100, now, at, 9, 1500),
            # History on 7: bucket H0 with four vehicles (108 km/h), the next with two.
            ("veh-b2", 1, H0, at, 7, 9000),
            ("veh-a1", 1, H0 + 1000, at, 7, 500),
            ("veh-a2", 1, H0 + 2000, at, 7, 1500),
            ("veh-b1", 1, H0 + 3000, at, 7, 1000),
            ("veh-a1", 2, H0 + BUCKET_MS + 1000, at, 7, 1000),
            ("veh-a2", 2, H0 + BUCKET_MS + 2000, at, 7, 1000),
        ],
    )
    async with api_pool.acquire() as conn:
        await bring_aggregate_up_to_date(conn)
    rows = [
        (7, issued, horizon, issued + timedelta(minutes=horizon - 5), 40.0 + i + horizon / 100,
         5.0 + i, "lag-ridge", "window-mean")
        for i, issued in enumerate(ISSUED)
        for horizon in (15, 30, 60)
    ]  # fmt: skip
    await api_pool.executemany(
        "INSERT INTO segment_forecasts (segment_id, issued_at, horizon_min, target_at, speed_kmh, "
        "flow_vehicles, speed_method, flow_method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        rows,
    )


async def get(api: httpx.AsyncClient, username: str, path: str, **params: Any) -> Any:
    answer = await api.get(path, headers=await bearer(api, username), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_segments_carry_their_road_and_the_last_five_minutes(
    api: httpx.AsyncClient, roads: None
) -> None:
    page = await get(api, "fleet-a-analyst", "/v1/segments")
    assert page["next_cursor"] is None
    by_id = {s["segment_id"]: s for s in page["items"]}
    assert sorted(by_id) == [7, 8, 9]
    seven = by_id[7]
    a, b = middle(CITY, -1000), middle(CITY, 1000)
    assert (seven["name"], seven["road_class"], seven["speed_limit_kmh"], seven["geometry"]) == (
        "road 7", "arterial", 50, [list(a), list(b)],
    )  # fmt: skip
    assert 13 < seven["length_m"] < 14  # 0.0002 degrees of longitude at 52 N
    current = seven["current"]
    assert (current["mean_speed_kmh"], current["samples"], current["vehicles"]) == (72.0, 3, 3)
    # One vehicle: its count, not its speed.
    assert by_id[9]["current"] | {"from_ms": 0} == {
        "from_ms": 0, "mean_speed_kmh": None, "samples": 1, "vehicles": 1,
    }  # fmt: skip
    assert by_id[8]["current"]["samples"] == 0


@pytest.mark.parametrize(
    ("username", "segments"),
    [
        ("police-analyst", [7, 9]),  # its city and its unit's north
        ("north-analyst", [9]),
        ("county-analyst", [8]),
        ("insurer-x-agent", [7, 8, 9]),
        ("ops", [7, 8, 9]),
    ],
)
async def test_authorities_see_the_segments_of_their_jurisdiction(
    api: httpx.AsyncClient, roads: None, username: str, segments: list[int]
) -> None:
    page = await get(api, username, "/v1/segments")
    assert [s["segment_id"] for s in page["items"]] == segments
    for segment in (7, 8, 9):
        for what in ("history", "forecasts"):
            answer = await api.get(f"/v1/segments/{segment}/{what}",
                                   headers=await bearer(api, username))  # fmt: skip
            assert answer.status_code == (200 if segment in segments else 404), answer.text


async def test_segment_pages_follow_the_cursor(api: httpx.AsyncClient, roads: None) -> None:
    assert await walk_pages(api, "ops", "/v1/segments", "segment_id") == [7, 8, 9]


async def test_history_is_five_minute_buckets(api: httpx.AsyncClient, roads: None) -> None:
    buckets = await get(api, "police-analyst", "/v1/segments/7/history",
                        from_ms=H0, to_ms=H0 + 2 * BUCKET_MS)  # fmt: skip
    assert buckets == [
        {"from_ms": H0, "mean_speed_kmh": 108.0, "samples": 4, "vehicles": 4},
        {"from_ms": H0 + BUCKET_MS, "mean_speed_kmh": None, "samples": 2, "vehicles": 2},
    ]
    later = await get(api, "police-analyst", "/v1/segments/7/history",
                      from_ms=H0 + BUCKET_MS, to_ms=H0 + 2 * BUCKET_MS)  # fmt: skip
    assert [b["from_ms"] for b in later] == [H0 + BUCKET_MS]


async def test_forecasts_are_the_latest_issue(api: httpx.AsyncClient, roads: None) -> None:
    found = await get(api, "county-analyst", "/v1/segments/8/forecasts")
    assert found == []
    found = await get(api, "police-analyst", "/v1/segments/7/forecasts")
    issued = int(ISSUED[1].timestamp() * 1000)
    assert [(f["issued_at_ms"], f["horizon_min"], f["target_at_ms"]) for f in found] == [
        (issued, h, issued + (h - 5) * 60_000) for h in (15, 30, 60)
    ]
    assert found[0] | {"issued_at_ms": 0, "target_at_ms": 0} == {
        "issued_at_ms": 0, "horizon_min": 15, "target_at_ms": 0, "speed_kmh": 41.15,
        "flow_vehicles": 6.0, "speed_method": "lag-ridge", "flow_method": "window-mean",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/segments/7/history", {"from_ms": 10, "to_ms": 10}, "to_ms"),
        ("/v1/segments/7/history", {"from_ms": 0, "to_ms": 8 * 86_400_000}, "from_ms"),
        ("/v1/segments/7/history", {"from_ms": -1}, "query.from_ms"),
        ("/v1/segments/x/forecasts", {}, "path.segment_id"),
        ("/v1/segments", {"cursor": "WyJ4Il0"}, "cursor"),  # ["x"]
    ],
)
async def test_bad_input_is_422_naming_the_field(
    api: httpx.AsyncClient, roads: None, path: str, params: dict[str, Any], field: str
) -> None:
    answer = await api.get(path, headers=await bearer(api, "ops"), params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(field), answer.text
