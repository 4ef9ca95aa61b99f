"""A cast with places, for the warnings and segments tests: three jurisdictions (the
``police`` authority, its district unit ``police-north``, an unrelated ``county``), vehicles
of two fleets, road segments in each area, and helpers to store telemetry and warnings."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from analytics.warnings.model import Evidence, Severity, Warning, WarningType
from analytics.warnings.store import store_warnings
from contracts.access import OrgKind, Role
from contracts.roads import RoadClass, RoadSegment, save_segments
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from tests.integration.api.conftest import PASSWORD, bearer

Vertex = tuple[int, int]


def square(lat_e7: int, lon_e7: int) -> list[Vertex]:
    """A 0.1-degree square with its south-west corner at the point."""
    d = 1_000_000
    return [(lat_e7, lon_e7), (lat_e7, lon_e7 + d), (lat_e7 + d, lon_e7 + d), (lat_e7 + d, lon_e7)]


CITY = square(520_000_000, 130_000_000)  # police's own
NORTH = square(522_000_000, 130_000_000)  # police-north's, a unit of police
COUNTY = square(530_000_000, 130_000_000)  # county's, unrelated
NOWHERE = (540_500_000, 130_500_000)  # in no jurisdiction


def middle(area: Sequence[Vertex], shift: int = 0) -> Vertex:
    """A point well inside ``area`` (``shift`` moves it east by that many 1e-7 degrees)."""
    return area[0][0] + 500_000, area[0][1] + 500_000 + shift


SEGMENTS = {  # segment id -> area of its midpoint
    7: CITY,
    8: COUNTY,
    9: NORTH,
}
DEVICES = {"veh-a1": "fleet-a", "veh-b1": "fleet-b", "veh-b2": "fleet-b", "veh-a2": "fleet-a"}
T0 = (int(time.time() * 1000) // 60_000 - 120) * 60_000  # two hours ago, a whole minute


def leaf(device_id: str, seq: int) -> bytes:
    return hashlib.sha256(f"{device_id}:{seq}".encode()).digest()


async def add_places(pool: asyncpg.Pool) -> None:
    """The jurisdictions, their analysts, the devices and the segments."""
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE organisations SET jurisdiction = $1 WHERE org_id = 'police'",
            json.dumps([list(v) for v in CITY]),
        )
        await create_organisation(
            conn, "police-north", "North", OrgKind.AUTHORITY, parent_id="police",
            jurisdiction=[list(v) for v in NORTH],
        )  # fmt: skip
        await create_organisation(
            conn, "county", "County", OrgKind.AUTHORITY, jurisdiction=[list(v) for v in COUNTY]
        )
        await create_member(conn, "police-north", "north-analyst", PASSWORD, [Role.ANALYST])
        await create_member(conn, "county", "county-analyst", PASSWORD, [Role.ANALYST])
        await conn.executemany(
            "INSERT INTO devices (device_id, owner_org, kind, vehicle_class) "
            "VALUES ($1, $2, 'vehicle', 'car')",
            sorted(DEVICES.items()),
        )
        await save_segments(
            conn,
            [
                RoadSegment(sid, f"road {sid}", RoadClass.ARTERIAL, 50, *middle(area, -1000),
                            *middle(area, 1000))
                for sid, area in SEGMENTS.items()
            ],
        )  # fmt: skip


async def add_telemetry(
    pool: asyncpg.Pool,
    points: Sequence[tuple[str, int, int, Vertex, int | None, int | None]],
) -> None:
    """Telemetry rows: (device, seq, ts_ms, (lat_e7, lon_e7), segment_id, spd_cms)."""
    rows = []
    for device, seq, ts_ms, (lat, lon), segment, spd in points:
        ts = datetime.fromtimestamp(ts_ms / 1000, UTC)
        rows.append((device, seq, ts, ts, 1000 + seq, lat, lon, spd, 0, segment, leaf(device, seq)))
    await pool.executemany(
        "INSERT INTO telemetry (device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, spd_cms, "
        "hdg_cdeg, segment_id, leaf_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        rows,
    )


def warning(
    name: str,
    kind: WarningType,
    device_id: str | None,
    seqs: Sequence[int],
    from_ms: int,
    *,
    segment_id: int | None = None,
    severity: Severity = Severity.WARNING,
) -> Warning:
    """A warning whose id is ``name`` and whose evidence is ``device_id``'s ``seqs``."""
    cited = device_id or "veh-a2"
    return Warning(
        name,
        kind,
        severity,
        device_id,
        segment_id,
        from_ms,
        from_ms + 5_000,
        "builtin@0",
        tuple(Evidence(cited, s, leaf(cited, s), f"raw:0:{s}") for s in seqs),
        {"n": len(seqs)},
    )


async def add_warnings(pool: asyncpg.Pool, warnings: Sequence[Warning]) -> None:
    await store_warnings(pool, warnings)


async def walk_pages(api: httpx.AsyncClient, username: str, path: str, key: str) -> list[Any]:
    """``key`` of every item of a list, one item per page, following ``next_cursor``."""
    headers = await bearer(api, username)
    seen: list[Any] = []
    cursor = None
    for _ in range(20):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        answer = await api.get(path, headers=headers, params=params)
        assert answer.status_code == 200, answer.text
        seen += [item[key] for item in answer.json()["items"]]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError(f"{path}: more than 20 pages")
