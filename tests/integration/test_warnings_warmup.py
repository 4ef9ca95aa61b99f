"""Analytics restarts on the real Kafka and PostgreSQL: the warm-up rebuilds the detectors from
stored telemetry, so an event spanning the restart is found, once, and nothing is duplicated."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from analytics.warnings.engine import AnalyticsEngine
from analytics.warnings.model import Evidence, Severity, Warning, WarningType, warning_id
from analytics.warnings.store import load_warnings, store_warnings
from analytics.warnings.warmup import fresh_warnings, load_progress
from chain.keys import Ed25519PrivateKey
from chain.telemetry import Telemetry, chain_hash, sign_telemetry
from contracts.topics import VERIFIED, WARNINGS
from ingest.batch_writer import BatchWriter
from roadledger.settings import Settings
from roadledger.stream import OutgoingRecord, StreamRecord
from roadledger.stream.kafka import KafkaStream
from tests.integration.analytics_support import analytics_env, run_until
from tests.support.pipeline import KafkaProbe

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

LAT, LON = 522_516_100, 133_777_200


@pytest.fixture
async def env(kafka: Settings, postgres: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    async with analytics_env(kafka, postgres, "test-warmup") as pair:
        yield pair


def _track(device: str, count: int, rollback_at: int, t0: int) -> list[bytes]:
    """``count`` signed reports of one vehicle, one a second; the odometer drops 30 km at
    ``rollback_at``."""
    key = Ed25519PrivateKey.generate()
    out, prev = [], ""
    for seq in range(1, count + 1):
        telemetry = Telemetry(
            dev=device, seq=seq, prev=prev, ts=t0 + seq * 1000,
            odo_m=50_000 + seq * 14 - (30_000 if seq >= rollback_at else 0),
            lat_e7=LAT + seq * 100, lon_e7=LON, spd_cms=1400, hdg_cdeg=0,
        )  # fmt: skip
        raw = sign_telemetry(key, telemetry)
        prev = chain_hash(raw)
        out.append(raw)
    return out


def _headers(raw_offset: int, t0: int) -> tuple[tuple[str, bytes], ...]:
    return (
        ("recv_ms", str(t0 + (raw_offset + 1) * 1000 + 80).encode()),
        ("src", b"raw:0:%d" % raw_offset),
    )


async def _feed(settings: Settings, device: str, raws: list[bytes], first: int, t0: int) -> None:
    """Put reports ``first``.. (0-based) on ``telemetry.verified``, as the verifier would."""
    producer = KafkaStream(settings).producer(client_id="test-warmup-feed")
    await producer.start()
    try:
        records = [
            OutgoingRecord(device.encode(), raw, _headers(first + i, t0))
            for i, raw in enumerate(raws)
        ]
        await (await producer.send_many(settings.topic(VERIFIED), records))
    finally:
        await producer.stop()


async def _store(
    settings: Settings, pool: asyncpg.Pool, device: str, raws: list[bytes], t0: int
) -> None:
    """Store reports 1..len(raws) as the store writer would (its own batch writer)."""
    records = [
        StreamRecord(settings.topic(VERIFIED), 0, i, device.encode(), raw, _headers(i, t0), t0)
        for i, raw in enumerate(raws)
    ]
    async with pool.acquire() as conn:
        writer = await BatchWriter.open(conn)
        counts = await writer.write_batch(conn, records)
    assert counts.telemetry_inserted == len(raws)


@pytest.mark.parametrize(("warmup_s", "found"), [(300, 1), (0, 0)])
async def test_a_rollback_across_a_restart_is_found_once(
    env: tuple[Settings, asyncpg.Pool], warmup_s: int, found: int
) -> None:
    settings, pool = env
    settings = settings.model_copy(update={"analytics_warmup_s": warmup_s})
    device = f"veh-{uuid.uuid4().hex[:6]}"
    t0 = int(time.time() * 1000) - 60_000
    raws = _track(device, 40, rollback_at=7, t0=t0)
    # Before the restart the engine had analysed seq 1-6 (and committed); the store writer,
    # ahead of it, had stored seq 1-30, more than a track keeps. The odometer drops between
    # seq 6 and 7.
    await _feed(settings, device, raws[:6], 0, t0)
    await run_until(AnalyticsEngine(settings, KafkaStream(settings), pool), 6)
    assert await load_warnings(pool) == []
    await _feed(settings, device, raws[6:], 6, t0)
    await _store(settings, pool, device, raws[:30], t0)

    restarted = AnalyticsEngine(settings, KafkaStream(settings), pool)
    await run_until(restarted, 34)  # seq 7-40 from the committed offset

    rollbacks = [w for w in await load_warnings(pool) if w.type is WarningType.ODOMETER_ROLLBACK]
    assert len(rollbacks) == found  # without the warm-up, seq 6 is forgotten: no rollback
    assert restarted.stats.warmup_records == (30 if warmup_s else 0)
    # seq 7-30 were judged by the warm-up and skipped when the stream delivered them.
    assert restarted.stats.warmup_skipped == (24 if warmup_s else 0)
    kafka = KafkaProbe(settings)
    await kafka.start()
    try:
        assert await kafka.end_offsets(settings.topic(WARNINGS)) == found  # published once
    finally:
        await kafka.stop()
    if found:
        # Found by the warm-up (seq 7 was stored), not again when the stream delivered it.
        assert [(e.device_id, e.seq) for e in rollbacks[0].evidence] == [(device, 6), (device, 7)]
        assert restarted.stats.stored == 1


async def test_a_group_that_never_ran_reads_the_stream_without_a_warm_up(
    env: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = env
    device = f"veh-{uuid.uuid4().hex[:6]}"
    t0 = int(time.time() * 1000) - 60_000
    raws = _track(device, 5, rollback_at=99, t0=t0)
    await _store(settings, pool, device, raws, t0)
    await _feed(settings, device, raws, 0, t0)
    engine = AnalyticsEngine(settings, KafkaStream(settings), pool)
    assert await load_progress(pool, engine.group_id) is None
    await run_until(engine, 5)
    # It reads the stream from its start: the stored rows are not replayed before it.
    assert engine.stats.warmup_records == 0
    assert engine.stats.warmup_skipped == 0
    assert await load_progress(pool, engine.group_id) == t0 + 5 * 1000 + 80


def _speeding(device: str, from_s: int, to_s: int, key: str) -> Warning:
    base = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    at = [int((base + timedelta(seconds=s)).timestamp() * 1000) for s in (from_s, to_s)]
    return Warning(
        warning_id=warning_id(WarningType.SPEEDING, device, key),
        type=WarningType.SPEEDING,
        severity=Severity.WARNING,
        device_id=device,
        segment_id=None,
        from_ts_ms=at[0],
        to_ts_ms=at[1],
        rule_version="builtin",
        evidence=(Evidence(device, 1, bytes(32), None),),
        detail={},
    )


async def test_the_warm_up_keeps_only_events_not_stored_before(
    env: tuple[Settings, asyncpg.Pool],
) -> None:
    _, pool = env
    stored = _speeding("veh-a", 0, 60, "from:10")
    await store_warnings(pool, [stored])
    replayed = [
        stored,  # found again: same id
        _speeding("veh-a", 30, 60, "from:40"),  # the same run seen from its middle
        _speeding("veh-a", 120, 150, "from:130"),  # a later run of the same vehicle
        _speeding("veh-b", 30, 60, "from:40"),  # another vehicle at the same time
    ]
    fresh = await fresh_warnings(pool, replayed)
    assert [w.warning_id for w in fresh] == [w.warning_id for w in replayed[2:]]
