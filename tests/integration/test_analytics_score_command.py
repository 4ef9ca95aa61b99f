"""`roadledger analytics score` on a real database: the table, the floor, the errors."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from analytics.warnings.model import Severity, Warning, WarningType, warning_id
from analytics.warnings.store import store_warnings
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.test_cli import ENTRY_POINT

pytestmark = pytest.mark.postgres

T0 = 1_790_000_000_000


@pytest.fixture
async def scratch(postgres: Settings) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    async with scratch_schema_pool(postgres, max_size=2) as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        yield pool, f"{postgres.database_url}?search_path={schema}"


def _truth(path: Path, events: list[tuple[str, str]]) -> Path:
    lines = [{"kind": "run", "format": 1}] + [
        {"kind": "warning", "type": kind, "device": device, "scenario": kind,
         "from_ts": T0, "to_ts": T0 + 5000, "from_seq": 1, "to_seq": 5, "messages": 5,
         "detail": {}}
        for kind, device in events
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _score(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT is not None
    env = {**os.environ, "ROADLEDGER_DATABASE_URL": url}
    return subprocess.run(
        [ENTRY_POINT, "analytics", "score", *args], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip


async def test_score_prints_the_table_and_applies_the_floor(
    scratch: tuple[asyncpg.Pool, str], tmp_path: Path
) -> None:
    pool, url = scratch
    kind = WarningType.TELEPORT
    found = Warning(warning_id(kind, "veh-1", "k"), kind, Severity.CRITICAL, "veh-1", None,
                    T0 + 1000, T0 + 2000, "builtin@0", ())  # fmt: skip
    await store_warnings(pool, [found])

    right = _score(url, str(_truth(tmp_path / "one.jsonl", [("teleport", "veh-1")])))
    assert right.returncode == 0, right.stderr
    assert "teleport" in right.stdout
    assert "every warning type at or above 0.95" in right.stdout

    missed = _truth(tmp_path / "two.jsonl", [("teleport", "veh-1"), ("replay", "veh-2")])
    below = _score(url, str(missed))
    assert below.returncode == 1
    assert "below 0.95: replay" in below.stdout

    absent = _score(url, str(tmp_path / "nope.jsonl"))
    assert absent.returncode == 2
    assert "nope.jsonl does not exist" in absent.stderr
    bad_floor = _score(url, str(missed), "--floor", "1.5")
    assert bad_floor.returncode == 2
    assert "--floor" in bad_floor.stderr
