"""Device MQTT credentials issued through the API reach a real broker: the API as
``roadledger api`` builds it (``build_app``), on a PRIVATE Mosquitto (reloaded without
touching the shared one), against a scratch schema of the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from app.commands.api import build_app
from chain.keys import Ed25519PrivateKey
from contracts.topics import mqtt_telemetry_topic
from roadledger.mqtt_auth import MqttAccount, bridge_account
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.integration.mqtt_client import MqttTestClient
from tests.integration.private_mosquitto import PrivateMosquitto, private_mosquitto
from tests.support.pipeline import wait_until_sync

pytestmark = [pytest.mark.mqtt, pytest.mark.postgres]


@dataclass
class Served:
    http: httpx.AsyncClient
    broker: PrivateMosquitto

    def client(self, account: MqttAccount) -> MqttTestClient:
        return MqttTestClient(
            self.broker.settings.mqtt, f"{account.username}-{uuid.uuid4().hex[:6]}",
            clean_session=True, account=account,
        )  # fmt: skip


@pytest.fixture
async def served(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[Served]:
    async with private_mosquitto(api_settings) as broker:
        app = build_app(broker.settings, api_pool)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                yield Served(http, broker)


def _refused(client: MqttTestClient) -> str:
    with pytest.raises(ConnectionRefusedError) as refused:
        client.connect()
    return str(refused.value)


def _wait_disconnected(client: MqttTestClient) -> None:
    wait_until_sync(
        lambda: not client.client.is_connected(), "the device to be disconnected", 15.0,
        every_s=0.05,
    )  # fmt: skip


async def test_api_issued_passwords_open_and_close_the_broker(served: Served) -> None:
    admin = await bearer(served.http, "fleet-a-admin")
    device_id = f"t{uuid.uuid4().hex[:6]}-veh"
    key = Ed25519PrivateKey.generate().public_key.to_b64url()
    answer = await served.http.post(
        "/v1/devices", headers=admin,
        json={"device_id": device_id, "kind": "vehicle", "public_key": key},
    )  # fmt: skip
    assert answer.status_code == 201, answer.text
    mqtt = answer.json()["mqtt"]
    assert mqtt["broker_reloaded"] is True, "the broker `roadledger services` runs: reloaded"
    first = MqttAccount(device_id, mqtt["password"])

    listener = served.client(bridge_account(served.broker.settings)).connect()
    listener.subscribe(mqtt_telemetry_topic("+"))
    device = served.client(first).connect()
    try:
        device.publish(mqtt_telemetry_topic(device_id), b"hello")
        assert listener.receive(1) == [(mqtt_telemetry_topic(device_id), b"hello", 1)]

        issued = await served.http.post(f"/v1/devices/{device_id}/mqtt-credentials", headers=admin)
        assert issued.status_code == 201, issued.text
        second = MqttAccount(device_id, issued.json()["password"])
        # The reload cut off the connection made with the old password, which is refused now.
        await asyncio.to_thread(_wait_disconnected, device)
        assert "Not authorized" in await asyncio.to_thread(_refused, served.client(first))
        current = served.client(second).connect()

        revoked = await served.http.post(f"/v1/devices/{device_id}/revoke", headers=admin, json={})
        assert revoked.status_code == 200, revoked.text
        assert (revoked.json()["mqtt_removed"], revoked.json()["broker_reloaded"]) == (True, True)
        await asyncio.to_thread(_wait_disconnected, current)
        assert "Not authorized" in await asyncio.to_thread(_refused, served.client(second))
        current.client.loop_stop()
    finally:
        device.client.loop_stop()
        listener.disconnect()
