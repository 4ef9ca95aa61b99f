"""The device key record: canonical JSON, validity window, and verifying a device's message."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from chain.device_keys import DeviceKey, key_id
from chain.errors import EncodingError, RejectReason, TelemetryError
from chain.keys import Ed25519PrivateKey
from chain.telemetry import DeviceKind, Telemetry, sign_telemetry

SK = Ed25519PrivateKey.from_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_bytes(bytes(range(1, 33)))
T0 = 1_700_000_000_000
VEHICLE_KEY = DeviceKey(
    device_id="veh-1",
    public_key=SK.public_key,
    owner_org="fleet-42",
    kind=DeviceKind.VEHICLE,
    valid_from_ms=T0,
    vin="WVWZZZ1JZXW000001",
    vehicle_class="M1",
)
RSU_KEY = DeviceKey(
    device_id="rsu-7",
    public_key=OTHER.public_key,
    owner_org="transport-bureau",
    kind=DeviceKind.RSU,
    valid_from_ms=T0,
    revoked_at_ms=T0 + 1000,
)


def test_key_id_is_truncated_sha256_of_the_raw_key() -> None:
    digest = hashlib.sha256(SK.public_key.to_bytes()).digest()
    expected = base64.urlsafe_b64encode(digest[:12]).decode()
    assert key_id(SK.public_key) == VEHICLE_KEY.key_id == expected
    assert len(expected) == 16
    assert "=" not in expected
    assert RSU_KEY.key_id != VEHICLE_KEY.key_id


def test_canonical_json_is_pinned() -> None:
    text = VEHICLE_KEY.to_json()
    assert text == (
        '{"device_id":"veh-1","key_id":"' + VEHICLE_KEY.key_id + '","kind":"vehicle",'
        '"owner_org":"fleet-42","public_key":"' + SK.public_key.to_b64url() + '",'
        '"revoked_at_ms":null,"v":1,"valid_from_ms":1700000000000,"vehicle_class":"M1",'
        '"vin":"WVWZZZ1JZXW000001"}'
    )


@pytest.mark.parametrize(
    "record", [VEHICLE_KEY, RSU_KEY, VEHICLE_KEY.revoke(T0 + 5)], ids=["vehicle", "rsu", "revoked"]
)
def test_json_round_trip(record: DeviceKey) -> None:
    assert DeviceKey.from_json(record.to_json()) == record
    assert DeviceKey.from_json(record.to_json().encode()) == record
    assert DeviceKey.from_dict(record.to_dict()) == record
    assert DeviceKey.from_json(record.to_json()).to_json() == record.to_json()


def test_non_canonical_input_is_read_and_written_canonically() -> None:
    pretty = json.dumps(dict(reversed(VEHICLE_KEY.to_dict().items())), indent=2)
    record = DeviceKey.from_json(pretty)
    assert record == VEHICLE_KEY
    assert record.to_json() == VEHICLE_KEY.to_json()


def record_with(**changes: Any) -> str:
    obj = VEHICLE_KEY.to_dict()
    obj.update(changes)
    return json.dumps({k: v for k, v in obj.items() if v is not ...})


BAD_RECORDS = {
    "not json": "device_id=veh-1",
    "array": json.dumps([VEHICLE_KEY.to_dict()]),
    "duplicate member": VEHICLE_KEY.to_json()[:-1] + ',"kind":"rsu"}',
    "lone surrogate": VEHICLE_KEY.to_json()[:-1] + ',"x":"\ud800"}',
    "missing member": record_with(owner_org=...),
    "missing optional member": record_with(vin=...),
    "extra member": record_with(colour="red"),
    "version 2": record_with(v=2),
    "version true": record_with(v=True),
    "key_id mismatch": record_with(key_id=key_id(OTHER.public_key)),
    "public key short": record_with(public_key=SK.public_key.to_b64url()[:-2]),
    "public key padded": record_with(public_key=SK.public_key.to_b64url() + "="),
    "public key number": record_with(public_key=5),
    "kind unknown": record_with(kind="truck"),
    "kind unhashable": record_with(kind=["vehicle"]),
    "device id invalid": record_with(device_id="veh/1"),
    "owner org empty": record_with(owner_org=""),
    "vin with O": record_with(vin="WVWZZZ1JZXW00000O"),
    "vin 16 chars": record_with(vin="WVWZZZ1JZXW00000"),
    "vin lower case": record_with(vin="wvwzzz1jzxw000001"),
    "vehicle class spaces": record_with(vehicle_class="heavy truck"),
    "valid_from float": record_with(valid_from_ms=1.7e12),
    "valid_from bool": record_with(valid_from_ms=True),
    "valid_from negative": record_with(valid_from_ms=-1),
    "valid_from string": record_with(valid_from_ms="1700000000000"),
    "revoked before valid": record_with(revoked_at_ms=T0 - 1),
    "rsu with vin": record_with(kind="rsu"),
}


@pytest.mark.parametrize("text", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_records(text: str) -> None:
    with pytest.raises(EncodingError):
        DeviceKey.from_json(text)


def test_non_utf8_record() -> None:
    with pytest.raises(EncodingError):
        DeviceKey.from_json(VEHICLE_KEY.to_json().encode()[:-1] + b',"x":"\xff"}')


@pytest.mark.parametrize(
    ("ts", "valid"),
    [
        (T0 - 1, False),  # not yet valid
        (T0, True),
        (T0 + 999, True),  # last millisecond before revocation
        (T0 + 1000, False),  # revoked at this instant
        (T0 + 10**9, False),
    ],
)
def test_validity_window(ts: int, valid: bool) -> None:
    if valid:
        RSU_KEY.check_valid_at(ts)
        return
    with pytest.raises(TelemetryError) as info:
        RSU_KEY.check_valid_at(ts)
    assert info.value.reason is RejectReason.REVOKED_KEY


def test_unrevoked_key_stays_valid() -> None:
    VEHICLE_KEY.check_valid_at(4_102_444_800_000)


def test_revocation_only_moves_earlier() -> None:
    assert RSU_KEY.revoke(T0 + 500).revoked_at_ms == T0 + 500
    assert RSU_KEY.revoke(T0 + 5000) is RSU_KEY
    assert VEHICLE_KEY.revoke(T0 - 10).revoked_at_ms == T0  # never valid, still well-formed
    assert VEHICLE_KEY.revoked_at_ms is None  # the record itself is unchanged


def vehicle_message(dev: str = "veh-1", ts: int = T0 + 10, key: Ed25519PrivateKey = SK) -> bytes:
    telemetry = Telemetry(
        dev=dev, seq=1, prev="", ts=ts, odo_m=1, lat_e7=1, lon_e7=1, spd_cms=1, hdg_cdeg=1
    )
    return sign_telemetry(key, telemetry)


def test_verify_message_accepts_its_device() -> None:
    message = VEHICLE_KEY.verify_message(vehicle_message())
    assert message.telemetry.dev == "veh-1"
    rsu = Telemetry(dev="rsu-7", seq=1, prev="", ts=T0, lat_e7=0, lon_e7=0, obs=())
    assert RSU_KEY.verify_message(sign_telemetry(OTHER, rsu)).telemetry == rsu


@pytest.mark.parametrize(
    ("record", "raw", "reason"),
    [
        (VEHICLE_KEY, vehicle_message(key=OTHER), RejectReason.BAD_SIGNATURE),
        (VEHICLE_KEY, vehicle_message(dev="veh-2"), RejectReason.BAD_HEADER),
        (VEHICLE_KEY, vehicle_message(ts=T0 - 1), RejectReason.REVOKED_KEY),
        (VEHICLE_KEY.revoke(T0 + 10), vehicle_message(ts=T0 + 10), RejectReason.REVOKED_KEY),
        (RSU_KEY, vehicle_message(dev="rsu-7", ts=T0, key=OTHER), RejectReason.SCHEMA),
    ],
    ids=["other key", "other device", "before valid", "after revocation", "kind mismatch"],
)
def test_verify_message_rejections(record: DeviceKey, raw: bytes, reason: RejectReason) -> None:
    with pytest.raises(TelemetryError) as info:
        record.verify_message(raw)
    assert info.value.reason is reason


def test_constructor_validates() -> None:
    with pytest.raises(EncodingError):
        DeviceKey(
            device_id="rsu-1",
            public_key=SK.public_key,
            owner_org="o",
            kind=DeviceKind.RSU,
            valid_from_ms=0,
            vehicle_class="M1",
        )
