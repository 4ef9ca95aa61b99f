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
                       unsupported ``format`` version, bad base64
``checkpoint``         the note or checkpoint body is malformed, no signature of a given log
                       key, or a log key's signature does not verify
``cosignatures``       a given witness's cosignature does not verify, or fewer than
                       ``min_witnesses`` of the given witnesses cosigned (says who did, who not)
``device_keys[i]``     not a canonical device key entry, another device's or an RSU's record,
                       not in log order, or its inclusion proof fails
``messages[i]``        JWS malformed, ``kid`` not the certificate's device, signature verifies
                       under no certified key, payload schema, RSU message, key not valid at
                       ``ts`` (``revoked_key``), ``ts`` outside ``[from_ms, to_ms)``, inclusion
                       proof fails, seq not after the previous message's (unsorted or repeated)
``chain[seq a->b]``    for consecutive seqs ``a``, ``b = a + 1``: ``b``'s ``prev`` is not the
                       hash of ``a``
``summary.<field>``    the stated summary differs from the one recomputed from the messages
=====================  ==========================================================================

Key validity: records are read in log order; for each public key the latest record decides
``valid_from_ms``, and a revocation is final (a later record of the same key never moves
``revoked_at_ms`` later). A message is accepted under the key whose signature verifies if that
key is valid at the message's ``ts``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from itertools import pairwise

from chain.certificate import MileageCertificate, check_inclusion
from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.cosignature import Cosignature, CosignatureVerifier, verify_cosignatures
from chain.device_keys import DeviceKey
from chain.entries import parse_device_key_entry
from chain.errors import CertificateError, ChainError, TelemetryError
from chain.jws import CompactJws
from chain.mileage import Anomaly, Gap, MileageSummary, summarize
from chain.note import NoteVerifier
from chain.telemetry import DeviceKind, TelemetryMessage, chain_hash, check_chain_link

__all__ = ["VerifiedCertificate", "verify_certificate"]


@dataclass(frozen=True)
class VerifiedCertificate:
    """A certificate that passed every check, with what the checks established."""

    certificate: MileageCertificate
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
    messages: tuple[TelemetryMessage, ...]
    """The verified messages, in seq order."""

    @property
    def summary(self) -> MileageSummary:
        """The summary: stated by the certificate and equal to the recomputed one."""
        return self.certificate.summary

    @property
    def device_id(self) -> str:
        return self.certificate.device_id

    @property
    def from_ms(self) -> int:
        return self.certificate.from_ms

    @property
    def to_ms(self) -> int:
        return self.certificate.to_ms

    @property
    def witnesses(self) -> tuple[str, ...]:
        """Names of the given witnesses that cosigned."""
        return tuple(c.name for c in self.cosignatures)

    @property
    def first_ts_ms(self) -> int:
        """Earliest message time: how much of the range the messages actually cover."""
        return min(m.telemetry.ts for m in self.messages)

    @property
    def last_ts_ms(self) -> int:
        """Latest message time."""
        return max(m.telemetry.ts for m in self.messages)


