"""Verification steps on a certificate's head, before any message: whom to trust, and for what.

The log's signature on the checkpoint (:func:`open_checkpoint`), the certified device key
records (:func:`check_device_keys`) and the VIN they state (:func:`check_vin`). The order of all
steps and what each item's failure means are in :mod:`chain.certificate_verify`.
"""

from __future__ import annotations

from collections.abc import Sequence

from chain.certificate_checks import check_inclusion
from chain.certificate_parts import CertifiedKeyRecord
from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.device_keys import DeviceKey
from chain.entries import parse_device_key_entry
from chain.errors import CertificateError, ChainError
from chain.note_signers import NoteVerifier
from chain.telemetry import DeviceKind

__all__ = [
    "check_device_keys",
    "check_vin",
    "open_checkpoint",
]


def open_checkpoint(
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


def check_device_keys(
    device_id: str, items: Sequence[CertifiedKeyRecord], cp: Checkpoint
) -> list[DeviceKey]:
    """Check each key record: this device's, a vehicle's, in log order, in the tree."""
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


def check_vin(
    records: Sequence[DeviceKey], items: Sequence[CertifiedKeyRecord], expected: str
) -> None:
    """Every key record states the VIN ``expected``."""
    for i, (record, item) in enumerate(zip(records, items, strict=True)):
        if record.vin != expected:
            stated = f"VIN {record.vin}" if record.vin else "no VIN"
            raise CertificateError(
                "vin",
                f"device_keys[{i}] (leaf {item.leaf_index}, key {record.key_id}) states "
                f"{stated}, expected {expected}",
            )
