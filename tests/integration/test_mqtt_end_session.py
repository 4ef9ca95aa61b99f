"""ingest.mqtt_link.end_session on the real Mosquitto: a dead bridge's queue is dropped."""

from __future__ import annotations

import uuid

import pytest

from ingest.mqtt_link import end_session
from roadledger.mqtt_auth import bridge_account, sim_account
from roadledger.settings import Settings
from tests.integration.mqtt_client import MqttTestClient

pytestmark = pytest.mark.mqtt


def test_end_session_discards_the_persistent_session_and_its_queue(mqtt: Settings) -> None:
    client_id = f"test-dead-bridge-{uuid.uuid4().hex[:8]}"
    topic = f"roadledger/v1/telemetry/test-end-session-{uuid.uuid4().hex[:8]}/x"
    account = bridge_account(mqtt)
    bridge = MqttTestClient(mqtt.mqtt, client_id, clean_session=False, account=account).connect()
    bridge.subscribe(topic)
    bridge.disconnect()
    device = MqttTestClient(
        mqtt.mqtt, f"dev-{client_id}", clean_session=True, account=sim_account(mqtt)
    ).connect()
    try:
        device.publish(topic, b"queued for the absent bridge")

        # Without end_session the broker keeps the session and the message for it ...
        again = MqttTestClient(mqtt.mqtt, client_id, clean_session=False, account=account)
        again.connect()
        assert again.session_present
        assert again.receive(1) == [(topic, b"queued for the absent bridge", 1)]
        again.disconnect()
        device.publish(topic, b"queued again")

        # ... with it, both are gone.
        assert end_session(mqtt.mqtt.host, mqtt.mqtt.port, client_id, account=account)
        device.publish(topic, b"after the end: no subscriber")
        back = MqttTestClient(mqtt.mqtt, client_id, clean_session=False, account=account)
        back.connect()
        try:
            assert back.session_present is False
            assert back.messages.empty()
        finally:
            back.disconnect()
    finally:
        device.disconnect()
