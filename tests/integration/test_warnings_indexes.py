"""Migration 10's indexes are the ones the warnings reads use: each of the store's real queries
(captured, not copied) is explained on 100,000 warnings of 1,000 vehicles in 20 fleets."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg
import pytest

from analytics.warnings import store
from analytics.warnings.store import WarningFilter, ms_of
from roadledger.identity.visibility import Visibility
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 1, 20, tzinfo=UTC)
SEEN = Visibility("org-3", ("veh-7",), ())
FILL = [
    "INSERT INTO organisations (org_id, name, kind) "
    "SELECT 'org-' || i, 'Fleet', 'fleet_owner' FROM generate_series(0, 19) i",
    "INSERT INTO devices (device_id, owner_org, kind) "
    "SELECT 'veh-' || i, 'org-' || (i % 20), 'vehicle' FROM generate_series(0, 999) i",
    # Every tenth a segment's; one every 30 s from 2026-01-01, 20 s long, stored a minute later.
    """
    INSERT INTO warnings (warning_id, type, severity, device_id, segment_id, from_ts, to_ts,
                          rule_version, evidence, detail, stored_at)
    SELECT 'w-' || i, (ARRAY['speeding', 'harsh_braking', 'congestion'])[1 + i % 3], 'warning',
           CASE WHEN i % 10 = 0 THEN NULL ELSE 'veh-' || (i % 1000) END,
           CASE WHEN i % 10 = 0 THEN i % 500 END,
           timestamptz '2026-01-01' + i * interval '30 s',
           timestamptz '2026-01-01' + i * interval '30 s' + interval '20 s',
           'builtin@0', '[]', '{}', timestamptz '2026-01-01' + i * interval '90 s'
      FROM generate_series(1, 100000) i
    """,
    "ANALYZE",
]


class Captured:
    """Stands in for the connection: keeps each query and its arguments, returns no rows."""

    def __init__(self) -> None:
        self.query: tuple[str, tuple[Any, ...]] | None = None

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        self.query = sql, args
        return []


def scans(node: dict[str, Any]) -> set[str]:
    """The indexes a plan reads, and ``seq:<table>`` for each table it reads whole."""
    found = {node["Index Name"]} if "Index Name" in node else set()
    if node["Node Type"] == "Seq Scan":
        found.add(f"seq:{node['Relation Name']}")
    for child in node.get("Plans", []):
        found |= scans(child)
    return found


async def plan_of(pool: asyncpg.Pool, captured: Captured) -> set[str]:
    assert captured.query is not None
    sql, args = captured.query
    rows = await pool.fetch(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return scans(json.loads(rows[0][0])[0]["Plan"])


async def plans(pool: asyncpg.Pool) -> dict[str, set[str]]:
    """What each read of the warnings uses, by name."""
    reads: dict[str, Callable[[Captured], Awaitable[object]]] = {
        "feed, in stored order": lambda c: store.feed_warnings(
            c, SEEN, after=(T0, "w-5"), until=datetime(2026, 3, 1, tzinfo=UTC), limit=500
        ),
        "warm-up, recent": lambda c: store.load_warnings(
            c, since_ms=ms_of(datetime(2026, 2, 1, tzinfo=UTC))
        ),
    }
    for name, (wanted, before) in LISTS.items():
        reads[f"list, {name}"] = partial(listed, wanted=wanted, before=before)
    found = {}
    for name, read in reads.items():
        captured = Captured()
        await read(captured)
        found[name] = await plan_of(pool, captured)
    return found


async def listed(
    c: Captured, *, wanted: WarningFilter, before: tuple[int, str] | None
) -> list[store.Warning]:
    return await store.list_warnings(c, SEEN, wanted, before=before, limit=101)


LISTS: dict[str, tuple[WarningFilter, tuple[int, str] | None]] = {
    "newest first": (WarningFilter(), None),
    "next page": (WarningFilter(), (ms_of(T0), "w-9")),
    "an hour's window": (WarningFilter(from_ms=ms_of(T0), to_ms=ms_of(T0) + 3_600_000), None),
    "a device": (WarningFilter(device_id="veh-3"), None),
    "a segment": (WarningFilter(segment_id=40), None),
}


async def test_each_read_of_the_warnings_uses_its_index(postgres: Settings) -> None:
    async with scratch_schema_pool(postgres) as pool:
        for statement in FILL:
            await pool.execute(statement)
        used = await plans(pool)
    assert {name: index in used[name] for name, index in EXPECTED.items()} == dict.fromkeys(
        EXPECTED, True
    ), used
    assert not [name for name, scanned in used.items() if "seq:warnings" in scanned], used
    # The visibility test: the caller's organisation's devices, by owner.
    assert all("devices_owner" in used[name] for name in used if name != "warm-up, recent"), used


EXPECTED = {
    "feed, in stored order": "warnings_stored",
    "warm-up, recent": "warnings_end",
    "list, newest first": "warnings_start",
    "list, next page": "warnings_start",
    "list, an hour's window": "warnings_span",
    "list, a device": "warnings_device",
    "list, a segment": "warnings_segment",
}
