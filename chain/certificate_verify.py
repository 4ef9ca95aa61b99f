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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import IO

from chain.certificate import MileageCertificate
from chain.certificate_parts import CertifiedMessage
from chain.certificate_signers import KnownSigners
from chain.certificate_stream import CertificateHead, iter_messages, read_head
from chain.certificate_verify_head import check_device_keys, check_vin, open_checkpoint
from chain.certificate_verify_messages import MessageChecker
from chain.checkpoint import Checkpoint
from chain.cosignature import Cosignature, CosignatureVerifier, verify_cosignatures
from chain.device_keys import DeviceKey
from chain.errors import CertificateError, ChainError
from chain.mileage import MileageSummary
from chain.note_signers import NoteVerifier
from chain.telemetry import TelemetryMessage

__all__ = [
    "VehicleIdentity",
    "VerificationReport",
    "VerifiedCertificate",
    "verify_certificate",
    "verify_certificate_file",
]


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
    known_signers: KnownSigners | None = None,
    parsed_messages: Sequence[TelemetryMessage] = (),
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

    ``known_signers``: who signed the messages, found beforehand by
    :func:`chain.certificate_signers.find_signers` (e.g. in another process), trusted instead
    of checking those signatures again; only a caller that computed it may pass it.
    ``parsed_messages``: the messages as ``chain.telemetry.parse`` already parsed them, in the
    certificate's order (``build_certificate(parsed_out=...)``), used for the same bytes only.
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
        expected_vin, kept, messages, known_signers, parsed_messages,
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
    known_signers: KnownSigners | None = None,
    parsed_messages: Sequence[TelemetryMessage] = (),
) -> VerificationReport:
    """Every check after the format's, in the documented order."""
    if expected_device_id is not None and head.device_id != expected_device_id:
        raise CertificateError(
            "device_id",
            f"the certificate is for device {head.device_id}, expected {expected_device_id}",
        )
    signed, log_verifier = open_checkpoint(head.checkpoint, verifiers)
    try:
        cosigned = verify_cosignatures(
            head.checkpoint, log_verifier, witness_verifiers, min_witnesses
        )
    except ChainError as exc:
        raise CertificateError("cosignatures", str(exc)) from None
    checkpoint = signed.checkpoint
    records = check_device_keys(head.device_id, head.device_keys, checkpoint)
    if expected_vin is not None:
        check_vin(records, head.device_keys, expected_vin)
    checker = MessageChecker(head, checkpoint, records, known_signers, parsed_messages)
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
