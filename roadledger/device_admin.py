"""Device administration, one step per change: the registry change and the device's MQTT
credential kept in step with it. ``roadledger devices`` and the API's ``/v1/devices`` both call
these, so a rotation ends the old MQTT password whichever of the two made it.

- :func:`register_device`: a new device gets its first key and, when that key is valid now,
  an MQTT password (a future key gets one when it starts: :func:`issue_mqtt`).
- :func:`rotate_device_key`: the new key, and a new password (the old one ends now).
- :func:`revoke_device`: the keys end at a time, and the MQTT credential is removed.

A credential store that cannot be written (:class:`~roadledger.mqtt_auth.MqttAuthError`) is
:class:`CredentialsUnavailable`, a :class:`~roadledger.registry.RegistryError` of kind
Unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass

from chain.device_keys import DeviceKey
from chain.keys import Ed25519PublicKey
from contracts.errors import Unavailable
from roadledger.mqtt_auth import MqttAuthError
from roadledger.registry import DeviceCredentials, RegistryError

__all__ = [
    "CredentialsUnavailable",
    "MqttIssued",
    "MqttRemoved",
    "issue_mqtt",
    "register_device",
    "remove_mqtt",
    "revoke_device",
    "rotate_device_key",
]


class CredentialsUnavailable(RegistryError, Unavailable):
    """The MQTT credential store (the broker's password file) cannot be read or written."""


@dataclass(frozen=True, slots=True)
class MqttIssued:
    """A new MQTT password (shown once) and whether the broker read it already."""

    username: str
    password: str
    broker_reloaded: bool


@dataclass(frozen=True, slots=True)
class MqttRemoved:
    """Whether the device had an MQTT credential, and whether the broker was reloaded."""

    removed: bool
    broker_reloaded: bool


async def issue_mqtt(credentials: DeviceCredentials, device_id: str, *, now_ms: int) -> MqttIssued:
    """A new MQTT password for ``device_id`` (any earlier one ends); refusals as
    :meth:`DeviceCredentials.issue`."""
    try:
        password, reloaded = await credentials.issue(device_id, now_ms=now_ms)
    except MqttAuthError as exc:
        raise CredentialsUnavailable(str(exc)) from None
    return MqttIssued(device_id, password, reloaded)


def remove_mqtt(credentials: DeviceCredentials, device_id: str) -> MqttRemoved:
    """Remove ``device_id``'s MQTT credential (its keys stay)."""
    try:
        removed, reloaded = credentials.revoke(device_id)
    except MqttAuthError as exc:
        raise CredentialsUnavailable(str(exc)) from None
    return MqttRemoved(removed, reloaded)


async def register_device(
    credentials: DeviceCredentials, record: DeviceKey, *, now_ms: int
) -> tuple[bool, MqttIssued | None]:
    """Register ``record`` (a device and its first key): whether it was new, and its MQTT
    password when it is new and its key valid at ``now_ms`` (registering the same record again
    changes nothing and issues nothing)."""
    new = await credentials.registry.register(record)
    if not new or record.valid_from_ms > now_ms:
        return new, None
    return new, await issue_mqtt(credentials, record.device_id, now_ms=now_ms)


async def rotate_device_key(
    credentials: DeviceCredentials,
    device_id: str,
    key: Ed25519PublicKey,
    *,
    at_ms: int,
    now_ms: int,
) -> tuple[DeviceKey, MqttIssued]:
    """Make ``key`` the device's key from ``at_ms``, and issue a new MQTT password: a rotation
    is often a compromise, so the old password ends now whenever the new key starts."""
    record = await credentials.registry.rotate(device_id, key, at_ms)
    return record, await issue_mqtt(credentials, device_id, now_ms=now_ms)


async def revoke_device(
    credentials: DeviceCredentials, device_id: str, *, at_ms: int
) -> tuple[list[DeviceKey], MqttRemoved]:
    """End the device's keys from ``at_ms`` (the changed records; none if all ended earlier)
    and remove its MQTT credential."""
    ended = await credentials.registry.revoke(device_id, at_ms)
    return ended, remove_mqtt(credentials, device_id)
