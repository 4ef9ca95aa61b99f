"""Mosquitto is real and usable from Python: QoS 1 round trips and persistent sessions."""

from __future__ import annotations

import os
import queue
import shutil
import uuid
from pathlib import Path

import pytest

from roadledger.mqtt_auth import bridge_account, sim_account
from roadledger.settings import Endpoint, Settings
from runtime.services.mosquitto import mqtt_ready, write_config
from runtime.services.process import owned_dir, spawn, stop_pid, wait_for
from tests.integration.conftest import free_port
from tests.integration.mqtt_client import MqttTestClient

pytestmark = pytest.mark.mqtt


def test_qos1_publish_subscribe_round_trip(mqtt: Settings) -> None:
    topic = f"roadledger/v1/telemetry/test-{uuid.uuid4().hex}/x"
    subscriber = MqttTestClient(
        mqtt.mqtt, f"sub-{uuid.uuid4().hex[:8]}", clean_session=True, account=bridge_account(mqtt)
    )
    publisher = MqttTestClient(
        mqtt.mqtt, f"pub-{uuid.uuid4().hex[:8]}", clean_session=True, account=sim_account(mqtt)
    )
    subscriber.connect().subscribe(topic)
    publisher.connect()
    try:
        payloads = [f"message {i}".encode() for i in range(20)]
        for payload in payloads:
            publisher.publish(topic, payload)
        received = subscriber.receive(len(payloads))
        assert [p for _, p, _ in received] == payloads
        assert {qos for _, _, qos in received} == {1}
    finally:
        publisher.disconnect()
        subscriber.disconnect()


def test_offline_persistent_session_receives_queued_messages(mqtt: Settings) -> None:
    topic = f"roadledger/v1/telemetry/test-{uuid.uuid4().hex}/x"
    client_id = f"bridge-{uuid.uuid4().hex[:8]}"
    bridge = bridge_account(mqtt)
    subscriber = MqttTestClient(mqtt.mqtt, client_id, clean_session=False, account=bridge)
    subscriber.connect().subscribe(topic)
    subscriber.disconnect()

    publisher = MqttTestClient(
        mqtt.mqtt, f"pub-{uuid.uuid4().hex[:8]}", clean_session=True, account=sim_account(mqtt)
    )
    publisher.connect()
    publisher.publish(topic, b"while you were away")
    publisher.disconnect()

    returning = MqttTestClient(mqtt.mqtt, client_id, clean_session=False, account=bridge).connect()
    try:
        assert returning.session_present is True
        assert returning.receive(1) == [(topic, b"while you were away", 1)]
    finally:
        returning.disconnect()


def test_queued_qos1_message_survives_broker_restart(settings: Settings, tmp_path: Path) -> None:
    """A private broker with the project's configuration, restarted between publish and
    reconnect: the offline session and its queued message must come back from disk."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed; run `scripts/services up`")
    endpoint = Endpoint("127.0.0.1", free_port())
    user = "mosquitto" if os.geteuid() == 0 else None
    home = owned_dir(tmp_path / "broker", "mosquitto") if user else tmp_path / "broker"
    conf = write_config(home, endpoint, user, settings)
    bridge, device = bridge_account(settings), sim_account(settings)

    def start() -> int:
        process = spawn([binary, "-c", str(conf)], home / "broker.log")
        wait_for(
            lambda: mqtt_ready(endpoint),
            "test broker",
            timeout=30,
            alive=process.alive,
            log=home / "broker.log",
        )
        return process.pid

    pid = start()
    topic, client_id = "roadledger/v1/telemetry/test-restart/x", f"bridge-{uuid.uuid4().hex[:8]}"
    try:
        subscriber = MqttTestClient(endpoint, client_id, clean_session=False, account=bridge)
        subscriber.connect().subscribe(topic)
        subscriber.disconnect()
        publisher = MqttTestClient(
            endpoint, "publisher", clean_session=True, account=device
        ).connect()
        publisher.publish(topic, b"kept across restart")
        publisher.disconnect()

        stop_pid(pid, "test broker")  # SIGTERM: mosquitto writes its persistence file
        assert list((home / "data").glob("*.db")), "broker wrote no persistence file"
        pid = start()

        returning = MqttTestClient(
            endpoint, client_id, clean_session=False, account=bridge
        ).connect()
        try:
            assert returning.session_present is True
            assert returning.receive(1) == [(topic, b"kept across restart", 1)]
            with pytest.raises(queue.Empty):
                returning.messages.get(timeout=0.5)  # delivered exactly once
        finally:
            returning.disconnect()
    finally:
        stop_pid(pid, "test broker")
        if home.parent.name.startswith("roadledger-"):  # owned_dir's /var/tmp fallback
            shutil.rmtree(home.parent, ignore_errors=True)
