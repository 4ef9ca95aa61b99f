"""Telemetry payload schema, message parse/verify, and the per-device hash chain."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.errors import RejectReason, TelemetryError
from chain.jws import MAX_JWS_BYTES, CompactJws
from chain.keys import Ed25519PrivateKey, Ed25519PublicKey
from chain.telemetry import (
    MAX_OBS,
    RANGES,
    DeviceKind,
    Observation,
    Telemetry,
    TelemetryMessage,
    chain_hash,
    check_chain_link,
    parse,
    sign_telemetry,
    verify,
)

SK = Ed25519PrivateKey.from_bytes(bytes(range(32)))
PK = SK.public_key
OTHER = Ed25519PrivateKey.from_bytes(bytes(range(1, 33)))
PREV = base64.urlsafe_b64encode(hashlib.sha256(b"previous").digest()).rstrip(b"=").decode()
VEHICLE: dict[str, Any] = {
    "v": 1,
    "dev": "veh-1",
    "seq": 2,
    "prev": PREV,
    "ts": 1_700_000_000_000,
    "odo_m": 123_456,
    "lat_e7": 523_456_789,
    "lon_e7": 134_567_890,
    "spd_cms": 1_389,
    "hdg_cdeg": 27_000,
}
OBS: dict[str, Any] = {
    "veh": "veh-1",
    "ts": 1_699_999_999_000,
    "lat_e7": 523_456_700,
    "lon_e7": 134_567_800,
}
RSU: dict[str, Any] = {
    "v": 1,
    "dev": "rsu-7",
    "seq": 1,
    "prev": "",
    "ts": 1_700_000_000_000,
    "lat_e7": 523_456_000,
    "lon_e7": 134_567_000,
    "obs": [OBS],
}


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def signed(payload: dict[str, Any] | bytes, kid: str | None = None) -> bytes:
    """A validly signed message with any payload, so only the payload can be at fault."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    if kid is None:
        dev = payload.get("dev") if isinstance(payload, dict) else None
        kid = dev if isinstance(dev, str) and dev else "veh-1"
    header = json.dumps({"alg": "Ed25519", "kid": kid}).encode()
    signing_input = b64(header) + b"." + b64(body)
    return signing_input + b"." + b64(SK.sign(signing_input))


CHECKS: dict[str, Callable[[bytes], TelemetryMessage]] = {
    "parse": parse,
    "verify": lambda raw: verify(raw, PK),
}


@pytest.fixture(params=list(CHECKS.values()), ids=list(CHECKS))
def check(request: pytest.FixtureRequest) -> Callable[[bytes], TelemetryMessage]:
    fn: Callable[[bytes], TelemetryMessage] = request.param
    return fn


def reason_of(check: Callable[[bytes], TelemetryMessage], raw: bytes) -> RejectReason:
    with pytest.raises(TelemetryError) as info:
        check(raw)
    return info.value.reason


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k != name}


# --- accepted messages -------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [VEHICLE, RSU, changed(RSU, obs=[])], ids=["veh", "rsu", "0"])
def test_accepts_and_keeps_bytes(
    check: Callable[[bytes], TelemetryMessage], payload: dict[str, Any]
) -> None:
    raw = signed(payload)
    message = check(raw)
    assert message.raw is raw
    assert message.leaf_entry is raw
    assert message.to_bytes() is raw
    assert TelemetryMessage.from_bytes(message.to_bytes()) == message
    assert message.message_hash == hashlib.sha256(raw).digest()
    assert message.header.kid == payload["dev"]
    assert message.telemetry.to_dict() == payload
    assert message.telemetry.kind is (DeviceKind.RSU if "obs" in payload else DeviceKind.VEHICLE)


def test_whitespace_and_member_order_from_other_encoders_are_accepted() -> None:
    pretty = json.dumps(dict(reversed(VEHICLE.items())), indent=2).encode()
    message = verify(signed(pretty), PK)
    assert message.telemetry == Telemetry.from_dict(VEHICLE)
    assert message.jws.payload == pretty  # kept as sent, never re-encoded


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("end", [0, 1])
def test_range_bounds_are_inclusive(name: str, end: int) -> None:
    value = RANGES[name][end]
    payload = changed(VEHICLE, **{name: value})
    if name == "seq" and value == 1:
        payload["prev"] = ""
    assert getattr(verify(signed(payload), PK).telemetry, name) == value


