"""Offline verification of a mileage certificate: what ``roadledger verify`` runs.

:func:`verify_certificate` needs only public keys: the log's (to trust the checkpoint) and the
witnesses' with a k-of-n policy (to trust that the log showed everyone the same tree). The
device keys come from the certificate itself, proven to be in the same log.

Checks run in this order and stop at the first failure, raised as a
:class:`~chain.errors.CertificateError` whose ``item`` names the failing part:

=====================  ==========================================================================
item                   fails when
=====================  ==========================================================================
``format``             not UTF-8 JSON, duplicate/unknown/missing member, wrong type or range,
                       unsupported ``format`` version, bad base64, beyond a limit of
                       :mod:`chain.certificate_stream`
``device_id``          not the device the caller expects (``expected_device_id``)
``checkpoint``         the note or checkpoint body is malformed, no signature of a given log
                       key, or a log key's signature does not verify
``cosignatures``       a given witness's cosignature does not verify, or fewer than
                       ``min_witnesses`` of the given witnesses cosigned (says who did, who not)
``device_keys[i]``     not a canonical device key entry, another device's or an RSU's record,
                       not in log order, or its inclusion proof fails
``vin``                a key record states another VIN (or none) than ``expected_vin``
``messages[i]``        JWS malformed, ``kid`` not the certificate's device, signature verifies
                       under no certified key, payload schema, RSU message, key not valid at
                       ``ts`` (``revoked_key``), ``ts`` outside ``[from_ms, to_ms)``, inclusion
                       proof fails, seq not after the previous message's (unsorted or repeated)
``chain[seq a->b]``    for consecutive seqs ``a``, ``b = a + 1``: ``b``'s ``prev`` is not the
                       hash of ``a``, and the summary does not state it as ``chain_broken``
``summary.<field>``    the stated summary differs from the one recomputed from the messages
=====================  ==========================================================================

Key validity: records are read in log order; for each public key the latest record decides
``valid_from_ms``, and a revocation is final (a later record of the same key never moves
``revoked_at_ms`` later). A message is accepted under the key whose signature verifies if that
key is valid at the message's ``ts``. A message whose leaf comes after its key's revocation
record is flagged (``sequenced_after_revocation``, see :mod:`chain.certificate_checks`), as is a
stated broken link (``chain_broken``): anomalies the summary must state, for the reader to judge.

:func:`verify_certificate` takes a certificate in memory; :func:`verify_certificate_file`
reads one from a file in bounded memory (the limits of :mod:`chain.certificate_stream`) and
returns the same :class:`VerificationReport` without the messages.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import IO, Generic, TypeVar

from chain.certificate import (
    CertifiedKeyRecord,
    CertifiedMessage,
    MileageCertificate,
    check_inclusion,
)
from chain.certificate_checks import (
    chain_anomaly,
    effective_keys,
    revocation_anomaly,
    revocation_leaves,
    signing_key,
)
from chain.certificate_stream import CertificateHead, iter_messages, read_head
from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.cosignature import Cosignature, CosignatureVerifier, verify_cosignatures
from chain.device_keys import DeviceKey
from chain.entries import parse_device_key_entry
from chain.errors import CertificateError, ChainError, TelemetryError
from chain.jws import CompactJws
from chain.mileage import Anomaly, Gap, MileageSummary, SummaryBuilder
from chain.note import NoteVerifier
from chain.telemetry import DeviceKind, TelemetryMessage

__all__ = [
    "VehicleIdentity",
    "VerificationReport",
    "VerifiedCertificate",
    "verify_certificate",
    "verify_certificate_file",
]

_T = TypeVar("_T", bound=Gap | Anomaly)


@dataclass(frozen=True, slots=True)
class VehicleIdentity:
    """Whose certificate it is, as the certified device key records state it."""

    owner_org: str
    vin: str | None
    vehicle_class: str | None


@dataclass(frozen=True)
class VerificationReport:
    """What the checks of a certificate that passed them all established."""

    device_id: str
    from_ms: int
    to_ms: int
    checkpoint: Checkpoint
    log_key_name: str
    """Name of the given log key whose signature verified."""
    cosignatures: tuple[Cosignature, ...]
    """The latest valid cosignature of each given witness that cosigned, in key order."""
    missing_witnesses: tuple[str, ...]
    """Given witnesses without a cosignature (allowed by the policy)."""
    min_witnesses: int
    device_keys: tuple[DeviceKey, ...]
    """The certified key records, in log order."""
    summary: MileageSummary
    """The summary: stated by the certificate and equal to the recomputed one."""
    first_ts_ms: int
    """Earliest message time: how much of the range the messages actually cover."""
    last_ts_ms: int
    """Latest message time."""

    @property
    def witnesses(self) -> tuple[str, ...]:
        """Names of the given witnesses that cosigned."""
        return tuple(c.name for c in self.cosignatures)

    @property
    def identities(self) -> tuple[VehicleIdentity, ...]:
        """Owner, VIN and class as the key records state them; several if records differ."""
        seen = dict.fromkeys(
            VehicleIdentity(r.owner_org, r.vin, r.vehicle_class) for r in self.device_keys
        )
        return tuple(seen)

    @property
    def missing_at_start_ms(self) -> int:
        """Time from the start of the range to the first message: nothing covers it."""
        return max(0, self.first_ts_ms - self.from_ms)

    @property
    def missing_at_end_ms(self) -> int:
        """Time from the last message to the (excluded) end of the range."""
        return max(0, self.to_ms - self.last_ts_ms)


@dataclass(frozen=True)
class VerifiedCertificate(VerificationReport):
    """A certificate in memory that passed every check, with its verified messages."""

    certificate: MileageCertificate
    messages: tuple[TelemetryMessage, ...]
    """The verified messages, in seq order."""


def _check_policy(
    log_verifiers: NoteVerifier | Sequence[NoteVerifier],
    witness_verifiers: Sequence[CosignatureVerifier],
    min_witnesses: int,
) -> list[NoteVerifier]:
    verifiers = [log_verifiers] if isinstance(log_verifiers, NoteVerifier) else list(log_verifiers)
    if not verifiers:
        raise ValueError("no log key given")
    if isinstance(min_witnesses, bool) or not isinstance(min_witnesses, int):
        raise ValueError("min_witnesses must be an integer")
    if not 0 <= min_witnesses <= len(witness_verifiers):
        raise ValueError(
            f"policy needs {min_witnesses} of {len(witness_verifiers)} witnesses: impossible"
        )
    return verifiers


def verify_certificate(
    certificate: MileageCertificate | str | bytes,
    log_verifiers: NoteVerifier | Sequence[NoteVerifier],
    witness_verifiers: Sequence[CosignatureVerifier],
    min_witnesses: int,
    *,
    expected_device_id: str | None = None,
    expected_vin: str | None = None,
) -> VerifiedCertificate:
    """Verify ``certificate`` (parsed, or its JSON text) against the given public keys.

    ``log_verifiers`` is the log's key (several when the log's key was rotated);
    ``min_witnesses`` of the distinct ``witness_verifiers`` must have cosigned the checkpoint;
    cosignature lines of other keys are ignored. ``expected_device_id`` / ``expected_vin``:
    what the caller expects the certificate to be about (items ``device_id`` / ``vin``).
    Returns only if every check in the module docstring holds; otherwise raises
    :class:`CertificateError` naming the first failing item. Raises ``ValueError`` for an
    impossible policy (``min_witnesses`` negative or larger than the number of witness keys),
    before reading the certificate.
    """
    verifiers = _check_policy(log_verifiers, witness_verifiers, min_witnesses)
    if isinstance(certificate, MileageCertificate):
        head = CertificateHead(
            device_id=certificate.device_id,
            from_ms=certificate.from_ms,
            to_ms=certificate.to_ms,
            checkpoint=certificate.checkpoint,
            device_keys=certificate.device_keys,
            summary=certificate.summary,
            message_count=len(certificate.messages),
        )
        items: Iterable[CertifiedMessage] = certificate.messages
    else:
        data = (
            certificate.encode("utf-8", "surrogatepass")
            if isinstance(certificate, str)
            else certificate
        )
        stream = io.BytesIO(data)
        head = read_head(stream)
        stream.seek(0)
        items = iter_messages(stream)
    kept: list[CertifiedMessage] = []
    messages: list[TelemetryMessage] = []
    report = _verify(
        head, items, verifiers, witness_verifiers, min_witnesses, expected_device_id,
        expected_vin, kept, messages,
    )  # fmt: skip
    cert = (
        certificate
        if isinstance(certificate, MileageCertificate)
        else MileageCertificate(
            device_id=head.device_id,
            from_ms=head.from_ms,
            to_ms=head.to_ms,
            checkpoint=head.checkpoint,
            device_keys=head.device_keys,
            messages=tuple(kept),
            summary=head.summary,
        )
    )
    fields_of = {f.name: getattr(report, f.name) for f in fields(VerificationReport)}
    return VerifiedCertificate(**fields_of, certificate=cert, messages=tuple(messages))


def verify_certificate_file(
    stream: IO[bytes],
    log_verifiers: NoteVerifier | Sequence[NoteVerifier],
    witness_verifiers: Sequence[CosignatureVerifier],
    min_witnesses: int,
    *,
    expected_device_id: str | None = None,
    expected_vin: str | None = None,
) -> VerificationReport:
    """:func:`verify_certificate` of the certificate in a seekable binary ``stream``.

    Reads the stream twice (validation, then the messages) and holds one message at a time:
    memory stays bounded by the limits of :mod:`chain.certificate_stream`, whatever the
    number of messages, and time is linear in the file.
    """
    verifiers = _check_policy(log_verifiers, witness_verifiers, min_witnesses)
    start = stream.tell()
    head = read_head(stream)
    stream.seek(start)
    return _verify(
        head, iter_messages(stream), verifiers, witness_verifiers, min_witnesses,
        expected_device_id, expected_vin, None, None,
    )  # fmt: skip


def _verify(
    head: CertificateHead,
    items: Iterable[CertifiedMessage],
    verifiers: Sequence[NoteVerifier],
    witness_verifiers: Sequence[CosignatureVerifier],
    min_witnesses: int,
    expected_device_id: str | None,
    expected_vin: str | None,
    kept: list[CertifiedMessage] | None,
    messages: list[TelemetryMessage] | None,
) -> VerificationReport:
    """Every check after the format's, in the documented order."""
    if expected_device_id is not None and head.device_id != expected_device_id:
        raise CertificateError(
            "device_id",
            f"the certificate is for device {head.device_id}, expected {expected_device_id}",
        )
    signed, log_verifier = _open_checkpoint(head.checkpoint, verifiers)
    try:
        cosigned = verify_cosignatures(
            head.checkpoint, log_verifier, witness_verifiers, min_witnesses
        )
    except ChainError as exc:
        raise CertificateError("cosignatures", str(exc)) from None
    checkpoint = signed.checkpoint
    records = _check_device_keys(head.device_id, head.device_keys, checkpoint)
    if expected_vin is not None:
        _check_vin(records, head.device_keys, expected_vin)
    checker = _MessageChecker(head, checkpoint, records)
    for i, item in enumerate(items):
        message = checker.add(i, item)
        if kept is not None and messages is not None:
            kept.append(item)
            messages.append(message)
    checker.finish()
    return VerificationReport(
        device_id=head.device_id,
        from_ms=head.from_ms,
        to_ms=head.to_ms,
        checkpoint=checkpoint,
        log_key_name=log_verifier.name,
        cosignatures=cosigned.cosignatures,
        missing_witnesses=cosigned.missing,
        min_witnesses=min_witnesses,
        device_keys=tuple(records),
        summary=head.summary,
        first_ts_ms=checker.first_ts,
        last_ts_ms=checker.last_ts,
    )


