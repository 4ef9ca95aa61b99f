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


# --- parse and verify --------------------------------------------------------------------------


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
