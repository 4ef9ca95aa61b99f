"""ingest.bridge on the real Mosquitto and Kafka: nothing lost, nothing acknowledged early,
bounded memory, and a SIGKILLed `roadledger bridge` loses nothing."""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from contracts.topics import RAW
from ingest.bridge import Bridge
from roadledger.mqtt_auth import bridge_account, sim_account
from roadledger.settings import Settings
from roadledger.stream.base import StreamRecord
from roadledger.stream.kafka import KafkaStream
from tests.integration.mqtt_client import MqttTestClient
from tests.unit.ingest.bridge_rig import HeldStream

pytestmark = [pytest.mark.mqtt, pytest.mark.kafka]

WAIT_S = 30


@pytest.fixture
def services(mqtt: Settings, kafka: Settings) -> Settings:
    return mqtt


@pytest.fixture
def prefix() -> str:
    """An MQTT topic prefix no other test publishes under (in the telemetry tree, which the
    broker's ACL opens to the bridge and simulator accounts; a level deeper than any device's
    topic, so no other bridge hears it)."""
    return f"roadledger/v1/telemetry/test-bridge-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client_id(services: Settings) -> Iterator[str]:
    """A bridge session id; the persistent session is removed from the broker afterwards."""
    name = f"test-bridge-{uuid.uuid4().hex[:10]}"
    yield name
    MqttTestClient(
        services.mqtt, name, clean_session=True, account=bridge_account(services)
    ).connect().disconnect()


async def _scratch_topic(settings: Settings, name: str) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(name, 3, 1)])
    try:
        yield name
    finally:
        await admin.delete_topics([name])
        await admin.close()


@pytest.fixture
async def raw_topic(services: Settings) -> AsyncIterator[str]:
    async for name in _scratch_topic(services, f"test.bridge.{uuid.uuid4().hex[:12]}"):
        yield name


def _messages(prefix: str, count: int, devices: int = 5) -> list[tuple[str, bytes]]:
    rng = random.Random(count)
    return [
        (f"{prefix}/veh-{i % devices}", f"{i}:".encode() + rng.randbytes(rng.randrange(0, 400)))
        for i in range(count)
    ]