def _open_checkpoint(
    text: str, verifiers: Sequence[NoteVerifier]
) -> tuple[SignedCheckpoint, NoteVerifier]:
    """Parse the note and check the log's signature; return it and the key that verified."""
    try:
        signed = SignedCheckpoint.from_text(text)
    except ChainError as exc:
        raise CertificateError("checkpoint", f"malformed: {exc}") from None
    known = {(v.name, v.key_id): v for v in verifiers}
    body = signed.note.text.encode("utf-8")
    trusted: NoteVerifier | None = None
    for sig in signed.note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # a witness's cosignature, or a key we were not given
        if not verifier.verify(body, sig.signature):
            raise CertificateError(
                "checkpoint",
                f"the signature of log key {sig.name} ({sig.key_id:08x}) does not verify "
                f"over the checkpoint body",
            )
        trusted = trusted or verifier
    if trusted is None:
        given = ", ".join(f"{v.name} ({v.key_id:08x})" for v in verifiers)
        present = ", ".join(f"{s.name} ({s.key_id:08x})" for s in signed.note.signatures)
        raise CertificateError(
            "checkpoint", f"not signed by the log key {given}; signature lines: {present}"
        )
    return signed, trusted


def _check_device_keys(
    device_id: str, items: Sequence[CertifiedKeyRecord], cp: Checkpoint
) -> list[DeviceKey]:
    records: list[DeviceKey] = []
    previous_leaf: int | None = None
    for i, item in enumerate(items):
        name = f"device_keys[{i}]"
        try:
            record = parse_device_key_entry(item.entry)
        except ChainError as exc:
            raise CertificateError(name, str(exc)) from None
        if record.device_id != device_id:
            raise CertificateError(
                name, f"a record of device {record.device_id}, the certificate is for {device_id}"
            )
        if record.kind is not DeviceKind.VEHICLE:
            raise CertificateError(name, f"a key of a {record.kind}; mileage needs a vehicle")
        if previous_leaf is not None and item.leaf_index <= previous_leaf:
            raise CertificateError(
                name,
                f"leaf index {item.leaf_index} is not after the previous record's "
                f"{previous_leaf}: key records must be listed in log order",
            )
        try:
            check_inclusion(item.entry, item.leaf_index, item.inclusion_proof, cp)
        except ChainError as exc:
            raise CertificateError(
                name, f"inclusion proof of leaf {item.leaf_index}: {exc}"
            ) from None
        previous_leaf = item.leaf_index
        records.append(record)
    return records


