"""Verifying a mileage certificate: each message, the hash chain between them, and the summary.

A message of the scenario's certificate is tampered with, replaced or moved, or a summary
field is restated, and the error names the message, the link or the field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chain.telemetry import Observation, Telemetry, chain_hash, sign_telemetry
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    LAST_SEQ,
    Change,
    Scenario,
    b64url,
    b64url_decode,
    device_private_key,
    expect,
    flip_b64,
    make_scenario,
    ts_of,
)

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
