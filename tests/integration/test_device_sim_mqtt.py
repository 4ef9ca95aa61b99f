"""The simulator's publisher against the real Mosquitto: everything arrives, QoS 1, paced.

Runs use a unique device-id prefix and the subscriber keeps only those devices, so other
traffic on the broker's telemetry topics cannot disturb the count.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from contracts.topics import MQTT_TELEMETRY_FILTER, mqtt_telemetry_topic
from device_sim.network import NetworkSpec
from device_sim.publisher import MqttPublisher, PublishProgress
from device_sim.runner import run_simulation
from device_sim.scenarios import parse_scenario_flag
from device_sim.simulation import Outgoing, Simulation, SimulationConfig
from device_sim.truth import read_truth
from roadledger.mqtt_auth import bridge_account, sim_account
from roadledger.settings import Settings
from tests.integration.mqtt_client import MqttTestClient

pytestmark = pytest.mark.mqtt


def collect(subscriber: MqttTestClient, prefix: str, count: int) -> list[tuple[str, bytes, int]]:
    """Receive until ``count`` messages of ``prefix...`` devices arrived (10 s silence: fail)."""
    mine: list[tuple[str, bytes, int]] = []
    while len(mine) < count:
        try:
            topic, payload, qos = subscriber.messages.get(timeout=10)
        except queue.Empty:
            pytest.fail(f"only {len(mine)} of {count} messages arrived")
        if topic.rsplit("/", 1)[1].startswith(prefix):
            mine.append((topic, payload, qos))
    return mine


@pytest.fixture
def subscriber(mqtt: Settings) -> Iterator[MqttTestClient]:
    client = MqttTestClient(
        mqtt.mqtt, f"sim-sub-{uuid.uuid4().hex[:8]}", clean_session=True,
        account=bridge_account(mqtt),
    )  # fmt: skip
    client.connect().subscribe(MQTT_TELEMETRY_FILTER)
    yield client
    client.disconnect()


def test_a_presigned_run_with_every_scenario_arrives_complete(
    mqtt: Settings, subscriber: MqttTestClient, tmp_path: Path
) -> None:
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    config = SimulationConfig(
        vehicles=20, rsus=2, rate=440.0, duration_s=5.0, seed=21, id_prefix=prefix,
        network=NetworkSpec(streets=6), scenarios=tuple(parse_scenario_flag("all")),
    )  # fmt: skip
    simulation = Simulation(config)
    progress: list[PublishProgress] = []
    publisher = MqttPublisher(
        mqtt.mqtt, account=sim_account(mqtt), rate=None, max_inflight=500,
        progress=progress.append,
    )  # fmt: skip
    result = run_simulation(
        simulation, truth_path=tmp_path / "truth.jsonl", publisher=publisher, presign=True
    )
    assert result.report is not None
    assert result.report.published == result.messages == result.report.acked
    truth = read_truth(tmp_path / "truth.jsonl")
    assert truth.summary is not None
    assert truth.summary["complete"] is True
    received = collect(subscriber, prefix, result.messages)
    assert {qos for _, _, qos in received} == {1}
    same = replace(config, start_ms=simulation.start_ms)  # deterministic: the same bytes again
    replay = list(Simulation(same).messages())
    assert Counter((t, p) for t, p, _ in received) == Counter((m.topic, m.payload) for m in replay)
    assert progress[-1].acked == progress[-1].published == result.messages


def test_publishing_is_paced_by_rate_and_by_the_wall_clock(
    mqtt: Settings, subscriber: MqttTestClient
) -> None:
    prefix = f"it{uuid.uuid4().hex[:8]}-"
    topic = mqtt_telemetry_topic(f"{prefix}veh-000001")
    now_ms = time.time_ns() // 1_000_000
    batch = [Outgoing(topic, b"rate %d" % i, now_ms - 1000) for i in range(300)]
    started = time.monotonic()
    report = MqttPublisher(mqtt.mqtt, account=sim_account(mqtt), rate=1000.0).publish(batch)
    assert time.monotonic() - started >= (300 - 100 - 1) / 1000  # burst of 100, then 1000/s
    assert report.acked == 300
    later = [Outgoing(topic, b"later %d" % i, time.time_ns() // 1_000_000 + 400) for i in range(5)]
    started = time.monotonic()
    MqttPublisher(mqtt.mqtt, account=sim_account(mqtt), realtime=True).publish(later)
    assert time.monotonic() - started >= 0.35
    payloads = [p for _, p, _ in collect(subscriber, prefix, 305)]
    assert payloads == [m.payload for m in batch + later]  # QoS 1 from one client keeps order