def _check_vin(
    records: Sequence[DeviceKey], items: Sequence[CertifiedKeyRecord], expected: str
) -> None:
    for i, (record, item) in enumerate(zip(records, items, strict=True)):
        if record.vin != expected:
            stated = f"VIN {record.vin}" if record.vin else "no VIN"
            raise CertificateError(
                "vin",
                f"device_keys[{i}] (leaf {item.leaf_index}, key {record.key_id}) states "
                f"{stated}, expected {expected}",
            )


class _Tally(Generic[_T]):
    """Compares recomputed gaps or anomalies with the stated ones as they are found."""

    def __init__(self, stated: tuple[_T, ...]) -> None:
        self.stated = stated
        self.count = 0
        self.first_difference: tuple[int, _T] | None = None

    def append(self, item: _T) -> None:
        if self.first_difference is None and (
            self.count >= len(self.stated) or self.stated[self.count] != item
        ):
            self.first_difference = (self.count, item)
        self.count += 1

    def difference(self) -> str | None:
        """None if equal; else what the first difference is."""
        stated, count = self.stated, self.count
        if self.first_difference is None:
            if count == len(stated):
                return None
            return (
                f"stated {len(stated)}, recomputed {count}: "
                f"[{count}] {_render(stated[count])} is not in the messages"
            )
        i, item = self.first_difference
        if i < len(stated):
            return f"[{i}] stated {_render(stated[i])}, recomputed {_render(item)}"
        return f"stated {len(stated)}, recomputed {count}: {_render(item)} is missing"


