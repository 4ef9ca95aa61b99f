"""The JSON form of a mileage certificate's parts: strict decoding member by member, and encoding.

Decoding refuses missing and unknown members, and every decoded part is checked as on
construction (:mod:`chain.certificate_parts`), so errors are ``format`` errors naming the
member. :mod:`chain.certificate` reads and writes the whole document with these, and
:mod:`chain.certificate_stream` reads it one element at a time.
"""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any

from chain.certificate_parts import (
    _GAP_MEMBERS,
    MAX_PROOF_HASHES,
    CertifiedKeyRecord,
    CertifiedMessage,
    _bad,
    check_key_item,
    check_message_item,
    check_summary,
)
from chain.encoding import b64_decode
from chain.errors import ChainError
from chain.mileage import Anomaly, Gap, MileageSummary

__all__ = [
    "key_from_dict",
    "message_from_dict",
    "messages_json",
    "summary_from_dict",
    "summary_to_dict",
]

_MEMBERS = (
    "format", "device_id", "from_ms", "to_ms", "checkpoint", "device_keys", "messages", "summary",
)  # fmt: skip
_KEY_MEMBERS = ("entry", "leaf_index", "inclusion_proof")
_MESSAGE_MEMBERS = ("jws", "leaf_index", "inclusion_proof")
_SUMMARY_MEMBERS = (
    "first_seq", "last_seq", "message_count", "odometer_start_m", "odometer_end_m",
    "distance_m", "gnss_distance_m", "gaps", "anomalies",
)  # fmt: skip
_ANOMALY_MEMBERS = ("seq", "kind", "detail")


def _members(obj: dict[str, Any], expected: tuple[str, ...], path: str) -> None:
    if missing := [name for name in expected if name not in obj]:
        raise _bad(path, f"missing {missing}")
    if unknown := sorted(obj.keys() - set(expected)):
        raise _bad(path, f"unknown member {unknown[0]!r:.66}")


def _objects(value: object, path: str, members: tuple[str, ...]) -> list[dict[str, Any]]:
    if type(value) is not list:
        raise _bad(path, "expected an array")
    for i, item in enumerate(value):
        if type(item) is not dict:
            raise _bad(f"{path}[{i}]", "expected an object")
        _members(item, members, f"{path}[{i}]")
    return value


def _b64(value: object, path: str) -> bytes:
    if not isinstance(value, str):
        raise _bad(path, f"expected a base64 string, got {type(value).__name__}")
    try:
        return b64_decode(value, "base64")
    except ChainError as exc:
        raise _bad(path, str(exc)) from None


def _proof(value: object, path: str) -> tuple[bytes, ...]:
    if type(value) is not list or len(value) > MAX_PROOF_HASHES:
        raise _bad(path, f"expected an array of at most {MAX_PROOF_HASHES} base64 hashes")
    return tuple(_b64(h, f"{path}[{i}]") for i, h in enumerate(value))


def key_from_dict(item: object, i: int) -> CertifiedKeyRecord:
    """``device_keys[i]`` from its decoded JSON object, checked (``format`` errors)."""
    path = f"device_keys[{i}]"
    fields = _object(item, path, _KEY_MEMBERS)
    key = CertifiedKeyRecord(
        _b64(fields["entry"], f"{path}.entry"),
        fields["leaf_index"],
        _proof(fields["inclusion_proof"], f"{path}.inclusion_proof"),
    )
    check_key_item(key, i)
    return key


def message_from_dict(item: object, i: int) -> CertifiedMessage:
    """``messages[i]`` from its decoded JSON object, checked (``format`` errors)."""
    path = f"messages[{i}]"
    fields = _object(item, path, _MESSAGE_MEMBERS)
    message = CertifiedMessage(
        fields["jws"],
        fields["leaf_index"],
        _proof(fields["inclusion_proof"], f"{path}.inclusion_proof"),
    )
    check_message_item(message, i)
    return message


def _object(item: object, path: str, members: tuple[str, ...]) -> dict[str, Any]:
    if type(item) is not dict:
        raise _bad(path, "expected an object")
    _members(item, members, path)
    return item


def summary_from_dict(value: object) -> MileageSummary:
    """The ``summary`` member from its decoded JSON object, checked (``format`` errors)."""
    if type(value) is not dict:
        raise _bad("summary", "expected an object")
    _members(value, _SUMMARY_MEMBERS, "summary")
    gaps = _objects(value["gaps"], "summary.gaps", _GAP_MEMBERS)
    anomalies = _objects(value["anomalies"], "summary.anomalies", _ANOMALY_MEMBERS)
    summary = MileageSummary(
        first_seq=value["first_seq"],
        last_seq=value["last_seq"],
        message_count=value["message_count"],
        odometer_start_m=value["odometer_start_m"],
        odometer_end_m=value["odometer_end_m"],
        distance_m=value["distance_m"],
        gnss_distance_m=value["gnss_distance_m"],
        gaps=tuple(Gap(g["after_seq"], g["before_seq"]) for g in gaps),
        anomalies=tuple(Anomaly(a["seq"], a["kind"], a["detail"]) for a in anomalies),
    )
    check_summary(summary)
    return summary


def summary_to_dict(summary: MileageSummary) -> dict[str, Any]:
    """The ``summary`` member as a JSON object, members in format order."""
    return {
        "first_seq": summary.first_seq,
        "last_seq": summary.last_seq,
        "message_count": summary.message_count,
        "odometer_start_m": summary.odometer_start_m,
        "odometer_end_m": summary.odometer_end_m,
        "distance_m": summary.distance_m,
        "gnss_distance_m": summary.gnss_distance_m,
        "gaps": [{"after_seq": g.after_seq, "before_seq": g.before_seq} for g in summary.gaps],
        "anomalies": [
            {"seq": a.seq, "kind": str(a.kind), "detail": a.detail} for a in summary.anomalies
        ],
    }


def _hashes_json(proof: tuple[bytes, ...]) -> str:
    if not proof:
        return "[]"
    # standard base64 needs no JSON escaping
    inner = '",\n        "'.join(b2a_base64(h, newline=False).decode("ascii") for h in proof)
    return f'[\n        "{inner}"\n      ]'


def messages_json(messages: Sequence[CertifiedMessage]) -> str:
    """The ``messages`` member's value as ``json.dumps(..., indent=2, ensure_ascii=False)``
    writes it at the certificate's top level, without its pure-Python encoder (which ``indent``
    selects): most of a certificate's text, five times faster."""
    items = ",\n    ".join(
        f'{{\n      "jws": {encode_basestring(m.jws)},\n      "leaf_index": {m.leaf_index},\n'
        f'      "inclusion_proof": {_hashes_json(m.inclusion_proof)}\n    }}'
        for m in messages
    )
    return f"[\n    {items}\n  ]"
