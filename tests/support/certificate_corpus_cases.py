"""The corpus's cases for the format, the checkpoint, the key records and the messages.

Each is one edit of the scenario's certificate (``tests/unit/chain/test_certificate_scenario``)
with the item it was made to break; :mod:`tests.support.certificate_corpus` collects them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.cosignature import cosign
from chain.entries import device_key_entry
from chain.note import NoteSignature
from chain.note_signers import Ed25519Signer
from chain.telemetry import DeviceKind, Observation, Telemetry
from tests.support.certificate_corpus_edits import (
    Builder,
    Change,
    all_of,
    checkpoint_line,
    drop_cosignature,
    flip_byte,
    flip_signature_line,
    jws_edit,
    key_entry,
    odo_minus_1000,
    signed,
    swap,
)
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    LAST_SEQ,
    ORIGIN,
    WITNESS_NAMES,
    Scenario,
    device_private_key,
    flip_b64,
    ts_of,
    witness_signer,
)

__all__ = ["add_head_cases", "add_message_cases"]


def _format_cases(b: Builder, s: Scenario) -> None:
    def m0(o: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = o["messages"][0]
        return message

    edits: list[tuple[str, Change]] = [
        ("unknown-member", lambda o: o.update(extra=1)),
        ("missing-summary", lambda o: o.pop("summary")),
        ("message-unknown-member", lambda o: m0(o).update(note="hi")),
        ("summary-unknown-member", lambda o: o["summary"].update(speed=1)),
        ("gap-missing-member", lambda o: o["summary"]["gaps"][0].pop("before_seq")),
        ("version-v2", lambda o: o.update(format="roadledger/mileage-certificate/v2")),
        ("version-before-members", lambda o: o.update(format="x/v2", new_member=[])),
        ("no-format", lambda o: o.pop("format")),
        ("leaf-index-float", lambda o: m0(o).update(leaf_index=7.0)),
        ("leaf-index-bool", lambda o: m0(o).update(leaf_index=True)),
        ("leaf-index-negative", lambda o: m0(o).update(leaf_index=-1)),
        ("leaf-index-huge", lambda o: m0(o).update(leaf_index=2**64)),
        ("jws-null", lambda o: m0(o).update(jws=None)),
        ("proof-not-base64", lambda o: m0(o)["inclusion_proof"].__setitem__(0, "not base64!")),
        ("proof-short-hash", lambda o: m0(o)["inclusion_proof"].__setitem__(0, "AAAA")),
        ("proof-65-hashes", lambda o: m0(o).update(inclusion_proof=["AAAA"] * 65)),
        ("messages-empty", lambda o: o.update(messages=[])),
        ("device-keys-object", lambda o: o.update(device_keys={})),
        ("device-id-space", lambda o: o.update(device_id="veh 42")),
        ("to-equals-from", lambda o: o.update(to_ms=o["from_ms"])),
        ("checkpoint-int", lambda o: o.update(checkpoint=1)),
        ("message-count-zero", lambda o: o["summary"].update(message_count=0)),
        (
            "anomaly-kind-int",
            lambda o: o["summary"]["anomalies"].append({"seq": 3, "kind": 1, "detail": ""}),
        ),
        ("key-entry-unpadded", lambda o: o["device_keys"][0].update(entry="cm9hZA")),
        ("message-not-object", lambda o: o["messages"].__setitem__(1, [1])),
        ("summary-gaps-not-array", lambda o: o["summary"].update(gaps={})),
    ]
    for name, change in edits:
        b.add(f"format-{name}", s, "format", change=change)
    raw: list[tuple[str, bytes]] = [
        ("empty", b""),
        ("array", b"[]"),
        ("nan", b'{"format": NaN}'),
        ("not-utf8", b'{"format": "\xff"}'),
        ("bom", b"\xef\xbb\xbf{}"),
        ("text", b"hello\n"),
        ("truncated", s.text.encode()[:-40]),
        ("trailing-comma", s.text.encode().replace(b"\n}", b",\n}", 1)),
        ("extra-data", s.text.encode() + b"{}"),
        ("long-integer", s.text.encode().replace(b'"from_ms": ', b'"from_ms": 1' + b"0" * 21, 1)),
    ]
    for name, data in raw:
        b.add(f"format-json-{name}", s, "format", data=data)
    b.add(
        "format-duplicate-member",
        s,
        "format",
        data=s.text.replace('"device_id": ', '"device_id": "veh-0042", "device_id": ', 1),
    )
    b.add(
        "format-nested-duplicate",
        s,
        "format",
        data=s.text.replace('"leaf_index": ', '"leaf_index": 1, "leaf_index": ', 1),
    )
    b.add(
        "format-oversized-message",
        s,
        "format",
        change=lambda o: m0(o).update(jws="A" * (64 * 1024)),
    )


def _checkpoint_cases(b: Builder, s: Scenario) -> None:
    from tests.unit.chain.test_certificate_scenario import log_signer

    b.add("checkpoint-body-flip", s, "checkpoint", change=checkpoint_line(2, flip_b64))
    b.add("checkpoint-size-changed", s, "checkpoint", change=checkpoint_line(1, lambda _: "35"))
    b.add(
        "checkpoint-log-signature-flip",
        s,
        "checkpoint",
        change=checkpoint_line(4, flip_signature_line(10)),
    )
    b.add(
        "checkpoint-malformed-note",
        s,
        "checkpoint",
        change=lambda o: o.update(checkpoint=o["checkpoint"].replace("\n\n", "\n")),
    )
    b.add("checkpoint-size-leading-zero", s, "checkpoint", change=checkpoint_line(1, "0".__add__))
    b.add(
        "checkpoint-control-character",
        s,
        "checkpoint",
        change=lambda o: o.update(checkpoint=o["checkpoint"].replace("log-0", "log\x01-0", 1)),
    )
    impostor = Ed25519Signer(ORIGIN, b"\x07" * 32).verifier().to_vkey()
    b.add("checkpoint-wrong-log-key-same-name", s, "checkpoint", log_keys=[impostor])
    other = Ed25519Signer("other.example/log", b"\x07" * 32).verifier().to_vkey()
    b.add("checkpoint-wrong-log-key-other-name", s, "checkpoint", log_keys=[other])
    rotated_out = Ed25519Signer(ORIGIN + "-old", b"\x07" * 32).verifier().to_vkey()
    b.add(
        "valid-any-of-several-log-keys",
        s,
        None,
        log_keys=[rotated_out, log_signer().verifier().to_vkey()],
    )
    fake = NoteSignature(ORIGIN, s.log_verifier.key_id, b"\x00" * 64).to_line()
    b.add(
        "checkpoint-forged-line-named-like-the-log",
        s,
        "checkpoint",
        change=lambda o: o.update(checkpoint=o["checkpoint"] + fake),
    )


def _cosignature_cases(b: Builder, s: Scenario) -> None:
    b.add(
        "cosignatures-flip", s, "cosignatures", change=checkpoint_line(6, flip_signature_line(20))
    )
    drop_w3 = drop_cosignature(WITNESS_NAMES[2])
    b.add("valid-two-of-three-k2", s, None, change=drop_w3, min_witnesses=2)
    b.add("cosignatures-two-of-three-k3", s, "cosignatures", change=drop_w3)
    b.add("valid-no-witness-required", s, None, witness_keys=[], min_witnesses=0)
    checkpoint = SignedCheckpoint.from_text(s.certificate.checkpoint).checkpoint
    line = cosign(checkpoint, witness_signer("stranger.example/w9")).to_line()
    b.add(
        "valid-unknown-cosigner-ignored",
        s,
        None,
        change=lambda o: o.update(checkpoint=o["checkpoint"] + line),
    )
    broken = flip_signature_line(20)(line.rstrip("\n")) + "\n"
    b.add(
        "valid-unknown-broken-cosigner-ignored",
        s,
        None,
        change=lambda o: o.update(checkpoint=o["checkpoint"] + broken),
    )
    foreign = cosign(Checkpoint(ORIGIN, 3, b"\x01" * 32), witness_signer(WITNESS_NAMES[2]))
    foreign_line = foreign.to_note_signature().to_line()
    b.add(
        "cosignatures-of-another-checkpoint",
        s,
        "cosignatures",
        change=all_of(drop_w3, lambda o: o.update(checkpoint=o["checkpoint"] + foreign_line)),
    )


def _key_cases(b: Builder, s: Scenario) -> None:
    def key0(o: dict[str, Any]) -> dict[str, Any]:
        key: dict[str, Any] = o["device_keys"][0]
        return key

    record = s.records[0]
    b.add(
        "keys-entry-byte-flip",
        s,
        "device_keys[0]",
        change=lambda o: key0(o).update(entry=flip_b64(key0(o)["entry"], 0)),
    )
    changed = replace(record, owner_org="someone-else", vin=None, vehicle_class=None)
    b.add(
        "keys-entry-value-changed",
        s,
        "device_keys[0]",
        change=key_entry(device_key_entry(changed)),
    )
    spaced = device_key_entry(record).replace(b'","', b'", "', 1)
    b.add("keys-entry-not-canonical", s, "device_keys[0]", change=key_entry(spaced))
    for name, body in [
        ("not-json", b"{"),
        ("missing-member", b'{"v":1}'),
        (
            "bad-public-key",
            device_key_entry(record).replace(b'"public_key":"', b'"public_key":"!', 1),
        ),
        ("bad-vin", device_key_entry(record).replace(b"WVWZZZ", b"IVWZZZ", 1)),
    ]:
        entry = body if body.startswith(b"roadledger/") else b"roadledger/device-key/v1\n" + body
        b.add(f"keys-entry-{name}", s, "device_keys[0]", change=key_entry(entry))

    def proof_flip(o: dict[str, Any]) -> None:
        key0(o)["inclusion_proof"][2] = flip_b64(key0(o)["inclusion_proof"][2], 31)

    b.add("keys-proof-hash-flip", s, "device_keys[0]", change=proof_flip)
    b.add(
        "keys-leaf-index-changed",
        s,
        "device_keys[0]",
        change=lambda o: key0(o).update(leaf_index=4),
    )
    b.add(
        "keys-of-another-device",
        s,
        "device_keys[0]",
        change=lambda o: o.update(device_id="veh-0043"),
    )
    rsu = replace(
        record, owner_org="city", kind=DeviceKind.RSU, valid_from_ms=0, vin=None, vehicle_class=None
    )
    b.add("keys-of-an-rsu", s, "device_keys[0]", change=key_entry(device_key_entry(rsu)))


def _message_cases(b: Builder, s: Scenario) -> None:
    b.add("messages-payload-changed", s, "messages[5]", change=jws_edit(5, 1, odo_minus_1000))
    b.add("messages-payload-byte-flip", s, "messages[7]", change=jws_edit(7, 1, flip_byte(-3, 1)))
    b.add("messages-signature-flip", s, "messages[3]", change=jws_edit(3, 2, flip_byte(0, 0x80)))
    b.add(
        "messages-malformed-jws",
        s,
        "messages[2]",
        change=lambda o: o["messages"][2].update(jws=o["messages"][2]["jws"] + "."),
    )
    b.add(
        "messages-header-alg-none",
        s,
        "messages[1]",
        change=jws_edit(1, 0, lambda _: b'{"alg":"none","kid":"veh-0042"}'),
    )
    b.add(
        "messages-header-unknown-parameter",
        s,
        "messages[1]",
        change=jws_edit(1, 0, lambda _: b'{"alg":"Ed25519","kid":"veh-0042","x":1}'),
    )
    b.add("messages-header-not-json", s, "messages[1]", change=jws_edit(1, 0, lambda _: b"{"))
    b.add(
        "messages-signature-not-base64url",
        s,
        "messages[1]",
        change=lambda o: o["messages"][1].update(jws=o["messages"][1]["jws"][:-2] + "+/"),
    )

    def proof(i: int, change: Callable[[list[str]], object]) -> Change:
        return lambda o: change(o["messages"][i]["inclusion_proof"])

    b.add(
        "messages-proof-hash-flip",
        s,
        "messages[10]",
        change=proof(10, lambda p: p.__setitem__(-1, flip_b64(p[-1], 0))),
    )
    b.add("messages-proof-too-short", s, "messages[0]", change=proof(0, lambda p: p.pop()))
    b.add(
        "messages-leaf-index-changed",
        s,
        "messages[4]",
        change=lambda o: o["messages"][4].update(leaf_index=o["messages"][4]["leaf_index"] + 1),
    )
    b.add(
        "messages-leaf-index-outside-tree",
        s,
        "messages[4]",
        change=lambda o: o["messages"][4].update(leaf_index=s.log.size),
    )
    b.add("messages-out-of-order", s, "messages[3]", change=swap("messages", 2, 3))
    b.add(
        "messages-repeated",
        s,
        "messages[3]",
        change=lambda o: o["messages"].insert(3, o["messages"][2]),
    )
    other = Telemetry(
        dev="veh-0043",
        seq=1,
        prev="",
        ts=ts_of(1),
        odo_m=5,
        lat_e7=0,
        lon_e7=0,
        spd_cms=0,
        hdg_cdeg=0,
    )
    b.add(
        "messages-of-another-device",
        s,
        "messages[0]",
        change=lambda o: o["messages"][0].update(jws=signed(other)),
    )
    rsu = Telemetry(
        dev=DEVICE,
        seq=1,
        prev="",
        ts=ts_of(1),
        lat_e7=0,
        lon_e7=0,
        obs=(Observation("veh-1", ts_of(1), 0, 0),),
    )
    b.add(
        "messages-rsu", s, "messages[0]", change=lambda o: o["messages"][0].update(jws=signed(rsu))
    )
    bad_schema = Telemetry(
        dev=DEVICE, seq=1, prev="", ts=ts_of(1), odo_m=5, lat_e7=0, lon_e7=0, spd_cms=0, hdg_cdeg=0
    )
    payload = json.dumps(bad_schema.to_dict() | {"spd_cms": 1.5}, separators=(",", ":")).encode()
    from chain.jws import JwsHeader, sign_compact

    float_speed = sign_compact(device_private_key(), JwsHeader("Ed25519", DEVICE), payload).decode()
    b.add(
        "messages-schema-float",
        s,
        "messages[0]",
        change=lambda o: o["messages"][0].update(jws=float_speed),
    )
    b.add(
        "messages-outside-range-end",
        s,
        "messages[19]",
        change=lambda o: o.update(to_ms=ts_of(LAST_SEQ)),
    )
    b.add(
        "messages-outside-range-start",
        s,
        "messages[0]",
        change=lambda o: o.update(from_ms=ts_of(1) + 1),
    )


def add_head_cases(b: Builder, s: Scenario) -> None:
    """Format, checkpoint, cosignature and key record cases."""
    _format_cases(b, s)
    _checkpoint_cases(b, s)
    _cosignature_cases(b, s)
    _key_cases(b, s)


def add_message_cases(b: Builder, s: Scenario) -> None:
    """Message cases."""
    _message_cases(b, s)
