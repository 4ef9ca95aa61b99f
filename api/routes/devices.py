"""Devices: register them with their first key, rotate and revoke keys, issue MQTT passwords
(an admin of the owning organisation), and list or read those the caller's organisation owns
or was granted (a data role).

Each change is the same step ``roadledger devices`` takes (:mod:`roadledger.device_admin`):
the registry change and the device's MQTT credential kept in step. Where the credentials live
comes from :func:`use_mqtt_credentials` (``roadledger api`` passes the CLI's: the broker's
password file, reloaded at once when it is the broker ``roadledger services`` runs); without
it (an API embedded elsewhere), device changes are refused with 503.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.models.devices import (
    DeviceCreate,
    DeviceCreatedPublic,
    DevicePublic,
    KeyPublic,
    KeyRevoke,
    KeyRotate,
    KeyRotatedPublic,
    KeysRevokedPublic,
    MqttCredentialPublic,
)
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from chain.device_keys import DeviceKey
from chain.keys import Ed25519PublicKey
from chain.telemetry import DeviceKind
from contracts.access import Role
from roadledger.device_admin import (
    CredentialsUnavailable,
    MqttIssued,
    issue_mqtt,
    register_device,
    revoke_device,
    rotate_device_key,
)
from roadledger.identity.devices import (
    VisibleDevice,
    device_for_admin,
    list_visible_devices,
    refuse_taken,
    visible_device,
)
from roadledger.identity.errors import BadIdentity, NotPermitted
from roadledger.registry import DeviceCredentials, DeviceRegistry

__all__ = ["CredentialsFactory", "router", "use_mqtt_credentials"]

router = APIRouter(prefix="/v1/devices", tags=["devices"], responses=ERROR_RESPONSES)

CredentialsFactory = Callable[[DeviceRegistry], DeviceCredentials]


def use_mqtt_credentials(app: FastAPI, factory: CredentialsFactory) -> None:
    """Make the devices routes of ``app`` keep MQTT credentials where ``factory`` says."""
    app.state.device_credentials = factory


def _credentials(request: Request, pool: PoolDep) -> DeviceCredentials:
    factory: CredentialsFactory | None = getattr(request.app.state, "device_credentials", None)
    if factory is None:
        # Never a guess at the broker's file: written as the wrong user, the broker could no
        # longer read it; and a change without its credential step would leave an old
        # password working.
        raise CredentialsUnavailable(
            "device changes need the MQTT credential store, which this API was not given "
            "(`roadledger api` gives it)"
        )
    return factory(DeviceRegistry(pool))


CredentialsDep = Annotated[DeviceCredentials, Depends(_credentials)]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _key(record: DeviceKey) -> KeyPublic:
    return KeyPublic(
        key_id=record.key_id,
        public_key=record.public_key.to_b64url(),
        valid_from_ms=record.valid_from_ms,
        revoked_at_ms=record.revoked_at_ms,
    )


def _mqtt(issued: MqttIssued) -> MqttCredentialPublic:
    return MqttCredentialPublic(
        username=issued.username, password=issued.password, broker_reloaded=issued.broker_reloaded
    )


def _device(device: VisibleDevice, keys: list[DeviceKey] | None = None) -> DevicePublic:
    return DevicePublic(
        device_id=device.device_id,
        owner_org=device.owner_org,
        kind=device.kind,
        vin=device.vin,
        vehicle_class=device.vehicle_class,
        created_at_ms=device.created_at_ms,
        access="owner" if device.access == "owner" else "grant",
        grant_ids=list(device.grant_ids),
        scopes=list(device.scopes),
        keys=None if keys is None else [_key(k) for k in keys],
    )


@router.post(
    "",
    status_code=201,
    response_model=DeviceCreatedPublic,
    responses={200: {"model": DeviceCreatedPublic, "description": "Already registered so"}},
)
async def register(
    body: DeviceCreate,
    principal: PrincipalDep,
    pool: PoolDep,
    credentials: CredentialsDep,
    response: Response,
) -> DeviceCreatedPublic:
    """Register a device of the caller's organisation with its first key (an admin), and issue
    its MQTT password when the key is valid now. The same device and key again: 200, nothing
    changed; a device id taken otherwise: 409."""
    if not principal.has(Role.ADMIN):
        raise NotPermitted(f"only an admin of {principal.org_id!r} registers its devices")
    if body.kind == "rsu" and (body.vin is not None or body.vehicle_class is not None):
        raise BadIdentity("vin: an RSU has no vin or vehicle_class")
    await refuse_taken(pool, principal, body.device_id)
    now = _now_ms()
    key = Ed25519PublicKey.from_b64url(body.public_key)
    valid_from = body.valid_from_ms
    if valid_from is None:
        # A retry without a start time means the start the first attempt got ("now" then).
        known = await credentials.registry.keys(body.device_id)
        valid_from = next((k.valid_from_ms for k in known if k.public_key == key), now)
    record = DeviceKey(
        device_id=body.device_id,
        public_key=key,
        owner_org=principal.org_id,
        kind=DeviceKind(body.kind),
        valid_from_ms=valid_from,
        vin=body.vin,
        vehicle_class=body.vehicle_class,
    )
    created, issued = await register_device(credentials, record, now_ms=now)
    if not created:
        response.status_code = 200
    device = await visible_device(pool, principal, record.device_id)
    keys = await credentials.registry.keys(record.device_id)
    return DeviceCreatedPublic(
        device=_device(device, keys),
        created=created,
        mqtt=None if issued is None else _mqtt(issued),
    )


@router.get("", response_model=Page[DevicePublic])
async def devices(
    principal: PrincipalDep,
    pool: PoolDep,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[DevicePublic]:
    """The devices the caller's organisation owns, and those active grants open to it (with
    the grants and their scopes), by device id."""
    after = decode_cursor(cursor, 1)
    if after is not None and not isinstance(after[0], str):
        raise BadIdentity("cursor: not a cursor of this list")
    found = await list_visible_devices(
        pool, principal, after=None if after is None else after[0], limit=limit + 1
    )
    more = len(found) > limit
    page = found[:limit]
    return Page[DevicePublic](
        items=[_device(d) for d in page],
        next_cursor=encode_cursor([page[-1].device_id]) if more else None,
    )


@router.get("/{device_id}", response_model=DevicePublic)
async def device(device_id: str, principal: PrincipalDep, pool: PoolDep) -> DevicePublic:
    """One device the caller's organisation owns or holds an active grant on, with every key
    it ever had."""
    found = await visible_device(pool, principal, device_id)
    return _device(found, await DeviceRegistry(pool).keys(device_id))


@router.post("/{device_id}/keys", status_code=201, response_model=KeyRotatedPublic)
async def rotate(
    device_id: str,
    body: KeyRotate,
    principal: PrincipalDep,
    pool: PoolDep,
    credentials: CredentialsDep,
) -> KeyRotatedPublic:
    """Make a new key the device's from ``at_ms`` (default now); every older key ends there.
    The device gets a new MQTT password and the old one ends now."""
    await device_for_admin(pool, principal, device_id)
    now = _now_ms()
    record, issued = await rotate_device_key(
        credentials,
        device_id,
        Ed25519PublicKey.from_b64url(body.public_key),
        at_ms=now if body.at_ms is None else body.at_ms,
        now_ms=now,
    )
    return KeyRotatedPublic(key=_key(record), mqtt=_mqtt(issued))


@router.post("/{device_id}/revoke", response_model=KeysRevokedPublic)
async def revoke(
    device_id: str,
    body: KeyRevoke,
    principal: PrincipalDep,
    pool: PoolDep,
    credentials: CredentialsDep,
) -> KeysRevokedPublic:
    """End the device's keys from ``at_ms`` (default now): its messages from then on are
    rejected, earlier ones stay valid. Its MQTT credential is removed."""
    await device_for_admin(pool, principal, device_id)
    at = _now_ms() if body.at_ms is None else body.at_ms
    ended, removed = await revoke_device(credentials, device_id, at_ms=at)
    return KeysRevokedPublic(
        revoked=[_key(k) for k in ended],
        mqtt_removed=removed.removed,
        broker_reloaded=removed.broker_reloaded,
    )


@router.post("/{device_id}/mqtt-credentials", status_code=201, response_model=MqttCredentialPublic)
async def mqtt_credentials(
    device_id: str, principal: PrincipalDep, pool: PoolDep, credentials: CredentialsDep
) -> MqttCredentialPublic:
    """A new MQTT password for the device, shown only now; any earlier one ends. 409 when it
    has no key valid now."""
    await device_for_admin(pool, principal, device_id)
    return _mqtt(await issue_mqtt(credentials, device_id, now_ms=_now_ms()))
