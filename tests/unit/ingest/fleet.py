"""Signing devices and raw records for the verifier's tests (unit and integration)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from chain.device_keys import DeviceKey
from chain.errors import RejectReason
from chain.jws import MAX_JWS_BYTES
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind, Observation, Telemetry, chain_hash, sign_telemetry
from contracts.topics import HEADER_RECV_MS
from roadledger.stream import StreamRecord

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: device clocks and receive times in the tests
DAY_MS = 86_400_000


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def private_key(name: str) -> Ed25519PrivateKey:
    """A deterministic key per name, so failures reproduce."""
    return Ed25519PrivateKey.from_bytes(hashlib.sha256(name.encode()).digest())


@dataclass
class Device:
    """A vehicle or RSU with its current key; ``message()`` makes its next chained message."""

    device_id: str
    kind: DeviceKind = DeviceKind.VEHICLE
    key_name: str = ""
    valid_from_ms: int = T0 - DAY_MS
    seq: int = 0
    prev: str = ""
    records: list[DeviceKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = private_key(self.key_name or self.device_id)
        self.records.append(self.record_for(self.key, self.valid_from_ms))

    @property
    def record(self) -> DeviceKey:
        return self.records[-1]

    def record_for(self, key: Ed25519PrivateKey, valid_from_ms: int) -> DeviceKey:
        return DeviceKey(
            device_id=self.device_id,
            public_key=key.public_key,
            owner_org="fleet-a",
            kind=self.kind,
            valid_from_ms=valid_from_ms,
        )

    def rotate(self, at_ms: int, key_name: str) -> tuple[DeviceKey, DeviceKey]:
        """End the current key at ``at_ms`` and sign with a new one; (old ended, new)."""
        old = self.records[-1]
        self.records[-1] = old.revoke(at_ms)
        self.key = private_key(key_name)
        self.records.append(self.record_for(self.key, at_ms))
        return self.records[-2], self.records[-1]

    def telemetry(self, ts: int, **overrides: Any) -> Telemetry:
        seq = overrides.pop("seq", self.seq + 1)
        prev = overrides.pop("prev", self.prev if seq == self.seq + 1 else "")
        if seq == 1:
            prev = ""
        elif not prev:
            prev = chain_hash(b"unknown previous message")
        fields: dict[str, Any] = {"dev": self.device_id, "seq": seq, "prev": prev, "ts": ts}
        fields |= {"lat_e7": 522516100, "lon_e7": 133777200}
        if self.kind is DeviceKind.VEHICLE:
            fields |= {"odo_m": 48_211_350 + seq * 14, "spd_cms": 1389, "hdg_cdeg": 9000}
        else:
            fields["obs"] = (Observation("veh-0042", ts - 500, 522516200, 133777300),)
        return Telemetry(**(fields | overrides))

    def message(
        self, ts: int = T0, *, key: Ed25519PrivateKey | None = None, **overrides: Any
    ) -> bytes:
        """The next message of the chain (advances it), signed with ``key`` or the current key."""
        telemetry = self.telemetry(ts, **overrides)
        raw = sign_telemetry(key or self.key, telemetry)
        if telemetry.seq == self.seq + 1:
            self.seq, self.prev = telemetry.seq, chain_hash(raw)
        return raw

    def payload_message(
        self,
        payload: dict[str, Any],
        *,
        header: dict[str, Any] | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> bytes:
        """A message with an arbitrary payload (schema failures), signed correctly."""
        head = header or {"alg": "Ed25519", "kid": self.device_id}
        signing_input = b64(json.dumps(head).encode()) + b"." + b64(json.dumps(payload).encode())
        return signing_input + b"." + b64((key or self.key).sign(signing_input))

    def payload(self, ts: int = T0, **overrides: Any) -> dict[str, Any]:
        """The next message's payload as a dict (to break it); does not advance the chain."""
        return self.telemetry(ts).to_dict() | overrides


def raw_record(
    value: bytes,
    key: bytes | str | None,
    *,
    offset: int,
    partition: int = 0,
    recv_ms: int | None = T0,
    timestamp_ms: int = T0,
    topic: str = "telemetry.raw",
) -> StreamRecord:
    """A ``telemetry.raw`` record as the bridge writes it (``recv_ms`` header unless None)."""
    headers = () if recv_ms is None else ((HEADER_RECV_MS, str(recv_ms).encode()),)
    return StreamRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key.encode() if isinstance(key, str) else key,
        value=value,
        headers=headers,
        timestamp_ms=timestamp_ms,
    )


