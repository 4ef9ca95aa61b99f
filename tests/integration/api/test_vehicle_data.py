"""Vehicle data on the real PostgreSQL: the track, the odometer history and the export, each
against rows stored in a scratch schema, page by page, with their bounds and who may read
them (owner, grantee with or without the scope, expired or revoked grant, stranger, roles)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pandas as pd
import pytest

from contracts.access import Role
from roadledger.db.telemetry_read import export_batches
from roadledger.identity.members import create_member
from tests.integration.api.conftest import PASSWORD, bearer
from tests.integration.api.telemetry_rows import (
    DAY_MS,
    HOUR_MS,
    Fleet,
    Row,
    grant,
    seed,
)

pytestmark = [pytest.mark.postgres]

Params = dict[str, str | int]


@dataclass
class World:
    """The stored fleet and a logged-in header for each caller the tests need."""

    fleet: Fleet
    headers: dict[str, dict[str, str]]

    def query(self, **extra: str | int) -> Params:
        return {"from_ms": self.fleet.start_ms, "to_ms": self.fleet.end_ms, **extra}


@pytest.fixture
async def world(api: httpx.AsyncClient, api_pool: asyncpg.Pool) -> World:
    fleet = await seed(api_pool)
    async with api_pool.acquire() as conn:
        await create_member(conn, "fleet-a", "fleet-a-ops", PASSWORD, [Role.OPERATOR])
        await create_member(conn, "fleet-a", "fleet-a-witness", PASSWORD, [Role.WITNESS])
    users = [
        "fleet-a-admin", "fleet-a-analyst", "fleet-a-ops", "fleet-a-witness", "fleet-b-admin",
        "insurer-x-agent", "police-analyst", "ops",
    ]  # fmt: skip
    headers = {user: await bearer(api, user) for user in users}
    now = int(time.time() * 1000)
    owner = headers["fleet-a-admin"]
    # insurer-x: two active grants, track and export, neither for mileage.
    await grant(api, owner, "insurer-x", ["track"], from_ms=now - DAY_MS, until_ms=now + DAY_MS)
    await grant(api, owner, "insurer-x", ["export"], from_ms=now - DAY_MS, until_ms=now + DAY_MS)
    await grant(api, owner, "police", ["track", "mileage", "export"],
                from_ms=now - 2 * DAY_MS, until_ms=now - DAY_MS)  # fmt: skip
    revoked = await grant(
        api, owner, "fleet-b", ["track", "mileage", "export"], from_ms=now - DAY_MS,
        until_ms=now + DAY_MS,
    )  # fmt: skip
    answer = await api.post(f"/v1/grants/{revoked}/revoke", headers=owner)
    assert answer.status_code == 200, answer.text
    return World(fleet, headers)


async def _all_pages(
    api: httpx.AsyncClient, url: str, headers: dict[str, str], params: Params, key: str
) -> tuple[list[Any], int]:
    """Every item of every page, and how many pages there were."""
    items: list[Any] = []
    pages = 0
    cursor = None
    while True:
        answer = await api.get(
            url, headers=headers, params={**params, **({"cursor": cursor} if cursor else {})}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        items += body[key]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def _feature(row: Row) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [row.lon_e7 / 1e7, row.lat_e7 / 1e7]},
        "properties": {
            "seq": row.seq, "ts_ms": row.ts_ms, "lat_e7": row.lat_e7, "lon_e7": row.lon_e7,
            "odo_m": row.odo_m, "spd_cms": row.spd_cms, "hdg_cdeg": row.hdg_cdeg,
            "segment_id": row.segment_id,
        },
    }  # fmt: skip


async def test_the_track_is_every_stored_position_in_order_across_pages(
    api: httpx.AsyncClient, world: World
) -> None:
    url = "/v1/vehicles/veh-a1/track"
    headers = world.headers["fleet-a-analyst"]
    first = await api.get(url, headers=headers, params=world.query(limit=5))
    assert first.headers["content-type"] == "application/geo+json"
    assert first.json()["type"] == "FeatureCollection"
    features, pages = await _all_pages(api, url, headers, world.query(limit=5), "features")
    assert pages == 8  # 37 rows, 5 a page
    assert features == [_feature(r) for r in world.fleet.rows], "no repeat, no skip, no other"
    # The window is half-open, in device time.
    third = world.fleet.rows[2].ts_ms
    narrow: Params = {"from_ms": world.fleet.start_ms, "to_ms": third}
    features, _ = await _all_pages(api, url, headers, narrow, "features")
    assert [f["properties"]["seq"] for f in features] == [r.seq for r in world.fleet.rows[:2]]


def _buckets(fleet: Fleet, span: int) -> list[dict[str, int]]:
    """What the mileage route should say: each message's change from the one before it
    (the first compared with the reading before the window) in its bucket."""
    found: dict[int, dict[str, int]] = {}
    previous = fleet.before.odo_m
    for row in fleet.rows:
        assert row.odo_m is not None
        assert previous is not None
        delta, previous = row.odo_m - previous, row.odo_m
        start = row.ts_ms // span * span
        b = found.setdefault(start, {
            "start_ms": start, "end_ms": start + span, "first_odo_m": row.odo_m,
            "last_odo_m": row.odo_m, "min_odo_m": row.odo_m, "max_odo_m": row.odo_m,
            "distance_m": 0, "rollback_m": 0, "messages": 0,
        })  # fmt: skip
        b["last_odo_m"] = row.odo_m
        b["min_odo_m"] = min(b["min_odo_m"], row.odo_m)
        b["max_odo_m"] = max(b["max_odo_m"], row.odo_m)
        b["distance_m"] += max(delta, 0)
        b["rollback_m"] += max(-delta, 0)
        b["messages"] += 1
    return [found[k] for k in sorted(found)]


@pytest.mark.parametrize(
    ("resolution", "span", "limit"), [("day", DAY_MS, 1), ("hour", HOUR_MS, 2)]
)
async def test_the_mileage_is_the_odometer_per_bucket_across_pages(
    api: httpx.AsyncClient, world: World, resolution: str, span: int, limit: int
) -> None:
    items, pages = await _all_pages(
        api, "/v1/vehicles/veh-a1/mileage", world.headers["fleet-a-admin"],
        world.query(resolution=resolution, limit=limit), "items",
    )  # fmt: skip
    expected = _buckets(world.fleet, span)
    assert items == expected
    assert pages == -(-len(expected) // limit)
    assert sum(b["rollback_m"] for b in items) == 300
    last, before = world.fleet.rows[-1].odo_m, world.fleet.before.odo_m
    assert last is not None
    assert before is not None
    assert sum(b["distance_m"] - b["rollback_m"] for b in items) == last - before


async def _export(api: httpx.AsyncClient, world: World, user: str, fmt: str) -> httpx.Response:
    answer = await api.get(
        "/v1/vehicles/veh-a1/export", headers=world.headers[user], params=world.query(format=fmt)
    )
    assert answer.status_code == 200, answer.text
    return answer


def _parsed(value: str, kind: type) -> object:
    return None if value == "" else kind(value)


async def test_the_csv_export_is_exactly_the_stored_rows(
    api: httpx.AsyncClient, world: World
) -> None:
    answer = await _export(api, world, "fleet-a-analyst", "csv")
    assert answer.headers["content-type"].startswith("text/csv")
    name = f"veh-a1_{world.fleet.start_ms}_{world.fleet.end_ms}.csv"
    assert answer.headers["content-disposition"] == f'attachment; filename="{name}"'
    reader = csv.DictReader(io.StringIO(answer.text))
    types = {name: int for name in Row.__dataclass_fields__} | {"device_id": str, "leaf_hash": str}
    rows = [Row(**{k: _parsed(v, types[k]) for k, v in line.items()}) for line in reader]  # type: ignore[arg-type]
    assert rows == world.fleet.rows


async def test_the_parquet_export_reads_back_with_pandas(
    api: httpx.AsyncClient, world: World
) -> None:
    answer = await _export(api, world, "fleet-a-admin", "parquet")
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    assert answer.headers["content-disposition"].endswith('.parquet"')
    frame = pd.read_parquet(io.BytesIO(answer.content), dtype_backend="numpy_nullable")
    assert list(frame.columns) == list(Row.__dataclass_fields__)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert [Row(**r) for r in records] == world.fleet.rows


async def test_an_empty_window_exports_only_the_header(
    api: httpx.AsyncClient, world: World
) -> None:
    answer = await api.get(
        "/v1/vehicles/veh-a1/export", headers=world.headers["fleet-a-admin"],
        params={"from_ms": 0, "to_ms": DAY_MS},
    )  # fmt: skip
    assert answer.status_code == 200
    assert answer.text == ",".join(Row.__dataclass_fields__) + "\n"


ROUTES = ["track", "mileage", "export"]
_COMMON: list[tuple[Params, str]] = [
    ({"to_ms": 1_000}, "query.from_ms"),
    ({"from_ms": 1_000}, "query.to_ms"),
    ({"from_ms": 2_000, "to_ms": 1_000}, "to_ms"),
    ({"from_ms": 1_000, "to_ms": 1_000}, "to_ms"),
    ({"from_ms": 0, "to_ms": 32 * DAY_MS}, "to_ms"),
]
_PAGED: list[tuple[Params, str]] = [
    ({"from_ms": 0, "to_ms": DAY_MS, "cursor": "bm90IGEgY3Vyc29y"}, "cursor"),
    ({"from_ms": 0, "to_ms": DAY_MS, "cursor": "%%%"}, "cursor"),
    ({"from_ms": 0, "to_ms": DAY_MS, "limit": 0}, "query.limit"),
]
BAD = (
    [(route, params, field) for route in ROUTES for params, field in _COMMON]
    + [(route, params, field) for route in ("track", "mileage") for params, field in _PAGED]
    + [
        ("export", {"from_ms": 0, "to_ms": DAY_MS, "format": "xlsx"}, "query.format"),
        ("mileage", {"from_ms": 0, "to_ms": DAY_MS, "resolution": "week"}, "query.resolution"),
        ("track", {"from_ms": 0, "to_ms": DAY_MS, "cursor": "WzEsInR3byJd"}, "cursor"),
    ]
)


@pytest.fixture
async def owner(api: httpx.AsyncClient, api_pool: asyncpg.Pool) -> dict[str, str]:
    """Headers of fleet-a's admin, veh-a1 stored."""
    await seed(api_pool)
    return await bearer(api, "fleet-a-admin")


