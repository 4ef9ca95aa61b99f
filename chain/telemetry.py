"""Signed telemetry: the payload schema, the verified message, and the per-device hash chain.

A message is a compact JWS (:mod:`chain.jws`) whose payload is one JSON object of integers and
short ASCII strings (the field table is in ``docs/wire-format.md``). A message with an ``obs``
member comes from a roadside unit (RSU): its own position plus observed vehicles, no odometer,
speed or heading. A message without ``obs`` comes from a vehicle and carries all of those.
Anything else (missing or extra members, floats, booleans, strings for integers, values out of
range) is ``schema``; a header ``kid`` that differs from ``dev`` is ``bad_header``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from chain.encoding import b64url_decode, b64url_encode
from chain.errors import EncodingError, RejectReason, TelemetryError
from chain.jws import SIGNING_ALG, CompactJws, JwsHeader, parse_json_object, sign_compact
from chain.keys import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "DEVICE_ID_RE",
    "FORMAT_VERSION",
    "MAX_OBS",
    "RANGES",
    "DeviceKind",
    "Observation",
    "Telemetry",
    "TelemetryMessage",
    "chain_hash",
    "check_chain_link",
    "parse",
    "sign_telemetry",
    "verify",
]

FORMAT_VERSION = 1
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # also safe as an MQTT topic level
MAX_OBS = 64  # 64 observations with 64-character ids still fit MAX_JWS_BYTES
RANGES: dict[str, tuple[int, int]] = {  # inclusive bounds of every integer field
    "seq": (1, 2**53 - 1),  # exact in every JSON consumer, JavaScript included
    "ts": (946_684_800_000, 4_102_444_800_000),  # 2000-01-01 .. 2100-01-01 UTC, ms
    "odo_m": (0, 10_000_000_000),  # 10 million km
    "lat_e7": (-900_000_000, 900_000_000),
    "lon_e7": (-1_800_000_000, 1_800_000_000),
    "spd_cms": (0, 15_000),  # 540 km/h
    "hdg_cdeg": (0, 35_999),
}
_VEHICLE_ONLY = ("odo_m", "lat_e7", "lon_e7", "spd_cms", "hdg_cdeg")  # wire order after ts
_VEHICLE_FIELDS = frozenset({"v", "dev", "seq", "prev", "ts", *_VEHICLE_ONLY})
_RSU_FIELDS = frozenset({"v", "dev", "seq", "prev", "ts", "lat_e7", "lon_e7", "obs"})
_OBS_FIELDS = frozenset({"veh", "ts", "lat_e7", "lon_e7"})


class DeviceKind(enum.StrEnum):
    """What kind of device signs a message."""

    VEHICLE = "vehicle"
    RSU = "rsu"


def _schema(detail: str) -> TelemetryError:
    return TelemetryError(RejectReason.SCHEMA, detail)


def _check_int(name: str, value: object, bounds_of: str | None = None) -> None:
    # type() and not isinstance(): bool is an int subclass and true must not pass for 1.
    if type(value) is not int:
        raise _schema(f"{name}: expected integer, got {type(value).__name__}")
    low, high = RANGES[bounds_of or name]
    if not low <= value <= high:
        raise _schema(f"{name}: {value} outside [{low}, {high}]")


def _check_id(name: str, value: object) -> None:
    if type(value) is not str or not DEVICE_ID_RE.fullmatch(value):
        raise _schema(f"{name}: expected an id matching {DEVICE_ID_RE.pattern}")


def _check_members(what: str, obj: dict[str, Any], expected: frozenset[str]) -> None:
    if missing := expected - obj.keys():
        raise _schema(f"{what}: missing {sorted(missing)}")
    if extra := obj.keys() - expected:
        raise _schema(f"{what}: unexpected {sorted(extra)}")


def chain_hash(raw: bytes) -> str:
    """``prev`` of the message that follows ``raw``: base64url SHA-256 of its verbatim bytes."""
    return b64url_encode(hashlib.sha256(raw).digest())


@dataclass(frozen=True, slots=True)
class Observation:
    """An RSU's sighting of a vehicle: the vehicle's device id, when and where it was seen."""

    veh: str
    ts: int
    lat_e7: int
    lon_e7: int

    def __post_init__(self) -> None:
        _check_id("obs.veh", self.veh)
        _check_int("obs.ts", self.ts, "ts")
        _check_int("obs.lat_e7", self.lat_e7, "lat_e7")
        _check_int("obs.lon_e7", self.lon_e7, "lon_e7")

    @classmethod
    def from_dict(cls, obj: object) -> Observation:
        """Validate one decoded ``obs`` element."""
        if not isinstance(obj, dict):
            raise _schema("obs: elements must be objects")
        _check_members("obs element", obj, _OBS_FIELDS)
        return cls(obj["veh"], obj["ts"], obj["lat_e7"], obj["lon_e7"])

    def to_dict(self) -> dict[str, Any]:
        """Members in wire order."""
        return {"veh": self.veh, "ts": self.ts, "lat_e7": self.lat_e7, "lon_e7": self.lon_e7}


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """The payload. Vehicle fields (odo_m, spd_cms, hdg_cdeg) and ``obs`` are mutually exclusive."""

    dev: str
    seq: int
    prev: str
    ts: int
    lat_e7: int
    lon_e7: int
    odo_m: int | None = None
    spd_cms: int | None = None
    hdg_cdeg: int | None = None
    obs: tuple[Observation, ...] | None = None
    v: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if type(self.v) is not int or self.v != FORMAT_VERSION:
            raise _schema(f"v: unsupported format version {self.v!r:.20}")
        _check_id("dev", self.dev)
        _check_int("seq", self.seq)
        self._check_prev()
        for name in ("ts", "lat_e7", "lon_e7"):
            _check_int(name, getattr(self, name))
        if self.obs is None:
            for name in ("odo_m", "spd_cms", "hdg_cdeg"):
                _check_int(name, getattr(self, name))
            return
        for name in ("odo_m", "spd_cms", "hdg_cdeg"):
            if getattr(self, name) is not None:
                raise _schema(f"{name}: not allowed in an RSU message (one with obs)")
        if type(self.obs) is not tuple or len(self.obs) > MAX_OBS:
            raise _schema(f"obs: expected a tuple of at most {MAX_OBS} observations")
        if any(type(o) is not Observation for o in self.obs):
            raise _schema("obs: elements must be Observation")

    def _check_prev(self) -> None:
        if type(self.prev) is not str:
            raise _schema(f"prev: expected string, got {type(self.prev).__name__}")
        if (self.seq == 1) != (not self.prev):
            raise _schema("prev: must be empty exactly when seq is 1")
        if self.seq == 1:
            return
        try:
            digest = b64url_decode(self.prev, "prev")
        except EncodingError as exc:
            raise _schema(str(exc)) from None
        if len(digest) != hashlib.sha256().digest_size:
            raise _schema(f"prev: {len(digest)} bytes, expected a SHA-256 digest")

    @property
    def kind(self) -> DeviceKind:
        """RSU if the message carries ``obs``, otherwise vehicle."""
        return DeviceKind.VEHICLE if self.obs is None else DeviceKind.RSU

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Telemetry:
        """Validate a decoded payload object (exact member set for its kind)."""
        if "obs" not in obj:
            _check_members("vehicle payload", obj, _VEHICLE_FIELDS)
            return cls(**obj)
        _check_members("RSU payload", obj, _RSU_FIELDS)
        raw_obs = obj["obs"]
        if type(raw_obs) is not list or len(raw_obs) > MAX_OBS:
            raise _schema(f"obs: expected an array of at most {MAX_OBS} observations")
        return cls(**{**obj, "obs": tuple(Observation.from_dict(o) for o in raw_obs)})

    def to_dict(self) -> dict[str, Any]:
        """Members in wire order, only those of this message's kind."""
        head = {"v": self.v, "dev": self.dev, "seq": self.seq, "prev": self.prev, "ts": self.ts}
        if self.obs is None:
            return head | {name: getattr(self, name) for name in _VEHICLE_ONLY}
        obs = [o.to_dict() for o in self.obs]
        return head | {"lat_e7": self.lat_e7, "lon_e7": self.lon_e7, "obs": obs}

    @classmethod
    def from_json(cls, payload: bytes) -> Telemetry:
        """Parse the decoded JWS payload: ``malformed`` if not a JSON object, else ``schema``."""
        return cls.from_dict(
            parse_json_object(payload, what="payload", content_reason=RejectReason.SCHEMA)
        )

    def to_json(self) -> bytes:
        """Compact JSON (no spaces, ASCII), members in wire order."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("ascii")


@dataclass(frozen=True, slots=True, repr=False)
class TelemetryMessage:
    """A structurally valid message with its verbatim bytes, from :func:`parse`/:func:`verify`."""

    jws: CompactJws
    telemetry: Telemetry
    message_hash: bytes = field(init=False)
    """SHA-256 of the verbatim JWS bytes (what the next message's ``prev`` encodes)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "message_hash", hashlib.sha256(self.jws.raw).digest())

    @classmethod
    def from_jws(cls, jws: CompactJws) -> TelemetryMessage:
        """Schema-check the payload of an already split JWS (e.g. after a key lookup by kid)."""
        telemetry = Telemetry.from_json(jws.payload)
        if jws.header.kid != telemetry.dev:
            raise TelemetryError(
                RejectReason.BAD_HEADER,
                f"kid {jws.header.kid!r:.66} does not match dev {telemetry.dev!r}",
            )
        return cls(jws, telemetry)

    @classmethod
    def from_bytes(cls, raw: bytes) -> TelemetryMessage:
        """Same as :func:`parse`: structure, header and schema; NOT the signature."""
        return cls.from_jws(CompactJws.from_bytes(raw))

    def to_bytes(self) -> bytes:
        """The verbatim bytes."""
        return self.jws.raw

    @property
    def raw(self) -> bytes:
        """The JWS compact bytes exactly as received; also the Merkle log entry (``leaf_entry``)."""
        return self.jws.raw

    leaf_entry = raw  # the log stores the verbatim bytes, never a re-encoding

    @property
    def header(self) -> JwsHeader:
        """The protected header."""
        return self.jws.header

    def verify_signature(self, public_key: Ed25519PublicKey) -> None:
        """Verify a message from :func:`parse` once its key is known (``bad_signature``)."""
        self.jws.verify_signature(public_key)

    def __repr__(self) -> str:
        t = self.telemetry
        return f"TelemetryMessage(dev={t.dev!r}, seq={t.seq}, hash={self.message_hash.hex()[:16]})"


def parse(raw: bytes) -> TelemetryMessage:
    """Check structure, header and schema of ``raw``; the signature is NOT verified."""
    return TelemetryMessage.from_bytes(raw)


def verify(raw: bytes, public_key: Ed25519PublicKey) -> TelemetryMessage:
    """Parse ``raw`` and verify it under ``public_key``; the signature is checked before schema."""
    return TelemetryMessage.from_jws(CompactJws.verify(raw, public_key))


def sign_telemetry(signing_key: Ed25519PrivateKey, telemetry: Telemetry) -> bytes:
    """The compact JWS a device sends: header ``{"alg":"Ed25519","kid":dev}``, compact payload."""
    return sign_compact(signing_key, JwsHeader(SIGNING_ALG, telemetry.dev), telemetry.to_json())


def check_chain_link(previous: TelemetryMessage | None, current: TelemetryMessage) -> None:
    """Check that ``current`` directly follows ``previous`` (``None``: ``current`` is the first).

    Raises ``chain_broken`` naming both seqs if the devices differ, the seqs are not consecutive,
    or ``current.prev`` is not the hash of ``previous``'s verbatim bytes.
    """
    cur = current.telemetry
    if previous is None:
        problem = "" if cur.seq == 1 else f"{cur.dev}: seq {cur.seq} has no predecessor"
    else:
        prv, expected = previous.telemetry, b64url_encode(previous.message_hash)
        where = f"{cur.dev}: seq {prv.seq} -> seq {cur.seq}"
        if prv.dev != cur.dev:
            problem = f"{where}: previous is from {prv.dev}"
        elif cur.seq != prv.seq + 1:
            problem = f"{where}: seqs are not consecutive"
        elif cur.prev != expected:
            problem = f"{where}: prev {cur.prev} is not the hash of seq {prv.seq} ({expected})"
        else:
            problem = ""
    if problem:
        raise TelemetryError(RejectReason.CHAIN_BROKEN, problem)