@dataclass(frozen=True)
class Sent:
    """One raw record of a scenario and where it must end (``expected`` None: verified)."""

    value: bytes
    key: bytes | None
    recv_ms: int
    expected: RejectReason | None
    what: str


@dataclass
class Traffic:
    """A scenario: the registry's key records and the raw records, in publishing order."""

    records: list[DeviceKey]
    sent: list[Sent]

    def expected_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for sent in self.sent:
            name = "verified" if sent.expected is None else sent.expected.value
            counts[name] = counts.get(name, 0) + 1
        return counts


def mixed_traffic(vehicles: int = 4, messages: int = 5, recv_ms: int = T0) -> Traffic:
    """Valid messages of ``vehicles`` vehicles and one RSU, then one case of every rejection.

    Every reason code of the verifier appears at least once; each device's records keep
    their order (one device, one partition), so "first" and "second copy" are well defined.
    """
    R = RejectReason
    sent: list[Sent] = []

    def add(device_id: str | None, raw: bytes, expected: RejectReason | None, what: str) -> None:
        key = device_id.encode() if device_id is not None else None
        sent.append(Sent(raw, key, recv_ms, expected, what))

    since = recv_ms - 60 * DAY_MS  # keys older than the oldest message, so age is clock_skew
    fleet = [Device(f"veh-{i:03d}", valid_from_ms=since) for i in range(vehicles)]
    fleet.append(Device("rsu-1", DeviceKind.RSU, valid_from_ms=since))
    for step in range(messages):
        for device in fleet:
            add(device.device_id, device.message(recv_ms - 60_000 + step * 1000), None, "valid")

    car = fleet[0]
    dup = car.message(recv_ms - 1000)
    add(car.device_id, dup, None, "first copy")
    add(car.device_id, dup, R.DUPLICATE, "second copy")
    add(
        car.device_id, car.message(recv_ms - 900, seq=car.seq, odo_m=1), R.CONFLICT, "re-signed seq"
    )
    add(car.device_id, car.message(recv_ms, key=private_key("forger")), R.BAD_SIGNATURE, "forged")
    head, payload, sig = car.message(recv_ms).split(b".")
    add(car.device_id, head + b"." + payload[:-2] + b"AA" + b"." + sig, R.BAD_SIGNATURE, "tampered")
    add(car.device_id, car.message(recv_ms + 3_600_000), R.CLOCK_SKEW, "from the future")
    add(car.device_id, car.message(recv_ms - 40 * DAY_MS), R.CLOCK_SKEW, "too old")
    add(car.device_id, car.payload_message(car.payload(recv_ms, spd_cms=1.5)), R.SCHEMA, "float")
    rsu_as_car = Device(car.device_id, DeviceKind.RSU)
    add(car.device_id, rsu_as_car.message(recv_ms, seq=car.seq + 1), R.SCHEMA, "kind mismatch")
    alg = car.payload_message(car.payload(recv_ms), header={"alg": "HS256", "kid": car.device_id})
    add(car.device_id, alg, R.UNSUPPORTED_ALG, "alg")
    add(fleet[1].device_id, car.message(recv_ms), R.BAD_HEADER, "another device's topic")
    add(None, car.message(recv_ms), R.BAD_HEADER, "no record key")
    add(car.device_id, b"x" * (MAX_JWS_BYTES + 1), R.OVERSIZE, "oversize")
    add(car.device_id, b"hello.world", R.MALFORMED, "malformed")
    ghost = Device("ghost-1")
    add(ghost.device_id, ghost.message(recv_ms), R.UNKNOWN_DEVICE, "unknown")

    revoked = Device("veh-revoked")
    add(revoked.device_id, revoked.message(recv_ms - 20_000), None, "before revocation")
    add(revoked.device_id, revoked.message(recv_ms - 5_000), R.REVOKED_KEY, "after revocation")
    revoked.records[-1] = revoked.record.revoke(recv_ms - 10_000)

    rotated = Device("veh-rotated", key_name="r1")
    old_key = rotated.key
    rotated.rotate(recv_ms - 10_000, "r2")
    add(rotated.device_id, rotated.message(recv_ms - 20_000, key=old_key), None, "old key, before")
    add(rotated.device_id, rotated.message(recv_ms - 5_000, key=old_key), R.REVOKED_KEY, "old key")
    add(rotated.device_id, rotated.message(recv_ms - 4_000), None, "new key, after")

    records = [r for d in [*fleet, revoked, rotated] for r in d.records]
    return Traffic(records, sent)
