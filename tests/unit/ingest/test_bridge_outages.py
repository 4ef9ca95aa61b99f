"""The bridge through a Kafka outage: one line when it starts, one when it ends, never one per
failed send or delivery; a bridge started with Kafka down waits, and a stop ends the wait."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ingest.bridge import Bridge
from roadledger.settings import Settings
from roadledger.stream.errors import StreamError
from tests.unit.ingest.bridge_rig import WAIT_S, FakeLink, HeldStream, Rig, acked, make_rig


async def test_an_outage_is_one_line_down_and_one_back(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    rig: Rig = await make_rig(settings)
    try:
        with caplog.at_level(logging.INFO, logger="ingest.bridge"):
            rig.link.delivers(1, "a", b"x")
            rig.link.delivers(2, "b", b"y")
            await rig.producer.wait_sent(2)
            rig.producer.failing_sends = 5  # the broker goes away: sending again is refused,
            for delivery in rig.producer.deliveries:  # and what was in flight fails
                delivery.set_exception(StreamError("KafkaConnectionError (test)", retriable=True))
            rig.producer.auto_deliver = True  # until it is back
            await acked(rig, 2)
        assert rig.link.acks == [1, 2]
        lines = [r.getMessage() for r in caplog.records if "Kafka" in r.getMessage()]
        assert len(lines) == 2, lines
        assert lines[0].startswith("Kafka unavailable (StreamError: KafkaConnectionError (test))")
        assert lines[1].startswith("Kafka is back after ")
        assert rig.bridge.kafka.healthy
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, "not one line per failed send or delivery"
    finally:
        await rig.bridge.stop(drain_timeout=0)


async def test_start_waits_for_kafka_and_a_stop_ends_the_wait(settings: Settings) -> None:
    stream = HeldStream()
    refusals = 0

    async def unreachable() -> None:
        nonlocal refusals
        refusals += 1
        if refusals == 3:
            stop.set()  # SIGTERM while waiting
        raise StreamError("producer b: cannot connect to Kafka (test)", retriable=True)

    stream.held.start = unreachable  # type: ignore[method-assign]
    stop = asyncio.Event()
    bridge = Bridge(settings, stream, client_id="test-bridge", raw_topic="raw", link=FakeLink())
    stats = await asyncio.wait_for(bridge.run(stop), WAIT_S)
    assert refusals == 3, "retried, not given up at the first refusal"
    assert stats.received == 0
    assert not bridge.kafka.healthy


async def test_a_stop_does_not_wait_to_drain_into_a_paused_broker(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A paused broker never answers: the drain ends once that is noticed, not after the
    30 s drain timeout, and nothing is acknowledged to MQTT (the broker keeps it)."""
    monkeypatch.setattr("ingest.bridge._SLOW_DELIVERY_S", 0.05)
    rig: Rig = await make_rig(settings)
    rig.link.delivers(1, "a", b"x")
    await rig.producer.wait_sent(1)  # its delivery is never answered
    with caplog.at_level(logging.INFO, logger="ingest.bridge"):
        stats = await asyncio.wait_for(rig.bridge.stop(drain_timeout=30), WAIT_S)
    assert rig.link.acks == []
    assert stats.in_flight == 1
    assert any(r.getMessage().startswith("Kafka unavailable") for r in caplog.records)
