"""The dashboard's floors (issue 12) in headless Chromium: first meaningful paint of the
authority view with 1,000 live vehicles under 2 s, and live positions updating at least once
a second at 1,000 messages/s without falling behind.

Run from the project root, with PostgreSQL up::

    .venv/bin/python bench/dashboard.py               # 1,000 vehicles, 1,000 msg/s, 15 s
    .venv/bin/python bench/dashboard.py --seconds 5   # shorter

In a scratch schema (dropped afterwards): an authority with a jurisdiction and an analyst, a
fleet of ``--vehicles`` vehicles whose owner grants the authority ``track`` on all of them (so
the authority's map shows them all), a grid of 200 road segments, and ``--warnings`` warnings.
A writer inserts ``--rate`` telemetry rows a second (one per vehicle per second at the default,
in 10 slices a second: what the store writer does). ``roadledger api serve`` serves it; the
authority's page in Debian's chromium is logged in, then reloaded ``--paints`` times: the
paint is from the reload until the network is drawn, every vehicle is on the map and the
warnings are listed. Then for ``--seconds`` the page's position events are counted and its
lag (now minus the newest device time on the map) sampled each second. Progress to stderr,
figures to stdout; exits 1 when a floor is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from playwright.async_api import Page

from analytics.warnings.model import WarningType
from analytics.warnings.store import store_warnings
from contracts.access import OrgKind, Role
from contracts.roads import RoadClass, RoadSegment, save_segments
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.settings import load_settings
from tests.integration.api.places import CITY, warning
from tests.integration.dashboard.browser import chromium, guarded
from tests.support.scratch_schema import scratch_schema_pool
from tests.support.served import served_api

PASSWORD = "bench password, not a secret"  # noqa: S105 - a scratch schema's member
PAINT_LIMIT_MS = 2000.0
UPDATES_LIMIT = 1.0  # position events a second, at least
LAG_LIMIT_MS = 2000.0  # the page's newest position may be this old, at most
LAT, LON = CITY[0]


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _position(vehicle: int, second: int) -> tuple[int, int]:
    row, column = divmod(vehicle, 40)
    return LAT + 20_000 + row * 38_000, LON + 20_000 + (column * 24_000 + second * 200) % 960_000


async def setup(pool: asyncpg.Pool, vehicles: int, warnings: int) -> list[str]:
    async with pool.acquire() as conn:
        await create_organisation(
            conn, "police", "Police", OrgKind.AUTHORITY, jurisdiction=[list(v) for v in CITY]
        )
        await create_organisation(conn, "fleet", "Fleet", OrgKind.FLEET_OWNER)
        await create_member(conn, "police", "police-analyst", PASSWORD, (Role.ANALYST,))
        ids = [f"veh-{i:04d}" for i in range(vehicles)]
        await conn.executemany(
            "INSERT INTO devices (device_id, owner_org, kind) VALUES ($1, 'fleet', 'vehicle')",
            [(d,) for d in ids],
        )
        await conn.execute(
            "INSERT INTO access_grants (grant_id, owner_org, grantee_org, scopes, device_ids, "
            "valid_from, valid_until, purpose, created_by) VALUES ('g-bench', 'fleet', "
            "'police', ARRAY['track'], $1, now() - interval '1 day', now() + interval '1 day', "
            "'bench', 'bench')",
            ids,
        )
        grid = [RoadSegment(100 + i, f"street {i}", RoadClass.LOCAL, 50,
                            LAT + 25_000 * (i // 10 + 1), LON + 90_000 * (i % 10),
                            LAT + 25_000 * (i // 10 + 1), LON + 90_000 * (i % 10 + 1))
                for i in range(200)]  # fmt: skip
        await save_segments(conn, grid)
    now = int(time.time() * 1000)
    await store_warnings(pool, [
        warning(f"w{i:04d}", WarningType.CONGESTION, None, [], now - i * 1000,
                segment_id=100 + i % 200)
        for i in range(warnings)
    ])  # fmt: skip
    return ids


async def write(pool: asyncpg.Pool, ids: list[str], rate: int, stop: asyncio.Event) -> int:
    """``rate`` telemetry rows a second in 10 slices, round-robin over the vehicles, until
    ``stop``; how many were written."""
    written, seq, started = 0, {d: 0 for d in ids}, time.monotonic()
    per_slice = max(1, rate // 10)
    while not stop.is_set():
        now = datetime.now(UTC)
        second = int(time.time())
        rows = []
        for k in range(per_slice):
            number = (written + k) % len(ids)
            device = ids[number]
            seq[device] += 1
            lat, lon = _position(number, second)
            rows.append((device, seq[device], now, now, 1000 + seq[device], lat, lon, 1389, 9000,
                         None, os.urandom(32)))  # fmt: skip
        await pool.executemany(
            "INSERT INTO telemetry (device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, spd_cms, "
            "hdg_cdeg, segment_id, leaf_hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
            rows,
        )
        written += per_slice
        due = started + written / rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
    return written


async def paint(page: Page, vehicles: int) -> float:
    began = time.perf_counter()
    await page.reload()
    await page.wait_for_selector("#map[data-segments]")
    await page.wait_for_function(
        f"() => document.querySelector('#live')?.dataset.vehicles === '{vehicles}'"
    )
    await page.wait_for_selector("#warnings-count:has-text('warnings')")
    return (time.perf_counter() - began) * 1000


async def follow(page: Page, seconds: float) -> tuple[float, list[float]]:
    """Position events a second, and the lag samples (ms), over ``seconds``."""
    read = "() => [Number(document.querySelector('#live').dataset.events), " \
           "Number(document.querySelector('#live').dataset.newest), Date.now()]"  # fmt: skip
    events0, _, at0 = await page.evaluate(read)
    lags = []
    for _ in range(int(seconds)):
        await asyncio.sleep(1)  # a sampling period, not a synchronisation
        _, newest, at = await page.evaluate(read)
        lags.append(at - newest)
    events1, _, at1 = await page.evaluate(read)
    return (events1 - events0) / ((at1 - at0) / 1000), lags


async def measure(args: argparse.Namespace) -> bool:
    settings = load_settings()
    async with scratch_schema_pool(settings) as pool:
        progress(f"setup: {args.vehicles:,} vehicles, 200 segments, {args.warnings} warnings")
        ids = await setup(pool, args.vehicles, args.warnings)
        stop = asyncio.Event()
        writer = asyncio.create_task(write(pool, ids, args.rate, stop))
        began = time.monotonic()
        try:
            async with (
                served_api(settings, pool) as url,
                chromium() as browser,
                guarded(browser, url, Path(args.shots)) as tab,
            ):
                progress(f"api at {url}; logging in")
                await tab.login("police-analyst", PASSWORD)
                await tab.page.wait_for_function(
                    f"() => document.querySelector('#live')?.dataset.vehicles === "
                    f"'{args.vehicles}'",
                )
                paints = [await paint(tab.page, args.vehicles) for _ in range(args.paints)]
                progress(f"paints: {json.dumps([round(p) for p in paints])} ms")
                rate, lags = await follow(tab.page, args.seconds)
                await tab.shot("bench-authority")
        finally:
            stop.set()
            written = await writer
    msg_rate = written / (time.monotonic() - began)
    worst = max(paints)
    print(f"dashboard benchmark: {args.vehicles:,} live vehicles, {msg_rate:,.0f} msg/s written")
    print(f"first meaningful paint (authority view, {args.vehicles:,} vehicles on the map): "
          f"median {statistics.median(paints):.0f} ms, max {worst:.0f} ms (limit "
          f"{PAINT_LIMIT_MS:.0f} ms)")  # fmt: skip
    print(f"position updates: {rate:.2f} events/s (limit >= {UPDATES_LIMIT:.0f}/s); lag "
          f"median {statistics.median(lags):.0f} ms, max {max(lags):.0f} ms (limit "
          f"{LAG_LIMIT_MS:.0f} ms)")  # fmt: skip
    return worst < PAINT_LIMIT_MS and rate >= UPDATES_LIMIT and max(lags) < LAG_LIMIT_MS


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=1000, help="telemetry rows a second")
    parser.add_argument("--warnings", type=int, default=200)
    parser.add_argument("--paints", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--shots", default=".", help="where the screenshot goes")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    return 0 if asyncio.run(measure(parse_args(argv))) else 1


if __name__ == "__main__":
    sys.exit(main())