def test_wire_form_is_pinned() -> None:
    telemetry = Telemetry.from_dict(VEHICLE)
    assert telemetry.to_json() == json.dumps(VEHICLE, separators=(",", ":")).encode()
    assert json.loads(Telemetry.from_dict(RSU).to_json()) == RSU
    raw = sign_telemetry(SK, telemetry)
    assert raw.split(b".")[0] == b64(b'{"alg":"Ed25519","kid":"veh-1"}')


def test_largest_schema_valid_message_fits_the_size_limit() -> None:
    low, high = RANGES["lat_e7"][0], RANGES["lon_e7"][0]
    obs = tuple(Observation("v" * 64, RANGES["ts"][1], low, high) for _ in range(MAX_OBS))
    telemetry = Telemetry(
        dev="r" * 64, seq=RANGES["seq"][1], prev=PREV, ts=RANGES["ts"][1], lat_e7=low,
        lon_e7=high, obs=obs,
    )  # fmt: skip
    raw = sign_telemetry(SK, telemetry)
    assert len(raw) <= MAX_JWS_BYTES
    assert verify(raw, PK).telemetry == telemetry


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


def test_split_lookup_verify_flow() -> None:
    """The ingest path: split once, look the key up by kid, verify, then read the payload."""
    jws = CompactJws.from_bytes(signed(VEHICLE))
    keys = {"veh-1": PK}
    assert jws.header.kid is not None
    jws.verify_signature(keys[jws.header.kid])
    assert TelemetryMessage.from_jws(jws) == verify(jws.raw, PK)


def test_parsed_message_verifies_later() -> None:
    message = parse(signed(VEHICLE))
    message.verify_signature(PK)
    with pytest.raises(TelemetryError) as info:
        message.verify_signature(OTHER.public_key)
    assert info.value.reason is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "kwargs",
    [
        changed(without(VEHICLE, "v"), seq=True, prev=""),
        changed(without(VEHICLE, "v"), v=True),
        changed(without(VEHICLE, "v"), odo_m=None),
        changed(without(RSU, "v"), obs=[Observation(**OBS)]),  # a list, not a tuple
        changed(without(RSU, "v"), obs=(OBS,)),  # dicts, not Observation
    ],
)
def test_constructor_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TelemetryError) as info:
        Telemetry(**kwargs)
    assert info.value.reason is RejectReason.SCHEMA


# --- round trip (property) ---------------------------------------------------------------------


def ints(name: str) -> st.SearchStrategy[int]:
    return st.integers(*RANGES[name])


DEVICE_IDS = st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True)
OBSERVATIONS = st.builds(
    Observation, veh=DEVICE_IDS, ts=ints("ts"), lat_e7=ints("lat_e7"), lon_e7=ints("lon_e7")
)


@st.composite
def telemetries(draw: st.DrawFn) -> Telemetry:
    seq = draw(ints("seq"))
    common: dict[str, Any] = {
        "dev": draw(DEVICE_IDS),
        "seq": seq,
        "prev": "" if seq == 1 else chain_hash(draw(st.binary(max_size=64))),
        "ts": draw(ints("ts")),
        "lat_e7": draw(ints("lat_e7")),
        "lon_e7": draw(ints("lon_e7")),
    }
    if draw(st.booleans()):
        return Telemetry(**common, obs=tuple(draw(st.lists(OBSERVATIONS, max_size=MAX_OBS))))
    vehicle: dict[str, Any] = {n: draw(ints(n)) for n in ("odo_m", "spd_cms", "hdg_cdeg")}
    return Telemetry(**common, **vehicle)


@given(telemetries())
def test_sign_verify_round_trip(telemetry: Telemetry) -> None:
    raw = sign_telemetry(SK, telemetry)
    message = verify(raw, PK)
    assert message.telemetry == telemetry
    assert Telemetry.from_json(telemetry.to_json()) == telemetry
    assert Telemetry.from_dict(telemetry.to_dict()) == telemetry
    assert parse(message.raw).telemetry == telemetry


