"""``roadledger sim`` end to end: registers into PostgreSQL and publishes over Mosquitto.

The command gets a database URL whose ``search_path`` is a private schema, so the shared
registry never sees the test fleet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app import cli
from device_sim.network import NetworkSpec, generate_network
from device_sim.truth import read_truth
from roadledger.db.schema import apply_schema
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


async def _ddl(settings: Settings, statement: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _prepare(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await apply_schema(conn)
    finally:
        await conn.close()


@pytest.fixture
def scratch_url(postgres: Settings, mqtt: Settings) -> Iterator[str]:
    schema = f"scratch_{uuid.uuid4().hex[:12]}"
    asyncio.run(_ddl(postgres, f'CREATE SCHEMA "{schema}"'))
    url = f"{postgres.database_url}?search_path={schema}"
    try:
        asyncio.run(_prepare(url))
        yield url
    finally:
        asyncio.run(_ddl(postgres, f'DROP SCHEMA "{schema}" CASCADE'))


async def _registered(url: str, device_ids: list[str]) -> dict[str, int]:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=1)
    try:
        keys = await DeviceRegistry(pool).keys_for(device_ids)
        async with pool.acquire() as conn:
            segments = await conn.fetchval("SELECT count(*) FROM road_segments")
    finally:
        await pool.close()
    return {
        "devices": len(keys),
        "revoked": sum(k[0].revoked_at_ms is not None for k in keys.values()),
        "segments": segments,
    }


def test_the_command_registers_publishes_and_records_truth(
    scratch_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(cli.COMMANDS, "sim", "app.commands.sim")
    monkeypatch.setenv("ROADLEDGER_DATABASE_URL", scratch_url)
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    truth_path = tmp_path / "truth.jsonl"
    code = cli.main(
        ["sim", "--vehicles", "12", "--rsus", "2", "--rate", "140", "--duration", "2",
         "--streets", "6", "--id-prefix", prefix, "--scenario", "revoked_key:at=1",
         "--presign", "--no-pace", "--publish-rate", "0", "--quiet", "--truth", str(truth_path)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "registered 14 new device keys (0 already known), 1 revocations" in out
    truth = read_truth(truth_path)
    assert truth.summary is not None
    assert truth.summary["complete"] is True
    assert f"published {len(truth.messages)} messages" in out
    devices = [f"{prefix}veh-{i:06d}" for i in range(1, 13)] + [
        f"{prefix}rsu-000{j}" for j in (1, 2)
    ]
    assert asyncio.run(_registered(scratch_url, devices)) == {
        "devices": 14,
        "revoked": 1,
        "segments": len(generate_network(NetworkSpec(streets=6)).links),
    }
