"""``roadledger ingest`` as a real process waits out PostgreSQL and Kafka outages by itself.

Each test runs the process against a PRIVATE PostgreSQL (and, for the pause, a private Kafka:
``private_services``), so crashing, pausing and restarting them touches nobody else's tests.
A backlog of signed, valid vehicle messages is on the raw topic; once part of it is stored the
service is crashed (``pg_ctl stop -m immediate``, back 5 s later) or paused (SIGSTOP for 20 s,
then SIGCONT). The process must not exit nor be restarted; once it is quiet every message must
be stored exactly once, and the outage must be one "unavailable" line and one "back" line in
its log, not one per retry. Then the service goes away again and a SIGTERM must end the process
within 5 s with exit code 0, leaving no worker process behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from contracts.topics import RAW
from roadledger.db.schema import apply_schema
from roadledger.registry import DeviceRegistry
from roadledger.settings import Settings
from roadledger.stream import OutgoingRecord
from roadledger.stream.kafka import KafkaStream
from runtime.services.kafka import delete_topics, ensure_topics
from tests.integration.private_services import PrivateServices, private_services
from tests.integration.test_verifier_process import children, running
from tests.support.pipeline import wait_until
from tests.unit.ingest.fleet import T0, Device

pytestmark = [pytest.mark.postgres, pytest.mark.kafka, pytest.mark.slow, pytest.mark.faults]

ROADLEDGER = str(Path(sys.executable).parent / "roadledger")
VEHICLES = 100
STOP_WITHIN_S = 5.0


class Ingest:
    """One ``roadledger ingest`` process on the private services, and what it logged."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        env = {
            **os.environ,
            "ROADLEDGER_DATABASE_URL": settings.database_url,
            "ROADLEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "ROADLEDGER_TOPIC_PREFIX": settings.topic_prefix,
            "ROADLEDGER_BATCH_SIZE": "250",
            "ROADLEDGER_VERIFY_WORKERS": "1",
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [ROADLEDGER, "ingest", "--stats-interval", "5"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self, needle: str) -> list[str]:
        return [line for line in self.text().splitlines() if needle in line]

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"ingest exited with {self.process.returncode}:\n{self.text()[-4000:]}"
            )

    async def until(
        self, condition: Callable[[], Awaitable[bool]], what: str, within_s: float = 120
    ) -> None:
        """Poll an observable condition until it holds; fail naming ``what`` and the log, at
        once if ingest exited."""

        async def holds() -> bool:
            if await condition():
                return True
            self.alive()
            return False

        await wait_until(
            holds, what, within_s, every_s=0.1, observed=lambda: "\n" + self.text()[-4000:]
        )

    async def logged(self, needle: str, count: int = 1, within_s: float = 60) -> None:
        async def seen() -> bool:
            return len(self.lines(needle)) >= count

        await self.until(seen, f"{count} log line(s) with {needle!r}", within_s)

    async def sigterm_within(self, seconds: float) -> None:
        """SIGTERM: exit code 0 within ``seconds``, and no worker process left behind."""
        workers = children(self.process.pid)
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.process.wait, seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"still running {seconds} s after SIGTERM:\n{self.text()[-4000:]}"
            ) from None
        took = time.monotonic() - started
        print(f"ingest exited {took:.1f} s after SIGTERM with {code}")
        assert code == 0, self.text()[-4000:]
        assert "Traceback" not in self.text(), self.text()[-4000:]
        # Workers exit after their parent: wait for that, a worker still running fails.
        await wait_until(
            lambda: not [pid for pid in workers if running(pid)],
            "ingest's workers to exit after it (a worker outlived ingest)",
            5,
            every_s=0.05,
            observed=lambda: f"running: {[pid for pid in workers if running(pid)]}",
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def backlog(messages_per_vehicle: int) -> tuple[list[Device], list[OutgoingRecord]]:
    """Signed, valid, chained messages of ``VEHICLES`` vehicles, interleaved in time."""
    fleet = [Device(f"veh-{i:03d}", valid_from_ms=T0 - 86_400_000) for i in range(VEHICLES)]
    records = []
    for step in range(messages_per_vehicle):
        ts = T0 + step * 1000
        for device in fleet:
            records.append(
                OutgoingRecord(
                    key=device.device_id.encode(),
                    value=device.message(ts),
                    headers=(("recv_ms", str(ts + 200).encode()),),
                )
            )
    return fleet, records


async def publish(settings: Settings, records: list[OutgoingRecord]) -> None:
    producer = KafkaStream(settings).producer(client_id="test-outage-publisher")
    await producer.start()
    try:
        for start in range(0, len(records), 5000):
            durable = await producer.send_many(settings.topic(RAW), records[start : start + 5000])
            await durable
    finally:
        await producer.stop()


async def stored(settings: Settings) -> tuple[int, int]:
    """(telemetry rows, distinct (device, seq) among them) in the private database."""
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (device_id, seq)) AS d FROM telemetry"
        )
        assert row is not None
        return int(row["n"]), int(row["d"])
    finally:
        await conn.close()


async def stored_or_zero(settings: Settings) -> int:
    try:
        return (await stored(settings))[0]
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return 0  # the server is down, or the store writer has not made the table yet


async def _private(settings: Settings, *, kafka: bool) -> AsyncIterator[PrivateServices]:
    """A private PostgreSQL with the schema (and a private Kafka if asked), own topics."""
    async with private_services(settings, postgres=True, kafka=kafka) as private:
        private.settings = private.settings.model_copy(
            update={"topic_prefix": f"test-outage-{uuid.uuid4().hex[:8]}."}
        )
        await ensure_topics(private.settings)
        conn = await asyncpg.connect(private.settings.database_url)
        try:
            await apply_schema(conn, retention_days=private.settings.retention_days)
        finally:
            await conn.close()
        try:
            yield private
        finally:
            if not kafka:  # the shared broker: leave it as it was
                await delete_topics(private.settings)


