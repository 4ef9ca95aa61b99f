"""``roadledger forecast run --once`` end to end, on a scratch schema of the real PostgreSQL.

A plain (synchronous) test: the command runs its own event loop, as it does from a shell.
The scratch schema is chosen through the database URL (``?search_path=``), as an operator
would point the command at another schema.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.cli import main
from roadledger.db import telemetry_schema, telemetry_tables
from roadledger.db.schema import apply_schema
from roadledger.settings import Settings

pytestmark = pytest.mark.postgres


async def _prepare(url: str, schema: str) -> None:
    """The project's tables plus one segment's last two hours of telemetry, ending now."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(
            await admin.fetchval("SELECT format('CREATE SCHEMA %I', $1::text)", schema)
        )
    finally:
        await admin.close()
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        await apply_schema(conn, timescaledb=False)
        now = datetime.now(UTC)
        rows = [
            ("veh-1", seq, now - timedelta(minutes=5 * (24 - seq)), now, 1_000 * seq,
             524_000_000, 134_000_000, 900, 0, 4, bytes([seq]) * 32)
            for seq in range(24)
        ]  # fmt: skip
        await conn.copy_records_to_table(
            "telemetry",
            records=rows,
            columns=["device_id", "seq", "ts", "recv_ts", "odo_m", "lat_e7", "lon_e7",
                     "spd_cms", "hdg_cdeg", "segment_id", "leaf_hash"],
        )  # fmt: skip
        await conn.execute(
            f"""
            INSERT INTO segment_speed_5m (bucket, segment_id, speed_sum, samples, vehicles)
            SELECT date_bin('5 minutes', ts, '{telemetry_tables.BUCKET_ORIGIN}'), segment_id,
                   sum(spd_cms), count(*), count(DISTINCT device_id) FROM telemetry GROUP BY 1, 2
            """  # noqa: S608 - a constant
        )
    finally:
        await conn.close()


async def _read_and_drop(url: str, schema: str) -> tuple[list[asyncpg.Record], int]:
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    try:
        forecasts = await conn.fetch(
            "SELECT horizon_min, speed_kmh, speed_method FROM segment_forecasts ORDER BY 1"
        )
        vehicles: int = await conn.fetchval("SELECT count(*) FROM vehicle_mileage_forecasts")
        await telemetry_schema.drop(conn)
        await conn.execute(
            await conn.fetchval("SELECT format('DROP SCHEMA %I CASCADE', $1::text)", schema)
        )
        return forecasts, vehicles
    finally:
        await conn.close()


def test_run_once_writes_forecasts(
    postgres: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    url = postgres.database_url
    asyncio.run(_prepare(url, schema))
    try:
        separator = "&" if "?" in url else "?"
        monkeypatch.setenv("ROADLEDGER_DATABASE_URL", f"{url}{separator}search_path={schema}")
        assert main(["forecast", "run", "--once", "--quiet"]) == 0
    finally:
        forecasts, vehicles = asyncio.run(_read_and_drop(url, schema))
    out = capsys.readouterr().out
    assert "1 segments" in out
    assert "1 window-mean" in out  # two hours: too short for the model, and it says so
    assert [r["horizon_min"] for r in forecasts] == [15, 30, 60]
    assert all(r["speed_kmh"] == pytest.approx(32.4) for r in forecasts)  # 900 cm/s
    assert {r["speed_method"] for r in forecasts} == {"window-mean"}
    assert vehicles == 1


def test_run_refuses_a_bad_interval() -> None:
    with pytest.raises(SystemExit):
        main(["forecast", "run", "--every", "0"])