def _publish(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    publisher = MqttTestClient(
        settings.mqtt, f"pub-{uuid.uuid4().hex[:8]}", clean_session=True,
        account=sim_account(settings),
    )  # fmt: skip
    publisher.connect()
    try:
        for topic, payload in messages:
            publisher.publish(topic, payload)
    finally:
        publisher.disconnect()


async def _read_topic(settings: Settings, topic: str, count: int) -> list[StreamRecord]:
    """At least ``count`` records of ``topic`` (from its start), then exactly what is there."""
    consumer = KafkaStream(settings).consumer(
        [topic], group_id=f"check-{uuid.uuid4().hex}", client_id="check"
    )
    await consumer.start()
    records: list[StreamRecord] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while len(records) < count:
                records.extend(await consumer.getmany(timeout_ms=1000, max_records=1000))
    finally:
        await consumer.stop()
    return records


async def _end_total(settings: Settings, topic: str) -> int:
    """How many records ``topic`` holds (the sum of its end offsets)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=f"count-{uuid.uuid4().hex}"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def _assert_same_messages(records: list[StreamRecord], messages: list[tuple[str, bytes]]) -> None:
    assert len(records) == len(messages)
    got = Counter((r.key, r.value, r.header("mqtt_topic")) for r in records)
    want = Counter((t.rsplit("/", 1)[1].encode(), payload, t.encode()) for t, payload in messages)
    assert got == want, "every message byte for byte, keyed by device, with its topic"


async def _bridge(
    settings: Settings, stream: object, prefix: str, client_id: str, raw: str
) -> Bridge:
    bridge = Bridge(
        settings,
        stream,  # type: ignore[arg-type]
        topic_filter=f"{prefix}/+",
        client_id=client_id,
        raw_topic=raw,
    )
    await bridge.start()
    async with asyncio.timeout(WAIT_S):
        await bridge.wait_subscribed()
    return bridge


async def test_every_message_arrives_in_kafka_verbatim_with_key_and_headers(
    services: Settings, prefix: str, client_id: str, raw_topic: str
) -> None:
    messages = _messages(prefix, 400)
    bridge = await _bridge(services, KafkaStream(services), prefix, client_id, raw_topic)
    try:
        await asyncio.to_thread(_publish, services, messages)
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_acked(len(messages))
    finally:
        stats = await bridge.stop()
    assert (stats.received, stats.produced, stats.acked) == (400, 400, 400)
    assert stats.high_water <= services.bridge_max_inflight

    assert await _end_total(services, raw_topic) == len(messages), "exactly once here"
    records = await _read_topic(services, raw_topic, len(messages))
    _assert_same_messages(records, messages)
    for record in records:
        recv_ms = record.header("recv_ms")
        assert recv_ms is not None
        assert recv_ms.isdigit()
    for device in {t for t, _ in messages}:  # one publisher: per-device order is kept
        key = device.rsplit("/", 1)[1].encode()
        assert [r.value for r in records if r.key == key] == [p for t, p in messages if t == device]


async def test_messages_published_while_the_bridge_is_down_arrive_when_it_returns(
    services: Settings, prefix: str, client_id: str, raw_topic: str
) -> None:
    first = await _bridge(services, KafkaStream(services), prefix, client_id, raw_topic)
    await first.stop()  # the session (and its subscription) stays on the broker

    messages = _messages(prefix, 150)
    await asyncio.to_thread(_publish, services, messages)

    second = await _bridge(services, KafkaStream(services), prefix, client_id, raw_topic)
    try:
        async with asyncio.timeout(WAIT_S):
            await second.wait_acked(len(messages))
    finally:
        await second.stop()
    _assert_same_messages(await _read_topic(services, raw_topic, len(messages)), messages)


async def test_nothing_is_acknowledged_before_the_stream_has_it(
    services: Settings, prefix: str, client_id: str
) -> None:
    messages = _messages(prefix, 30)
    held = HeldStream()  # Kafka never acknowledges anything for the first bridge
    first = await _bridge(services, held, prefix, client_id, "raw")
    await asyncio.to_thread(_publish, services, messages)
    await held.held.wait_sent(len(messages))
    assert first.stats().acked == 0
    await first.stop(drain_timeout=0)  # goes away with 30 unacknowledged messages

    redelivery = HeldStream()
    redelivery.held.auto_deliver = True
    second = await _bridge(services, redelivery, prefix, client_id, "raw")
    try:
        await redelivery.held.wait_sent(len(messages))
        async with asyncio.timeout(WAIT_S):
            await second.wait_acked(len(messages))
    finally:
        await second.stop()
    assert [s.value for s in redelivery.held.sent] == [p for _, p in messages]

    # The second bridge acknowledged them all: a third session gets only what is new.
    after = HeldStream()
    after.held.auto_deliver = True
    third = await _bridge(services, after, prefix, client_id, "raw")
    try:
        await asyncio.to_thread(_publish, services, [(f"{prefix}/veh-x", b"sentinel")])
        await after.held.wait_sent(1)
    finally:
        await third.stop()
    assert [s.value for s in after.held.sent] == [b"sentinel"]


async def test_a_stalled_stream_holds_at_most_max_inflight_and_loses_nothing(
    services: Settings, prefix: str, client_id: str
) -> None:
    limit = 25
    settings = services.model_copy(update={"bridge_max_inflight": limit})
    held = HeldStream()
    bridge = await _bridge(settings, held, prefix, client_id, "raw")
    try:
        messages = _messages(prefix, 300)
        await asyncio.to_thread(_publish, settings, messages[:200])
        async with asyncio.timeout(WAIT_S):
            await bridge.throttled.wait()
        await held.held.wait_sent(limit)
        await asyncio.to_thread(_publish, settings, messages[200:])  # more while stalled
        stats = bridge.stats()
        assert stats.in_flight == limit
        assert stats.received == limit
        assert len(held.held.sent) == limit
        assert stats.acked == 0

        held.held.deliver_all(from_now_on=True)
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_acked(len(messages))
    finally:
        stats = await bridge.stop()
    assert stats.high_water == limit
    assert stats.throttled >= 1
    assert [s.value for s in held.held.sent] == [p for _, p in messages]


def _take_over_session(settings: Settings, client_id: str) -> None:
    """Connect with the bridge's client id, so the broker drops the bridge's connection; then
    leave without acknowledging what the broker hands over (manual ack, never given)."""
    connected = threading.Event()
    intruder = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )
    account = bridge_account(settings)
    intruder.username_pw_set(account.username, account.password)
    intruder.on_connect = lambda *args: connected.set()
    intruder.connect(settings.mqtt.host, settings.mqtt.port)
    intruder.loop_start()
    try:
        assert connected.wait(WAIT_S), "no CONNACK for the intruder"
    finally:
        intruder.disconnect()
        intruder.loop_stop()


async def test_lost_connection_is_reestablished_and_its_unacked_messages_redelivered(
    services: Settings, prefix: str, client_id: str
) -> None:
    held = HeldStream()
    bridge = await _bridge(services, held, prefix, client_id, "raw")
    try:
        first = _messages(prefix, 20)
        await asyncio.to_thread(_publish, services, first)
        await held.held.wait_sent(20)  # in flight, not acknowledged by the stream

        await asyncio.to_thread(_take_over_session, services, client_id)
        await held.held.wait_sent(40)  # reconnected, resubscribed, all 20 delivered again
        held.held.deliver_all(from_now_on=True)
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_acked(20)

        second = [(f"{prefix}/veh-z", b"after reconnect %d" % i) for i in range(5)]
        await asyncio.to_thread(_publish, services, second)
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_acked(25)
    finally:
        stats = await bridge.stop()
    assert stats.connections == 2
    assert stats.dropped == 20, "the first copies: their connection was gone"
    assert stats.acked == 25
    values = [s.value for s in held.held.sent]
    assert values == [p for _, p in first] * 2 + [p for _, p in second]


class _BridgeProcess:
    """`roadledger bridge` (the command module) in a child process, its log in a queue."""

    def __init__(self, env: dict[str, str], prefix: str, client_id: str) -> None:
        code = (
            "import argparse, sys\n"
            "from app.commands import bridge\n"
            "from roadledger.settings import load_settings\n"
            "parser = argparse.ArgumentParser()\n"
            "bridge.configure(parser)\n"
            "sys.exit(bridge.run(parser.parse_args(sys.argv[1:]), load_settings()))\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, "--client-id", client_id, "--topic-filter", f"{prefix}/+"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def close(self) -> None:
        """Kill it if still running; reap it and its pipe."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT_S)
        self._reader.join(WAIT_S)
        assert self.process.stderr is not None
        self.process.stderr.close()

    def wait_for(self, text: str) -> None:
        while True:
            line = self.lines.get(timeout=WAIT_S)
            self.log.append(line)
            if text in line:
                return


async def test_sigkilled_bridge_command_loses_nothing(
    services: Settings, prefix: str, client_id: str
) -> None:
    topic_prefix = f"test.bridgekill.{uuid.uuid4().hex[:8]}."
    env = {**os.environ, "ROADLEDGER_TOPIC_PREFIX": topic_prefix, "ROADLEDGER_LOG_LEVEL": "INFO"}
    messages = _messages(prefix, 3000, devices=20)
    async for raw in _scratch_topic(services, topic_prefix + RAW):
        first = _BridgeProcess(env, prefix, client_id)
        try:
            await asyncio.to_thread(first.wait_for, "subscribed to")
            publisher = asyncio.create_task(asyncio.to_thread(_publish, services, messages))
            await _read_topic(services, raw, 500)  # mid-run: some are in Kafka, more coming
            first.process.send_signal(signal.SIGKILL)
            assert await asyncio.to_thread(first.process.wait, WAIT_S) == -signal.SIGKILL
        finally:
            first.close()

        second = _BridgeProcess(env, prefix, client_id)
        try:
            await asyncio.to_thread(second.wait_for, "subscribed to")
            await publisher
            records = await _read_topic(services, raw, len(messages))
            # at least once: every message is there; a duplicate is allowed, a loss is not
            async with asyncio.timeout(WAIT_S):
                while not {p for _, p in messages} <= {r.value for r in records}:
                    records = await _read_topic(services, raw, len(records) + 1)
            second.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.process.wait, WAIT_S) == 0
            await asyncio.to_thread(second.wait_for, "stopped:")
        finally:
            second.close()
        values = Counter(r.value for r in records)
        assert set(values) == {p for _, p in messages}
        keys = {r.value: r.key for r in records}
        assert all(keys[p] == t.rsplit("/", 1)[1].encode() for t, p in messages)
