"""The mileage certificate, format v1: its JSON form and its builder.

A certificate is what an insurer is handed to check a vehicle's mileage offline: for one device
and a time range, the verbatim signed messages and the device's key records, each with an RFC
9162 inclusion proof to one cosigned checkpoint, and a summary (distance, gaps, anomalies) that
the verifier recomputes. The format is specified in ``docs/mileage-certificate.md``;
verification is :func:`chain.certificate_verify.verify_certificate`.

Parsing is strict: one UTF-8 JSON object, no duplicate or unknown members, integers only,
canonical base64. Anything the format itself rejects is a :class:`CertificateError` whose item
is ``"format"`` and whose detail names the member (``messages[3].leaf_index: ...``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from chain.certificate_checks import (
    chain_anomaly,
    effective_keys,
    revocation_anomaly,
    revocation_leaves,
    signing_key,
)
from chain.checkpoint import MAX_TREE_SIZE, Checkpoint, SignedCheckpoint
from chain.device_keys import DeviceKey
from chain.encoding import b64_decode, b64_encode
from chain.entries import parse_device_key_entry
from chain.errors import CertificateError, ChainError, EncodingError, TelemetryError
from chain.hashing import HASH_SIZE, leaf_hash
from chain.merkle import verify_inclusion
from chain.mileage import Anomaly, Gap, MileageSummary, summarize
from chain.strict_json import loads_object
from chain.telemetry import DEVICE_ID_RE, RANGES, DeviceKind, TelemetryMessage, parse

__all__ = [
    "FORMAT",
    "MAX_PROOF_HASHES",
    "CertifiedKeyRecord",
    "CertifiedMessage",
    "MileageCertificate",
    "ProofSource",
    "build_certificate",
    "check_inclusion",
]

FORMAT = "roadledger/mileage-certificate/v1"
MAX_PROOF_HASHES = 64  # a tree of at most 2**64 - 1 leaves has paths of at most 64 nodes

ProofSource = Callable[[int, int], Sequence[bytes]]
"""``(leaf_index, tree_size) -> inclusion proof``, e.g. ``InMemoryMerkleLog.inclusion_proof``."""

_MS_MAX = 2**53 - 1
_SEQ_LOW, _SEQ_HIGH = RANGES["seq"]
_ODO_HIGH = RANGES["odo_m"][1]
_MEMBERS = (
    "format", "device_id", "from_ms", "to_ms", "checkpoint", "device_keys", "messages", "summary",
)  # fmt: skip
_KEY_MEMBERS = ("entry", "leaf_index", "inclusion_proof")
_MESSAGE_MEMBERS = ("jws", "leaf_index", "inclusion_proof")
_SUMMARY_MEMBERS = (
    "first_seq", "last_seq", "message_count", "odometer_start_m", "odometer_end_m",
    "distance_m", "gnss_distance_m", "gaps", "anomalies",
)  # fmt: skip
_GAP_MEMBERS = ("after_seq", "before_seq")
_ANOMALY_MEMBERS = ("seq", "kind", "detail")


def _bad(path: str, detail: str) -> CertificateError:
    return CertificateError("format", f"{path}: {detail}")


# --- checks on values (used on construction, whatever the source) ---------------------------


def _check_int(value: object, path: str, low: int, high: int) -> None:
    if type(value) is not int:  # not isinstance: true must not pass for 1
        raise _bad(path, f"expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _bad(path, f"{value} outside [{low}, {high}]")


def _check_str(value: object, path: str) -> None:
    if type(value) is not str:
        raise _bad(path, f"expected a string, got {type(value).__name__}")


def _check_proof(value: object, path: str) -> None:
    if type(value) is not tuple or len(value) > MAX_PROOF_HASHES:
        raise _bad(path, f"expected a tuple of at most {MAX_PROOF_HASHES} hashes")
    for position, digest in enumerate(value):
        if type(digest) is not bytes or len(digest) != HASH_SIZE:
            raise _bad(f"{path}[{position}]", f"expected a {HASH_SIZE}-byte hash")


def _check_summary(summary: object) -> None:
    if type(summary) is not MileageSummary:
        raise _bad("summary", "expected a MileageSummary")
    for name in ("first_seq", "last_seq"):
        _check_int(getattr(summary, name), f"summary.{name}", _SEQ_LOW, _SEQ_HIGH)
    _check_int(summary.message_count, "summary.message_count", 1, _SEQ_HIGH)
    for name in ("odometer_start_m", "odometer_end_m"):
        _check_int(getattr(summary, name), f"summary.{name}", 0, _ODO_HIGH)
    _check_int(summary.distance_m, "summary.distance_m", -_ODO_HIGH, _ODO_HIGH)
    _check_int(summary.gnss_distance_m, "summary.gnss_distance_m", 0, _MS_MAX)
    if type(summary.gaps) is not tuple:
        raise _bad("summary.gaps", "expected a tuple of Gap")
    for i, gap in enumerate(summary.gaps):
        if type(gap) is not Gap:
            raise _bad(f"summary.gaps[{i}]", "expected a Gap")
        for name in _GAP_MEMBERS:
            _check_int(getattr(gap, name), f"summary.gaps[{i}].{name}", _SEQ_LOW, _SEQ_HIGH)
    if type(summary.anomalies) is not tuple:
        raise _bad("summary.anomalies", "expected a tuple of Anomaly")
    for i, anomaly in enumerate(summary.anomalies):
        if type(anomaly) is not Anomaly:
            raise _bad(f"summary.anomalies[{i}]", "expected an Anomaly")
        _check_int(anomaly.seq, f"summary.anomalies[{i}].seq", _SEQ_LOW, _SEQ_HIGH)
        _check_str(anomaly.kind, f"summary.anomalies[{i}].kind")
        _check_str(anomaly.detail, f"summary.anomalies[{i}].detail")


def check_header(device_id: object, from_ms: object, to_ms: object, checkpoint: object) -> None:
    """Check the certificate's scalar members (``format`` errors naming the member)."""
    if type(device_id) is not str or not DEVICE_ID_RE.fullmatch(device_id):
        raise _bad("device_id", f"expected an id matching {DEVICE_ID_RE.pattern}")
    _check_int(from_ms, "from_ms", 0, _MS_MAX)
    _check_int(to_ms, "to_ms", 0, _MS_MAX)
    if from_ms >= to_ms:  # type: ignore[operator]  # both checked to be int just above
        raise _bad("to_ms", f"{to_ms} is not after from_ms {from_ms}")
    _check_str(checkpoint, "checkpoint")


