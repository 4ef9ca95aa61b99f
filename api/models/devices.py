"""Devices, their keys and their MQTT credentials."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.access import Scope

__all__ = [
    "DeviceCreate",
    "DeviceCreatedPublic",
    "DevicePublic",
    "KeyPublic",
    "KeyRevoke",
    "KeyRotate",
    "KeyRotatedPublic",
    "KeysRevokedPublic",
    "MqttCredentialPublic",
]

# A device id is also its MQTT username and topic level: no ':' (roadledger/mqtt_auth.py).
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
PUBLIC_KEY = Field(
    pattern=r"^[A-Za-z0-9_-]{43}$",
    description="Ed25519 public key, base64url without padding",
    examples=["11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"],
)


class DeviceCreate(BaseModel):
    """A device of the caller's organisation, with its first key."""

    device_id: str = Field(pattern=DEVICE_ID_PATTERN, examples=["veh-0001"])
    kind: Literal["vehicle", "rsu"] = Field(examples=["vehicle"])
    public_key: str = PUBLIC_KEY
    vin: str | None = Field(
        default=None, pattern=r"^[A-HJ-NPR-Z0-9]{17}$", examples=["WVWZZZ1JZXW000001"]
    )
    vehicle_class: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,32}$", examples=["M1"]
    )
    valid_from_ms: int | None = Field(
        default=None, ge=0, le=2**53 - 1, description="When the key starts (default: now)"
    )

    model_config = ConfigDict(extra="forbid")


class KeyPublic(BaseModel):
    """One key a device had or has: valid from ``valid_from_ms`` until ``revoked_at_ms``."""

    key_id: str
    public_key: str
    valid_from_ms: int
    revoked_at_ms: int | None


class MqttCredentialPublic(BaseModel):
    """A new MQTT password, shown only in this answer (the broker keeps its hash); any earlier
    password of the device has ended. ``broker_reloaded`` false: the broker runs elsewhere and
    its operator must make it read the password file again (SIGHUP)."""

    username: str
    password: str
    broker_reloaded: bool


class DevicePublic(BaseModel):
    """A device as the caller's organisation sees it: ``access`` says whether it owns it or
    sees it through grants (``grant_ids``, active now), ``scopes`` what it may read."""

    device_id: str
    owner_org: str
    kind: str
    vin: str | None
    vehicle_class: str | None
    created_at_ms: int
    access: Literal["owner", "grant"]
    grant_ids: list[str]
    scopes: list[Scope]
    keys: list[KeyPublic] | None = Field(
        default=None, description="Every key the device ever had (in single-device answers)"
    )


class DeviceCreatedPublic(BaseModel):
    """A device registered: ``created`` false when exactly this device and key were already
    registered (nothing changed, no new MQTT password)."""

    device: DevicePublic
    created: bool
    mqtt: MqttCredentialPublic | None


class KeyRotate(BaseModel):
    """Replace the device's key from ``at_ms`` (default: now); older keys end there."""

    public_key: str = PUBLIC_KEY
    at_ms: int | None = Field(default=None, ge=0, le=2**53 - 1)

    model_config = ConfigDict(extra="forbid")


class KeyRotatedPublic(BaseModel):
    """The new key, and the device's new MQTT password (the old one has ended)."""

    key: KeyPublic
    mqtt: MqttCredentialPublic


class KeyRevoke(BaseModel):
    """End every key of the device still valid at ``at_ms`` (default: now): its messages from
    then on are rejected, earlier ones stay valid."""

    at_ms: int | None = Field(default=None, ge=0, le=2**53 - 1)

    model_config = ConfigDict(extra="forbid")


class KeysRevokedPublic(BaseModel):
    """The keys that ended (none when all had ended before), and whether the device's MQTT
    credential was removed."""

    revoked: list[KeyPublic]
    mqtt_removed: bool
    broker_reloaded: bool
