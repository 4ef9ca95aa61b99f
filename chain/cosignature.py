"""Witness cosignatures: C2SP tlog-cosignature, Ed25519 ``cosignature/v1``.

Spec: https://c2sp.org/tlog-cosignature (v1.0.x; the ML-DSA-44 ``subtree/v1`` type of later
revisions is not implemented). A cosignature is a note signature line on the checkpoint note::

    — <witness name> base64(key ID || u64 big-endian timestamp || 64-byte Ed25519 signature)

* key ID = ``SHA-256(name || "\\n" || 0x04 || 32-byte public key)[:4]`` (type byte 0x04, so the
  witness's vkey is ``name+hexid+base64(0x04 || public key)``);
* signed message = ``"cosignature/v1\\n" + "time <timestamp>\\n"`` + the whole checkpoint body
  (all lines including extension lines and the final newline, no signature lines);
* timestamp = POSIX seconds when the cosignature was made, at most 2^63 - 1.

It states: as of that time, the largest consistent tree the witness has seen for that origin
has that root hash. A client policy "k of these n witnesses" is :func:`verify_cosignatures`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from chain.checkpoint import Checkpoint, SignedCheckpoint
from chain.errors import EncodingError, SignatureError
from chain.note import NoteSignature, verify_signatures
from chain.note_keys import SignerKey, VerifierKey, check_key_name
from chain.note_signers import NamedSigner, NamedVerifier, NoteVerifier

__all__ = [
    "COSIGNATURE_HEADER",
    "MAX_TIMESTAMP",
    "SIGNATURE_TYPE_COSIGNATURE_V1",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "CosignedCheckpoint",
    "cosign",
    "cosigned_message",
    "verify_cosignatures",
]

SIGNATURE_TYPE_COSIGNATURE_V1 = 0x04
SIGNATURE_TYPE_ED25519 = 0x01
COSIGNATURE_HEADER = b"cosignature/v1\n"
MAX_TIMESTAMP = (1 << 63) - 1
_TIMESTAMP_BYTES = 8
_ED25519_SIG_BYTES = 64


def _check_timestamp(timestamp: int) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise EncodingError("cosignature: timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise EncodingError(f"cosignature: timestamp {timestamp} out of range 0..2^63-1")
    return timestamp


def cosigned_message(checkpoint_body: str | bytes | Checkpoint, timestamp: int) -> bytes:
    """The exact bytes an Ed25519 cosignature/v1 signs for ``checkpoint_body`` at ``timestamp``."""
    if isinstance(checkpoint_body, Checkpoint):
        body = checkpoint_body.to_text().encode("utf-8")
    elif isinstance(checkpoint_body, str):
        body = checkpoint_body.encode("utf-8")
    else:
        body = checkpoint_body
    return COSIGNATURE_HEADER + b"time %d\n" % _check_timestamp(timestamp) + body


@dataclass(frozen=True)
class Cosignature:
    """A parsed cosignature line: witness name, key ID, timestamp and Ed25519 signature."""

    name: str
    key_id: int
    timestamp: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        _check_timestamp(self.timestamp)
        if len(self.signature) != _ED25519_SIG_BYTES:
            raise EncodingError(f"cosignature of {self.name}: signature must be 64 bytes")

    @classmethod
    def from_note_signature(cls, sig: NoteSignature) -> Cosignature:
        if len(sig.signature) != _TIMESTAMP_BYTES + _ED25519_SIG_BYTES:
            raise EncodingError(
                f"cosignature of {sig.name}: expected 8-byte timestamp + 64-byte signature"
            )
        timestamp = int.from_bytes(sig.signature[:_TIMESTAMP_BYTES], "big")
        return cls(sig.name, sig.key_id, timestamp, sig.signature[_TIMESTAMP_BYTES:])

    def to_note_signature(self) -> NoteSignature:
        raw = self.timestamp.to_bytes(_TIMESTAMP_BYTES, "big") + self.signature
        return NoteSignature(self.name, self.key_id, raw)

    @classmethod
    def from_line(cls, line: str) -> Cosignature:
        """Parse one ``"— name base64"`` line (final newline optional)."""
        return cls.from_note_signature(NoteSignature.from_line(line))

    def to_line(self) -> str:
        """The note signature line, newline included."""
        return self.to_note_signature().to_line()


def _public_key_from_vkey(text: str) -> tuple[str, bytes]:
    key = VerifierKey.from_text(text)
    if key.signature_type != SIGNATURE_TYPE_COSIGNATURE_V1:
        raise EncodingError(
            f"vkey {key.name}: signature type 0x{key.signature_type:02x} is not an Ed25519 "
            f"cosignature/v1 key (0x04)"
        )
    if len(key.public_key) != 32:
        raise EncodingError(f"vkey {key.name}: an Ed25519 public key is 32 bytes")
    return key.name, key.public_key


class CosignatureVerifier(NamedVerifier):
    """Verifies one witness's cosignature/v1 lines; usable wherever a NoteVerifier is."""

    signature_type = SIGNATURE_TYPE_COSIGNATURE_V1

    @classmethod
    def from_vkey(cls, text: str) -> CosignatureVerifier:
        """Parse a witness vkey of type 0x04 (``name+hexid+base64(0x04 || key)``)."""
        return cls(*_public_key_from_vkey(text))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """NoteVerifier: ``message`` is the checkpoint body, ``signature`` timestamp || sig."""
        if len(signature) != _TIMESTAMP_BYTES + _ED25519_SIG_BYTES:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_BYTES], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        signed = cosigned_message(message, timestamp)
        try:
            nacl.signing.VerifyKey(self._public_key).verify(signed, signature[_TIMESTAMP_BYTES:])
        except nacl.exceptions.BadSignatureError:
            return False
        return True


