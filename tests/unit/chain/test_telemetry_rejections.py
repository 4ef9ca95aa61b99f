"""Telemetry messages the service rejects, and the reason given for each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chain.errors import RejectReason
from chain.telemetry import MAX_OBS, RANGES, TelemetryMessage, parse, verify
from tests.unit.chain.test_telemetry import (
    CHECKS,
    OBS,
    PK,
    PREV,
    RSU,
    VEHICLE,
    b64,
    changed,
    reason_of,
    signed,
    without,
)


@pytest.fixture(params=list(CHECKS.values()), ids=list(CHECKS))
def check(request: pytest.FixtureRequest) -> Callable[[bytes], TelemetryMessage]:
    fn: Callable[[bytes], TelemetryMessage] = request.param
    return fn


# --- schema rejections -------------------------------------------------------------------------

SCHEMA_CASES: dict[str, dict[str, Any]] = {
    **{f"missing {n}": without(VEHICLE, n) for n in VEHICLE},
    **{f"rsu missing {n}": without(RSU, n) for n in RSU if n != "obs"},
    "unknown member": changed(VEHICLE, alt_m=5),
    "rsu with odometer": changed(RSU, odo_m=5),
    "rsu with speed": changed(RSU, spd_cms=5),
    "vehicle with obs": changed(VEHICLE, obs=[]),
    "v 2": changed(VEHICLE, v=2),
    "v 0": changed(VEHICLE, v=0),
    "v string": changed(VEHICLE, v="1"),
    "v true": changed(VEHICLE, v=True),
    "seq float": changed(VEHICLE, seq=2.0),
    "ts float": changed(VEHICLE, ts=1.7e12),
    "odo float": changed(VEHICLE, odo_m=123_456.0),
    "lat fraction": changed(VEHICLE, lat_e7=0.5),
    "seq true": changed(VEHICLE, seq=True, prev=""),
    "speed true": changed(VEHICLE, spd_cms=True),
    "heading false": changed(VEHICLE, hdg_cdeg=False),
    "odo false": changed(VEHICLE, odo_m=False),
    "seq string": changed(VEHICLE, seq="2"),
    "ts string": changed(VEHICLE, ts="1700000000000"),
    "odo null": changed(VEHICLE, odo_m=None),
    "hdg list": changed(VEHICLE, hdg_cdeg=[1]),
    "seq 0": changed(VEHICLE, seq=0, prev=""),
    "seq negative": changed(VEHICLE, seq=-1),
    "seq 2**53": changed(VEHICLE, seq=2**53),
    "ts 0": changed(VEHICLE, ts=0),
    "ts after 2100": changed(VEHICLE, ts=RANGES["ts"][1] + 1),
    "odo negative": changed(VEHICLE, odo_m=-1),
    "odo absurd": changed(VEHICLE, odo_m=RANGES["odo_m"][1] + 1),
    "odo 30 digits": changed(VEHICLE, odo_m=10**29),
    "lat north of pole": changed(VEHICLE, lat_e7=900_000_001),
    "lat south of pole": changed(VEHICLE, lat_e7=-900_000_001),
    "lon beyond 180": changed(VEHICLE, lon_e7=1_800_000_001),
    "speed negative": changed(VEHICLE, spd_cms=-1),
    "speed absurd": changed(VEHICLE, spd_cms=15_001),
    "heading 360": changed(VEHICLE, hdg_cdeg=36_000),
    "heading negative": changed(VEHICLE, hdg_cdeg=-1),
    "dev empty": changed(VEHICLE, dev=""),
    "dev slash": changed(VEHICLE, dev="veh/1"),
    "dev mqtt wildcard": changed(VEHICLE, dev="veh+"),
    "dev non-ascii": changed(VEHICLE, dev="véh"),
    "dev newline": changed(VEHICLE, dev="veh-1\n"),
    "dev number": changed(VEHICLE, dev=7),
    "prev on seq 1": changed(VEHICLE, seq=1),
    "prev empty on seq 2": changed(VEHICLE, prev=""),
    "prev not base64url": changed(VEHICLE, prev="!" * 43),
    "prev padded": changed(VEHICLE, prev=PREV + "="),
    "prev standard base64": changed(VEHICLE, prev=PREV.replace("-", "+").replace("_", "/")),
    "prev 31 bytes": changed(VEHICLE, prev=b64(bytes(31)).decode()),
    "prev 33 bytes": changed(VEHICLE, prev=b64(bytes(33)).decode()),
    "prev number": changed(VEHICLE, prev=0),
    "obs object": changed(RSU, obs=OBS),
    "obs null": changed(RSU, obs=None),
    "obs too many": changed(RSU, obs=[OBS] * (MAX_OBS + 1)),
    "obs element list": changed(RSU, obs=[[1, 2]]),
    "obs element missing ts": changed(RSU, obs=[without(OBS, "ts")]),
    "obs element extra": changed(RSU, obs=[changed(OBS, spd_cms=1)]),
    "obs veh invalid": changed(RSU, obs=[changed(OBS, veh="a b")]),
    "obs ts float": changed(RSU, obs=[changed(OBS, ts=1.7e12)]),
    "obs lat out of range": changed(RSU, obs=[changed(OBS, lat_e7=10**9)]),
    "obs lon bool": changed(RSU, obs=[changed(OBS, lon_e7=True)]),
}


@pytest.mark.parametrize("payload", SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_schema_rejections(
    check: Callable[[bytes], TelemetryMessage], payload: dict[str, Any]
) -> None:
    assert reason_of(check, signed(payload)) is RejectReason.SCHEMA


def test_a_dev_too_long_is_schema_and_as_a_kid_is_refused_at_the_header(
    check: Callable[[bytes], TelemetryMessage],
) -> None:
    # The header's kid is bounded to 64 characters before anything else is spent on it
    # (chain/jws.py), so a 65-character dev shows as schema only under a shorter kid.
    too_long = changed(VEHICLE, dev="v" * 65)
    assert reason_of(check, signed(too_long, kid="v" * 64)) is RejectReason.SCHEMA
    assert reason_of(check, signed(too_long)) is RejectReason.BAD_HEADER


def raw_payload(text: str) -> bytes:
    return text.replace("PREV", PREV).encode()


VEHICLE_TAIL = '"lat_e7":1,"lon_e7":2,"spd_cms":3,"hdg_cdeg":4}'
PAYLOAD_CASES: dict[str, tuple[bytes, RejectReason]] = {
    "duplicate member": (
        raw_payload('{"v":1,"dev":"veh-1","seq":2,"seq":3,"prev":"PREV","ts":1700000000000,'
                    '"odo_m":5,' + VEHICLE_TAIL),
        RejectReason.SCHEMA,
    ),
    "duplicate in obs": (
        raw_payload('{"v":1,"dev":"veh-1","seq":1,"prev":"","ts":1700000000000,"lat_e7":1,'
                    '"lon_e7":2,"obs":[{"veh":"a","veh":"b","ts":1700000000000,"lat_e7":1,'
                    '"lon_e7":2}]}'),
        RejectReason.SCHEMA,
    ),
    "float exponent": (
        raw_payload('{"v":1,"dev":"veh-1","seq":2,"prev":"PREV","ts":1.7e12,"odo_m":5,'
                    + VEHICLE_TAIL),
        RejectReason.SCHEMA,
    ),
    "float 1.0": (
        raw_payload('{"v":1.0,"dev":"veh-1","seq":2,"prev":"PREV","ts":1700000000000,"odo_m":5,'
                    + VEHICLE_TAIL),
        RejectReason.SCHEMA,
    ),
    "NaN": (
        raw_payload('{"v":1,"dev":"veh-1","seq":2,"prev":"PREV","ts":1700000000000,"odo_m":NaN,'
                    + VEHICLE_TAIL),
        RejectReason.MALFORMED,
    ),
    "Infinity": (
        raw_payload('{"v":1,"dev":"veh-1","seq":2,"prev":"PREV","ts":Infinity,"odo_m":5,'
                    + VEHICLE_TAIL),
        RejectReason.MALFORMED,
    ),
    "-Infinity": (
        raw_payload('{"v":1,"dev":"veh-1","seq":2,"prev":"PREV","ts":1700000000000,'
                    '"odo_m":-Infinity,' + VEHICLE_TAIL),
        RejectReason.MALFORMED,
    ),
    "not utf-8": (json.dumps(VEHICLE).encode()[:-1] + b',"x":"\xff"}', RejectReason.MALFORMED),
    "utf-16": (json.dumps(VEHICLE).encode("utf-16"), RejectReason.MALFORMED),
    "bom": (b"\xef\xbb\xbf" + json.dumps(VEHICLE).encode(), RejectReason.MALFORMED),
    "not json": (b"Example of Ed25519 signing", RejectReason.MALFORMED),
    "truncated": (json.dumps(VEHICLE).encode()[:-1], RejectReason.MALFORMED),
    "trailing data": (json.dumps(VEHICLE).encode() + b"{}", RejectReason.MALFORMED),
    "array": (json.dumps([VEHICLE]).encode(), RejectReason.MALFORMED),
    "number": (b"1", RejectReason.MALFORMED),
    "deep nesting": (b'{"obs":' + b"[" * 5000 + b"]" * 5000 + b"}", RejectReason.MALFORMED),
}  # fmt: skip


@pytest.mark.parametrize(("payload", "reason"), PAYLOAD_CASES.values(), ids=PAYLOAD_CASES.keys())
def test_payload_rejections(
    check: Callable[[bytes], TelemetryMessage], payload: bytes, reason: RejectReason
) -> None:
    assert reason_of(check, signed(payload, kid="veh-1")) is reason


@pytest.mark.parametrize("kid", ["veh-2", "VEH-1", "veh-1 ", "veh"])
def test_kid_must_equal_dev(check: Callable[[bytes], TelemetryMessage], kid: str) -> None:
    assert reason_of(check, signed(VEHICLE, kid=kid)) is RejectReason.BAD_HEADER


def test_signature_is_checked_before_schema() -> None:
    header, _, sig = signed(VEHICLE).split(b".")
    tampered = header + b"." + b64(json.dumps(changed(VEHICLE, odo_m=-1)).encode()) + b"." + sig
    assert reason_of(parse, tampered) is RejectReason.SCHEMA
    assert reason_of(lambda raw: verify(raw, PK), tampered) is RejectReason.BAD_SIGNATURE
