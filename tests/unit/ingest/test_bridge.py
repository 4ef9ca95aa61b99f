"""ingest.bridge without a network: an MQTT link with the broker played by the test, and a
producer whose deliveries the test settles by hand (the doubles: ``bridge_rig.py``). The real
broker (and the paho link) is in tests/integration/test_bridge.py."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest

from ingest.bridge import MAX_PAYLOAD_BYTES, Bridge
from roadledger.settings import Settings
from roadledger.stream.errors import StreamError
from roadledger.stream.memory import MemoryStream
from tests.unit.ingest.bridge_rig import (
    FILTER,
    WAIT_S,
    FakeLink,
    HeldProducer,
    HeldStream,
    Rig,
    acked,
    make_rig,
)

# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
async def rig(settings: Settings) -> Any:
    rig = await make_rig(settings)
    yield rig
    await rig.bridge.stop(drain_timeout=0)


# --- tests ----------------------------------------------------------------------------------


async def test_record_is_the_payload_verbatim_keyed_by_device(rig: Rig) -> None:
    payload = b"eyJhbGciOiJFZDI1NTE5In0.\xff\x00 not utf-8"
    before = time.time_ns() // 1_000_000
    rig.link.delivers(1, "veh-42", payload)
    await rig.producer.wait_sent(1)
    (sent,) = rig.producer.sent
    assert (sent.topic, sent.key, sent.value) == ("raw", b"veh-42", payload)
    assert sent.header("mqtt_topic") == b"fleet/veh-42"
    recv_ms = sent.header("recv_ms")
    assert recv_ms is not None
    assert recv_ms.isdigit()
    assert before <= int(recv_ms) <= time.time_ns() // 1_000_000
    assert [name for name, _ in sent.headers] == ["mqtt_topic", "recv_ms"]


async def test_pubacks_wait_for_kafka_and_follow_arrival_order(rig: Rig) -> None:
    for mid in (1, 2, 3, 4):
        rig.link.delivers(mid, f"dev{mid}", b"m%d" % mid)
    await rig.producer.wait_sent(4)
    for index in (3, 2, 1):  # Kafka acknowledges all but the first message
        rig.producer.deliver(index)
    rig.link.delivers(5, "dev5", b"m5")
    await rig.producer.wait_sent(5)
    rig.producer.deliver(4)
    assert rig.link.acks == []

    rig.producer.deliver(0)
    await acked(rig, 5)
    assert rig.link.acks == [1, 2, 3, 4, 5], "early or out-of-order PUBACK"
    stats = rig.bridge.stats()
    assert (stats.received, stats.produced, stats.acked, stats.in_flight) == (5, 5, 5, 0)


async def test_failed_delivery_is_sent_again_and_holds_back_later_pubacks(rig: Rig) -> None:
    rig.link.delivers(1, "a", b"first")
    rig.link.delivers(2, "b", b"second")
    await rig.producer.wait_sent(2)  # one batch: its future fails if any record of it fails
    rig.producer.deliveries[0].set_exception(StreamError("NotEnoughReplicas (test)"))
    rig.producer.deliver(1)
    await rig.producer.wait_sent(4)
    resent = [s.value for s in rig.producer.sent[2:]]
    assert resent == [b"first", b"second"], "the failed batch is sent again, in order"
    assert rig.link.acks == []

    rig.producer.deliver(2)
    rig.producer.deliver(3)
    await acked(rig, 2)
    assert rig.link.acks == [1, 2]
    assert rig.bridge.stats().resent == 2


async def test_send_errors_are_retried_until_the_producer_takes_the_record(rig: Rig) -> None:
    rig.producer.failing_sends = 2
    rig.producer.auto_deliver = True
    rig.link.delivers(7, "a", b"x")
    await acked(rig, 1)
    assert [s.value for s in rig.producer.sent] == [b"x"]
    assert rig.link.acks == [7]
    assert rig.bridge.stats().resent == 2


async def test_no_puback_on_a_new_connection_for_a_message_of_the_old_one(rig: Rig) -> None:
    rig.link.delivers(1, "a", b"m")
    await rig.producer.wait_sent(1)
    rig.link.loses_connection()
    rig.link.connects(session_present=True)
    rig.link.delivers(1, "a", b"m")  # the broker delivers it again, same packet id
    await rig.producer.wait_sent(2)
    rig.producer.deliver_all()
    await acked(rig, 1)
    assert rig.link.acks == [1], "one PUBACK, on the connection that can use it"
    stats = rig.bridge.stats()
    assert (stats.dropped, stats.acked, stats.produced, stats.connections) == (1, 1, 2, 2)


async def test_a_message_whose_connection_dropped_before_sending_is_still_sent(rig: Rig) -> None:
    """A broker killed before it saved the message would never deliver it again (Mosquitto
    saves what it hands straight to a connected subscriber only with the next change): what
    arrived goes to Kafka, without a PUBACK; a redelivered copy is a harmless duplicate."""
    rig.producer.auto_deliver = True
    rig.link.delivers(1, "a", b"old")
    rig.link.loses_connection()  # before the event loop forwarded it
    rig.link.connects(session_present=False)  # the broker lost the session
    rig.link.delivers(1, "a", b"new")
    await acked(rig, 1)
    assert [s.value for s in rig.producer.sent] == [b"old", b"new"]
    assert rig.link.acks == [1], "no PUBACK for the old connection's message"
    assert rig.bridge.stats().dropped == 1


async def test_oversize_payload_is_recorded_by_length_and_hash(rig: Rig) -> None:
    rig.producer.auto_deliver = True
    payload = b"x" * (MAX_PAYLOAD_BYTES + 1)
    rig.link.delivers(3, "big", payload)
    await acked(rig, 1)
    (sent,) = rig.producer.sent
    assert sent.value == b""
    assert sent.header("oversize") == str(len(payload)).encode()
    assert sent.header("payload_sha256") == hashlib.sha256(payload).hexdigest().encode()


async def test_qos0_message_is_forwarded_without_puback(rig: Rig) -> None:
    rig.producer.auto_deliver = True
    rig.link.delivers(0, "a", b"q0", qos=0)
    rig.link.delivers(9, "a", b"q1")
    await acked(rig, 1)
    assert rig.link.acks == [9]
    assert rig.bridge.stats().produced == 2


async def test_back_pressure_pauses_reading_at_max_inflight_and_resumes(
    settings: Settings,
) -> None:
    rig = await make_rig(settings, max_inflight=8)  # reads again at 7 (an eighth of 8 done)
    try:
        for mid in range(1, 5):
            rig.link.delivers(mid, f"d{mid}", b"m%d" % mid)
        await rig.producer.wait_sent(4)  # the first batch
        for mid in range(5, 9):
            rig.link.delivers(mid, f"d{mid}", b"m%d" % mid)
        assert rig.link.paused, "the eighth message fills the window"
        assert rig.bridge.throttled.is_set()
        await rig.producer.wait_sent(8)
        stats = rig.bridge.stats()
        assert (stats.in_flight, stats.high_water, stats.throttled) == (8, 8, 1)

        for index in range(4):
            rig.producer.deliver(index)
        await acked(rig, 4)
        assert not rig.link.is_paused(), "room again: reading resumes"
        assert not rig.bridge.throttled.is_set()

        delivered = 8
        rig.producer.deliver_all(from_now_on=True)
        while delivered < 40:  # a broker that sends whenever the link reads
            if rig.link.is_paused():
                async with asyncio.timeout(WAIT_S):
                    await acked(rig, rig.bridge.stats().acked + 1)
                continue
            delivered += 1
            rig.link.delivers(delivered, "d", b"m%d" % delivered)
        await acked(rig, 40)
        assert rig.link.acks == list(range(1, 41))
        assert rig.bridge.stats().high_water == 8
    finally:
        await rig.bridge.stop(drain_timeout=0)


async def test_stop_sends_pubacks_for_in_flight_messages_before_closing(
    settings: Settings,
) -> None:
    rig = await make_rig(settings)
    rig.link.delivers(1, "a", b"m1")
    rig.link.delivers(2, "a", b"m2")
    await rig.producer.wait_sent(2)
    stopping = asyncio.create_task(rig.bridge.stop(drain_timeout=WAIT_S))
    rig.producer.deliver_all()
    async with asyncio.timeout(WAIT_S):
        stats = await stopping
    assert rig.link.journal[-4:] == [("pause", 0), ("ack", 1), ("ack", 2), ("close", 0)]
    assert (stats.received, stats.acked, stats.in_flight) == (2, 2, 0)


async def test_stop_without_drain_acknowledges_nothing(settings: Settings) -> None:
    rig = await make_rig(settings)
    rig.link.delivers(1, "a", b"m1")
    await rig.producer.wait_sent(1)
    stats = await rig.bridge.stop(drain_timeout=0)
    assert rig.link.acks == []
    assert rig.link.journal[-1] == ("close", 0)
    assert stats.acked == 0
    assert stats.in_flight == 1
    rig.link.paused = False  # a message the link had already read when the bridge stopped
    rig.link.delivers(2, "a", b"late")
    assert rig.bridge.stats().received == 1, "not taken: the broker keeps it"


async def test_run_returns_after_the_stop_event(settings: Settings) -> None:
    stream, link = HeldStream(), FakeLink()
    stream.held.auto_deliver = True
    bridge = Bridge(settings, stream, topic_filter=FILTER, link=link)
    assert bridge.client_id == settings.bridge_client_id
    assert bridge.raw_topic == settings.topic("telemetry.raw")
    stop = asyncio.Event()
    running = asyncio.create_task(bridge.run(stop))
    async with asyncio.timeout(WAIT_S):
        await link.started.wait()
    link.connects()
    async with asyncio.timeout(WAIT_S):
        await bridge.wait_subscribed()
    link.delivers(1, "a", b"x")
    async with asyncio.timeout(WAIT_S):
        await bridge.wait_acked(1)
    stop.set()
    async with asyncio.timeout(WAIT_S):
        stats = await running
    assert stats.acked == 1
    assert link.journal[-1] == ("close", 0)


async def test_a_failing_task_ends_run_with_its_error(settings: Settings) -> None:
    class BrokenProducer(HeldProducer):
        async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[tuple[int, int]]:
            raise RuntimeError("bug in the producer")

    class BrokenStream(HeldStream):
        def __init__(self) -> None:
            self.held = BrokenProducer()

    link = FakeLink()
    bridge = Bridge(settings, BrokenStream(), topic_filter=FILTER, link=link)
    running = asyncio.create_task(bridge.run(asyncio.Event()))
    async with asyncio.timeout(WAIT_S):
        await link.started.wait()
    link.connects()
    async with asyncio.timeout(WAIT_S):
        await bridge.wait_subscribed()
    link.delivers(1, "a", b"x")
    with pytest.raises(RuntimeError, match="bug in the producer"):
        async with asyncio.timeout(WAIT_S):
            await running
    assert link.journal[-1] == ("close", 0)


async def test_on_the_memory_stream_records_land_keyed_by_device(settings: Settings) -> None:
    stream, link = MemoryStream(partitions=3), FakeLink()
    bridge = Bridge(settings, stream, topic_filter=FILTER, raw_topic="raw", link=link)
    await bridge.start()
    link.connects()
    sent = [(mid, f"veh-{mid % 4}", b"jws-%d" % mid) for mid in range(1, 41)]
    for mid, device, payload in sent:
        link.delivers(mid, device, payload)
    async with asyncio.timeout(WAIT_S):
        await bridge.wait_acked(len(sent))
    await bridge.stop()
    records = stream.records("raw")
    assert sorted(r.value for r in records) == sorted(p for _, _, p in sent)
    for device in {d for _, d, _ in sent}:
        mine = [r for r in records if r.key == device.encode()]
        assert len({r.partition for r in mine}) == 1
        assert [r.value for r in mine] == [p for _, d, p in sent if d == device]
        assert all(r.header("mqtt_topic") == f"fleet/{device}".encode() for r in mine)
    assert link.acks == [mid for mid, _, _ in sent]