@pytest.fixture
async def private_postgres(settings: Settings) -> AsyncIterator[PrivateServices]:
    async for private in _private(settings, kafka=False):
        yield private


@pytest.fixture
async def private_postgres_kafka(settings: Settings) -> AsyncIterator[PrivateServices]:
    async for private in _private(settings, kafka=True):
        yield private


async def register(settings: Settings, fleet: list[Device]) -> None:
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        registry = DeviceRegistry(pool)
        await registry.ensure_organisation("fleet-a", "Fleet A", "fleet_owner")
        await registry.register_many([device.record for device in fleet])
    finally:
        await pool.close()


async def test_postgres_down_at_start_and_restarted_mid_run(
    private_postgres: PrivateServices, tmp_path: Path
) -> None:
    services = private_postgres
    settings = services.settings
    fleet, records = backlog(messages_per_vehicle=300)  # 30,000 messages
    await register(settings, fleet)

    # Start with the database down: one line, a wait, no traceback.
    await asyncio.to_thread(services.postgres_immediate_stop)
    ingest = Ingest(settings, tmp_path / "ingest.log")
    try:
        await ingest.logged("PostgreSQL unavailable")
        await asyncio.to_thread(services.postgres_start)
        await ingest.logged("PostgreSQL is back")
        await publish(settings, records)

        async def some_stored() -> bool:
            return await stored_or_zero(settings) >= 3000

        await ingest.until(some_stored, "3,000 rows stored before the crash")
        await asyncio.to_thread(services.postgres_immediate_stop)
        await asyncio.sleep(5)  # the outage's length is the fault, not a synchronisation
        await asyncio.to_thread(services.postgres_start)

        async def all_stored() -> bool:
            return await stored_or_zero(settings) >= len(records)

        await ingest.until(all_stored, f"all {len(records):,} messages stored", 180)
        ingest.alive()
        assert await stored(settings) == (len(records), len(records)), "each message once"
        await ingest.logged("PostgreSQL is back", count=2)
        down, back = ingest.lines("PostgreSQL unavailable"), ingest.lines("PostgreSQL is back")
        print("\n".join(down + back))
        assert (len(down), len(back)) == (2, 2), "one line each way per outage (start, crash)"
        assert "Traceback" not in ingest.text()

        # Down again, noticed (more messages to claim), then SIGTERM mid-outage.
        await asyncio.to_thread(services.postgres_immediate_stop)
        await publish(settings, backlog_more(fleet, records_per_vehicle=5))
        await ingest.logged("PostgreSQL unavailable", count=3)
        await ingest.sigterm_within(STOP_WITHIN_S)
    finally:
        ingest.kill()


async def test_kafka_paused_20s_mid_run(
    private_postgres_kafka: PrivateServices, tmp_path: Path
) -> None:
    services = private_postgres_kafka
    settings = services.settings
    fleet, records = backlog(messages_per_vehicle=600)  # 60,000 messages
    await register(settings, fleet)
    await publish(settings, records)
    ingest = Ingest(settings, tmp_path / "ingest.log")
    try:

        async def some_stored() -> bool:
            return await stored_or_zero(settings) >= 3000

        await ingest.until(some_stored, "3,000 rows stored before the pause")
        services.kafka_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(20)  # the pause's length is the fault, not a synchronisation
        finally:
            services.kafka_signal(signal.SIGCONT)
        paused_at = await stored_or_zero(settings)
        assert paused_at < len(records), "the pause came after the end: use more messages"

        async def all_stored() -> bool:
            return await stored_or_zero(settings) >= len(records)

        await ingest.until(all_stored, f"all {len(records):,} messages stored", 240)
        ingest.alive()
        assert await stored(settings) == (len(records), len(records)), "each message once"
        down, back = ingest.lines("Kafka unavailable"), ingest.lines("Kafka is back")
        print("\n".join(down + back + ingest.lines("rebalanced")))
        assert (len(down), len(back)) == (1, 1), "one line each way for the pause"
        unable = ingest.lines("Unable connect")
        assert len(unable) <= 2, f"aiokafka's retries are folded, got {len(unable)} lines"
        assert "Traceback" not in ingest.text()

        # Paused again with work under way (noticed if a delivery or commit hangs past 5 s,
        # not if the process was between fetches), then SIGTERM mid-pause: closing the clients
        # of a paused broker must not hold the process.
        await publish(settings, backlog_more(fleet, records_per_vehicle=100))
        services.kafka_signal(signal.SIGSTOP)
        try:
            try:
                await ingest.logged("Kafka unavailable", count=2, within_s=10)
            except AssertionError:
                print("the second pause was not noticed before the SIGTERM")
            await ingest.sigterm_within(STOP_WITHIN_S)
        finally:
            services.kafka_signal(signal.SIGCONT)
    finally:
        ingest.kill()


def backlog_more(fleet: list[Device], records_per_vehicle: int) -> list[OutgoingRecord]:
    """The fleet's next ``records_per_vehicle`` messages each (their chains continue)."""
    records = []
    for _ in range(records_per_vehicle):
        for device in fleet:
            ts = T0 + (device.seq + 1) * 1000
            records.append(
                OutgoingRecord(
                    key=device.device_id.encode(),
                    value=device.message(ts),
                    headers=(("recv_ms", str(ts + 200).encode()),),
                )
            )
    return records
