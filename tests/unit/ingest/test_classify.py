"""The verifier's per-message classification: every reason code, its order, its edge cases."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence

import pytest

from chain.device_keys import DeviceKey
from chain.errors import RejectReason
from chain.jws import MAX_JWS_BYTES
from chain.keys import Ed25519PrivateKey, Ed25519PublicKey
from chain.telemetry import DeviceKind
from ingest import classify as classify_module
from ingest.classify import (
    Accepted,
    ClassifyInput,
    Limits,
    Rejected,
    Verdict,
    classify_chunk,
    classify_message,
    one_line,
)
from tests.unit.ingest.fleet import DAY_MS, T0, Device, b64, private_key

LIMITS = Limits(clock_skew_ms=300_000, max_message_age_ms=30 * DAY_MS)
R = RejectReason


def classify(
    raw: bytes,
    device: Device | None,
    *,
    keys: Sequence[DeviceKey] | None = None,
    record_key: bytes | str | None = "",
    recv_ms: int = T0,
) -> Verdict:
    if record_key == "":
        record_key = device.device_id if device else None
    key = record_key.encode() if isinstance(record_key, str) else record_key
    if keys is None:
        keys = device.records if device else ()
    return classify_message(raw, key, keys, recv_ms, LIMITS)


def reason(verdict: Verdict) -> RejectReason | None:
    return verdict.reason if isinstance(verdict, Rejected) else None


def assert_rejected(verdict: Verdict, expected: RejectReason, detail: str = "") -> None:
    assert isinstance(verdict, Rejected), f"expected {expected}, got {verdict}"
    assert verdict.reason is expected, verdict.detail
    assert detail in verdict.detail
    assert "\n" not in verdict.detail
    assert len(verdict.detail) <= 300
    assert not verdict.internal


# --- accepted --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [DeviceKind.VEHICLE, DeviceKind.RSU])
def test_a_valid_message_is_accepted_with_its_hash(kind: DeviceKind) -> None:
    device = Device("dev-1", kind)
    raw = device.message(T0)
    verdict = classify(raw, device)
    key_id = device.record.key_id
    assert verdict == Accepted("dev-1", 1, hashlib.sha256(raw).digest(), b"", key_id, T0)
    # the next one carries its link, decoded, for the hash-chain check
    second = device.message(T0 + 1000)
    assert classify(second, device) == Accepted(
        "dev-1", 2, hashlib.sha256(second).digest(), hashlib.sha256(raw).digest(), key_id, T0 + 1000
    )


def test_the_wire_format_example_is_accepted() -> None:
    raw = (  # docs/wire-format.md, vehicle veh-0042 seq 1, RFC 8037 test key
        b"eyJhbGciOiJFZDI1NTE5Iiwia2lkIjoidmVoLTAwNDIifQ.eyJ2IjoxLCJkZXYiOiJ2ZWgtMDA0MiIsInNlcS"
        b"I6MSwicHJldiI6IiIsInRzIjoxNzY3MjI1NjAwMDAwLCJvZG9fbSI6NDgyMTEzNTAsImxhdF9lNyI6NTIyNT"
        b"E2MTAwLCJsb25fZTciOjEzMzc3NzIwMCwic3BkX2NtcyI6MCwiaGRnX2NkZWciOjkwMDB9.FERt9dBb43cBR"
        b"w-uy5QIkGeLN-1Hl7fXVEGsmyrPxl-FvPsJkwcZ9lQAff0sJrdiwbGikTLQdNIc6v0m3hOoCQ"
    )
    record = DeviceKey(
        device_id="veh-0042",
        public_key=Ed25519PublicKey.from_b64url("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
        owner_org="fleet-a",
        kind=DeviceKind.VEHICLE,
        valid_from_ms=T0 - DAY_MS,
    )
    verdict = classify_message(raw, b"veh-0042", [record], T0 + 1000, LIMITS)
    digest = hashlib.sha256(raw).digest()
    assert verdict == Accepted("veh-0042", 1, digest, b"", record.key_id, 1767225600000)


# --- oversize, malformed, unsupported_alg, bad_header (envelope) ------------------------------


def test_oversize_is_decided_before_any_parsing() -> None:
    device = Device("dev-1")
    assert_rejected(classify(b"x" * (MAX_JWS_BYTES + 1), device), R.OVERSIZE, "16385 bytes")
    # exactly at the limit it is parsed, and this one is then malformed
    assert_rejected(classify(b"x" * MAX_JWS_BYTES, device), R.MALFORMED)
    # even without a record key or a registered device, size comes first
    assert_rejected(classify(b"." * (MAX_JWS_BYTES + 5), None, record_key=None), R.OVERSIZE)


def test_a_valid_message_padded_past_the_limit_is_oversize() -> None:
    device = Device("dev-1", DeviceKind.RSU)
    raw = device.message(T0)
    assert_rejected(classify(raw + b"A" * (MAX_JWS_BYTES - len(raw) + 1), device), R.OVERSIZE)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not a jws",
        b"a.b",
        b"a.b.c.d",
        b"..",
        b"\xff\xfe.\x00.x",
    ],
    ids=["empty", "text", "two-segments", "four-segments", "empty-segments", "binary"],
)
def test_malformed_envelopes(raw: bytes) -> None:
    assert_rejected(classify(raw, Device("dev-1")), R.MALFORMED)


def test_whitespace_and_short_signature_are_malformed() -> None:
    device = Device("dev-1")
    raw = device.message(T0)
    assert_rejected(classify(raw + b"\n", device), R.MALFORMED)
    head, payload, _ = raw.split(b".")
    assert_rejected(classify(head + b"." + payload + b"." + b64(bytes(63)), device), R.MALFORMED)


@pytest.mark.parametrize("alg", ["none", "HS256", "ed25519", "ES256"])
def test_unsupported_alg(alg: str) -> None:
    device = Device("dev-1")
    raw = device.payload_message(device.payload(), header={"alg": alg, "kid": "dev-1"})
    assert_rejected(classify(raw, device), R.UNSUPPORTED_ALG)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "Ed25519"},
        {"alg": "Ed25519", "kid": ""},
        {"alg": "Ed25519", "kid": 7},
        {"kid": "dev-1"},
        {"alg": "Ed25519", "kid": "dev-1", "crit": ["b64"]},
        {"alg": "Ed25519", "kid": "dev-1", "jwk": {"kty": "OKP"}},
    ],
    ids=["no-kid", "empty-kid", "int-kid", "no-alg", "crit", "jwk"],
)
def test_bad_header(header: dict[str, object]) -> None:
    device = Device("dev-1")
    raw = device.payload_message(device.payload(), header=header)
    assert_rejected(classify(raw, device), R.BAD_HEADER)


def test_eddsa_alg_of_rfc8037_is_accepted() -> None:
    device = Device("dev-1")
    raw = device.payload_message(device.payload(), header={"alg": "EdDSA", "kid": "dev-1"})
    assert isinstance(classify(raw, device), Accepted)


# --- record key (MQTT topic) = kid ------------------------------------------------------------


def test_a_message_published_under_another_devices_topic_is_bad_header() -> None:
    victim, attacker = Device("veh-victim"), Device("veh-attacker")
    raw = attacker.message(T0)  # valid, signed by the attacker, kid veh-attacker
    verdict = classify(raw, attacker, record_key="veh-victim", keys=victim.records)
    assert_rejected(verdict, R.BAD_HEADER, "published under device 'veh-victim'")


@pytest.mark.parametrize("record_key", [None, b"", b"\xff\xfe", b"dev-1 ", b"DEV-1"])
def test_record_key_must_be_exactly_the_kid(record_key: bytes | None) -> None:
    device = Device("dev-1")
    assert_rejected(classify(device.message(T0), device, record_key=record_key), R.BAD_HEADER)


def test_record_key_is_checked_before_the_registry() -> None:
    stranger = Device("nobody")
    verdict = classify(stranger.message(T0), stranger, record_key="other", keys=())
    assert_rejected(verdict, R.BAD_HEADER)


def test_kid_that_differs_from_dev_is_bad_header_after_the_signature() -> None:
    device = Device("dev-1")
    raw = device.payload_message(device.payload(dev="dev-2"))  # kid dev-1, dev dev-2
    assert_rejected(classify(raw, device), R.BAD_HEADER, "does not match dev")
    forged = device.payload_message(device.payload(dev="dev-2"), key=private_key("x"))
    assert_rejected(classify(forged, device), R.BAD_SIGNATURE)


# --- unknown_device ---------------------------------------------------------------------------


def test_unknown_device() -> None:
    device = Device("ghost")
    assert_rejected(classify(device.message(T0), device, keys=()), R.UNKNOWN_DEVICE, "'ghost'")


def test_a_malformed_message_of_an_unknown_device_is_malformed() -> None:
    assert_rejected(classify(b"junk", None, record_key="ghost", keys=()), R.MALFORMED)


# --- bad_signature ----------------------------------------------------------------------------


def test_signed_by_another_key_is_bad_signature() -> None:
    device = Device("dev-1")
    forged = device.message(T0, key=private_key("forger"))
    assert_rejected(classify(forged, device), R.BAD_SIGNATURE, "1 key(s) of 'dev-1'")


def test_tampered_payload_is_bad_signature_not_schema() -> None:
    device = Device("dev-1")
    head, payload, sig = device.message(T0).split(b".")
    data = json.loads(base64_decode(payload))
    data["odo_m"] = 1  # odometer rollback after signing
    tampered = head + b"." + b64(json.dumps(data).encode()) + b"." + sig
    assert_rejected(classify(tampered, device), R.BAD_SIGNATURE)
    data["odo_m"] = 1.5  # also schema-invalid: the signature is checked first
    tampered = head + b"." + b64(json.dumps(data).encode()) + b"." + sig
    assert_rejected(classify(tampered, device), R.BAD_SIGNATURE)


def test_signature_of_another_message_is_bad_signature() -> None:
    device = Device("dev-1")
    first, second = device.message(T0), device.message(T0 + 1000)
    spliced = second.rsplit(b".", 1)[0] + b"." + first.rsplit(b".", 1)[1]
    assert_rejected(classify(spliced, device), R.BAD_SIGNATURE)


def test_bad_signature_with_every_key_of_a_rotated_device() -> None:
    device = Device("dev-1")
    device.rotate(T0, "dev-1-k2")
    forged = device.message(T0 + 5, key=private_key("forger"))
    assert_rejected(classify(forged, device), R.BAD_SIGNATURE, "2 key(s)")


# --- schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"odo_m": 1.0},
        {"spd_cms": True},
        {"seq": 0},
        {"hdg_cdeg": 36000},
        {"v": 2},
        {"extra": 1},
        {"prev": "not-a-hash"},
    ],
    ids=["float", "bool", "seq-0", "range", "version", "extra", "prev"],
)
def test_schema(change: dict[str, object]) -> None:
    device = Device("dev-1")
    raw = device.payload_message(device.payload() | change)
    assert_rejected(classify(raw, device), R.SCHEMA)


def test_missing_member_is_schema() -> None:
    device = Device("dev-1")
    payload = device.payload()
    del payload["odo_m"]
    assert_rejected(classify(device.payload_message(payload), device), R.SCHEMA, "missing")


def test_payload_not_json_is_malformed_even_with_a_good_signature() -> None:
    device = Device("dev-1")
    signing_input = b64(b'{"alg":"Ed25519","kid":"dev-1"}') + b"." + b64(b"{not json")
    raw = signing_input + b"." + b64(device.key.sign(signing_input))
    assert_rejected(classify(raw, device), R.MALFORMED)


@pytest.mark.parametrize(
    ("key_kind", "message_kind"),
    [(DeviceKind.VEHICLE, DeviceKind.RSU), (DeviceKind.RSU, DeviceKind.VEHICLE)],
)
def test_kind_mismatch_with_the_key_record_is_schema(
    key_kind: DeviceKind, message_kind: DeviceKind
) -> None:
    registered = Device("dev-1", key_kind)
    sender = Device("dev-1", message_kind)  # same key name, so same key: only the kind differs
    verdict = classify(sender.message(T0), registered)
    assert_rejected(verdict, R.SCHEMA, f"{message_kind} message signed by the {key_kind} key")


# --- revoked_key: revocation, rotation, validity windows --------------------------------------


def test_revoked_key_rejects_messages_from_the_revocation_on() -> None:
    device = Device("dev-1")
    revoked = [device.record.revoke(T0)]
    before = device.message(T0 - 1)
    at = device.message(T0)
    after = device.message(T0 + 60_000)
    assert isinstance(classify(before, device, keys=revoked, recv_ms=T0 + 120_000), Accepted)
    assert_rejected(classify(at, device, keys=revoked, recv_ms=T0 + 120_000), R.REVOKED_KEY)
    verdict = classify(after, device, keys=revoked, recv_ms=T0 + 120_000)
    assert_rejected(verdict, R.REVOKED_KEY, f"revoked at {T0}")


def test_backdated_messages_arriving_after_the_revocation_and_its_grace_are_refused() -> None:
    # A thief with a stolen key signs ts = T-60 s long after the key was revoked at T: judged
    # by what was known when it arrived, it is revoked_key. A genuine device's buffered message
    # arriving within the grace still counts.
    device = Device("dev-1")
    revoked = [device.record.revoke(T0)]
    backdated = device.message(T0 - 60_000)
    grace = LIMITS.revocation_grace_ms
    assert isinstance(classify(backdated, device, keys=revoked, recv_ms=T0 + grace - 1), Accepted)
    verdict = classify(backdated, device, keys=revoked, recv_ms=T0 + grace)
    assert_rejected(verdict, R.REVOKED_KEY, "past the 300000 ms grace for buffered messages")
    days_later = classify(backdated, device, keys=revoked, recv_ms=T0 + 20 * DAY_MS)
    assert_rejected(days_later, R.REVOKED_KEY, f"revoked at {T0}")


def test_a_message_older_than_its_key_is_revoked_key() -> None:
    device = Device("dev-1", valid_from_ms=T0)
    assert_rejected(classify(device.message(T0 - 1), device), R.REVOKED_KEY, "not valid before")


def test_revoked_key_comes_after_schema_and_before_clock_skew() -> None:
    device = Device("dev-1")
    revoked = [device.record.revoke(T0 - DAY_MS // 2)]
    far_future = device.message(T0 + DAY_MS)  # revoked and too far ahead: revoked_key
    assert_rejected(classify(far_future, device, keys=revoked), R.REVOKED_KEY)
    broken = device.payload_message(device.payload(T0 + DAY_MS, odo_m=-1))
    assert_rejected(classify(broken, device, keys=revoked), R.SCHEMA)


def test_rotated_keys_each_sign_for_their_own_window() -> None:
    device = Device("dev-1", key_name="k1")
    old_key = device.key
    old, new = device.rotate(T0, "k2")
    new_key = device.key
    keys = device.records
    assert old.revoked_at_ms == T0
    assert new.valid_from_ms == T0

    def verdict(ts: int, key: Ed25519PrivateKey) -> Verdict:
        return classify(device.message(ts, key=key), device, keys=keys, recv_ms=T0 + 10_000)

    assert isinstance(verdict(T0 - 5_000, old_key), Accepted)  # old key, before the rotation
    assert isinstance(verdict(T0 + 5_000, new_key), Accepted)  # new key, after it
    assert_rejected(verdict(T0 + 5_000, old_key), R.REVOKED_KEY, f"revoked at {T0}")
    assert_rejected(verdict(T0 - 5_000, new_key), R.REVOKED_KEY, "not valid before")


def test_the_key_valid_at_ts_is_tried_first_when_one_key_has_two_windows() -> None:
    # The same public key registered twice (e.g. re-enrolled after a revocation by mistake):
    # the record whose window contains ts decides, whatever the order of the records.
    device = Device("dev-1")
    first = device.record_for(device.key, T0 - DAY_MS).revoke(T0 - 1000)
    second = device.record_for(device.key, T0)
    for keys in ([first, second], [second, first]):
        assert isinstance(classify(device.message(T0 + 1), device, keys=keys), Accepted)
        assert isinstance(classify(device.message(T0 - 2000), device, keys=keys), Accepted)
        assert_rejected(classify(device.message(T0 - 500), device, keys=keys), R.REVOKED_KEY)


def test_a_compromised_old_key_cannot_sign_new_messages_with_a_backdated_ts() -> None:
    # Backdating into the old key's window looks like an old message, but it arrives long
    # after the rotation revoked that key: revoked_key (it used to pass as far as the clock
    # check, which bounds only how old a message may be).
    device = Device("dev-1", key_name="k1", valid_from_ms=T0 - 60 * DAY_MS)
    old_key = device.key
    device.rotate(T0 - 40 * DAY_MS, "k2")
    backdated = device.message(T0 - 41 * DAY_MS, key=old_key)
    assert_rejected(classify(backdated, device), R.REVOKED_KEY, "grace for buffered messages")
    # Within max_message_age_ms the old code accepted it outright.
    thief = Device("dev-2", key_name="k1", valid_from_ms=T0 - 60 * DAY_MS)
    stolen = thief.key
    thief.rotate(T0 - 10 * DAY_MS, "k2")
    backdated = thief.message(T0 - 11 * DAY_MS, key=stolen)
    assert_rejected(classify(backdated, thief), R.REVOKED_KEY, "grace for buffered messages")


# --- clock_skew -------------------------------------------------------------------------------


def test_clock_skew_bounds_are_inclusive() -> None:
    device = Device("dev-1", valid_from_ms=T0 - 60 * DAY_MS)
    skew, age = LIMITS.clock_skew_ms, LIMITS.max_message_age_ms
    recv = T0
    assert isinstance(classify(device.message(recv + skew), device, recv_ms=recv), Accepted)
    verdict = classify(device.message(recv + skew + 1), device, recv_ms=recv)
    assert_rejected(verdict, R.CLOCK_SKEW, "after the receive time")
    assert isinstance(classify(device.message(recv - age), device, recv_ms=recv), Accepted)
    verdict = classify(device.message(recv - age - 1), device, recv_ms=recv)
    assert_rejected(verdict, R.CLOCK_SKEW, "before the receive time")


# --- robustness -------------------------------------------------------------------------------


def test_an_internal_error_quarantines_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*args: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(classify_module, "_check_clock", explode)
    device = Device("dev-1")
    verdict = classify(device.message(T0), device)
    assert isinstance(verdict, Rejected)
    assert verdict.reason is R.MALFORMED
    assert verdict.internal
    assert verdict.detail == "internal error in the verifier: RuntimeError: boom?second line"


def test_one_line_replaces_control_characters_and_bounds_length() -> None:
    assert one_line("a\nb\tc\x00d") == "a?b?c?d"
    assert len(one_line("x" * 1000)) == 300
    assert one_line("x" * 1000).endswith("...")


def test_details_of_hostile_input_stay_one_line() -> None:
    device = Device("dev-1")
    raw = device.payload_message(device.payload(), header={"alg": "x\n" * 200, "kid": "dev-1"})
    verdict = classify(raw, device)
    assert_rejected(verdict, R.UNSUPPORTED_ALG)


def test_classify_chunk_looks_keys_up_by_record_key() -> None:
    a, b = Device("dev-a"), Device("dev-b")
    items = [
        ClassifyInput(a.message(T0), b"dev-a", T0),
        ClassifyInput(b.message(T0), b"dev-b", T0),
        ClassifyInput(b.message(T0 + 1), None, T0),
        ClassifyInput(b.message(T0 + 2), b"\xff", T0),
    ]
    verdicts = classify_chunk(items, {"dev-a": a.records}, LIMITS)
    assert isinstance(verdicts[0], Accepted)
    assert [reason(v) for v in verdicts[1:]] == [R.UNKNOWN_DEVICE, R.BAD_HEADER, R.BAD_HEADER]


def base64_decode(segment: bytes) -> bytes:
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
