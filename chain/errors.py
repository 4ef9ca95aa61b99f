"""Errors of the ``chain`` package: one root, one type per kind of failure.

Tree::

    ChainError                      root: catch this to catch everything chain/ raises
    ├── TelemetryError              a signed telemetry message is rejected; ``.reason`` is a
    │                               RejectReason (the quarantine reason code)
    ├── EncodingError               malformed text/binary: base64, JSON, note, proof file
    ├── ProofError                  a Merkle inclusion/consistency proof does not verify
    │   └── RootMismatchError       ... carrying the expected and the calculated root
    ├── ConsistencyError            two checkpoints of one log disagree (fork or rollback),
    │                               carrying both checkpoints and the proof as evidence
    ├── SignatureError              a signed note / cosignature / block does not verify
    ├── BlockError                  a block or the block chain is broken
    ├── FencingError                a stale sequencer (old epoch) tried to append
    ├── StorageError                the log storage broke a contract
    └── CertificateError            a mileage certificate fails; ``.item`` names the part

Parse errors from the standard library (``ValueError``, ``binascii.Error``,
``UnicodeDecodeError``, ``json.JSONDecodeError``) never escape: they are converted at the edge.
"""

from __future__ import annotations

import enum

__all__ = [
    "BlockError",
    "CertificateError",
    "ChainError",
    "ConsistencyError",
    "EncodingError",
    "FencingError",
    "ProofError",
    "RejectReason",
    "RootMismatchError",
    "SignatureError",
    "StorageError",
    "TelemetryError",
]


class RejectReason(enum.StrEnum):
    """Why a telemetry message was rejected: the machine-readable quarantine reason code."""

    MALFORMED = "malformed"  # not a compact JWS / bad base64 / not UTF-8 / not JSON
    OVERSIZE = "oversize"  # larger than the accepted maximum, rejected before parsing
    UNSUPPORTED_ALG = "unsupported_alg"  # alg is not Ed25519/EdDSA (incl. "none")
    BAD_HEADER = "bad_header"  # header fields missing, duplicated, wrong type, kid mismatch
    SCHEMA = "schema"  # payload fields missing, extra, wrong type, out of range
    BAD_SIGNATURE = "bad_signature"  # Ed25519 signature does not verify
    UNKNOWN_DEVICE = "unknown_device"  # no key registered for kid
    REVOKED_KEY = "revoked_key"  # key revoked (or not yet valid) at the message's time
    CLOCK_SKEW = "clock_skew"  # device time too far from receive time
    CHAIN_BROKEN = "chain_broken"  # prev does not match the hash of the previous message
    CONFLICT = "conflict"  # same (dev, seq) seen before with different bytes
    DUPLICATE = "duplicate"  # same bytes seen before (harmless, counted, not stored twice)


class ChainError(Exception):
    """Root of every error raised by ``chain``."""


class TelemetryError(ChainError):
    """A telemetry message was rejected for ``reason``; the message says which field and why."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodingError(ChainError):
    """Input is not well-formed for the format it claims to be."""


class ProofError(ChainError):
    """A Merkle proof does not verify, or its parameters are out of range."""


class RootMismatchError(ProofError):
    """The root calculated from a proof differs from the expected one."""

    def __init__(self, expected: bytes, calculated: bytes, what: str = "root") -> None:
        super().__init__(
            f"{what} mismatch: expected {expected.hex()}, calculated {calculated.hex()}"
        )
        self.expected = expected
        self.calculated = calculated


class ConsistencyError(ChainError):
    """Two views of one log cannot both be honest: the evidence is attached."""

    def __init__(
        self, message: str, *, old: object = None, new: object = None, proof: object = None
    ) -> None:
        super().__init__(message)
        self.old = old
        self.new = new
        self.proof = proof


class SignatureError(ChainError):
    """A signature (note, cosignature, block, rules) is missing or does not verify."""


class BlockError(ChainError):
    """A block header is malformed or does not link to its predecessor."""


class FencingError(ChainError):
    """A sequencer holding an old epoch tried to write; the newer owner wins."""


class StorageError(ChainError):
    """The storage under a log returned something that breaks its contract."""


class CertificateError(ChainError):
    """A mileage certificate does not verify; ``item`` names the first failing part."""

    def __init__(self, item: str, detail: str) -> None:
        super().__init__(f"{item}: {detail}")
        self.item = item
        self.detail = detail
