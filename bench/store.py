"""Store writer benchmark: BatchWriter.write_batch against raw asyncpg COPY of the same rows.

In one run, on one set of signed vehicle messages (a fleet driving a grid city, 1 Hz each):

- map matching: ``SegmentIndex.nearest`` lookups/s over every message's position;
- decoding: ``decode_records`` (JWS payload -> staged rows, with map matching) records/s;
- the limit: raw asyncpg binary COPY of the already decoded rows, in the same batches, into a
  plain table with the telemetry columns, primary key and leaf-hash index;
- ``write_batch`` in each storage mode available (partitioned; TimescaleDB when the extension
  is installed), each in a fresh scratch schema: first delivery, then the whole stream again
  (redelivery: every row a duplicate). The ratio to the raw COPY is printed.

Progress goes to stderr, figures to stdout. Compare the ratios within one run: the machine's
load shows in every absolute figure.

    .venv/bin/python bench/store.py                       # 100,000 messages
    .venv/bin/python bench/store.py --messages 20000 --modes partitioned
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from chain.keys import Ed25519PrivateKey
from chain.telemetry import Telemetry, chain_hash, sign_telemetry
from contracts.map_matching import M_PER_E7, SegmentIndex
from contracts.roads import RoadClass, RoadSegment, save_segments
from ingest.batch_writer import BatchWriter, WriteCounts
from ingest.telemetry_rows import TelemetryRow, decode_records
from roadledger.db import telemetry_schema
from roadledger.db.pool import create_pool
from roadledger.db.schema import apply_schema
from roadledger.settings import Settings, load_settings
from roadledger.stream import StreamRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def grid_city(size: int, spacing_m: float = 150.0) -> list[RoadSegment]:
    """``size`` x ``size`` junctions around Berlin; two directed segments per street."""
    lat0, lon0 = 525_200_000, 134_050_000
    dlat = round(spacing_m / M_PER_E7)
    dlon = round(spacing_m / (M_PER_E7 * math.cos(math.radians(lat0 / 1e7))))
    node = {(r, c): (lat0 + r * dlat, lon0 + c * dlon) for r in range(size) for c in range(size)}
    segments: list[RoadSegment] = []
    for (r, c), (lat, lon) in node.items():
        for nr, nc in ((r + 1, c), (r, c + 1)):
            if (nr, nc) not in node:
                continue
            blat, blon = node[(nr, nc)]
            for a, b in (((lat, lon), (blat, blon)), ((blat, blon), (lat, lon))):
                segments.append(
                    RoadSegment(len(segments) + 1, f"street {len(segments) + 1}", RoadClass.LOCAL,
                                50, a[0], a[1], b[0], b[1])
                )  # fmt: skip
    return segments


@dataclass
class _Car:
    key: Ed25519PrivateKey
    segment: RoadSegment
    speed: float  # m/s
    along: float = 0.0
    seq: int = 1
    prev: str = ""
    odo: int = 0


def fleet_messages(
    segments: Sequence[RoadSegment], vehicles: int, count: int, start_ms: int, seed: int
) -> list[StreamRecord]:
    """``count`` signed messages of ``vehicles`` cars driving the network, in time order."""
    rng = random.Random(seed)
    by_start: dict[tuple[int, int], list[RoadSegment]] = {}
    for s in segments:
        by_start.setdefault((s.a_lat_e7, s.a_lon_e7), []).append(s)
    cars = [
        _Car(Ed25519PrivateKey.from_bytes(rng.randbytes(32)), rng.choice(segments),
             rng.uniform(6, 16))
        for _ in range(vehicles)
    ]  # fmt: skip
    records: list[StreamRecord] = []
    second = 0
    while len(records) < count:
        for v, car in enumerate(cars):
            if len(records) == count:
                break
            car.along += car.speed
            while car.along > car.segment.length_m:
                car.along -= car.segment.length_m
                car.segment = rng.choice(by_start[(car.segment.b_lat_e7, car.segment.b_lon_e7)])
            s, f = car.segment, car.along / car.segment.length_m
            noise = rng.gauss(0, 3) / M_PER_E7
            lat = round(s.a_lat_e7 + f * (s.b_lat_e7 - s.a_lat_e7) + noise)
            lon = round(s.a_lon_e7 + f * (s.b_lon_e7 - s.a_lon_e7) + noise)
            east = (s.b_lon_e7 - s.a_lon_e7) * math.cos(math.radians(lat / 1e7))
            heading = math.degrees(math.atan2(east, s.b_lat_e7 - s.a_lat_e7)) % 360
            car.odo += round(car.speed)
            telemetry = Telemetry(
                dev=f"veh-{v:05d}", seq=car.seq, prev=car.prev, ts=start_ms + second * 1000 + v,
                odo_m=car.odo, lat_e7=lat, lon_e7=lon, spd_cms=round(car.speed * 100),
                hdg_cdeg=round(heading * 100) % 36000,
            )  # fmt: skip
            raw = sign_telemetry(car.key, telemetry)
            records.append(
                StreamRecord("telemetry.verified", v % 3, len(records), telemetry.dev.encode(),
                             raw, (), start_ms + second * 1000 + 500)
            )  # fmt: skip
            car.seq, car.prev = car.seq + 1, chain_hash(raw)
        second += 1
    return records


@asynccontextmanager
async def scratch(settings: Settings, timescaledb: bool) -> AsyncIterator[asyncpg.Pool]:
    """A scratch schema in the given storage mode, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(settings.database_url)
    try:
        await admin.execute(
            await admin.fetchval("SELECT format('CREATE SCHEMA %I', $1::text)", schema)
        )
        pool = await create_pool(settings, max_size=2, server_settings={"search_path": schema})
        try:
            async with pool.acquire() as conn:
                await apply_schema(conn, timescaledb=timescaledb)
            yield pool
        finally:
            try:
                async with pool.acquire() as conn:
                    await telemetry_schema.drop(conn)
            finally:
                await pool.close()
            await admin.execute(
                await admin.fetchval("SELECT format('DROP SCHEMA %I CASCADE', $1::text)", schema)
            )
    finally:
        await admin.close()


