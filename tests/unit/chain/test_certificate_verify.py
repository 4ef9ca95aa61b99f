"""Verifying a mileage certificate: a valid one passes, and every tampered part is named.

Each case changes one part of the realistic certificate of ``test_certificate_scenario`` (a
byte of a hash or signature, a value, a member) and expects the failure to name that part.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from chain.certificate_verify import verify_certificate
from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.cosignature import CosignatureVerifier, cosign
from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.errors import CertificateError
from chain.note import NoteSignature
from chain.note_signers import Ed25519Signer, Ed25519Verifier
from chain.telemetry import DeviceKind, Observation, Telemetry, chain_hash, sign_telemetry
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    LAST_SEQ,
    ORIGIN,
    WITNESS_NAMES,
    Scenario,
    b64url,
    b64url_decode,
    device_private_key,
    edit,
    flip_b64,
    make_scenario,
    ts_of,
    witness_signer,
)

Change = Callable[[dict[str, Any]], object]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


def failure(scenario: Scenario, text: str | bytes, **kwargs: Any) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        scenario.verify(text.decode() if isinstance(text, bytes) else text, **kwargs)
    return info.value


def expect(scenario: Scenario, change: Change, item: str, **kwargs: Any) -> CertificateError:
    error = failure(scenario, edit(scenario.text, change), **kwargs)
    assert error.item == item, str(error)
    assert str(error) == f"{error.item}: {error.detail}"
    assert "\n" not in str(error)
    return error


# --- the valid certificate --------------------------------------------------------------------


def test_valid_certificate_verifies(scenario: Scenario) -> None:
    result = scenario.verify()
    assert result.device_id == DEVICE
    assert result.log_key_name == ORIGIN
    assert result.witnesses == WITNESS_NAMES
    assert result.missing_witnesses == ()
    assert [m.telemetry.seq for m in result.messages] == [s for s in range(1, 22) if s != 9]
    assert [r.public_key for r in result.device_keys] == [device_private_key().public_key]
    assert (result.first_ts_ms, result.last_ts_ms) == (ts_of(1), ts_of(LAST_SEQ))
    summary = result.summary
    assert (summary.first_seq, summary.last_seq, summary.message_count) == (1, 21, 20)
    assert summary.distance_m == summary.odometer_end_m - summary.odometer_start_m == 2420
    assert summary.gnss_distance_m == 2397
    assert [(g.after_seq, g.before_seq) for g in summary.gaps] == [(8, 10)]
    assert summary.anomalies == ()


def test_parsed_certificate_and_bytes_verify_too(scenario: Scenario) -> None:
    assert scenario.verify(scenario.certificate).certificate == scenario.certificate
    result = verify_certificate(
        scenario.text.encode(), [scenario.log_verifier], scenario.witness_verifiers, 3
    )
    assert result.summary == scenario.certificate.summary


def test_verification_uses_nothing_but_the_given_public_keys(scenario: Scenario) -> None:
    # Verifiers rebuilt from their vkey text only: no private key, no log, no network.
    log_key = Ed25519Verifier.from_vkey(scenario.log_verifier.to_vkey())
    witnesses = [CosignatureVerifier.from_vkey(w.to_vkey()) for w in scenario.witnesses]
    assert verify_certificate(scenario.text, log_key, witnesses, 3).device_id == DEVICE


# --- format -----------------------------------------------------------------------------------


def _message0(obj: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = obj["messages"][0]
    return message


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        (lambda o: o.update(extra=1), "certificate: unknown member 'extra'"),
        (lambda o: o.pop("summary"), "certificate: missing ['summary']"),
        (lambda o: _message0(o).update(note="hi"), "messages[0]: unknown member 'note'"),
        (lambda o: o["summary"].update(speed=1), "summary: unknown member 'speed'"),
        (
            lambda o: o["summary"]["gaps"][0].pop("before_seq"),
            "summary.gaps[0]: missing ['before_seq']",
        ),
        (
            lambda o: o.update(format="roadledger/mileage-certificate/v2"),
            "unsupported version 'roadledger/mileage-certificate/v2'; "
            "this verifier reads roadledger/mileage-certificate/v1",
        ),
        (lambda o: o.pop("format"), 'no "format" member: not a roadledger/mileage-certificate/v1'),
        (
            lambda o: _message0(o).update(leaf_index=7.0),
            "messages[0].leaf_index: expected an integer, got float",
        ),
        (
            lambda o: _message0(o).update(leaf_index=True),
            "messages[0].leaf_index: expected an integer, got bool",
        ),
        (lambda o: _message0(o).update(leaf_index=-1), "messages[0].leaf_index: -1 outside"),
        (lambda o: _message0(o).update(jws=None), "messages[0].jws: expected a string"),
        (
            lambda o: _message0(o)["inclusion_proof"].__setitem__(0, "not base64!"),
            "messages[0].inclusion_proof[0]: base64: not padded standard base64",
        ),
        (
            lambda o: _message0(o)["inclusion_proof"].__setitem__(0, "AAAA"),
            "messages[0].inclusion_proof[0]: expected a 32-byte hash",
        ),
        (
            lambda o: _message0(o).update(inclusion_proof=["AAAA"] * 65),
            "messages[0].inclusion_proof: expected an array of at most 64",
        ),
        (lambda o: o.update(messages=[]), "messages: expected at least one element"),
        (lambda o: o.update(device_keys={}), "device_keys: expected an array"),
        (lambda o: o.update(device_id="veh 42"), "device_id: expected an id matching"),
        (lambda o: o.update(to_ms=o["from_ms"]), "to_ms: 1767225600000 is not after from_ms"),
        (lambda o: o.update(checkpoint=1), "checkpoint: expected a string, got int"),
        (
            lambda o: o["summary"].update(message_count=0),
            "summary.message_count: 0 outside [1, 9007199254740991]",
        ),
        (
            lambda o: o["summary"]["anomalies"].append({"seq": 3, "kind": 1, "detail": ""}),
            "summary.anomalies[0].kind: expected a string, got int",
        ),
        (
            lambda o: o["device_keys"][0].update(entry="cm9hZA"),
            "device_keys[0].entry: base64: not padded standard base64",
        ),
    ],
)
def test_format_errors_name_the_member(scenario: Scenario, change: Change, detail: str) -> None:
    error = expect(scenario, change, "format")
    assert error.detail.startswith(detail)


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "certificate: not JSON: Expecting value at line 1 column 1"),
        (b"[]", "certificate: not a JSON object"),
        (b'{"format": NaN}', "certificate: not JSON: NaN is not JSON"),
        (b'{"format": "\xff"}', "certificate: not UTF-8 text"),
        (b"\xef\xbb\xbf{}", "certificate: not JSON: starts with a byte order mark"),
    ],
)
def test_not_a_json_object_is_format(scenario: Scenario, data: bytes, detail: str) -> None:
    with pytest.raises(CertificateError) as info:
        verify_certificate(data, scenario.log_verifier, [], 0)
    assert info.value.item == "format"
    assert info.value.detail.startswith(detail)


def test_duplicate_member_is_format(scenario: Scenario) -> None:
    text = scenario.text.replace('"device_id": ', '"device_id": "veh-0042", "device_id": ', 1)
    error = failure(scenario, text)
    assert (error.item, error.detail) == ("format", "certificate: duplicate member 'device_id'")
    nested = scenario.text.replace('"leaf_index": ', '"leaf_index": 1, "leaf_index": ', 1)
    assert failure(scenario, nested).item == "format"


def test_version_is_checked_before_members(scenario: Scenario) -> None:
    def v2(obj: dict[str, Any]) -> None:
        obj.update(format="roadledger/mileage-certificate/v2", new_member=[])

    assert expect(scenario, v2, "format").detail.startswith("unsupported version")


# --- checkpoint -------------------------------------------------------------------------------


def _replace_checkpoint_line(obj: dict[str, Any], index: int, new: Callable[[str], str]) -> None:
    lines = obj["checkpoint"].split("\n")
    lines[index] = new(lines[index])
    obj["checkpoint"] = "\n".join(lines)


def _flip_signature_line(line: str, position: int) -> str:
    prefix, _, sig = line.rpartition(" ")
    return f"{prefix} {flip_b64(sig, position)}"


def test_checkpoint_body_flip(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: _replace_checkpoint_line(o, 2, flip_b64), "checkpoint")
    assert error.detail == (
        f"the signature of log key {ORIGIN} ({scenario.log_verifier.key_id:08x}) does not "
        "verify over the checkpoint body"
    )


def test_checkpoint_tree_size_changed(scenario: Scenario) -> None:
    expect(scenario, lambda o: _replace_checkpoint_line(o, 1, lambda s: "35"), "checkpoint")


def test_log_signature_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        _replace_checkpoint_line(obj, 4, lambda line: _flip_signature_line(line, 10))

    assert "does not verify" in expect(scenario, change, "checkpoint").detail


def test_malformed_checkpoint_note(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["checkpoint"] = obj["checkpoint"].replace("\n\n", "\n")

    assert expect(scenario, change, "checkpoint").detail.startswith("malformed: ")


def test_wrong_log_key_same_name(scenario: Scenario) -> None:
    impostor = Ed25519Signer(ORIGIN, b"\x07" * 32).verifier()
    with pytest.raises(CertificateError) as info:
        verify_certificate(scenario.text, impostor, scenario.witness_verifiers, 3)
    assert info.value.item == "checkpoint"
    assert info.value.detail.startswith(f"not signed by the log key {ORIGIN} (")


def test_wrong_log_key_other_name(scenario: Scenario) -> None:
    other = Ed25519Signer("other.example/log", b"\x07" * 32).verifier()
    with pytest.raises(CertificateError) as info:
        verify_certificate(scenario.text, other, scenario.witness_verifiers, 3)
    assert info.value.item == "checkpoint"
    assert f"signature lines: {ORIGIN} (" in info.value.detail


def test_any_of_several_log_keys(scenario: Scenario) -> None:
    rotated_out = Ed25519Signer(ORIGIN + "-old", b"\x07" * 32).verifier()
    result = verify_certificate(
        scenario.text, [rotated_out, scenario.log_verifier], scenario.witness_verifiers, 3
    )
    assert result.log_key_name == ORIGIN


# --- cosignatures -----------------------------------------------------------------------------


def _drop_cosignature(obj: dict[str, Any], name: str) -> None:
    lines = obj["checkpoint"].split("\n")
    obj["checkpoint"] = "\n".join(line for line in lines if not line.startswith(f"— {name} "))


def test_cosignature_flip_with_k_equal_n(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        _replace_checkpoint_line(obj, 6, lambda line: _flip_signature_line(line, 20))

    error = expect(scenario, change, "cosignatures")
    assert WITNESS_NAMES[1] in error.detail
    assert "does not verify" in error.detail


def test_two_of_three_satisfy_k_two(scenario: Scenario) -> None:
    text = edit(scenario.text, lambda o: _drop_cosignature(o, WITNESS_NAMES[2]))
    result = scenario.verify(text, min_witnesses=2)
    assert result.witnesses == WITNESS_NAMES[:2]
    assert result.missing_witnesses == (WITNESS_NAMES[2],)
    assert result.min_witnesses == 2


def test_two_of_three_fail_k_three_saying_who(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: _drop_cosignature(o, WITNESS_NAMES[2]), "cosignatures")
    assert error.detail == (
        f"checkpoint {ORIGIN} size {scenario.log.size}: 2 of the required 3 witnesses "
        f"cosigned (cosigned: {WITNESS_NAMES[0]}, {WITNESS_NAMES[1]}; missing: {WITNESS_NAMES[2]})"
    )


def test_unknown_extra_cosigners_are_ignored(scenario: Scenario) -> None:
    stranger = witness_signer("stranger.example/w9")
    checkpoint = SignedCheckpoint.from_text(scenario.certificate.checkpoint).checkpoint
    line = cosign(checkpoint, stranger).to_line()
    text = edit(scenario.text, lambda o: o.update(checkpoint=o["checkpoint"] + line))
    assert scenario.verify(text).witnesses == WITNESS_NAMES
    # ... even a stranger's broken line: it is not a key we were told to trust.
    broken = _flip_signature_line(line.rstrip("\n"), 20) + "\n"
    text = edit(scenario.text, lambda o: o.update(checkpoint=o["checkpoint"] + broken))
    assert scenario.verify(text).witnesses == WITNESS_NAMES


def test_no_witness_required(scenario: Scenario) -> None:
    result = scenario.verify(witness_verifiers=[], min_witnesses=0)
    assert result.witnesses == ()


def test_cosignature_of_another_checkpoint_does_not_count(scenario: Scenario) -> None:
    other = Checkpoint(ORIGIN, 3, b"\x01" * 32)
    w3 = witness_signer(WITNESS_NAMES[2])
    foreign = cosign(other, w3).to_note_signature().to_line()

    def change(obj: dict[str, Any]) -> None:
        _drop_cosignature(obj, WITNESS_NAMES[2])
        obj["checkpoint"] += foreign

    assert "does not verify" in expect(scenario, change, "cosignatures").detail


@pytest.mark.parametrize("k", [-1, 4])
def test_impossible_policy_is_a_programming_error(scenario: Scenario, k: int) -> None:
    with pytest.raises(ValueError, match="impossible"):
        scenario.verify(min_witnesses=k)


# --- device keys ------------------------------------------------------------------------------


def _key0(obj: dict[str, Any]) -> dict[str, Any]:
    key: dict[str, Any] = obj["device_keys"][0]
    return key


def _with_entry(obj: dict[str, Any], entry: bytes) -> None:
    _key0(obj)["entry"] = base64.b64encode(entry).decode()


def test_key_entry_byte_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        _key0(obj)["entry"] = flip_b64(_key0(obj)["entry"], 0)

    error = expect(scenario, change, "device_keys[0]")
    assert error.detail.startswith("not a device key entry")


def test_key_entry_value_changed(scenario: Scenario) -> None:
    record = scenario.records[0]
    changed = DeviceKey(
        device_id=record.device_id,
        public_key=record.public_key,
        owner_org="someone-else",
        kind=record.kind,
        valid_from_ms=record.valid_from_ms,
    )
    error = expect(scenario, lambda o: _with_entry(o, device_key_entry(changed)), "device_keys[0]")
    assert error.detail.startswith(f"inclusion proof of leaf {_leaf_of_key(scenario)}: ")


def _leaf_of_key(scenario: Scenario) -> int:
    return scenario.certificate.device_keys[0].leaf_index


def test_key_entry_not_canonical(scenario: Scenario) -> None:
    entry = device_key_entry(scenario.records[0]).replace(b'","', b'", "', 1)
    error = expect(scenario, lambda o: _with_entry(o, entry), "device_keys[0]")
    assert "canonical" in error.detail


def test_key_proof_hash_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        proof = _key0(obj)["inclusion_proof"]
        proof[2] = flip_b64(proof[2], 31)

    error = expect(scenario, change, "device_keys[0]")
    assert "mismatch: expected" in error.detail


def test_key_leaf_index_changed(scenario: Scenario) -> None:
    expect(scenario, lambda o: _key0(o).update(leaf_index=4), "device_keys[0]")


def test_key_of_another_device(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: o.update(device_id="veh-0043"), "device_keys[0]")
    assert error.detail == "a record of device veh-0042, the certificate is for veh-0043"


def test_key_of_an_rsu(scenario: Scenario) -> None:
    rsu = DeviceKey(
        device_id=DEVICE,
        public_key=device_private_key().public_key,
        owner_org="city",
        kind=DeviceKind.RSU,
        valid_from_ms=0,
    )
    error = expect(scenario, lambda o: _with_entry(o, device_key_entry(rsu)), "device_keys[0]")
    assert error.detail == "a key of a rsu; mileage needs a vehicle"


def test_key_records_out_of_log_order() -> None:
    rotated = make_scenario(rotate_at_seq=12)

    def swap(obj: dict[str, Any]) -> None:
        keys = obj["device_keys"]
        keys[0], keys[1] = keys[1], keys[0]

    error = expect(rotated, swap, "device_keys[1]")
    assert "key records must be listed in log order" in error.detail


# --- messages ---------------------------------------------------------------------------------


def _jws_parts(obj: dict[str, Any], i: int) -> list[str]:
    parts: list[str] = obj["messages"][i]["jws"].split(".")
    return parts


def _set_jws(obj: dict[str, Any], i: int, parts: list[str]) -> None:
    obj["messages"][i]["jws"] = ".".join(parts)


def test_message_payload_changed(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        parts = _jws_parts(obj, 5)
        payload = json.loads(b64url_decode(parts[1]))
        payload["odo_m"] -= 1000
        parts[1] = b64url(json.dumps(payload, separators=(",", ":")).encode())
        _set_jws(obj, 5, parts)

    error = expect(scenario, change, "messages[5]")
    assert error.detail == (
        "bad_signature: the signature verifies under none of the 1 certified keys of veh-0042"
    )


def test_message_payload_byte_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        parts = _jws_parts(obj, 7)
        payload = bytearray(b64url_decode(parts[1]))
        payload[-3] ^= 0x01  # a digit of hdg_cdeg
        parts[1] = b64url(bytes(payload))
        _set_jws(obj, 7, parts)

    assert expect(scenario, change, "messages[7]").detail.startswith("bad_signature")


def test_message_signature_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        parts = _jws_parts(obj, 3)
        signature = bytearray(b64url_decode(parts[2]))
        signature[0] ^= 0x80
        parts[2] = b64url(bytes(signature))
        _set_jws(obj, 3, parts)

    assert expect(scenario, change, "messages[3]").detail.startswith("bad_signature")


def test_message_malformed_jws(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["messages"][2]["jws"] += "."

    assert expect(scenario, change, "messages[2]").detail.startswith("malformed: ")


def test_message_proof_hash_flip(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        proof = obj["messages"][10]["inclusion_proof"]
        proof[-1] = flip_b64(proof[-1], 0)

    error = expect(scenario, change, "messages[10]")
    leaf = scenario.certificate.messages[10].leaf_index
    assert error.detail.startswith(f"seq 12: inclusion proof of leaf {leaf}: root of tree size")


def test_message_proof_too_short(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["messages"][0]["inclusion_proof"].pop()

    assert "must have 6 hashes, got 5" in expect(scenario, change, "messages[0]").detail


def test_message_leaf_index_changed(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["messages"][4]["leaf_index"] += 1

    assert "inclusion proof of leaf" in expect(scenario, change, "messages[4]").detail


def test_message_leaf_index_outside_the_tree(scenario: Scenario) -> None:
    def change(obj: dict[str, Any]) -> None:
        obj["messages"][4]["leaf_index"] = scenario.log.size

    error = expect(scenario, change, "messages[4]")
    assert f"leaf index {scenario.log.size} is outside a tree of size" in error.detail


def test_messages_out_of_order(scenario: Scenario) -> None:
    def swap(obj: dict[str, Any]) -> None:
        messages = obj["messages"]
        messages[2], messages[3] = messages[3], messages[2]

    error = expect(scenario, swap, "messages[3]")
    assert error.detail == "seq 3 follows seq 4: messages must be sorted by seq"


def test_message_repeated(scenario: Scenario) -> None:
    def repeat(obj: dict[str, Any]) -> None:
        obj["messages"].insert(3, obj["messages"][2])

    assert expect(scenario, repeat, "messages[3]").detail == "seq 3 repeats messages[2]"


def _signed(telemetry: Telemetry) -> str:
    return sign_telemetry(device_private_key(), telemetry).decode()


def test_message_of_another_device(scenario: Scenario) -> None:
    other = Telemetry(
        dev="veh-0043", seq=1, prev="", ts=ts_of(1), odo_m=5, lat_e7=0, lon_e7=0,
        spd_cms=0, hdg_cdeg=0,
    )  # fmt: skip
    error = expect(scenario, lambda o: o["messages"][0].update(jws=_signed(other)), "messages[0]")
    assert error.detail == "bad_header: kid 'veh-0043' is not the certificate's device 'veh-0042'"


def test_rsu_message(scenario: Scenario) -> None:
    rsu = Telemetry(
        dev=DEVICE, seq=1, prev="", ts=ts_of(1), lat_e7=0, lon_e7=0,
        obs=(Observation("veh-1", ts_of(1), 0, 0),),
    )  # fmt: skip
    error = expect(scenario, lambda o: o["messages"][0].update(jws=_signed(rsu)), "messages[0]")
    assert error.detail == "seq 1: schema: an RSU message has no odometer"


def test_message_outside_the_range_end(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: o.update(to_ms=ts_of(LAST_SEQ)), "messages[19]")
    assert error.detail == (
        f"seq 21: ts {ts_of(LAST_SEQ)} is outside the certificate's range "
        f"[{scenario.certificate.from_ms}, {ts_of(LAST_SEQ)})"
    )


def test_message_outside_the_range_start(scenario: Scenario) -> None:
    error = expect(scenario, lambda o: o.update(from_ms=ts_of(1) + 1), "messages[0]")
    assert "outside the certificate's range" in error.detail


def test_revoked_key_before_a_message() -> None:
    revoked = make_scenario(revoke_at_seq=15)
    assert [k.revoked_at_ms for k in revoked.records] == [None, ts_of(15)]
    index = revoked.index_of(15)
    with pytest.raises(CertificateError) as info:
        revoked.verify()
    assert info.value.item == f"messages[{index}]"
    key_id = revoked.records[0].key_id
    assert info.value.detail == (
        f"seq 15: revoked_key: {DEVICE}: key {key_id} revoked at {ts_of(15)}, message ts "
        f"{ts_of(15)}"
    )


def test_revocation_is_final_even_if_a_later_record_omits_it() -> None:
    # Registration, revocation at seq 15, then the original (unrevoked) record logged again.
    original = make_scenario().records[0]
    revoked = make_scenario(revoke_at_seq=15, extra_records=[original])
    assert [k.revoked_at_ms for k in revoked.records] == [None, ts_of(15), None]
    with pytest.raises(CertificateError) as info:
        revoked.verify()
    assert info.value.item == f"messages[{revoked.index_of(15)}]"
    assert "revoked_key" in info.value.detail


def test_a_later_record_may_revoke_earlier() -> None:
    original = make_scenario().records[0]
    revoked = make_scenario(revoke_at_seq=15, extra_records=[original.revoke(ts_of(12))])
    with pytest.raises(CertificateError) as info:
        revoked.verify()
    assert info.value.item == f"messages[{revoked.index_of(12)}]"


def test_messages_before_a_revocation_and_a_rotation_verify() -> None:
    rotated = make_scenario(rotate_at_seq=12)
    result = rotated.verify()
    assert len(result.device_keys) == 3
    assert result.summary.message_count == 20


def test_old_key_after_rotation_is_revoked() -> None:
    rotated = make_scenario(rotate_at_seq=12)
    honest = make_scenario()  # signed throughout with the first key
    index = rotated.index_of(15)
    old_key_message = honest.certificate.messages[index].jws

    def change(obj: dict[str, Any]) -> None:
        obj["messages"][index]["jws"] = old_key_message

    error = expect(rotated, change, f"messages[{index}]")
    assert error.detail.startswith("seq 15: revoked_key: ")


# --- hash chain -------------------------------------------------------------------------------


def _hide_chain_breaks(obj: dict[str, Any]) -> None:
    """What a builder that does not mark breaks (or a holder editing the summary) writes."""
    anomalies = obj["summary"]["anomalies"]
    obj["summary"]["anomalies"] = [a for a in anomalies if a["kind"] != "chain_broken"]


def test_broken_prev_signed_by_the_device_is_a_chain_failure_unless_stated() -> None:
    forged = make_scenario(bad_prev_seq=5)
    error = expect(forged, _hide_chain_breaks, "chain[seq 4->5]")
    assert error.detail == (
        f"prev of seq 5 is {chain_hash(b'not the previous message')!r}, but the hash of seq 4 "
        f"is {chain_hash(forged.raw_messages[4])!r}"
    )


def test_a_stated_chain_break_verifies_as_an_anomaly() -> None:
    forged = make_scenario(bad_prev_seq=5)
    anomalies = forged.verify().summary.anomalies
    assert [(a.seq, a.kind) for a in anomalies] == [(5, "chain_broken")]
    assert anomalies[0].detail == (
        f"prev of seq 5 is {chain_hash(b'not the previous message')!r}, but the hash of seq 4 "
        f"is {chain_hash(forged.raw_messages[4])!r}"
    )


def test_gap_has_no_link_to_check(scenario: Scenario) -> None:
    # seq 10's prev is the hash of seq 9, which is not in the certificate: not a failure.
    assert scenario.verify().summary.gaps[0].before_seq == 10


# --- summary ----------------------------------------------------------------------------------


def _bump(name: str, by: int = 1) -> Change:
    return lambda o: o["summary"].update({name: o["summary"][name] + by})


@pytest.mark.parametrize(
    ("field", "change", "detail"),
    [
        ("first_seq", _bump("first_seq"), "stated 2, recomputed 1"),
        ("last_seq", _bump("last_seq", -1), "stated 20, recomputed 21"),
        ("message_count", _bump("message_count"), "stated 21, recomputed 20"),
        ("odometer_start_m", _bump("odometer_start_m"), "stated 48211351, recomputed 48211350"),
        ("odometer_end_m", _bump("odometer_end_m", 1000), "stated 48214770, recomputed 48213770"),
        ("distance_m", _bump("distance_m"), "stated 2421, recomputed 2420"),
        ("gnss_distance_m", _bump("gnss_distance_m", -1), "stated 2396, recomputed 2397"),
        (
            "gaps",
            lambda o: o["summary"]["gaps"][0].update(before_seq=11),
            '[0] stated {"after_seq": 8, "before_seq": 11}, '
            'recomputed {"after_seq": 8, "before_seq": 10}',
        ),
        (
            "gaps",
            lambda o: o["summary"].update(gaps=[]),
            'stated 0, recomputed 1: {"after_seq": 8, "before_seq": 10} is missing',
        ),
        (
            "anomalies",
            lambda o: o["summary"]["anomalies"].append(
                {"seq": 4, "kind": "odometer_rollback", "detail": "made up"}
            ),
            'stated 1, recomputed 0: [0] {"seq": 4, "kind": "odometer_rollback", '
            '"detail": "made up"} is not in the messages',
        ),
    ],
)
def test_each_summary_field(scenario: Scenario, field: str, change: Change, detail: str) -> None:
    error = expect(scenario, change, f"summary.{field}")
    assert error.detail == detail


def test_anomalies_are_recomputed_and_must_be_stated() -> None:
    def rolled_back(seq: int, honest: int) -> int:
        return honest - 5_000 if seq >= 14 else honest

    tampered = make_scenario(odometer=rolled_back)
    anomalies = tampered.verify().summary.anomalies
    assert [(a.seq, a.kind) for a in anomalies] == [(14, "odometer_rollback")]

    def hide(obj: dict[str, Any]) -> None:
        obj["summary"]["anomalies"] = []

    error = expect(tampered, hide, "summary.anomalies")
    stated = 'stated 0, recomputed 1: {"seq": 14, "kind": "odometer_rollback", "detail": '
    assert error.detail.startswith(stated)


# --- the first failure wins, in the documented order -----------------------------------------


def _break_summary(obj: dict[str, Any]) -> None:
    obj["summary"]["distance_m"] += 1


def _break_message(obj: dict[str, Any]) -> None:
    obj["messages"][1]["leaf_index"] += 1


def _break_key(obj: dict[str, Any]) -> None:
    obj["device_keys"][0]["leaf_index"] += 1


def _break_cosignature(obj: dict[str, Any]) -> None:
    _drop_cosignature(obj, WITNESS_NAMES[0])


def _break_checkpoint(obj: dict[str, Any]) -> None:
    _replace_checkpoint_line(obj, 2, flip_b64)


def _break_format(obj: dict[str, Any]) -> None:
    obj["extra"] = True


ORDER: list[tuple[str, Change]] = [
    ("format", _break_format),
    ("checkpoint", _break_checkpoint),
    ("cosignatures", _break_cosignature),
    ("device_keys[0]", _break_key),
    ("messages[1]", _break_message),
    ("summary.distance_m", _break_summary),
]


@pytest.mark.parametrize("first", range(len(ORDER)))
def test_first_failing_item_in_fixed_order(scenario: Scenario, first: int) -> None:
    def everything_from_first(obj: dict[str, Any]) -> None:
        for _, change in ORDER[first:]:
            change(obj)

    expect(scenario, everything_from_first, ORDER[first][0])


def test_a_forged_signature_line_named_like_the_log_is_rejected(scenario: Scenario) -> None:
    fake = NoteSignature(ORIGIN, scenario.log_verifier.key_id, b"\x00" * 64).to_line()
    text = edit(scenario.text, lambda o: o.update(checkpoint=o["checkpoint"] + fake))
    assert failure(scenario, text).item == "checkpoint"