@pytest.mark.parametrize(("route", "params", "field"), BAD)
async def test_a_bad_window_or_parameter_is_422_naming_the_field(
    api: httpx.AsyncClient, owner: dict[str, str], route: str, params: Params,
    field: str,
) -> None:  # fmt: skip
    answer = await api.get(f"/v1/vehicles/veh-a1/{route}", headers=owner, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(f"{field}:"), answer.json()


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        ("fleet-a-analyst", {"track": 200, "mileage": 200, "export": 200}),
        ("fleet-a-admin", {"track": 200, "mileage": 200, "export": 200}),
        ("insurer-x-agent", {"track": 200, "mileage": 403, "export": 200}),  # no mileage grant
        ("police-analyst", {"track": 403, "mileage": 403, "export": 403}),  # grant expired
        ("fleet-b-admin", {"track": 403, "mileage": 403, "export": 403}),  # grant revoked
        ("ops", {"track": 404, "mileage": 404, "export": 404}),  # never granted
        ("fleet-a-ops", {"track": 403, "mileage": 403, "export": 403}),  # no data role
        ("fleet-a-witness", {"track": 403, "mileage": 403, "export": 403}),
    ],
)
async def test_who_may_read_a_vehicle(
    api: httpx.AsyncClient, world: World, user: str, allowed: dict[str, int]
) -> None:
    for route in ROUTES:
        answer = await api.get(
            f"/v1/vehicles/veh-a1/{route}", headers=world.headers[user], params=world.query()
        )
        assert answer.status_code == allowed[route], (route, answer.text)
        if answer.status_code == 404:
            assert answer.json() == {"detail": "no device 'veh-a1' is visible to you"}
        if answer.status_code == 403:
            assert answer.json()["detail"], "a 403 says why"
        if answer.status_code == 200 and route != "export":
            assert answer.json()["next_cursor"] is None


async def test_an_unknown_device_is_404_like_one_not_granted(
    api: httpx.AsyncClient, world: World
) -> None:
    answer = await api.get(
        "/v1/vehicles/veh-none/track", headers=world.headers["fleet-a-admin"],
        params=world.query(),
    )  # fmt: skip
    assert answer.status_code == 404
    fleet_b = await api.get(
        "/v1/vehicles/veh-b1/track", headers=world.headers["fleet-a-admin"], params=world.query()
    )
    assert fleet_b.status_code == 404


async def test_the_export_reads_batch_by_batch(api_pool: asyncpg.Pool) -> None:
    """The CSV stream is fed by a server-side cursor, a batch at a time, never the whole
    window at once."""
    fleet = await seed(api_pool)
    batches = [
        batch
        async for batch in export_batches(
            api_pool, "veh-a1", fleet.start_ms, fleet.end_ms, batch=10
        )
    ]
    assert [len(b) for b in batches] == [10, 10, 10, 7]
    assert [Row(*row) for b in batches for row in b] == fleet.rows
