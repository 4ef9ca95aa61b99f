"""``roadledger ingest`` as a real process: SIGKILL mid-run, restart, SIGTERM; nothing lost.

Its own topics (``ROADLEDGER_TOPIC_PREFIX``), scratch schema and consumer group. Thousands of
messages (valid ones and one of every rejection) are published to the raw topic; the verifier
process (with a worker process) is SIGKILLed once part of them is committed, which must leave
no orphan worker behind; a new process finishes the work and stops on SIGTERM with exit 0.
Every raw record must then be in exactly one of the two topics with its verdict; the only
records placed twice are ones at or after the offsets committed at the kill (produced, not
committed), each copy with the same verdict.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition

from app.cli import COMMANDS
from chain.errors import RejectReason
from contracts.topics import QUARANTINE, RAW, VERIFIED
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream import TopicPartition
from roadledger.stream.kafka import KafkaStream
from runtime.services.kafka import delete_topics, ensure_topics
from tests.integration.test_verifier_kafka import read_all
from tests.support.pipeline import wait_until
from tests.support.scratch_schema import scratch_schema_pool
from tests.unit.ingest.fleet import mixed_traffic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

# `roadledger ingest` once the CLI registers it; until then the same module, run the same way.
_RUN_MODULE = (
    "import argparse, sys\n"
    "from app.commands import ingest\n"
    "from roadledger.settings import load_settings\n"
    "parser = argparse.ArgumentParser()\n"
    "ingest.configure(parser)\n"
    "sys.exit(ingest.run(parser.parse_args(sys.argv[1:]), load_settings()))\n"
)
INGEST = (
    [str(Path(sys.executable).parent / "roadledger"), "ingest"]
    if "ingest" in COMMANDS
    else [sys.executable, "-c", _RUN_MODULE]
)


@pytest.fixture
async def env(kafka: Settings, postgres: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    run = uuid.uuid4().hex[:10]
    async with scratch_schema_pool(kafka) as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        settings = kafka.model_copy(
            update={
                "database_url": f"{kafka.database_url}?search_path={schema}",
                "topic_prefix": f"test-ingest-{run}.",
                "batch_size": 250,
                "verify_workers": 1,
            }
        )
        await ensure_topics(settings)
        try:
            yield settings, pool
        finally:
            await delete_topics(settings)


def start(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ROADLEDGER_DATABASE_URL": settings.database_url,
        "ROADLEDGER_TOPIC_PREFIX": settings.topic_prefix,
        "ROADLEDGER_BATCH_SIZE": str(settings.batch_size),
        "ROADLEDGER_VERIFY_WORKERS": str(settings.verify_workers),
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [*INGEST, "--stats-interval", "1"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def committed(
    settings: Settings, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.group("roadledger-verifier")
    )
    await consumer.start()
    try:
        return {
            tp: await consumer.committed(KafkaTopicPartition(tp.topic, tp.partition)) or 0
            for tp in partitions
        }
    finally:
        await consumer.stop()


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def poll_until(
    condition: Callable[[], Awaitable[bool]],
    what: str,
    within_s: float = 120,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll an observable condition until it holds; fail naming ``what``, at once (with the
    log) if ``process`` exited."""

    async def holds() -> bool:
        if await condition():
            return True
        if process is not None and process.poll() is not None:
            output = tail(log) if log is not None else ""
            raise AssertionError(f"ingest exited with {process.returncode}:\n{output}")
        return False

    await wait_until(holds, what, within_s, every_s=0.05)


async def test_sigkill_mid_run_then_restart_loses_and_repeats_nothing_wrongly(
    env: tuple[Settings, asyncpg.Pool], tmp_path: Path
) -> None:
    settings, pool = env
    traffic = mixed_traffic(vehicles=60, messages=200)
    registry = DeviceRegistry(pool)
    await registry.ensure_organisation("fleet-a", "Fleet A", "fleet_owner")
    await registry.register_many(traffic.records)

    raw = settings.topic(RAW)
    producer = KafkaStream(settings).producer(client_id="test-bridge")
    await producer.start()
    futures = []
    for sent in traffic.sent:
        headers = [("recv_ms", str(sent.recv_ms).encode())]
        futures.append(await producer.send(raw, sent.value, key=sent.key, headers=headers))
    expected: dict[str, RejectReason | None] = {}
    end: dict[TopicPartition, int] = {}
    for sent, (partition, offset) in zip(traffic.sent, await asyncio.gather(*futures), strict=True):
        expected[f"raw:{partition}:{offset}"] = sent.expected
        end[TopicPartition(raw, partition)] = max(
            end.get(TopicPartition(raw, partition), 0), offset + 1
        )
    await producer.stop()
    total = sum(end.values())
    partitions = sorted(end)

    first_log = tmp_path / "ingest.1.log"
    first = start(settings, first_log)

    async def a_quarter_committed() -> bool:
        return sum((await committed(settings, partitions)).values()) >= total // 4

    await poll_until(a_quarter_committed, "a quarter committed", process=first, log=first_log)
    workers = children(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    at_kill = await committed(settings, partitions)
    assert sum(at_kill.values()) < total, "the kill came after the end: use more messages"
    assert workers, "the verifier had a worker process"

    async def workers_gone() -> bool:
        return not any(running(pid) for pid in workers)

    await poll_until(workers_gone, "the worker processes to die with the verifier", 10)

    second_log = tmp_path / "ingest.2.log"
    second = start(settings, second_log)

    async def all_committed() -> bool:
        return await committed(settings, partitions) == end

    await poll_until(all_committed, "everything committed", process=second, log=second_log)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=60) == 0, tail(second_log)
    output = tail(second_log)
    assert "ingest: verifier stopped; received=" in output
    assert "verifier counts received=" in output, "counters are logged"

    placed: dict[str, list[tuple[str, str | None]]] = {}
    for record in await read_all(settings, [settings.topic(VERIFIED), settings.topic(QUARANTINE)]):
        src_header, reason = record.header("src"), record.header("reason")
        assert src_header is not None
        placed.setdefault(src_header.decode(), []).append(
            (record.topic, reason.decode() if reason else None)
        )
    assert set(placed) == set(expected), "every raw record is in exactly one topic"
    repeated = set()
    for src, copies in placed.items():
        verdict = expected[src]
        want = (
            (settings.topic(VERIFIED), None)
            if verdict is None
            else (settings.topic(QUARANTINE), verdict.value)
        )
        assert all(copy == want for copy in copies), f"{src}: {copies} != {want}"
        if len(copies) > 1:
            repeated.add(src)
            _, partition_text, offset_text = src.split(":")
            assert len(copies) == 2
            assert int(offset_text) >= at_kill[TopicPartition(raw, int(partition_text))], (
                f"{src} was committed before the kill, yet placed twice"
            )
    assert len(repeated) <= settings.batch_size, "at most the batch under way repeats"
    forwarded = sum(1 for v in expected.values() if v is None)
    rows = await pool.fetchval("SELECT count(*) FROM device_messages")
    assert rows == forwarded
