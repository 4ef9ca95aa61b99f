"""Registry changes reach the device's ledger: outbox -> stream -> ledger writer -> log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chain.entries import parse_device_key_entry
from chain.keys import Ed25519PrivateKey
from chain.sequencer import InMemoryLedgerStore
from chain.telemetry import DeviceKind
from ingest.ledger_writer import LedgerWriter
from ingest.outbox_relay import relay_outbox
from roadledger.log_key import LogKey
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream import TopicPartition
from roadledger.stream.memory import MemoryStream
from tests.support.pipeline import wait_until
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

TOPIC = "telemetry.verified"


async def ledger_relayed(
    stream: MemoryStream, tmp_path: Path
) -> tuple[Settings, InMemoryLedgerStore, int]:
    """Run a ledger writer over the two records relayed to ``TOPIC`` (one partition) until
    it committed both; its settings, its store and the partition."""
    (partition,) = {r.partition for r in stream.records(TOPIC)}
    store = InMemoryLedgerStore()
    settings = Settings(data_dir=tmp_path)
    writer = LedgerWriter(settings, stream, store, LogKey(bytes(32)), topic=TOPIC, group_id="g")
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        await wait_until(
            lambda: stream.committed("g", TopicPartition(TOPIC, partition)) == 2,
            "the ledger writer to commit both outbox records",
            10,
            every_s=0.005,
            observed=lambda: f"committed {stream.committed('g', TopicPartition(TOPIC, partition))}",
        )
    finally:
        stop.set()
        await task
    return settings, store, partition


async def test_key_history_is_appended_to_the_devices_log(
    postgres: Settings, tmp_path: Path
) -> None:
    from chain.device_keys import DeviceKey

    stream = MemoryStream(partitions=3)
    stream.create_topic(TOPIC)
    async with scratch_schema_pool(postgres) as pool:
        registry = DeviceRegistry(pool)
        await registry.ensure_organisation("fleet-a", "Fleet A", "fleet_owner")
        record = DeviceKey(
            device_id="veh-1",
            public_key=Ed25519PrivateKey.generate().public_key,
            owner_org="fleet-a",
            kind=DeviceKind.VEHICLE,
            valid_from_ms=1_764_000_000_000,
        )
        await registry.register(record)
        await registry.revoke("veh-1", 1_764_000_500_000)
        producer = stream.producer(client_id="outbox")
        await producer.start()
        assert await relay_outbox(pool, producer, topic=TOPIC) == 2
        assert await relay_outbox(pool, producer, topic=TOPIC) == 0, "published once"

    assert {r.key for r in stream.records(TOPIC)} == {b"veh-1"}
    settings, store, partition = await ledger_relayed(stream, tmp_path)
    entries = store.logs[settings.log_origin(partition)].entries
    history = [parse_device_key_entry(entry) for entry in entries]
    assert [k.revoked_at_ms for k in history] == [None, 1_764_000_500_000]
    assert history[0].public_key == record.public_key