def _check_item(item: object, kind: type, name: str) -> None:
    if type(item) is not kind:
        raise _bad(name, f"expected a {kind.__name__}")
    _check_int(getattr(item, "leaf_index"), f"{name}.leaf_index", 0, MAX_TREE_SIZE - 1)  # noqa: B009
    _check_proof(getattr(item, "inclusion_proof"), f"{name}.inclusion_proof")  # noqa: B009


def check_key_item(item: object, i: int) -> None:
    """Check ``device_keys[i]``: a CertifiedKeyRecord of valid types and ranges."""
    _check_item(item, CertifiedKeyRecord, f"device_keys[{i}]")
    if type(item.entry) is not bytes:  # type: ignore[attr-defined]
        raise _bad(f"device_keys[{i}].entry", "expected bytes")


def check_message_item(item: object, i: int) -> None:
    """Check ``messages[i]``: a CertifiedMessage of valid types and ranges."""
    _check_item(item, CertifiedMessage, f"messages[{i}]")
    _check_str(item.jws, f"messages[{i}].jws")  # type: ignore[attr-defined]


# --- the value objects ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertifiedKeyRecord:
    """A device key entry (:mod:`chain.entries`) with its inclusion proof."""

    entry: bytes
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class CertifiedMessage:
    """A telemetry message (compact JWS, verbatim) with its inclusion proof."""

    jws: str
    leaf_index: int
    inclusion_proof: tuple[bytes, ...]

    @property
    def raw(self) -> bytes:
        """The JWS bytes: the log entry and the signed text."""
        return self.jws.encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class MileageCertificate:
    """A parsed certificate: well-formed, NOT verified (see ``verify_certificate``).

    Construction checks types and ranges and raises :class:`CertificateError` (item
    ``"format"``); ``from_json(c.to_json()) == c``.
    """

    device_id: str
    from_ms: int
    to_ms: int
    checkpoint: str
    device_keys: tuple[CertifiedKeyRecord, ...]
    messages: tuple[CertifiedMessage, ...]
    summary: MileageSummary

    def __post_init__(self) -> None:
        check_header(self.device_id, self.from_ms, self.to_ms, self.checkpoint)
        for name, items in (("device_keys", self.device_keys), ("messages", self.messages)):
            if type(items) is not tuple:
                raise _bad(name, f"expected a tuple, got {type(items).__name__}")
            if not items:
                raise _bad(name, "expected at least one element")
        for i, key in enumerate(self.device_keys):
            check_key_item(key, i)
        for i, message in enumerate(self.messages):
            check_message_item(message, i)
        _check_summary(self.summary)

    # --- JSON ---------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: str | bytes) -> MileageCertificate:
        """Parse a certificate strictly (see the module docstring)."""
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
        try:
            obj = loads_object(raw, "certificate")
        except EncodingError as exc:
            raise CertificateError("format", str(exc)) from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> MileageCertificate:
        """Build from a decoded JSON object: exact members, version first."""
        if "format" not in obj:
            raise CertificateError("format", f'no "format" member: not a {FORMAT} document')
        if obj["format"] != FORMAT:
            raise CertificateError(
                "format", f"unsupported version {obj['format']!r:.80}; this verifier reads {FORMAT}"
            )
        _members(obj, _MEMBERS, "certificate")
        for name in ("device_keys", "messages"):
            if type(obj[name]) is not list:
                raise _bad(name, "expected an array")
        return cls(
            device_id=obj["device_id"],
            from_ms=obj["from_ms"],
            to_ms=obj["to_ms"],
            checkpoint=obj["checkpoint"],
            device_keys=tuple(key_from_dict(item, i) for i, item in enumerate(obj["device_keys"])),
            messages=tuple(message_from_dict(item, i) for i, item in enumerate(obj["messages"])),
            summary=summary_from_dict(obj["summary"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, members in format order."""
        return {
            "format": FORMAT,
            "device_id": self.device_id,
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "checkpoint": self.checkpoint,
            "device_keys": [
                {
                    "entry": b64_encode(key.entry),
                    "leaf_index": key.leaf_index,
                    "inclusion_proof": [b64_encode(h) for h in key.inclusion_proof],
                }
                for key in self.device_keys
            ],
            "messages": [
                {
                    "jws": message.jws,
                    "leaf_index": message.leaf_index,
                    "inclusion_proof": [b64_encode(h) for h in message.inclusion_proof],
                }
                for message in self.messages
            ],
            "summary": _summary_to_dict(self.summary),
        }

    def to_json(self) -> str:
        """UTF-8 JSON text, indented, ending in a newline; ``from_json`` reads it back equal."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


# --- JSON shape helpers -----------------------------------------------------------------------


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
    _check_summary(summary)
    return summary


def _summary_to_dict(summary: MileageSummary) -> dict[str, Any]:
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


# --- building ---------------------------------------------------------------------------------


def check_inclusion(entry: bytes, leaf_index: int, proof: Sequence[bytes], cp: Checkpoint) -> None:
    """Check that ``entry`` is leaf ``leaf_index`` of the tree ``cp`` commits to.

    Raises :class:`chain.errors.ProofError` (or its ``RootMismatchError``) when it is not.
    """
    verify_inclusion(leaf_index, cp.size, leaf_hash(entry), cp.root_hash, proof)


def _proven(
    item: str, entry: bytes, leaf_index: int, proof_source: ProofSource, cp: Checkpoint
) -> tuple[bytes, ...]:
    try:
        proof = tuple(proof_source(leaf_index, cp.size))
        check_inclusion(entry, leaf_index, proof, cp)
    except ChainError as exc:
        raise CertificateError(item, f"leaf {leaf_index}: no valid inclusion proof: {exc}") from exc
    return proof


def build_certificate(
    device_id: str,
    from_ms: int,
    to_ms: int,
    messages: Iterable[tuple[bytes, int]],
    key_entries: Iterable[tuple[bytes, int]],
    proof_source: ProofSource,
    signed_checkpoint_text: str,
    predecessor: tuple[bytes, int] | None = None,
) -> MileageCertificate:
    """Assemble the certificate of ``device_id`` for ``from_ms <= ts < to_ms``.

    ``messages`` are ``(verbatim JWS bytes, leaf index)`` in any order (they are sorted by
    seq); ``key_entries`` are ``(device key entry, leaf index)``: every key record of the device
    in the log up to the checkpoint, revocations included. ``proof_source`` gives inclusion
    proofs in the tree of ``signed_checkpoint_text`` (the cosigned checkpoint, as served).
    ``predecessor``: the device's logged message with the seq before the first one in range,
    if the log has it. If the first message does not chain to it, the certificate includes it
    (its range widened back to the predecessor's ``ts``), so the break is in the certificate
    and not hidden just before its start.

    The builder refuses, with :class:`CertificateError`, what it can see is wrong: a
    malformed checkpoint, an unparsable message, one of another device, outside the range or
    repeated, one whose signature verifies under none of the key records, a predecessor that is
    not the seq before the first, and any inclusion proof that does not lead to the
    checkpoint's root. What the device itself did wrong it states in the summary as anomalies,
    as the verifier recomputes them: a broken hash chain (``chain_broken``) and a message
    sequenced after its key's revocation record (``sequenced_after_revocation``). It does not
    check key validity windows: run ``verify_certificate`` on the result before handing it out.
    """
    try:
        cp = SignedCheckpoint.from_text(signed_checkpoint_text).checkpoint
    except ChainError as exc:
        raise CertificateError("checkpoint", f"malformed: {exc}") from None
    parsed = [
        _parsed_input(raw, leaf_index, f"input message {position} (leaf {leaf_index})", device_id)
        for position, (raw, leaf_index) in enumerate(messages)
    ]
    for (message, leaf_index), position in zip(parsed, range(len(parsed)), strict=True):
        t = message.telemetry
        if not from_ms <= t.ts < to_ms:
            raise CertificateError(
                "messages",
                f"input message {position} (leaf {leaf_index}): ts {t.ts} outside "
                f"[{from_ms}, {to_ms})",
            )
    if not parsed:
        raise CertificateError("messages", "no messages to certify")
    parsed.sort(key=lambda pair: pair[0].telemetry.seq)
    for (a, leaf_a), (b, leaf_b) in pairwise(parsed):
        if a.telemetry.seq == b.telemetry.seq:
            raise CertificateError(
                "messages", f"seq {a.telemetry.seq} given twice (leaves {leaf_a} and {leaf_b})"
            )
    if predecessor is not None:
        raw, leaf_index = predecessor
        before = _parsed_input(raw, leaf_index, f"predecessor (leaf {leaf_index})", device_id)
        first = parsed[0][0].telemetry.seq
        if before[0].telemetry.seq != first - 1:
            raise CertificateError(
                "messages",
                f"predecessor (leaf {leaf_index}) is seq {before[0].telemetry.seq}, "
                f"not {first - 1}",
            )
        if chain_anomaly(before[0], parsed[0][0]) is not None:
            parsed.insert(0, before)
            from_ms = min(from_ms, before[0].telemetry.ts)
            to_ms = max(to_ms, before[0].telemetry.ts + 1)
    certified_messages = tuple(
        CertifiedMessage(
            message.raw.decode("ascii"),
            leaf_index,
            _proven(f"messages[{i}]", message.raw, leaf_index, proof_source, cp),
        )
        for i, (message, leaf_index) in enumerate(parsed)
    )
    keys = sorted(key_entries, key=lambda pair: pair[1])
    if not keys:
        raise CertificateError("device_keys", "no device key entries: the verifier needs them")
    records: list[tuple[DeviceKey, int]] = []
    for entry, leaf_index in keys:
        try:
            record = parse_device_key_entry(entry)
        except ChainError as exc:
            raise CertificateError("device_keys", f"leaf {leaf_index}: {exc}") from None
        if record.device_id != device_id:
            raise CertificateError(
                "device_keys", f"leaf {leaf_index}: a record of {record.device_id}, not {device_id}"
            )
        records.append((record, leaf_index))
    certified_keys = tuple(
        CertifiedKeyRecord(
            entry, leaf_index, _proven(f"device_keys[{i}]", entry, leaf_index, proof_source, cp)
        )
        for i, (entry, leaf_index) in enumerate(keys)
    )
    return MileageCertificate(
        device_id=device_id,
        from_ms=from_ms,
        to_ms=to_ms,
        checkpoint=signed_checkpoint_text,
        device_keys=certified_keys,
        messages=certified_messages,
        summary=summarize(
            [message.telemetry for message, _ in parsed], _device_anomalies(parsed, records)
        ),
    )


def _parsed_input(
    raw: bytes, leaf_index: int, where: str, device_id: str
) -> tuple[TelemetryMessage, int]:
    try:
        message = parse(raw)
    except TelemetryError as exc:
        raise CertificateError("messages", f"{where}: {exc}") from None
    t = message.telemetry
    if t.dev != device_id:
        raise CertificateError("messages", f"{where}: from device {t.dev}, not {device_id}")
    if t.kind is not DeviceKind.VEHICLE:
        raise CertificateError("messages", f"{where}: not a vehicle message")
    return message, leaf_index


def _device_anomalies(
    parsed: Sequence[tuple[TelemetryMessage, int]], records: Sequence[tuple[DeviceKey, int]]
) -> dict[int, list[Anomaly]]:
    """``chain_broken`` and ``sequenced_after_revocation``, by seq, as the verifier finds them."""
    keys = effective_keys(record for record, _ in records)
    revoked_at_leaf = revocation_leaves(records)
    found: dict[int, list[Anomaly]] = {}
    previous: TelemetryMessage | None = None
    for i, (message, leaf_index) in enumerate(parsed):
        key = signing_key(message.jws, keys)
        if key is None:
            raise CertificateError(
                f"messages[{i}]",
                f"seq {message.telemetry.seq} (leaf {leaf_index}): bad_signature: the signature "
                f"verifies under none of the {len(keys)} key records",
            )
        here = [
            anomaly
            for anomaly in (
                None if previous is None else chain_anomaly(previous, message),
                revocation_anomaly(
                    message, leaf_index, key, revoked_at_leaf.get(key.public_key.raw)
                ),
            )
            if anomaly is not None
        ]
        if here:
            found[message.telemetry.seq] = here
        previous = message
    return found
