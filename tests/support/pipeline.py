"""A private pipeline for end-to-end tests and benchmarks: scratch schema, prefixed topics,
real processes.

Everything a run touches is its own: a scratch PostgreSQL schema, Kafka topics under a unique
prefix (created like `scripts/services` creates the real ones, deleted afterwards), a unique
MQTT session for the bridge, its own log key. Components run as real `roadledger` processes,
so a test can SIGKILL and restart them.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from ingest.mqtt_link import end_session
from roadledger.mqtt_auth import bridge_account
from roadledger.settings import Settings
from runtime.services.kafka import delete_topics, ensure_topics
from tests.support.scratch_schema import scratch_schema_pool

ROADLEDGER = str(Path(sys.executable).parent / "roadledger")


def _timed_out(what: str, within_s: float, observed: Callable[[], object] | None) -> AssertionError:
    message = f"timed out after {within_s:g} s waiting for {what}"
    if observed is not None:
        message += f"; last observed: {observed()}"
    return AssertionError(message)


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    within_s: float = 120.0,
    *,
    every_s: float = 0.25,
    observed: Callable[[], object] | None = None,
) -> None:
    """Poll ``condition`` (plain or async) every ``every_s`` until it holds.

    Returns only once it held. After ``within_s`` it raises ``AssertionError`` naming ``what``,
    the time waited and, if ``observed`` is given, what it returns then (the last state seen).
    Whatever ``condition`` raises propagates, so a condition can fail early when what it waits
    on has died. The one polling helper of the tests (and benchmarks): no loop of their own.
    """
    deadline = time.monotonic() + within_s
    while True:
        holds = condition()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        if time.monotonic() > deadline:
            raise _timed_out(what, within_s, observed)
        await asyncio.sleep(every_s)  # polling interval of an observed condition


def wait_until_sync(
    condition: Callable[[], bool],
    what: str,
    within_s: float = 120.0,
    *,
    every_s: float = 0.25,
    observed: Callable[[], object] | None = None,
) -> None:
    """:func:`wait_until` for code without an event loop (a plain test, a thread)."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise _timed_out(what, within_s, observed)
        time.sleep(every_s)  # polling interval of an observed condition


@dataclass
class Component:
    """One `roadledger <command>` process of the pipeline, known as ``name`` (several
    processes may run one command, e.g. two `roadledger ingest` in one consumer group)."""

    name: str
    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    command: str = ""  # default: the name

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"{self.name}.{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [ROADLEDGER, *(self.command or self.name).split()],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
            raise AssertionError(f"roadledger {self.name} ignored SIGTERM for 60s") from None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self) -> str:
        logs = sorted(self.log_dir.glob(f"{self.name}.*.log"))
        return logs[-1].read_text(errors="replace")[-3000:] if logs else ""


@dataclass
class PipelineEnv:
    settings: Settings
    pool: asyncpg.Pool
    env: dict[str, str]
    log_dir: Path
    components: dict[str, Component] = field(default_factory=dict)

    def component(
        self, name: str, *, command: str = "", env: dict[str, str] | None = None
    ) -> Component:
        """The process called ``name`` (made on first use: `roadledger <command or name>`,
        with the pipeline's environment plus ``env``)."""
        if name not in self.components:
            self.components[name] = Component(
                name, {**self.env, **(env or {})}, self.log_dir, command=command
            )
        return self.components[name]

    def check_alive(self) -> None:
        for component in self.components.values():
            if component.process is not None and not component.alive():
                raise AssertionError(
                    f"roadledger {component.name} exited with {component.process.returncode}:\n"
                    f"{component.log_tail()}"
                )


@asynccontextmanager
async def pipeline_env(base: Settings, tmp_path: Path) -> AsyncIterator[PipelineEnv]:
    """A private pipeline environment; stops its processes and drops its data afterwards."""
    run = uuid.uuid4().hex[:10]
    async with scratch_schema_pool(base) as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        settings = base.model_copy(
            update={
                "database_url": f"{base.database_url}?search_path={schema}",
                "topic_prefix": f"e2e-{run}.",
                "bridge_client_id": f"e2e-bridge-{run}",
                "log_key_file": tmp_path / "log.skey",
            }
        )
        await ensure_topics(settings)
        env = {
            **os.environ,
            "ROADLEDGER_DATABASE_URL": settings.database_url,
            "ROADLEDGER_TOPIC_PREFIX": settings.topic_prefix,
            "ROADLEDGER_BRIDGE_CLIENT_ID": settings.bridge_client_id,
            "ROADLEDGER_LOG_KEY_FILE": str(settings.log_key_path),
            # One process per role, restarted under its name as a supervisor would.
            "ROADLEDGER_KAFKA_GROUP_INSTANCE": f"e2e-{run}",
            "ROADLEDGER_HEALTH_DIR": str(tmp_path / "health"),
            "ROADLEDGER_HEALTH_INTERVAL_S": "0.5",
        }
        log_dir = tmp_path / "logs"
        log_dir.mkdir()
        pipeline = PipelineEnv(settings, pool, env, log_dir)
        try:
            yield pipeline
        finally:
            for component in pipeline.components.values():
                component.stop()
            if "bridge" in pipeline.components:  # else the broker queues for it forever
                await asyncio.to_thread(
                    end_session,
                    settings.mqtt.host,
                    settings.mqtt.port,
                    settings.bridge_client_id,
                    account=bridge_account(settings),
                )
            await delete_topics(settings)


class KafkaProbe:
    """One long-lived consumer for reading offsets and whole topics (no consumer group)."""

    def __init__(self, settings: Settings) -> None:
        self.partitions = settings.kafka_partitions  # as ensure_topics created them
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
        )

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    def _partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    async def end_offsets(self, topic: str) -> int:
        ends = await self.consumer.end_offsets(self._partitions(topic))
        return sum(ends.values())

    async def read(self, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
        """Every record of ``topic`` (value, headers), from the beginning to the end now."""
        partitions = self._partitions(topic)
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)
        ends = await self.consumer.end_offsets(partitions)
        records: list[tuple[bytes, dict[str, bytes]]] = []
        for tp in partitions:
            while await self.consumer.position(tp) < ends[tp]:
                batch = await self.consumer.getmany(tp, timeout_ms=5000)
                for record in batch.get(tp, []):
                    records.append((record.value or b"", dict(record.headers)))
        return records
