"""The dashboard tests' world: a small simulated fleet driven through the pipeline's own stages
into the scratch schema (signed chained messages, registry key records, the ledger writer's
log with blocks and signed checkpoints, the store writer's telemetry and segment speeds), the
API tests' cast with places (``places.py``: jurisdictions, organisations, members), roads
across the police's city, warnings citing the stored messages, forecasts, and, once the API
serves it, a grant to the insurer and a witness's cosignature."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from analytics.warnings.model import Evidence, Severity, Warning, WarningType
from analytics.warnings.store import store_warnings
from contracts.roads import RoadClass, RoadSegment, save_segments
from roadledger.db import telemetry_schema
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.integration.api.ledger_support import Ledger
from tests.integration.api.places import CITY, add_places
from tests.integration.api.test_certificates import cosign_every_log
from tests.integration.test_forecast_refresh import bring_aggregate_up_to_date
from tests.unit.ingest.fleet import Device

__all__ = ["CARS", "ROADS", "World", "build_world"]

LAT, LON = CITY[0]  # the city's south-west corner
ROADS = (  # across the city: an east-west avenue, a north-south one, a diagonal
    RoadSegment(100, "East avenue", RoadClass.ARTERIAL, 50, LAT + 300_000, LON + 100_000,
                LAT + 300_000, LON + 900_000),
    RoadSegment(101, "North avenue", RoadClass.ARTERIAL, 50, LAT + 100_000, LON + 500_000,
                LAT + 900_000, LON + 500_000),
    RoadSegment(102, "Ring diagonal", RoadClass.MOTORWAY, 100, LAT + 100_000, LON + 100_000,
                LAT + 900_000, LON + 900_000),
)  # fmt: skip
CARS = {"car-a1": "fleet-a", "car-a2": "fleet-a", "car-a3": "fleet-a", "car-b1": "fleet-b"}
GRANTED = "car-a1"  # fleet-a grants insurer-x every scope on it
ROLLED_BACK = "car-a2"  # its odometer goes back 5 km halfway
MESSAGES = 180  # per car, one every STEP_MS: half an hour ending now
STEP_MS = 10_000


@dataclass
class World:
    """What the tests look for on the pages."""

    pool: asyncpg.Pool
    warnings: list[Warning]
    start_ms: int
    end_ms: int

    def warning_ids(self, *devices: str | None) -> set[str]:
        return {w.warning_id for w in self.warnings if w.device_id in devices}


def _position(car: int, step: int) -> dict[str, Any]:
    """Car ``car`` drives along road 100 at 50 km/h, turning at each end (no jump: its
    odometer and its positions agree)."""
    lap = (car * 97_000 + step * 20_000) % 1_580_000
    along = lap if lap < 790_000 else 1_580_000 - lap
    return {"lat_e7": LAT + 300_000, "lon_e7": LON + 105_000 + along, "spd_cms": 1_300 + car * 60}


async def _drive(pool: asyncpg.Pool, settings: Settings, end_ms: int) -> None:
    ledger = Ledger(pool, settings)
    raws: list[bytes] = []
    start = end_ms - MESSAGES * STEP_MS
    for number, (device_id, owner) in enumerate(CARS.items()):
        car = Device(device_id)
        car.records[-1] = replace(car.records[-1], owner_org=owner)
        await ledger.register(car.records)
        for step in range(MESSAGES):
            odo = (
                10_000_000 + step * 139 - (5_000 if device_id == ROLLED_BACK and step >= 90 else 0)
            )
            raws.append(car.message(start + step * STEP_MS, odo_m=odo, **_position(number, step)))
    await ledger.sequence(raws, "fleet")
    async with pool.acquire() as conn:
        if await telemetry_schema.storage_mode(conn) == telemetry_schema.MODE_TIMESCALEDB:
            await bring_aggregate_up_to_date(conn)  # partitioned: the store writer did it


async def _warnings(pool: asyncpg.Pool, end_ms: int) -> list[Warning]:
    rows = await pool.fetch(
        "SELECT device_id, seq, leaf_hash, (extract(epoch FROM ts) * 1000)::bigint AS ts_ms "
        "FROM telemetry WHERE seq IN (20, 21, 90, 91) ORDER BY device_id, seq"
    )
    cited = {(r["device_id"], r["seq"]): r for r in rows}

    def evidence(device_id: str, *seqs: int) -> tuple[Evidence, ...]:
        return tuple(
            Evidence(device_id, s, cited[(device_id, s)]["leaf_hash"], f"raw:0:{s}") for s in seqs
        )

    def made(
        kind: WarningType, device_id: str | None, seqs: tuple[int, ...], **kw: object
    ) -> Warning:
        source = device_id or "car-a3"
        at = cited[(source, seqs[0])]["ts_ms"]
        return Warning(
            uuid.uuid4().hex, kind, kw.get("severity", Severity.WARNING),  # type: ignore[arg-type]
            device_id, kw.get("segment_id"), at, at + 10_000, "builtin@0",  # type: ignore[arg-type]
            evidence(source, *seqs), {"seqs": len(seqs)},
        )  # fmt: skip

    found = [
        made(WarningType.SPEEDING, GRANTED, (20, 21)),
        made(WarningType.ODOMETER_ROLLBACK, ROLLED_BACK, (90, 91), severity=Severity.CRITICAL),
        made(WarningType.SPEEDING, "car-b1", (20,)),
        made(WarningType.CONGESTION, None, (20,), segment_id=100, severity=Severity.INFO),
    ]
    await store_warnings(pool, found)
    return found


async def _forecasts(pool: asyncpg.Pool, end_ms: int) -> None:
    issued = datetime.fromtimestamp(end_ms // 300_000 * 300 - 300, UTC)
    await pool.executemany(
        "INSERT INTO segment_forecasts (segment_id, issued_at, horizon_min, target_at, speed_kmh, "
        "flow_vehicles, speed_method, flow_method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [(100, issued, h, issued + timedelta(minutes=h), 44.0 - h / 10, 4.0, "lag-ridge",
          "window-mean") for h in (15, 30, 60)],
    )  # fmt: skip


async def build_world(pool: asyncpg.Pool, settings: Settings) -> World:
    """The data of the module docstring (all but what goes through the API)."""
    end_ms = int(time.time() * 1000)
    await add_places(pool)
    async with pool.acquire() as conn:
        await save_segments(conn, list(ROADS))
    await _drive(pool, settings, end_ms)
    found = await _warnings(pool, end_ms)
    await _forecasts(pool, end_ms)
    return World(pool, found, end_ms - MESSAGES * STEP_MS, end_ms)


async def through_the_api(url: str, pool: asyncpg.Pool) -> None:
    """fleet-a's admin grants insurer-x every scope on :data:`GRANTED`; a witness cosigns."""
    now = int(time.time() * 1000)
    async with httpx.AsyncClient(base_url=url) as client:
        body = {"grantee_org": "insurer-x", "device_ids": [GRANTED], "valid_from_ms": now - 60_000,
                "valid_until_ms": now + 86_400_000, "purpose": "policy renewal",
                "scopes": ["track", "mileage", "certificate", "warnings"]}  # fmt: skip
        made = await client.post(
            "/v1/grants", json=body, headers=await bearer(client, "fleet-a-admin")
        )
        assert made.status_code == 201, made.text
        await cosign_every_log(client, pool)
