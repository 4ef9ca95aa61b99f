"""The verifier on the real Kafka and PostgreSQL, with the real device registry.

Scratch topics (3 partitions each) and a scratch schema per test. A mix of valid messages and
one case of every rejection goes to the raw topic; every record must end in exactly one of
the verified and quarantine topics, with the right reason, and the offsets must be committed.
The restart tests stop a verifier at a chosen step without committing (a crash: the task is
cancelled there) and start a new one: nothing is lost, and the only records placed twice are
the ones the first verifier had produced but not committed, each copy with the same verdict
and the same ``src``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from chain.errors import RejectReason
from ingest.verifier import Verifier
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream import StreamRecord, TopicPartition
from roadledger.stream.kafka import KafkaStream
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.fleet import Traffic, mixed_traffic
from tests.unit.ingest.stream_probe import ProbeStream

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

Placed = dict[str, list[tuple[str, str | None]]]


@dataclass
class Topics:
    raw: str
    verified: str
    quarantine: str


@pytest.fixture
async def topics(kafka: Settings) -> AsyncIterator[Topics]:
    prefix = f"test.verifier.{uuid.uuid4().hex[:10]}"
    names = Topics(f"{prefix}.raw", f"{prefix}.verified", f"{prefix}.quarantine")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 3, 1) for name in (names.raw, names.verified, names.quarantine)]
        )
        yield names
        await admin.delete_topics([names.raw, names.verified, names.quarantine])
    finally:
        await admin.close()


@pytest.fixture
async def pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres, max_size=6) as scratch:
        yield scratch


@dataclass
class KafkaRun:
    settings: Settings
    topics: Topics
    pool: asyncpg.Pool
    traffic: Traffic
    group: str = field(default_factory=lambda: f"test-verifier-{uuid.uuid4().hex[:10]}")
    expected: dict[str, RejectReason | None] = field(default_factory=dict)
    raw_end: dict[TopicPartition, int] = field(default_factory=dict)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def register_and_publish(self) -> None:
        registry = DeviceRegistry(self.pool)
        await registry.ensure_organisation("fleet-a", "Fleet A", "fleet_owner")
        assert await registry.register_many(self.traffic.records) == len(self.traffic.records)
        producer = KafkaStream(self.settings).producer(client_id="test-bridge")
        await producer.start()
        try:
            futures = []
            for sent in self.traffic.sent:
                headers = [("recv_ms", str(sent.recv_ms).encode())]
                futures.append(
                    await producer.send(self.topics.raw, sent.value, key=sent.key, headers=headers)
                )
            for sent, (partition, offset) in zip(
                self.traffic.sent, await asyncio.gather(*futures), strict=True
            ):
                self.expected[f"raw:{partition}:{offset}"] = sent.expected
                tp = TopicPartition(self.topics.raw, partition)
                self.raw_end[tp] = max(self.raw_end.get(tp, 0), offset + 1)
        finally:
            await producer.stop()

    def probe(self) -> ProbeStream:
        return ProbeStream(KafkaStream(self.settings), self.committed)

    def start(self, probe: ProbeStream, stop: asyncio.Event, workers: int) -> Verifier:
        settings = self.settings.model_copy(update={"verify_workers": workers})
        verifier = Verifier(
            settings,
            probe,
            self.pool,
            DeviceRegistry(self.pool),
            raw_topic=self.topics.raw,
            verified_topic=self.topics.verified,
            quarantine_topic=self.topics.quarantine,
            group_id=self.group,
        )
        self.tasks.append(asyncio.create_task(verifier.run(stop)))
        return verifier

    async def crash_when(self, reached: asyncio.Event) -> None:
        await asyncio.wait_for(reached.wait(), 60)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    async def finish(self, probe: ProbeStream, stop: asyncio.Event) -> None:
        await probe.wait_committed(self.raw_end, within_s=120)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 60)
        self.tasks.clear()

    async def placed(self) -> Placed:
        placed: Placed = {}
        for record in await read_all(self.settings, [self.topics.verified, self.topics.quarantine]):
            src = record.header("src")
            reason = record.header("reason")
            assert src is not None
            placed.setdefault(src.decode(), []).append(
                (record.topic, reason.decode() if reason else None)
            )
        return placed

    def check(self, placed: Placed, *, replays_allowed: bool) -> set[str]:
        """Each raw record placed with its verdict; returns the ones placed more than once."""
        assert set(placed) == set(self.expected), "every raw record is in exactly one topic"
        twice = set()
        for src, copies in placed.items():
            expected = self.expected[src]
            want = (
                (self.topics.verified, None)
                if expected is None
                else (self.topics.quarantine, expected.value)
            )
            assert all(copy == want for copy in copies), f"{src}: {copies} != {want}"
            if len(copies) > 1:
                twice.add(src)
        assert replays_allowed or not twice, f"placed twice: {sorted(twice)}"
        return twice

    async def committed_offsets(self) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=self.group
        )
        await consumer.start()
        try:
            return {
                tp: await consumer.committed(KafkaTopicPartition(tp.topic, tp.partition)) or 0
                for tp in self.raw_end
            }
        finally:
            await consumer.stop()


async def read_all(settings: Settings, topics: list[str]) -> list[StreamRecord]:
    """Every record of ``topics`` from the beginning to the current end (no group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [KafkaTopicPartition(topic, p) for topic in topics for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        left = {tp: n for tp, n in end.items() if n > 0}
        records: list[StreamRecord] = []
        while left:
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, f"reading the output topics stalled with {left} left"
            for tp, batch in batches.items():
                for r in batch:
                    headers = tuple((k, bytes(v)) for k, v in r.headers)
                    records.append(
                        StreamRecord(r.topic, r.partition, r.offset, r.key, r.value or b"", headers)
                    )
                if batch and batch[-1].offset + 1 >= end[tp]:
                    left.pop(tp, None)
        return records
    finally:
        await consumer.stop()


@pytest.fixture
async def run(kafka: Settings, topics: Topics, pool: asyncpg.Pool) -> AsyncIterator[KafkaRun]:
    settings = kafka.model_copy(update={"batch_size": 32})
    scenario = KafkaRun(settings, topics, pool, mixed_traffic(vehicles=6, messages=8))
    await scenario.register_and_publish()
    yield scenario
    for task in scenario.tasks:
        task.cancel()
    await asyncio.gather(*scenario.tasks, return_exceptions=True)


async def test_every_record_is_placed_once_with_its_reason_and_committed(run: KafkaRun) -> None:
    probe = run.probe()
    stop = asyncio.Event()
    verifier = run.start(probe, stop, workers=2)
    await run.finish(probe, stop)

    run.check(await run.placed(), replays_allowed=False)
    assert await run.committed_offsets() == run.raw_end
    counts = verifier.stats.snapshot()
    expected = run.traffic.expected_counts()
    assert counts["forwarded"] == expected.pop("verified")
    assert {k.removeprefix("rejected."): v for k, v in counts.items() if "." in k} == expected
    rows = await run.pool.fetchval("SELECT count(*) FROM device_messages")
    assert rows == counts["forwarded"], "one device_messages row per forwarded message"


async def test_restart_after_a_crash_before_the_commit(run: KafkaRun) -> None:
    probe = run.probe()
    probe.commit_gate.after = 2  # two batches committed; the third produced, never committed
    first = run.start(probe, asyncio.Event(), workers=0)
    await run.crash_when(probe.commit_gate.reached)
    committed_at_crash = dict(run.committed)
    produced_before = set(await run.placed())
    assert first.stats.batches == 2
    uncommitted = not_committed(produced_before, committed_at_crash)
    assert uncommitted, "the third batch was produced before the crash"

    again = run.probe()
    stop = asyncio.Event()
    second = run.start(again, stop, workers=0)
    await run.finish(again, stop)
    placed = await run.placed()
    twice = run.check(placed, replays_allowed=True)
    assert twice == uncommitted, "exactly the produced but uncommitted batch repeats"
    assert all(len(placed[src]) == 2 for src in twice)
    forwarded_twice = sum(placed[src][0][0] == run.topics.verified for src in twice)
    assert second.stats.replayed == forwarded_twice, "own replays, not duplicates"
    assert await run.committed_offsets() == run.raw_end


async def test_restart_after_a_crash_in_the_middle_of_the_produce(run: KafkaRun) -> None:
    probe = run.probe()
    probe.send_gate.after = 45  # some batches out, the next one half produced
    run.start(probe, asyncio.Event(), workers=1)
    await run.crash_when(probe.send_gate.reached)
    committed_at_crash = dict(run.committed)
    produced_before = set(await run.placed())
    assert len(produced_before) == 45
    uncommitted = not_committed(produced_before, committed_at_crash)
    assert uncommitted

    again = run.probe()
    stop = asyncio.Event()
    run.start(again, stop, workers=1)
    await run.finish(again, stop)
    twice = run.check(await run.placed(), replays_allowed=True)
    assert twice == uncommitted, "exactly the produced part of the uncommitted batch repeats"


def not_committed(sources: set[str], committed: dict[TopicPartition, int]) -> set[str]:
    """The ``raw:<partition>:<offset>`` among ``sources`` at or after their commit."""
    result = set()
    for src in sources:
        _, partition, offset = src.split(":")
        done = max((o for tp, o in committed.items() if tp.partition == int(partition)), default=0)
        if int(offset) >= done:
            result.add(src)
    return result
