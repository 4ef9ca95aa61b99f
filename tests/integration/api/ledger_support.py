"""Vehicles' data in the ledger of an API test's scratch schema, put there by the pipeline's
own stages: the registry writes key records to the outbox, the outbox relay publishes them to
``telemetry.verified`` (an in-memory stream, one partition: one log) with the vehicles'
signed messages, the ledger writer sequences them into the PostgreSQL log (blocks, signed
checkpoints), and the store writer stores the messages as ``telemetry`` rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chain.device_keys import DeviceKey
from contracts.topics import HEADER_RECV_MS, VERIFIED
from ingest.batch_writer import BatchWriter
from ingest.ledger_writer import LedgerWriter
from ingest.outbox_relay import relay_outbox
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.log_key import load_log_key
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream import StreamRecord, TopicPartition
from roadledger.stream.memory import MemoryStream
from tests.support.pipeline import wait_until
from tests.unit.ingest.fleet import Device

__all__ = ["HOUR_MS", "Ledger", "api_settings", "drive", "verified"]

HOUR_MS = 3_600_000


def drive(car: Device, count: int, start_ms: int, *, step_ms: int = 1000) -> list[bytes]:
    """``count`` chained messages of ``car``, one every ``step_ms`` from ``start_ms``."""
    return [car.message(start_ms + i * step_ms) for i in range(count)]


@pytest.fixture
def api_settings(postgres: Settings, tmp_path: Path) -> Settings:
    """The API's settings with the log key in the test's directory (the API publishes the
    vkeys of the key the test's ledger writer signs with)."""
    return postgres.model_copy(update={"log_key_file": tmp_path / "log.skey"})


def verified(raws: Sequence[bytes]) -> list[StreamRecord]:
    """``raws`` as the verifier forwards them, received now."""
    recv = ((HEADER_RECV_MS, str(int(time.time() * 1000)).encode()),)
    return [StreamRecord(VERIFIED, 0, i, None, raw, recv, 0) for i, raw in enumerate(raws)]


class Ledger:
    """The stream and the stages between the registry and the ledger, for one test."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        self.stream = MemoryStream(partitions=1)
        self.stream.create_topic(VERIFIED)
        self.registry = DeviceRegistry(pool)

    async def register(self, records: Sequence[DeviceKey]) -> None:
        await self.registry.register_many(records)

    async def store(self, records: Sequence[StreamRecord]) -> None:
        """The store writer's part alone: ``telemetry`` rows (a message not sequenced yet)."""
        async with self.pool.acquire() as conn:
            batch = await BatchWriter.open(conn)
            for first in range(0, len(records), 5000):
                await batch.write_batch(conn, records[first : first + 5000])

    async def sequence(self, messages: Sequence[bytes], device_id: str) -> int:
        """Relay the outbox, publish ``messages`` and run the ledger writer and the store
        writer until all of it is in the log and the tables; the log's size."""
        producer = self.stream.producer(client_id="test")
        await producer.start()
        await relay_outbox(self.pool, producer, topic=VERIFIED, limit=100_000)
        recv = str(int(time.time() * 1000)).encode()
        for raw in messages:
            await producer.send(
                VERIFIED, raw, key=device_id.encode(), headers=[(HEADER_RECV_MS, recv)]
            )
        await producer.stop()
        end = self.stream.end_offsets(VERIFIED)[TopicPartition(VERIFIED, 0)]
        writer = LedgerWriter(
            self.settings,
            self.stream,
            PostgresLedgerStore(self.pool),
            load_log_key(self.settings),
            topic=VERIFIED,
            group_id="ledger",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop))
        try:
            await wait_until(
                lambda: self.stream.committed("ledger", TopicPartition(VERIFIED, 0)) == end,
                "the ledger writer to commit every record",
                120,
                every_s=0.01,
            )
        finally:
            stop.set()
            await task
        await self.store(self.stream.records(VERIFIED))
        size: int = await self.pool.fetchval(
            "SELECT tree_size FROM ledger_logs WHERE origin LIKE '%/telemetry/%'"
        )
        return size


def telemetry_vkey(keys: dict[str, Any]) -> str:
    """The telemetry log's vkey in a ``GET /v1/ledger/keys`` answer (the audit log is a log
    too, and its origin sorts first)."""
    vkey: str = next(k["vkey"] for k in keys["logs"] if "/telemetry/" in k["origin"])
    return vkey