@given(st.data())
def test_any_single_byte_change_is_rejected(data: st.DataObject) -> None:
    raw = signed(VEHICLE)
    index = data.draw(st.integers(0, len(raw) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]))
    with pytest.raises(TelemetryError):
        verify(raw[:index] + bytes([byte]) + raw[index + 1 :], PK)


# --- hash chain --------------------------------------------------------------------------------


def chain(n: int, dev: str = "veh-1", key: Ed25519PrivateKey = SK) -> list[TelemetryMessage]:
    messages: list[TelemetryMessage] = []
    for seq in range(1, n + 1):
        prev = chain_hash(messages[-1].raw) if messages else ""
        fields = changed(without(VEHICLE, "v"), dev=dev, seq=seq, prev=prev, odo_m=seq * 100)
        messages.append(verify(sign_telemetry(key, Telemetry(**fields)), key.public_key))
    return messages


def test_chain_links_hold() -> None:
    m1, m2, m3 = chain(3)
    check_chain_link(None, m1)
    check_chain_link(m1, m2)
    check_chain_link(m2, m3)
    assert m2.telemetry.prev == chain_hash(m1.raw)
    assert base64.urlsafe_b64decode(m3.telemetry.prev + "=") == m2.message_hash


def test_forged_prev_is_broken() -> None:
    m1, m2 = chain(2)
    check_chain_link(m1, m2)
    # Seq 1 re-signed with a different odometer (a re-flash): seq 2 no longer links to it.
    forged = verify(sign_telemetry(SK, replace(m1.telemetry, odo_m=99)), PK)
    assert forged.telemetry.seq == 1
    with pytest.raises(TelemetryError) as info:
        check_chain_link(forged, m2)
    assert info.value.reason is RejectReason.CHAIN_BROKEN
    assert "seq 1" in info.value.detail
    assert "seq 2" in info.value.detail


@pytest.mark.parametrize(
    ("pair", "seqs"),
    [
        (lambda c, o: (None, c[1]), ("seq 2",)),
        (lambda c, o: (c[0], c[2]), ("seq 1", "seq 3")),
        (lambda c, o: (c[1], c[0]), ("seq 2", "seq 1")),
        (lambda c, o: (c[1], c[1]), ("seq 2",)),
        (lambda c, o: (o[0], c[1]), ("seq 1", "seq 2")),
    ],
    ids=["no predecessor", "gap", "reversed", "same", "other device"],
)
def test_broken_links(pair: Any, seqs: tuple[str, ...]) -> None:
    previous, current = pair(chain(3), chain(1, dev="veh-2", key=OTHER))
    with pytest.raises(TelemetryError) as info:
        check_chain_link(previous, current)
    assert info.value.reason is RejectReason.CHAIN_BROKEN
    assert all(s in info.value.detail for s in seqs)


# --- the examples in docs/wire-format.md -------------------------------------------------------

WIRE_FORMAT_DOC = Path(__file__).resolve().parents[3] / "docs" / "wire-format.md"
RFC8037_PUBLIC_KEY = Ed25519PublicKey.from_b64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")


def test_documented_examples_verify_and_chain() -> None:
    text = WIRE_FORMAT_DOC.read_text()
    jws_lines = re.findall(r"^eyJ[\w-]+\.[\w-]+\.[\w-]+$", text, re.MULTILINE)
    json_lines = re.findall(r'^\{"v":1.*\}$', text, re.MULTILINE)
    assert len(jws_lines) == len(json_lines) == 3
    messages = [verify(line.encode(), RFC8037_PUBLIC_KEY) for line in jws_lines]
    for message, payload in zip(messages, json_lines, strict=True):
        assert message.jws.payload == payload.encode()
        assert message.telemetry.to_json() == payload.encode()
    check_chain_link(None, messages[0])
    check_chain_link(messages[0], messages[1])
    assert messages[2].telemetry.kind is DeviceKind.RSU
