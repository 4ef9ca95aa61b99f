"""Devices through the API on the real PostgreSQL: registration, listing and reading with
grants, key rotation and revocation, MQTT passwords (in a private password file: the shared
broker's is never touched), and who may do each."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from api.routes.devices import use_mqtt_credentials
from chain.keys import Ed25519PrivateKey
from roadledger.mqtt_auth import PasswordFile
from roadledger.registry import DeviceCredentials
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.integration.api.telemetry_rows import DAY_MS, grant

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def passwords(tmp_path: Path) -> PasswordFile:
    return PasswordFile(tmp_path / "passwd")


@pytest.fixture
async def client(
    api_settings: Settings, api_pool: asyncpg.Pool, passwords: PasswordFile
) -> AsyncIterator[httpx.AsyncClient]:
    """The API keeping device credentials in ``passwords`` (no broker to reload)."""
    app = create_app(api_settings, api_pool)
    use_mqtt_credentials(
        app, lambda registry: DeviceCredentials(registry, passwords, lambda: False)
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            yield http


def _key() -> str:
    return Ed25519PrivateKey.generate().public_key.to_b64url()


async def _register(
    client: httpx.AsyncClient, headers: dict[str, str], device_id: str, **extra: Any
) -> httpx.Response:
    body = {"device_id": device_id, "kind": "vehicle", "public_key": _key(), **extra}
    return await client.post("/v1/devices", headers=headers, json=body)


async def test_an_admin_registers_a_device_and_gets_its_mqtt_password_once(
    client: httpx.AsyncClient, passwords: PasswordFile, api_pool: asyncpg.Pool
) -> None:
    admin = await bearer(client, "fleet-a-admin")
    key = _key()
    body = {"device_id": "veh-1", "kind": "vehicle", "public_key": key, "vin": "WVWZZZ1JZXW000001"}
    answer = await client.post("/v1/devices", headers=admin, json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    device, mqtt = created["device"], created["mqtt"]
    assert (device["device_id"], device["owner_org"], device["access"]) == (
        "veh-1", "fleet-a", "owner",
    )  # fmt: skip
    assert device["vin"] == "WVWZZZ1JZXW000001"
    assert [k["public_key"] for k in device["keys"]] == [key]
    assert mqtt["username"] == "veh-1"
    assert passwords.check("veh-1", mqtt["password"]), "the broker's file holds its hash"
    assert mqtt["password"] not in passwords.path.read_text()
    assert mqtt["broker_reloaded"] is False
    # The key change is queued for the device's ledger with it (the registry's own step).
    assert await api_pool.fetchval("SELECT count(*) FROM ledger_outbox") == 1

    again = await client.post("/v1/devices", headers=admin, json=body)
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["mqtt"]) == (False, None)
    assert passwords.check("veh-1", mqtt["password"]), "an identical retry changes nothing"


async def test_registration_refusals(client: httpx.AsyncClient) -> None:
    admin = await bearer(client, "fleet-a-admin")
    assert (await _register(client, admin, "veh-1")).status_code == 201
    analyst = await _register(client, await bearer(client, "fleet-a-analyst"), "veh-2")
    assert analyst.status_code == 403
    # Another organisation's id: 409 without saying whose it is.
    taken = await _register(client, await bearer(client, "fleet-b-admin"), "veh-1")
    assert taken.status_code == 409
    assert taken.json() == {"detail": "device_id: 'veh-1' is taken"}
    # The same device with another key: the registry's conflict.
    other = await _register(client, admin, "veh-1")
    assert other.status_code == 409
    assert "rotate it instead" in other.json()["detail"]
    bad = await client.post(
        "/v1/devices", headers=admin, json={"device_id": "veh:3", "kind": "vehicle",
                                            "public_key": _key()},
    )  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("body.device_id:")
    rsu = await _register(client, admin, "rsu-1", kind="rsu", vin="WVWZZZ1JZXW000001")
    assert rsu.status_code == 422
    assert rsu.json()["detail"].startswith("vin:")


async def test_lists_show_own_devices_and_actively_granted_ones(
    client: httpx.AsyncClient,
) -> None:
    admin = await bearer(client, "fleet-a-admin")
    for n in range(5):
        assert (await _register(client, admin, f"veh-{n}")).status_code == 201
    assert (await _register(client, await bearer(client, "fleet-b-admin"), "b-1")).status_code
    now = int(time.time() * 1000)
    live = await grant(
        client, admin, "insurer-x", ["track", "mileage"], from_ms=now - DAY_MS,
        until_ms=now + DAY_MS, device_id="veh-1",
    )  # fmt: skip
    # An expired grant is not listed.
    await grant(
        client, admin, "insurer-x", ["export"], from_ms=now - 2 * DAY_MS, until_ms=now - DAY_MS,
        device_id="veh-1",
    )  # fmt: skip

    seen: list[str] = []
    cursor = None
    analyst = await bearer(client, "fleet-a-analyst")
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/devices", headers=analyst, params=params)).json()
        assert len(page["items"]) <= 2
        seen += [d["device_id"] for d in page["items"]]
        assert all(d["access"] == "owner" and d["grant_ids"] == [] for d in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"veh-{n}" for n in range(5)], "each once, in order, none of fleet-b's"

    agent = await bearer(client, "insurer-x-agent")
    granted = (await client.get("/v1/devices", headers=agent)).json()
    assert granted["items"] == [
        {"device_id": "veh-1", "owner_org": "fleet-a", "kind": "vehicle", "vin": None,
         "vehicle_class": None, "created_at_ms": granted["items"][0]["created_at_ms"],
         "access": "grant", "grant_ids": [live], "scopes": ["mileage", "track"], "keys": None}
    ]  # fmt: skip
    one = await client.get("/v1/devices/veh-1", headers=agent)
    assert one.status_code == 200
    assert len(one.json()["keys"]) == 1
    assert (await client.get("/v1/devices/veh-2", headers=agent)).status_code == 404
    ops = await bearer(client, "ops")
    assert (await client.get("/v1/devices/veh-1", headers=ops)).status_code == 404
    assert (await client.get("/v1/devices", headers=ops)).json()["items"] == []

    await client.post(f"/v1/grants/{live}/revoke", headers=admin)
    assert (await client.get("/v1/devices", headers=agent)).json()["items"] == []
    gone = await client.get("/v1/devices/veh-1", headers=agent)
    assert gone.status_code == 403, "granted before, so its existence is known: 403 saying why"
    assert "revoked" in gone.json()["detail"]


async def test_rotation_replaces_the_key_and_the_mqtt_password(
    client: httpx.AsyncClient, passwords: PasswordFile
) -> None:
    admin = await bearer(client, "fleet-a-admin")
    at = int(time.time() * 1000) - 1_000
    first = (await _register(client, admin, "veh-1", valid_from_ms=at - 60_000)).json()
    old_password = first["mqtt"]["password"]
    key = _key()
    answer = await client.post(
        "/v1/devices/veh-1/keys", headers=admin, json={"public_key": key, "at_ms": at}
    )
    assert answer.status_code == 201, answer.text
    rotated = answer.json()
    assert (rotated["key"]["public_key"], rotated["key"]["valid_from_ms"]) == (key, at)
    assert passwords.check("veh-1", rotated["mqtt"]["password"])
    assert not passwords.check("veh-1", old_password), "the old password has ended"
    keys = (await client.get("/v1/devices/veh-1", headers=admin)).json()["keys"]
    assert [(k["public_key"], k["revoked_at_ms"]) for k in keys] == [
        (first["device"]["keys"][0]["public_key"], at), (key, None),
    ]  # fmt: skip
    again = await client.post("/v1/devices/veh-1/keys", headers=admin, json={"public_key": key})
    assert again.status_code == 409, "a key used before"


async def test_revocation_ends_the_keys_at_a_time_and_the_mqtt_credential(
    client: httpx.AsyncClient, passwords: PasswordFile
) -> None:
    admin = await bearer(client, "fleet-a-admin")
    await _register(client, admin, "veh-1", valid_from_ms=1_000)
    assert passwords.has("veh-1")
    answer = await client.post("/v1/devices/veh-1/revoke", headers=admin, json={"at_ms": 5_000})
    assert answer.status_code == 200, answer.text
    revoked = answer.json()
    assert [(k["valid_from_ms"], k["revoked_at_ms"]) for k in revoked["revoked"]] == [
        (1_000, 5_000)
    ]
    assert (revoked["mqtt_removed"], revoked["broker_reloaded"]) == (True, False)
    assert not passwords.has("veh-1")
    # No key is valid now: no MQTT password until a new key is rotated in.
    refused = await client.post("/v1/devices/veh-1/mqtt-credentials", headers=admin)
    assert refused.status_code == 409
    assert "no key valid now" in refused.json()["detail"]
    await client.post("/v1/devices/veh-1/keys", headers=admin, json={"public_key": _key()})
    issued = await client.post("/v1/devices/veh-1/mqtt-credentials", headers=admin)
    assert issued.status_code == 201, issued.text
    assert passwords.check("veh-1", issued.json()["password"])


@pytest.mark.parametrize(
    ("user", "status"),
    [
        ("fleet-a-analyst", 403),  # the owner's member, not an admin
        ("insurer-x-admin", 403),  # an admin of a grantee: sees it, may not change it
        ("fleet-b-admin", 404),  # a stranger
        ("ops", 404),  # the operator's admin does not change fleets' devices
    ],
)
async def test_only_the_owners_admins_change_a_device(
    client: httpx.AsyncClient, passwords: PasswordFile, user: str, status: int
) -> None:
    admin = await bearer(client, "fleet-a-admin")
    password = (await _register(client, admin, "veh-1")).json()["mqtt"]["password"]
    now = int(time.time() * 1000)
    await grant(client, admin, "insurer-x", ["track"], from_ms=now - DAY_MS,
                until_ms=now + DAY_MS, device_id="veh-1")  # fmt: skip
    headers = await bearer(client, user)
    for path, body in [
        ("/v1/devices/veh-1/keys", {"public_key": _key()}),
        ("/v1/devices/veh-1/revoke", {}),
        ("/v1/devices/veh-1/mqtt-credentials", None),
    ]:
        answer = await client.post(path, headers=headers, json=body)
        assert answer.status_code == status, (path, answer.text)
    assert passwords.check("veh-1", password), "nothing changed"
    keys = (await client.get("/v1/devices/veh-1", headers=admin)).json()["keys"]
    assert [k["revoked_at_ms"] for k in keys] == [None]


async def test_unknown_devices_are_404(client: httpx.AsyncClient) -> None:
    admin = await bearer(client, "fleet-a-admin")
    for path, body in [
        ("/v1/devices/none/keys", {"public_key": _key()}),
        ("/v1/devices/none/revoke", {}),
        ("/v1/devices/none/mqtt-credentials", None),
    ]:
        answer = await client.post(path, headers=admin, json=body)
        assert answer.status_code == 404, (path, answer.text)
    assert (await client.get("/v1/devices/none", headers=admin)).status_code == 404


async def test_without_a_credential_store_device_changes_are_refused(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    """An app not given the MQTT credential store (``create_app`` alone) changes no device:
    a key change without its credential step would leave an old password working."""
    answer = await _register(api, await bearer(api, "fleet-a-admin"), "veh-1")
    assert answer.status_code == 503
    assert "MQTT credential store" in answer.json()["detail"]
    assert await api_pool.fetchval("SELECT count(*) FROM devices") == 0
