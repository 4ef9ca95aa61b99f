"""Edge cases of the certificate corpus: the less travelled refusals of each part.

Where the unit tests check one refusal per kind, these add the others the verifiers must
word alike: JSON syntax and content inside the document, JWS header and payload schema of
messages the device did sign, malformed checkpoint notes, odd key records.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from chain.jws import sign_compact
from chain.note import NoteSignature
from chain.note_signers import Ed25519Signer
from tests.support.certificate_corpus_edits import Builder, Change, jws_edit
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    WITNESS_NAMES,
    Scenario,
    device_private_key,
    ts_of,
)

__all__ = ["add_edge_cases"]

_HEADER = b'{"alg":"Ed25519","kid":"veh-0042"}'
_PAYLOAD = {
    "v": 1, "dev": DEVICE, "seq": 1, "prev": "", "ts": ts_of(1), "odo_m": 48_211_350,
    "lat_e7": 525_200_000, "lon_e7": 134_050_000, "spd_cms": 1000, "hdg_cdeg": 9000,
}  # fmt: skip


def _message(**payload: Any) -> Change:
    """messages[0] replaced by a JWS the device's key did sign."""
    body = {k: v for k, v in (_PAYLOAD | payload).items() if v is not ...}
    data = json.dumps(body, separators=(",", ":")).encode()
    jws = sign_compact(device_private_key(), _HEADER, data).decode()
    return lambda o: o["messages"][0].update(jws=jws)


def _text(old: str, new: str) -> Change:
    return lambda o: o.update(checkpoint=o["checkpoint"].replace(old, new, 1))


def _record(s: Scenario, **changes: Any) -> Change:
    fields = s.records[0].to_dict() | changes
    body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    entry = b"roadledger/device-key/v1\n" + body
    return lambda o: o["device_keys"][0].update(entry=base64.b64encode(entry).decode())


def _raw_cases(b: Builder, s: Scenario) -> None:
    text = s.text
    for name, data in [
        ("nan-in-element", text.replace('"leaf_index": ', '"leaf_index": NaN, "x": ', 1)),
        (
            "long-integer-in-element",
            text.replace('"leaf_index": ', '"leaf_index": 1' + "0" * 25 + ', "x": ', 1),
        ),
        ("duplicate-in-summary", text.replace('"first_seq": ', '"first_seq": 1, "first_seq": ', 1)),
        (
            "trailing-comma-in-array",
            text.replace('}\n  ],\n  "summary"', '},\n  ],\n  "summary"', 1),
        ),
        ("control-character", text.replace('"veh-0042"', '"veh-\x010042"', 1)),
        ("bad-escape", text.replace('"veh-0042"', '"veh-\\q0042"', 1)),
        ("missing-colon", text.replace('"device_id": ', '"device_id" ', 1)),
        ("empty-object", "{}"),
        ("format-only", '{"format": "roadledger/mileage-certificate/v1"}'),
        ("lone-surrogate-checkpoint", text.replace('"checkpoint": "', '"checkpoint": "\\ud800', 1)),
        ("string-leaf-index", text.replace('"leaf_index": ', '"leaf_index": "1", "x": ', 1)),
    ]:
        b.add(f"edge-{name}", s, _breaks(name), data=data)


def _breaks(name: str) -> str:
    return "checkpoint" if name == "lone-surrogate-checkpoint" else "format"


def _format_cases(b: Builder, s: Scenario) -> None:
    for name, change in [
        ("gnss-negative", lambda o: o["summary"].update(gnss_distance_m=-1)),
        ("anomalies-not-array", lambda o: o["summary"].update(anomalies="none")),
        ("gap-not-object", lambda o: o["summary"].update(gaps=[[8, 10]])),
        ("proof-element-int", lambda o: o["device_keys"][0]["inclusion_proof"].__setitem__(0, 7)),
        ("from-ms-bool", lambda o: o.update(from_ms=False)),
        ("device-id-65", lambda o: o.update(device_id="v" * 65)),
        ("summary-list", lambda o: o.update(summary=[])),
        ("version-float", lambda o: o.update(format=2.5e20)),
    ]:
        b.add(f"edge-format-{name}", s, "format", change=change)


def _checkpoint_cases(b: Builder, s: Scenario) -> None:
    cp = s.certificate.checkpoint
    body, _, lines = cp.partition("\n\n")
    root = body.split("\n")[2]
    odd = root[:-2] + chr(ord(root[-2]) + 1) + "="  # a non-zero unused bit
    w1 = next(line for line in lines.split("\n") if line.startswith(f"\u2014 {WITNESS_NAMES[0]} "))
    witness = next(w for w in s.witnesses if w.name == WITNESS_NAMES[0])
    short = NoteSignature(witness.name, witness.key_id, b"\x01" * 10).to_line().rstrip("\n")
    # Characters Python would not print (format, private use) in a name the detail repeats.
    odd_name = NoteSignature("w\u200b\ue000", 1, b"\x02" * 64).to_line()
    impostor = Ed25519Signer("other.example/log", b"\x07" * 32).verifier().to_vkey()
    b.add(
        "edge-checkpoint-unprintable-name",
        s,
        "checkpoint",
        change=lambda o: o.update(checkpoint=o["checkpoint"] + odd_name),
        log_keys=[impostor],
    )
    for name, change, item in [
        ("root-non-canonical", _text(root, odd), "checkpoint"),
        ("size-over-uint64", _text(f"\n{s.log.size}\n", "\n99999999999999999999\n"), "checkpoint"),
        ("no-signature-lines", lambda o: o.update(checkpoint=body + "\n\n"), "checkpoint"),
        ("signature-bad-base64", _text(w1, w1[:-3] + "!!="), "checkpoint"),
        ("key-name-with-plus", _text(f"\u2014 {WITNESS_NAMES[0]} ", "\u2014 a+b "), "checkpoint"),
        (
            "101-signature-lines",
            lambda o: o.update(checkpoint=o["checkpoint"] + (w1 + "\n") * 97),
            "checkpoint",
        ),
        ("cosignature-too-short", _text(w1, short), "cosignatures"),
        (
            "origin-empty",
            lambda o: o.update(checkpoint=cp.replace(body.split("\n")[0], "", 1)),
            "checkpoint",
        ),
    ]:
        b.add(f"edge-checkpoint-{name}", s, item, change=change)


