"""Rules versions reach a log through the real Kafka: outbox relay -> topic -> ledger writer,
then the entry has an inclusion proof that verifies and a signature anyone can check offline.
A document of the largest size allowed goes through too (``limits.py``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from chain.hashing import leaf_hash
from chain.merkle import inclusion_plan, verify_inclusion
from chain.sequencer import InMemoryLedgerStore
from contracts.rules.limits import MAX_DOCUMENT_BYTES
from contracts.rules.signing import RULES_ENTRY_PREFIX, SignedRules, rules_entry, sign_rules
from ingest.ledger_writer import LedgerWriter
from ingest.outbox_relay import relay_outbox
from roadledger.log_key import LogKey
from roadledger.rules_store import add_organisation_key, publish_rules
from roadledger.settings import Settings
from roadledger.stream.kafka import KafkaStream
from tests.integration.test_rules_publish import KEY, NOW, _authorities, _doc
from tests.support.pipeline import wait_until
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def scratch_topic(kafka: Settings) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    name = f"test.rules.{uuid.uuid4().hex[:12]}"
    await admin.create_topics([NewTopic(name, 3, 1)])
    try:
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


async def test_published_rules_are_in_a_log_with_a_verifying_proof(
    kafka: Settings, postgres: Settings, scratch_topic: str, tmp_path: Path
) -> None:
    # The second is as large as a document may be: its entry must still fit a Kafka message.
    largest = _doc(2, NOW + 2)
    largest = largest[:-1] + b" " * (MAX_DOCUMENT_BYTES - len(largest)) + b"}"
    versions = [sign_rules(KEY, "k1", _doc(1, NOW + 1)), sign_rules(KEY, "k1", largest)]
    stream = KafkaStream(kafka)
    async with scratch_schema_pool(postgres) as pool:
        await _authorities(pool, "metro-police")
        await add_organisation_key(pool, "metro-police", "k1", KEY.public_key, 0)
        async with pool.acquire() as conn:
            for signed in versions:
                await publish_rules(conn, signed, NOW)
        producer = stream.producer(client_id="test-rules-outbox")
        await producer.start()
        try:
            assert await relay_outbox(pool, producer, topic=scratch_topic) == 2
        finally:
            await producer.stop()

    store = InMemoryLedgerStore()
    settings = kafka.model_copy(update={"data_dir": tmp_path})
    writer = LedgerWriter(
        settings,
        stream,
        store,
        LogKey(bytes(32)),
        topic=scratch_topic,
        group_id=f"test-rules-{uuid.uuid4().hex[:8]}",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop))
    try:
        await wait_until(
            lambda: sum(len(log.entries) for log in store.logs.values()) >= 2,
            "both rules versions in the ledger",
            120,
            every_s=0.05,
            observed=lambda: {o: len(log.entries) for o, log in store.logs.items()},
        )
    finally:
        stop.set()
        await task

    (origin,) = [o for o, log in store.logs.items() if log.entries]
    log = store.logs[origin]
    checkpoint = log.checkpoints[-1].checkpoint
    assert checkpoint.size == 2
    for signed in versions:
        entry = rules_entry(signed)
        index = log.entries.index(entry)
        plan = inclusion_plan(index, checkpoint.size)
        proof = plan.assemble(await store.read_nodes(origin, plan.nodes))
        verify_inclusion(index, checkpoint.size, leaf_hash(entry), checkpoint.root_hash, proof)
        rules = SignedRules.from_bytes(entry.removeprefix(RULES_ENTRY_PREFIX)).verify(
            KEY.public_key
        )
        assert rules.signed == signed