def _now() -> int:
    return int(time.time())


class CosignatureSigner(NamedSigner):
    """A witness's signing key for cosignature/v1. Holds a secret: never logged or printed.

    ``clock`` returns POSIX seconds; it is a parameter so tests (and replays) are exact.
    """

    signature_type = SIGNATURE_TYPE_COSIGNATURE_V1

    def __init__(self, name: str, seed: bytes, *, clock: Callable[[], int] = _now) -> None:
        super().__init__(name, seed)
        self._clock = clock

    @classmethod
    def generate(cls, name: str, *, clock: Callable[[], int] = _now) -> CosignatureSigner:
        return cls(name, bytes(nacl.signing.SigningKey.generate()), clock=clock)

    @classmethod
    def from_skey(cls, text: str, *, clock: Callable[[], int] = _now) -> CosignatureSigner:
        """Parse a signer key of type 0x04, or a plain Ed25519 (0x01) note key.

        A 0x01 key is accepted as transparency-dev/formats does; its cosignatures still use
        the 0x04 key ID. Different ``name``\\ s must never share one key (the v1 message does
        not commit to the name).
        """
        key = SignerKey.from_text(text)
        if key.signature_type not in (SIGNATURE_TYPE_COSIGNATURE_V1, SIGNATURE_TYPE_ED25519):
            raise EncodingError(
                f"skey {key.name}: signature type 0x{key.signature_type:02x} cannot cosign"
            )
        return cls(key.name, key.seed, clock=clock)

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self._name, self._public_key)

    def now(self) -> int:
        """The signer's clock: the timestamp :meth:`sign` would use now."""
        return self._clock()

    def sign(self, message: bytes) -> bytes:
        """NoteSigner: cosign the checkpoint body ``message`` at the clock's current time."""
        return self.sign_at(message, self._clock())

    def sign_at(self, message: bytes, timestamp: int) -> bytes:
        """``timestamp || Ed25519(cosigned_message(message, timestamp))``."""
        signed = cosigned_message(message, timestamp)
        return timestamp.to_bytes(_TIMESTAMP_BYTES, "big") + bytes(
            self._signing_key.sign(signed).signature
        )


def cosign(
    checkpoint: Checkpoint, signer: CosignatureSigner, timestamp: int | None = None
) -> Cosignature:
    """Cosign ``checkpoint`` (at ``timestamp``, or the signer's clock). Checks nothing else:
    use :class:`chain.witness.Witness`, which verifies consistency first."""
    body = checkpoint.to_text().encode("utf-8")
    raw = signer.sign(body) if timestamp is None else signer.sign_at(body, timestamp)
    return Cosignature.from_note_signature(NoteSignature(signer.name, signer.key_id, raw))


@dataclass(frozen=True)
class CosignedCheckpoint:
    """A checkpoint whose log signature verified and the cosignatures that verified.

    ``witnesses`` maps each trusted witness that cosigned to its (latest) cosignature.
    """

    signed: SignedCheckpoint
    cosignatures: tuple[Cosignature, ...]
    witnesses: tuple[str, ...]
    missing: tuple[str, ...]

    @property
    def checkpoint(self) -> Checkpoint:
        return self.signed.checkpoint


def verify_cosignatures(
    note_text: str | bytes,
    log_verifier: NoteVerifier,
    witness_verifiers: Sequence[CosignatureVerifier],
    min_witnesses: int,
) -> CosignedCheckpoint:
    """Verify the log signature and a k-of-n witness policy on a cosigned checkpoint.

    Counts distinct trusted witnesses (several lines of one witness count once). Lines of
    unknown keys are ignored. Raises :class:`EncodingError` for a malformed note,
    :class:`SignatureError` when the log signature is missing or bad, a trusted witness's line
    does not verify, or fewer than ``min_witnesses`` trusted witnesses cosigned (the message
    names who signed and who is missing). ``ValueError`` for an impossible policy.
    """
    if isinstance(min_witnesses, bool) or not isinstance(min_witnesses, int):
        raise ValueError("min_witnesses must be an integer")
    if not 0 <= min_witnesses <= len(witness_verifiers):
        raise ValueError(
            f"policy needs {min_witnesses} of {len(witness_verifiers)} witnesses: impossible"
        )
    signed = SignedCheckpoint.from_text(note_text)
    signed.verify_log_signature(log_verifier)
    result = verify_signatures(signed.note, witness_verifiers)
    by_name: dict[str, Cosignature] = {}
    for sig in result.verified:
        cosig = Cosignature.from_note_signature(sig)
        current = by_name.get(cosig.name)
        if current is None or cosig.timestamp > current.timestamp:
            by_name[cosig.name] = cosig
    names = [v.name for v in witness_verifiers]
    signed_by = tuple(n for n in dict.fromkeys(names) if n in by_name)
    missing = tuple(n for n in dict.fromkeys(names) if n not in by_name)
    if len(signed_by) < min_witnesses:
        have = ", ".join(signed_by) or "none"
        lacking = ", ".join(missing)
        raise SignatureError(
            f"checkpoint {signed.checkpoint.origin} size {signed.checkpoint.size}: "
            f"{len(signed_by)} of the required {min_witnesses} witnesses cosigned "
            f"(cosigned: {have}; missing: {lacking})"
        )
    return CosignedCheckpoint(signed, tuple(by_name[n] for n in signed_by), signed_by, missing)
