"""The device key record: which key speaks for which device, for whom, and when.

A :class:`DeviceKey` goes into mileage certificates and the ledger, so its JSON form is
canonical: sorted keys, no spaces, ASCII, every member present (``null`` when absent), so equal
records have equal bytes and hashes. A key is valid for messages with
``valid_from_ms <= ts < revoked_at_ms``: revocation quarantines the key's later messages and
leaves earlier ones valid. Rotation is a new record for the same device with a new key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from chain.encoding import b64url_encode
from chain.errors import EncodingError, RejectReason, TelemetryError
from chain.jws import parse_json_object
from chain.keys import Ed25519PublicKey
from chain.telemetry import DEVICE_ID_RE, DeviceKind, TelemetryMessage, verify

__all__ = ["KEY_ID_BYTES", "RECORD_VERSION", "DeviceKey", "key_id"]

RECORD_VERSION = 1
KEY_ID_BYTES = 12  # 96 bits: 16 base64url characters, no padding bits
_VIN_RE = re.compile(r"[A-HJ-NPR-Z0-9]{17}")  # ISO 3779: 17 characters, no I, O or Q
_CLASS_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")  # e.g. UNECE "M1", "N3"
_MEMBERS = frozenset(
    {"v", "device_id", "public_key", "key_id", "owner_org", "kind", "vin"}
    | {"vehicle_class", "valid_from_ms", "revoked_at_ms"}
)
_TS_MAX = 2**53 - 1


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short public key name: base64url of the first 12 bytes of SHA-256(raw key).

    A name for logs and lookups only; anything that decides trust compares the full key.
    """
    return b64url_encode(hashlib.sha256(public_key.raw).digest()[:KEY_ID_BYTES])


def _bad(detail: str) -> EncodingError:
    return EncodingError(f"device key record: {detail}")