def verify_certificate(
    certificate: MileageCertificate | str | bytes,
    log_verifiers: NoteVerifier | Sequence[NoteVerifier],
    witness_verifiers: Sequence[CosignatureVerifier],
    min_witnesses: int,
) -> VerifiedCertificate:
    """Verify ``certificate`` (parsed, or its JSON text) against the given public keys.

    ``log_verifiers`` is the log's key (several when the log's key was rotated);
    ``min_witnesses`` of the distinct ``witness_verifiers`` must have cosigned the checkpoint;
    cosignature lines of other keys are ignored. Returns only if every check in the module
    docstring holds; otherwise raises :class:`CertificateError` naming the first failing item.
    Raises ``ValueError`` for an impossible policy (``min_witnesses`` negative or larger than
    the number of witness keys), before reading the certificate.
    """
    verifiers = [log_verifiers] if isinstance(log_verifiers, NoteVerifier) else list(log_verifiers)
    if not verifiers:
        raise ValueError("no log key given")
    if isinstance(min_witnesses, bool) or not isinstance(min_witnesses, int):
        raise ValueError("min_witnesses must be an integer")
    if not 0 <= min_witnesses <= len(witness_verifiers):
        raise ValueError(
            f"policy needs {min_witnesses} of {len(witness_verifiers)} witnesses: impossible"
        )
    cert = (
        certificate
        if isinstance(certificate, MileageCertificate)
        else MileageCertificate.from_json(certificate)
    )
    signed, log_verifier = _open_checkpoint(cert.checkpoint, verifiers)
    try:
        cosigned = verify_cosignatures(
            cert.checkpoint, log_verifier, witness_verifiers, min_witnesses
        )
    except ChainError as exc:
        raise CertificateError("cosignatures", str(exc)) from None
    checkpoint = signed.checkpoint
    records = _check_device_keys(cert, checkpoint)
    messages = _check_messages(cert, checkpoint, records)
    _check_chain(messages)
    _check_summary(cert.summary, summarize([m.telemetry for m in messages]))
    return VerifiedCertificate(
        certificate=cert,
        checkpoint=checkpoint,
        log_key_name=log_verifier.name,
        cosignatures=cosigned.cosignatures,
        missing_witnesses=cosigned.missing,
        min_witnesses=min_witnesses,
        device_keys=tuple(records),
        messages=tuple(messages),
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


def _check_device_keys(cert: MileageCertificate, cp: Checkpoint) -> list[DeviceKey]:
    records: list[DeviceKey] = []
    previous_leaf: int | None = None
    for i, item in enumerate(cert.device_keys):
        name = f"device_keys[{i}]"
        try:
            record = parse_device_key_entry(item.entry)
        except ChainError as exc:
            raise CertificateError(name, str(exc)) from None
        if record.device_id != cert.device_id:
            raise CertificateError(
                name,
                f"a record of device {record.device_id}, the certificate is for {cert.device_id}",
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


def _effective_keys(records: Sequence[DeviceKey]) -> list[DeviceKey]:
    """One record per public key: the latest, with the earliest revocation ever recorded."""
    by_key: dict[bytes, DeviceKey] = {}
    for record in records:
        previous = by_key.get(record.public_key.raw)
        if previous is not None and previous.revoked_at_ms is not None:
            record = record.revoke(previous.revoked_at_ms)
        by_key[record.public_key.raw] = record
    return list(by_key.values())


def _check_messages(
    cert: MileageCertificate, cp: Checkpoint, records: Sequence[DeviceKey]
) -> list[TelemetryMessage]:
    keys = _effective_keys(records)
    verified: list[TelemetryMessage] = []
    for i, item in enumerate(cert.messages):
        name = f"messages[{i}]"
        try:
            jws = CompactJws.from_bytes(item.raw)
        except TelemetryError as exc:
            raise CertificateError(name, str(exc)) from None
        if jws.header.kid != cert.device_id:
            raise CertificateError(
                name,
                f"bad_header: kid {jws.header.kid!r:.66} is not the certificate's device "
                f"{cert.device_id!r}",
            )
        key = next(
            (k for k in keys if k.public_key.is_valid_signature(jws.signature, jws.signing_input)),
            None,
        )
        if key is None:
            raise CertificateError(
                name,
                f"bad_signature: the signature verifies under none of the {len(keys)} "
                f"certified keys of {cert.device_id}",
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
        if not cert.from_ms <= ts < cert.to_ms:
            raise CertificateError(
                name,
                f"seq {seq}: ts {ts} is outside the certificate's range "
                f"[{cert.from_ms}, {cert.to_ms})",
            )
        try:
            check_inclusion(item.raw, item.leaf_index, item.inclusion_proof, cp)
        except ChainError as exc:
            raise CertificateError(
                name, f"seq {seq}: inclusion proof of leaf {item.leaf_index}: {exc}"
            ) from None
        if verified:
            before = verified[-1].telemetry.seq
            if seq == before:
                raise CertificateError(name, f"seq {seq} repeats messages[{i - 1}]")
            if seq < before:
                raise CertificateError(
                    name, f"seq {seq} follows seq {before}: messages must be sorted by seq"
                )
        verified.append(message)
    return verified


def _check_chain(messages: Sequence[TelemetryMessage]) -> None:
    """Check ``prev`` wherever two certified messages have consecutive seqs."""
    for previous, current in pairwise(messages):
        a, b = previous.telemetry.seq, current.telemetry.seq
        if b != a + 1:
            continue  # a gap: the summary states it, there is no link to check
        try:
            check_chain_link(previous, current)
        except TelemetryError:
            raise CertificateError(
                f"chain[seq {a}->{b}]",
                f"prev of seq {b} is {current.telemetry.prev!r}, but the hash of seq {a} is "
                f"{chain_hash(previous.raw)!r}",
            ) from None


def _render(value: Gap | Anomaly) -> str:
    if isinstance(value, Gap):
        return json.dumps({"after_seq": value.after_seq, "before_seq": value.before_seq})
    return json.dumps({"seq": value.seq, "kind": str(value.kind), "detail": value.detail})


def _list_difference(stated: Sequence[Gap | Anomaly], recomputed: Sequence[Gap | Anomaly]) -> str:
    for i, (s, r) in enumerate(zip(stated, recomputed, strict=False)):
        if s != r:
            return f"[{i}] stated {_render(s)}, recomputed {_render(r)}"
    common = min(len(stated), len(recomputed))
    if len(stated) > common:
        return (
            f"stated {len(stated)}, recomputed {len(recomputed)}: "
            f"[{common}] {_render(stated[common])} is not in the messages"
        )
    return (
        f"stated {len(stated)}, recomputed {len(recomputed)}: "
        f"{_render(recomputed[common])} is missing"
    )


def _check_summary(stated: MileageSummary, recomputed: MileageSummary) -> None:
    """Compare field by field, in declaration order; the first difference fails."""
    for field in fields(MileageSummary):
        mine, theirs = getattr(stated, field.name), getattr(recomputed, field.name)
        if mine == theirs:
            continue
        if isinstance(mine, tuple):
            detail = _list_difference(mine, theirs)
        else:
            detail = f"stated {mine}, recomputed {theirs}"
        raise CertificateError(f"summary.{field.name}", detail)
