"""Building a mileage certificate from the log: what the ledger hands an insurer.

:func:`build_certificate` gathers a device's messages and key records with their inclusion
proofs to one cosigned checkpoint and states the summary the verifier will recompute
(:mod:`chain.certificate_checks` holds the rules both apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise

from chain.certificate import MileageCertificate
from chain.certificate_checks import (
    chain_anomaly,
    check_inclusion,
    effective_keys,
    revocation_anomaly,
    revocation_leaves,
    signing_key,
)
from chain.certificate_parts import CertifiedKeyRecord, CertifiedMessage
from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.device_keys import DeviceKey
from chain.entries import parse_device_key_entry
from chain.errors import CertificateError, ChainError, TelemetryError
from chain.mileage import Anomaly, summarize
from chain.telemetry import DeviceKind, TelemetryMessage, parse

__all__ = [
    "ProofSource",
    "build_certificate",
]

ProofSource = Callable[[int, int], Sequence[bytes]]
"""``(leaf_index, tree_size) -> inclusion proof``, e.g. ``InMemoryMerkleLog.inclusion_proof``."""


def _proven(
    item: str,
    entry: bytes,
    leaf_index: int,
    proof_source: ProofSource,
    cp: Checkpoint,
    checked: bool,
) -> tuple[bytes, ...]:
    try:
        proof = tuple(proof_source(leaf_index, cp.size))
        if checked:
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
    *,
    checked: bool = True,
    parsed_out: list[TelemetryMessage] | None = None,
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

    ``checked=False`` leaves the signatures and the inclusion proofs to that verification,
    which checks each of them anyway: the builder then verifies a message's signature only
    where the summary depends on its signer (a message at or after a revocation record), so
    a certificate costs one Ed25519 verification and one proof check per message, not two.
    ``parsed_out``, if given, receives the messages as parsed, in the certificate's order (for
    ``verify_certificate(parsed_messages=...)``: each is parsed once).
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
            _proven(f"messages[{i}]", message.raw, leaf_index, proof_source, cp, checked),
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
            entry,
            leaf_index,
            _proven(f"device_keys[{i}]", entry, leaf_index, proof_source, cp, checked),
        )
        for i, (entry, leaf_index) in enumerate(keys)
    )
    if parsed_out is not None:
        parsed_out.extend(message for message, _ in parsed)
    return MileageCertificate(
        device_id=device_id,
        from_ms=from_ms,
        to_ms=to_ms,
        checkpoint=signed_checkpoint_text,
        device_keys=certified_keys,
        messages=certified_messages,
        summary=summarize(
            [message.telemetry for message, _ in parsed],
            _device_anomalies(parsed, records, checked),
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
    parsed: Sequence[tuple[TelemetryMessage, int]],
    records: Sequence[tuple[DeviceKey, int]],
    checked: bool,
) -> dict[int, list[Anomaly]]:
    """``chain_broken`` and ``sequenced_after_revocation``, by seq, as the verifier finds them.

    Unless ``checked``, a signature is verified only where the signer matters: at or after the
    first revocation record's leaf (before it, no message can be sequenced after a revocation).
    """
    keys = effective_keys(record for record, _ in records)
    revoked_at_leaf = revocation_leaves(records)
    first_revocation = min(revoked_at_leaf.values(), default=None)
    found: dict[int, list[Anomaly]] = {}
    previous: TelemetryMessage | None = None
    for i, (message, leaf_index) in enumerate(parsed):
        late: Anomaly | None = None
        if checked or (first_revocation is not None and leaf_index >= first_revocation):
            key = signing_key(message.jws, keys)
            if key is None:
                raise CertificateError(
                    f"messages[{i}]",
                    f"seq {message.telemetry.seq} (leaf {leaf_index}): bad_signature: the "
                    f"signature verifies under none of the {len(keys)} key records",
                )
            late = revocation_anomaly(
                message, leaf_index, key, revoked_at_leaf.get(key.public_key.raw)
            )
        chained = None if previous is None else chain_anomaly(previous, message)
        here = [anomaly for anomaly in (chained, late) if anomaly is not None]
        if here:
            found[message.telemetry.seq] = here
        previous = message
    return found