def _check_ms(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= _TS_MAX:
        raise _bad(f"{name}: expected integer ms in [0, 2**53-1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceKey:
    """One registered key of one device. Invalid values raise :class:`EncodingError`."""

    device_id: str
    public_key: Ed25519PublicKey
    owner_org: str
    kind: DeviceKind
    valid_from_ms: int
    revoked_at_ms: int | None = None
    vin: str | None = None
    vehicle_class: str | None = None

    def __post_init__(self) -> None:
        for name in ("device_id", "owner_org"):
            value = getattr(self, name)
            if type(value) is not str or not DEVICE_ID_RE.fullmatch(value):
                raise _bad(f"{name}: expected an id matching {DEVICE_ID_RE.pattern}")
        if not isinstance(self.public_key, Ed25519PublicKey):
            raise _bad("public_key: expected Ed25519PublicKey")
        if not isinstance(self.kind, DeviceKind):
            raise _bad("kind: expected DeviceKind")
        _check_ms("valid_from_ms", self.valid_from_ms)
        if self.revoked_at_ms is not None:
            _check_ms("revoked_at_ms", self.revoked_at_ms)
            if self.revoked_at_ms < self.valid_from_ms:
                raise _bad("revoked_at_ms is before valid_from_ms")
        if self.vin is not None and (type(self.vin) is not str or not _VIN_RE.fullmatch(self.vin)):
            raise _bad("vin: expected 17 characters of [A-HJ-NPR-Z0-9]")
        if self.vehicle_class is not None and (
            type(self.vehicle_class) is not str or not _CLASS_RE.fullmatch(self.vehicle_class)
        ):
            raise _bad(f"vehicle_class: expected {_CLASS_RE.pattern}")
        if self.kind is DeviceKind.RSU and (self.vin is not None or self.vehicle_class is not None):
            raise _bad("an RSU has no vin or vehicle_class")

    @property
    def key_id(self) -> str:
        """:func:`key_id` of :attr:`public_key`."""
        return key_id(self.public_key)

    def check_valid_at(self, ts_ms: int) -> None:
        """Raise ``revoked_key`` unless ``valid_from_ms <= ts_ms < revoked_at_ms``."""
        if ts_ms < self.valid_from_ms:
            raise TelemetryError(
                RejectReason.REVOKED_KEY,
                f"{self.device_id}: key {self.key_id} not valid before {self.valid_from_ms}, "
                f"message ts {ts_ms}",
            )
        if self.revoked_at_ms is not None and ts_ms >= self.revoked_at_ms:
            raise TelemetryError(
                RejectReason.REVOKED_KEY,
                f"{self.device_id}: key {self.key_id} revoked at {self.revoked_at_ms}, "
                f"message ts {ts_ms}",
            )

    def verify_message(self, raw: bytes) -> TelemetryMessage:
        """Verify ``raw`` as a message of this device under this key at the message's ``ts``.

        Signature and schema as :func:`chain.telemetry.verify`; then ``bad_header`` if the
        message names another device, ``schema`` if its kind differs from the key's,
        ``revoked_key`` if the key was not valid at the message's ``ts``.
        """
        message = verify(raw, self.public_key)
        telemetry = message.telemetry
        if telemetry.dev != self.device_id:
            raise TelemetryError(
                RejectReason.BAD_HEADER,
                f"message of {telemetry.dev!r} under the key of {self.device_id!r}",
            )
        if telemetry.kind is not self.kind:
            raise TelemetryError(
                RejectReason.SCHEMA, f"{telemetry.kind} message from a {self.kind} key"
            )
        self.check_valid_at(telemetry.ts)
        return message

    def revoke(self, at_ms: int) -> DeviceKey:
        """A copy revoked at ``at_ms``; revocation only ever moves earlier."""
        if self.revoked_at_ms is not None and self.revoked_at_ms <= at_ms:
            return self
        return replace(self, revoked_at_ms=max(at_ms, self.valid_from_ms))

    def to_dict(self) -> dict[str, Any]:
        """Every member, ``None`` for absent optional ones."""
        return {
            "v": RECORD_VERSION,
            "device_id": self.device_id,
            "public_key": self.public_key.to_b64url(),
            "key_id": self.key_id,
            "owner_org": self.owner_org,
            "kind": self.kind.value,
            "vin": self.vin,
            "vehicle_class": self.vehicle_class,
            "valid_from_ms": self.valid_from_ms,
            "revoked_at_ms": self.revoked_at_ms,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> DeviceKey:
        """Validate a decoded record; ``key_id`` must match ``public_key``."""
        if missing := _MEMBERS - obj.keys():
            raise _bad(f"missing {sorted(missing)}")
        if extra := obj.keys() - _MEMBERS:
            raise _bad(f"unexpected {sorted(extra)}")
        if type(obj["v"]) is not int or obj["v"] != RECORD_VERSION:
            raise _bad(f"unsupported version {obj['v']!r:.20}")
        if type(obj["public_key"]) is not str:
            raise _bad("public_key: expected base64url string")
        if obj["kind"] not in [k.value for k in DeviceKind]:  # a list: kind may be unhashable
            raise _bad(f"kind: expected one of {[k.value for k in DeviceKind]}")
        record = cls(
            device_id=obj["device_id"],
            public_key=Ed25519PublicKey.from_b64url(obj["public_key"]),
            owner_org=obj["owner_org"],
            kind=DeviceKind(obj["kind"]),
            valid_from_ms=obj["valid_from_ms"],
            revoked_at_ms=obj["revoked_at_ms"],
            vin=obj["vin"],
            vehicle_class=obj["vehicle_class"],
        )
        if obj["key_id"] != record.key_id:
            raise _bad(f"key_id {obj['key_id']!r:.20} does not match public_key ({record.key_id})")
        return record

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, ASCII."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> DeviceKey:
        """Parse strictly (UTF-8, no duplicate keys); non-canonical spacing/order is accepted."""
        # surrogatepass: a lone surrogate then fails as malformed UTF-8 below, not as an escape.
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        try:
            obj = parse_json_object(raw, what="record", content_reason=RejectReason.MALFORMED)
        except TelemetryError as exc:
            raise _bad(exc.detail) from None
        return cls.from_dict(obj)