_RAW_TABLE = """
    CREATE TABLE raw_copy (
        device_id text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT NULL,
        recv_ts timestamptz NOT NULL, odo_m bigint, lat_e7 integer NOT NULL,
        lon_e7 integer NOT NULL, spd_cms integer, hdg_cdeg integer, segment_id integer,
        leaf_hash bytea NOT NULL, PRIMARY KEY (device_id, seq, ts)
    );
    CREATE INDEX ON raw_copy USING hash (leaf_hash)
"""


def _as_stored(row: TelemetryRow) -> tuple[object, ...]:
    """A staged row with its millisecond timestamps turned into datetimes (as stored)."""
    device, seq, ts_ms, recv_ms, *rest = row
    at = _EPOCH + timedelta(milliseconds=ts_ms)
    return (device, seq, at, _EPOCH + timedelta(milliseconds=recv_ms), *rest)


async def raw_copy_rate(pool: asyncpg.Pool, batches: list[list[StreamRecord]]) -> float:
    """Rows/s of asyncpg COPY of the decoded rows (timestamps converted beforehand)."""
    rows = []
    for batch in batches:
        staged = decode_records(batch).telemetry
        rows.append([_as_stored(row) for row in staged])
    async with pool.acquire() as conn:
        await conn.execute(_RAW_TABLE)
        started = time.perf_counter()
        for batch_rows in rows:
            async with conn.transaction():
                await conn.copy_records_to_table("raw_copy", records=batch_rows)
        elapsed = time.perf_counter() - started
    return sum(map(len, rows)) / elapsed


