"""Forecast refresh on the real PostgreSQL, in both telemetry storage modes.

Telemetry rows are written to a scratch schema, ``segment_speed_5m`` is brought up to date as
the store writer would (TimescaleDB: refreshing the continuous aggregate; partitioned: the
aggregate rows), then the refresh runs twice for the same issue time and once later.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from analytics.forecast.refresh import RefreshConfig, refresh_forecasts
from contracts.roads import save_segments
from roadledger.db import telemetry_schema, telemetry_tables
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.test_map_matching import grid_city

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 20, 12, 2, 30, tzinfo=UTC)  # a Friday; issue time 12:00
ISSUED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = ISSUED - timedelta(days=3)
STEP = timedelta(minutes=5)
DAILY_M = {"veh-a": 50_000, "veh-b": 20_000}


def speed_cms(ts: datetime) -> int:
    minutes = ts.hour * 60 + ts.minute
    return round(1000 + 300 * math.sin(2 * math.pi * minutes / 1440))


def telemetry_rows() -> list[tuple[object, ...]]:
    """Segment 1: two vehicles every 5 minutes for 3 days; segment 2: the last 30 minutes;
    segment 3: two hours two days ago. Odometers advance at a steady daily rate."""
    seqs: dict[str, int] = {}
    rows: list[tuple[object, ...]] = []

    def add(device: str, ts: datetime, segment: int, spd: int) -> None:
        seq = seqs[device] = seqs.get(device, 0) + 1
        odo = round(DAILY_M.get(device, 10_000) * (ts - START) / timedelta(days=1))
        leaf = hashlib.sha256(f"{device}/{seq}".encode()).digest()
        rows.append((device, seq, ts, ts, 1_000_000 + odo, 524_000_000, 134_000_000, spd, 0,
                     segment, leaf))  # fmt: skip

    bucket = START
    while bucket < ISSUED:
        ts = bucket + timedelta(seconds=60)
        add("veh-a", ts, 1, speed_cms(ts))
        add("veh-b", ts + timedelta(seconds=30), 1, speed_cms(ts) + 40)
        if bucket >= ISSUED - timedelta(minutes=30):
            add("veh-c", ts, 2, 800)
        if START + timedelta(days=1) <= bucket < START + timedelta(days=1, hours=2):
            add("veh-c", ts, 3, 500)
        bucket += STEP
    return rows


async def bring_aggregate_up_to_date(conn: asyncpg.Connection) -> None:
    if await telemetry_schema.storage_mode(conn) == telemetry_schema.MODE_TIMESCALEDB:
        # TimescaleDB's functions are not on the scratch schema's search_path.
        ext = await telemetry_schema.timescaledb_schema(conn)
        await conn.execute(
            f"CALL {ext}.refresh_continuous_aggregate('segment_speed_5m', NULL, NULL)"
        )
        return
    # Partitioned mode: what the store writer adds in the same statement as the rows.
    await conn.execute(
        f"""
        INSERT INTO segment_speed_5m (bucket, segment_id, speed_sum, samples, vehicles)
        SELECT date_bin('5 minutes', ts, '{telemetry_tables.BUCKET_ORIGIN}'), segment_id,
               sum(spd_cms), count(*), count(DISTINCT device_id)
          FROM telemetry WHERE segment_id IS NOT NULL AND spd_cms IS NOT NULL GROUP BY 1, 2
        """  # noqa: S608 - a constant
    )


@pytest.fixture(params=[True, False], ids=["timescaledb", "partitioned"])
async def pool(request: pytest.FixtureRequest, postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    timescaledb: bool = request.param
    admin = await asyncpg.connect(postgres.database_url)
    try:
        available = await telemetry_schema.timescaledb_schema(admin) is not None
    finally:
        await admin.close()
    if timescaledb and not available:
        pytest.skip("the database has no timescaledb extension")
    async with scratch_schema_pool(postgres, timescaledb=timescaledb) as scratch:
        async with scratch.acquire() as conn:
            if timescaledb:  # the test refreshes the aggregate itself, once all rows are in
                ext = await telemetry_schema.timescaledb_schema(conn)
                await conn.execute(
                    f"SELECT {ext}.alter_job(job_id, scheduled => false) "  # noqa: S608 - ext: format('%I')
                    "FROM timescaledb_information.jobs WHERE hypertable_schema = current_schema() "
                    "AND proc_name = 'policy_refresh_continuous_aggregate'"
                )
            await save_segments(conn, grid_city(3))
            await conn.copy_records_to_table(
                "telemetry",
                records=telemetry_rows(),
                columns=["device_id", "seq", "ts", "recv_ts", "odo_m", "lat_e7", "lon_e7",
                         "spd_cms", "hdg_cdeg", "segment_id", "leaf_hash"],
            )  # fmt: skip
            await bring_aggregate_up_to_date(conn)
        yield scratch


async def stored_forecasts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT segment_id, issued_at, horizon_min, target_at, speed_kmh, flow_vehicles, "
        "speed_method, flow_method FROM segment_forecasts ORDER BY 1, 2, 3"
    )
    return rows


async def test_refresh_stores_plausible_forecasts_idempotently(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        first = await refresh_forecasts(conn, NOW, RefreshConfig())
        rows = await stored_forecasts(conn)
        mileage = await conn.fetch("SELECT * FROM vehicle_mileage_forecasts ORDER BY device_id")

        second = await refresh_forecasts(conn, NOW + timedelta(minutes=2), RefreshConfig())
        assert second.issued_at == first.issued_at == ISSUED
        assert [tuple(r) for r in await stored_forecasts(conn)] == [tuple(r) for r in rows]
        assert len(await conn.fetch("SELECT 1 FROM vehicle_mileage_forecasts")) == len(mileage)

        later = await refresh_forecasts(conn, NOW + timedelta(minutes=5), RefreshConfig())
        assert later.issued_at == ISSUED + STEP
        assert len(await stored_forecasts(conn)) == 2 * len(rows)

    assert first.segments == 3
    assert first.segment_rows == 9
    assert first.speed_methods == {"lag-ridge": 1, "window-mean": 1, "profile": 1}
    by_key = {(r["segment_id"], r["horizon_min"]): r for r in rows}
    assert set(by_key) == {(s, h) for s in (1, 2, 3) for h in (15, 30, 60)}
    for h in (15, 30, 60):
        one = by_key[(1, h)]
        assert one["issued_at"] == ISSUED
        assert one["target_at"] == ISSUED + timedelta(minutes=h - 5)
        assert one["speed_method"] == "lag-ridge"
        # Both vehicles: mean of speed and speed + 40 cm/s, in km/h.
        assert one["speed_kmh"] == pytest.approx((speed_cms(one["target_at"]) + 20) * 0.036, abs=2)
        assert one["flow_vehicles"] == pytest.approx(2.0, abs=0.5)
        assert by_key[(2, h)]["speed_kmh"] == pytest.approx(28.8)
        assert by_key[(3, h)]["speed_kmh"] == pytest.approx(18.0)

    assert [r["device_id"] for r in mileage] == ["veh-a", "veh-b", "veh-c"]
    for r in mileage:
        assert r["issued_on"] == ISSUED.date()
        assert r["annual_low_km"] <= r["annual_km"] <= r["annual_high_km"]
        assert r["interval_level"] == pytest.approx(0.9)
        assert r["method"] == "daily-mean-normal"
    veh_a = mileage[0]
    # 4 calendar days (half, whole, whole, half): 150 km over 4 days.
    assert veh_a["days"] == 4
    assert veh_a["annual_km"] == pytest.approx(150 / 4 * 365.25, rel=0.01)


async def test_an_empty_database_refreshes_to_nothing(postgres: Settings) -> None:
    async with scratch_schema_pool(postgres) as empty, empty.acquire() as conn:
        summary = await refresh_forecasts(conn, NOW)
        assert (summary.segments, summary.segment_rows, summary.vehicles) == (0, 0, 0)
        assert await conn.fetchval("SELECT count(*) FROM segment_forecasts") == 0