def _key_cases(b: Builder, s: Scenario) -> None:
    rec = s.records[0].to_dict()
    for name, changes in [
        ("revoked-before-valid", {"revoked_at_ms": rec["valid_from_ms"] - 1}),
        ("rsu-with-vin", {"kind": "rsu"}),
        ("key-id-mismatch", {"key_id": "AAAAAAAAAAAAAAAA"}),
        ("public-key-31-bytes", {"public_key": "A" * 41 + "Q"}),
        ("version-2", {"v": 2}),
        ("kind-unknown", {"kind": "bus"}),
        ("class-too-long", {"vehicle_class": "M" * 33}),
        ("valid-from-float", {"valid_from_ms": 1.5}),
        ("extra-member", {"colour": "red"}),
    ]:
        b.add(f"edge-key-{name}", s, "device_keys[0]", change=_record(s, **changes))


def _message_cases(b: Builder, s: Scenario) -> None:
    for name, change in [
        ("payload-missing-member", _message(hdg_cdeg=...)),
        ("payload-extra-member", _message(fuel=3)),
        ("seq-float", _message(seq=1.0)),
        ("prev-wrong-length", _message(seq=2, prev="AAAA")),
        ("prev-not-empty-at-seq-1", _message(prev="AAAA")),
        ("dev-not-kid", _message(dev="veh-0043")),
        ("version-2", _message(v=2)),
        ("version-float", _message(v=1.0)),
        ("odometer-negative", _message(odo_m=-1)),
        ("kid-too-long", jws_edit(0, 0, lambda _: b'{"alg":"Ed25519","kid":"' + b"k" * 65 + b'"}')),
        ("typ-int", jws_edit(0, 0, lambda _: b'{"alg":"Ed25519","kid":"veh-0042","typ":1}')),
        ("alg-list", jws_edit(0, 0, lambda _: b'{"alg":["Ed25519"],"kid":"veh-0042"}')),
        ("kid-null", jws_edit(0, 0, lambda _: b'{"alg":"Ed25519","kid":null}')),
        ("kid-missing", jws_edit(0, 0, lambda _: b'{"alg":"EdDSA"}')),
        ("header-duplicate", jws_edit(0, 0, lambda _: b'{"alg":"Ed25519","alg":"Ed25519"}')),
        (
            "header-oversized",
            jws_edit(0, 0, lambda _: b'{"alg":"Ed25519","kid":"' + b"k" * 800 + b'"}'),
        ),
        ("oversize", lambda o: o["messages"][0].update(jws="e" * 16_385)),
        ("four-segments", lambda o: o["messages"][0].update(jws=o["messages"][0]["jws"] + ".x")),
        (
            "empty-segment",
            lambda o: o["messages"][0].update(jws=".." + o["messages"][0]["jws"].split(".")[2]),
        ),
        ("signature-63-bytes", jws_edit(0, 2, lambda sig: sig[:63])),
        ("payload-padded", lambda o: o["messages"][0].update(jws=_padded(o["messages"][0]["jws"]))),
        (
            "payload-non-canonical",
            lambda o: o["messages"][0].update(jws=_bump_last(o["messages"][0]["jws"])),
        ),
        ("payload-not-json", jws_edit(0, 1, lambda _: b"not json")),
        (
            "payload-non-ascii",
            lambda o: o["messages"][0].update(
                jws=o["messages"][0]["jws"].replace(".", ".\u00e9", 1)
            ),
        ),
    ]:
        b.add(f"edge-message-{name}", s, "messages[0]", change=change)


def _padded(jws: str) -> str:
    head, payload, sig = jws.split(".")
    return f"{head}.{payload}=.{sig}"


def _bump_last(jws: str) -> str:
    """The payload segment with a non-zero unused bit in its last character, if it has any."""
    head, payload, sig = jws.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(payload[-1]) + 1]
    return f"{head}.{payload[:-1]}{last}.{sig}"


def add_edge_cases(b: Builder, s: Scenario) -> None:
    """Every edge case, on the scenario ``s``."""
    _raw_cases(b, s)
    _format_cases(b, s)
    _checkpoint_cases(b, s)
    _key_cases(b, s)
    _message_cases(b, s)