async def write_rate(
    pool: asyncpg.Pool, segments: Sequence[RoadSegment], batches: list[list[StreamRecord]]
) -> tuple[str, float, float, WriteCounts, dict[str, float]]:
    """(mode, first delivery rows/s, redelivery rows/s, counts of the first delivery,
    microseconds per row of the first delivery by stage)."""
    async with pool.acquire() as conn:
        await save_segments(conn, segments)
        writer = await BatchWriter.open(conn)
        await conn.execute("ANALYZE")
        rates = []
        first = WriteCounts()
        stages: dict[str, float] = {}
        for round_ in ("first delivery", "redelivery"):
            started = time.perf_counter()
            total = WriteCounts()
            for batch in batches:
                total += await writer.write_batch(conn, batch)
            rates.append(total.telemetry / (time.perf_counter() - started))
            if round_ == "first delivery":
                first = total
                stages = {k: v / total.telemetry * 1e6 for k, v in writer.seconds.items()}
                if total.telemetry_inserted != total.telemetry:
                    raise SystemExit(f"BUG: first delivery stored {total}")
            elif total.telemetry_inserted:
                raise SystemExit(f"BUG: redelivery inserted {total.telemetry_inserted} rows")
        stored = await conn.fetchval("SELECT count(*) FROM telemetry")
        samples = await conn.fetchval("SELECT coalesce(sum(samples), 0) FROM segment_speed_5m")
        matched = await conn.fetchval(
            "SELECT count(*) FROM telemetry WHERE segment_id IS NOT NULL AND spd_cms IS NOT NULL"
        )
        if stored != first.telemetry or samples != matched:
            raise SystemExit(f"BUG: {stored} rows stored, aggregate samples {samples}/{matched}")
    return writer.mode, rates[0], rates[1], first, stages


async def _run(args: argparse.Namespace) -> int:
    settings = load_settings()
    segments = grid_city(args.grid)
    index = SegmentIndex(segments)
    _progress(f"{len(segments):,} segments; signing {args.messages:,} messages")
    start_ms = int(time.time() * 1000) - 3_600_000
    records = fleet_messages(segments, args.vehicles, args.messages, start_ms, args.seed)
    batches = [records[i : i + args.batch] for i in range(0, len(records), args.batch)]
    lines: list[str] = []

    positions = [decode_records([r]).telemetry[0] for r in records[: min(len(records), 50_000)]]
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for row in positions:
            index.nearest(row[5], row[6], row[8])
        best = max(best, len(positions) / (time.perf_counter() - started))
    lines.append(f"{'map matching (SegmentIndex.nearest)':<46} {best:>12,.0f} lookups/s")
    started = time.perf_counter()
    decoded = sum(len(decode_records(b, index).telemetry) for b in batches)
    decode_rate = decoded / (time.perf_counter() - started)
    lines.append(f"{'decode + map match (decode_records)':<46} {decode_rate:>12,.0f} records/s")

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    async with scratch(settings, timescaledb=False) as pool:
        async with pool.acquire() as conn:
            has_timescaledb = await telemetry_schema.timescaledb_schema(conn) is not None
        _progress("raw COPY of the decoded rows (the limit)")
        raw = await raw_copy_rate(pool, batches)
    lines.append(f"{'raw asyncpg COPY, same rows, plain table':<46} {raw:>12,.0f} rows/s")
    for mode in modes:
        timescaledb = mode == telemetry_schema.MODE_TIMESCALEDB
        if timescaledb and not has_timescaledb:
            lines.append(f"{'write_batch, timescaledb':<46} {'skipped: extension not installed'}")
            continue
        async with scratch(settings, timescaledb=timescaledb) as pool:
            _progress(f"write_batch, {mode}: {len(batches)} batches of {args.batch}, then again")
            got, first, again, counts, stages = await write_rate(pool, segments, batches)
        assert got == mode
        lines.append(
            f"{'write_batch, ' + mode:<46} {first:>12,.0f} rows/s  "
            f"{first / raw:5.2f}x raw COPY  (unmatched {counts.unmatched / counts.telemetry:.1%})"
        )
        lines.append(
            f"{'write_batch, ' + mode + ', redelivery':<46} {again:>12,.0f} rows/s  "
            f"{again / raw:5.2f}x raw COPY"
        )
        lines.append(
            f"{'  first delivery: decode + match / database':<46} "
            f"{stages['decode']:>9,.1f} us/row / {stages['database']:,.1f} us/row "
            f"(raw COPY {1e6 / raw:,.1f} us/row)"
        )
    print(
        f"store writer benchmark: {args.messages:,} messages, {args.vehicles} vehicles, "
        f"batches of {args.batch}"
    )
    for line in lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages (100000)")
    parser.add_argument("--vehicles", type=int, default=500, help="vehicles (500)")
    parser.add_argument("--grid", type=int, default=30, help="junctions per side (30)")
    parser.add_argument("--batch", type=int, default=2000, help="records per batch (2000)")
    parser.add_argument("--modes", default="partitioned,timescaledb", help="storage modes")
    parser.add_argument("--seed", type=int, default=1)
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