class _MessageChecker:
    """Checks messages one at a time, keeping only what the next check needs."""

    def __init__(self, head: CertificateHead, cp: Checkpoint, records: Sequence[DeviceKey]) -> None:
        self.head = head
        self.cp = cp
        self.keys = effective_keys(records)
        self.revoked_at_leaf = revocation_leaves(
            zip(records, (k.leaf_index for k in head.device_keys), strict=True)
        )
        self.stated_anomalies = set(head.summary.anomalies)
        self.gaps = _Tally(head.summary.gaps)
        self.anomalies = _Tally(head.summary.anomalies)
        self.summary = SummaryBuilder(self.gaps, self.anomalies)
        self.previous: TelemetryMessage | None = None
        self.chain_failure: CertificateError | None = None
        self.first_ts = 2**63
        self.last_ts = -1

    def add(self, i: int, item: CertifiedMessage) -> TelemetryMessage:
        name, head = f"messages[{i}]", self.head
        try:
            jws = CompactJws.from_bytes(item.raw)
        except TelemetryError as exc:
            raise CertificateError(name, str(exc)) from None
        if jws.header.kid != head.device_id:
            raise CertificateError(
                name,
                f"bad_header: kid {jws.header.kid!r:.66} is not the certificate's device "
                f"{head.device_id!r}",
            )
        key = signing_key(jws, self.keys)
        if key is None:
            raise CertificateError(
                name,
                f"bad_signature: the signature verifies under none of the {len(self.keys)} "
                f"certified keys of {head.device_id}",
            )
        try:
            message = TelemetryMessage.from_jws(jws)
        except TelemetryError as exc:
            raise CertificateError(name, str(exc)) from None
        seq, ts = message.telemetry.seq, message.telemetry.ts
        if message.telemetry.kind is not DeviceKind.VEHICLE:
            raise CertificateError(name, f"seq {seq}: schema: an RSU message has no odometer")
        try:
            key.check_valid_at(ts)
        except TelemetryError as exc:
            raise CertificateError(name, f"seq {seq}: {exc}") from None
        if not head.from_ms <= ts < head.to_ms:
            raise CertificateError(
                name,
                f"seq {seq}: ts {ts} is outside the certificate's range "
                f"[{head.from_ms}, {head.to_ms})",
            )
        try:
            check_inclusion(item.raw, item.leaf_index, item.inclusion_proof, self.cp)
        except ChainError as exc:
            raise CertificateError(
                name, f"seq {seq}: inclusion proof of leaf {item.leaf_index}: {exc}"
            ) from None
        extra: list[Anomaly] = []
        previous = self.previous
        if previous is not None:
            before = previous.telemetry.seq
            if seq == before:
                raise CertificateError(name, f"seq {seq} repeats messages[{i - 1}]")
            if seq < before:
                raise CertificateError(
                    name, f"seq {seq} follows seq {before}: messages must be sorted by seq"
                )
            broken = chain_anomaly(previous, message)
            if broken is not None:
                if broken not in self.stated_anomalies and self.chain_failure is None:
                    # Reported after every message is checked, as a broken link always was.
                    self.chain_failure = CertificateError(
                        f"chain[seq {before}->{seq}]", broken.detail
                    )
                extra.append(broken)
        late = revocation_anomaly(
            message, item.leaf_index, key, self.revoked_at_leaf.get(key.public_key.raw)
        )
        if late is not None:
            extra.append(late)
        self.summary.add(message.telemetry, extra)
        self.previous = message
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        return message

    def finish(self) -> None:
        """The deferred chain failure, then the summary, field by field in declaration order."""
        if self.chain_failure is not None:
            raise self.chain_failure
        if self.previous is None:
            raise CertificateError("messages", "expected at least one element")
        recomputed = self.summary.scalars()
        stated = self.head.summary
        for field in fields(MileageSummary):
            if field.name == "gaps":
                detail = self.gaps.difference()
            elif field.name == "anomalies":
                detail = self.anomalies.difference()
            else:
                mine, theirs = getattr(stated, field.name), recomputed[field.name]
                detail = None if mine == theirs else f"stated {mine}, recomputed {theirs}"
            if detail is not None:
                raise CertificateError(f"summary.{field.name}", detail)


def _render(value: Gap | Anomaly) -> str:
    if isinstance(value, Gap):
        return json.dumps({"after_seq": value.after_seq, "before_seq": value.before_seq})
    return json.dumps({"seq": value.seq, "kind": str(value.kind), "detail": value.detail})
