"""Signed rules: a compact JWS (the telemetry profile, ``chain/jws.py``) over the verbatim rules.

Header ``{"alg":"Ed25519","kid":<organisation key id>,"typ":"roadledger-rules"}``; the payload
is the rules document's exact bytes. The ledger entry is :data:`RULES_ENTRY_PREFIX` followed by
the JWS bytes, so anyone can check a published version offline with the organisation's key.
Unlike telemetry (16 KiB), a signed rules document may be up to 1016 KiB (geofence polygons;
``limits.py``).

Nothing in an unverified payload is read: :meth:`SignedRules.signed_by` checks the signature
over the raw bytes, and only :meth:`SignedRules.verify` (signature first) or an explicit
:meth:`SignedRules.rules` parses the document.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from chain.encoding import b64url_decode, b64url_encode
from chain.entries import RULES_ENTRY_PREFIX
from chain.errors import ChainError
from chain.jws import MAX_HEADER_SEGMENT_BYTES, JwsHeader
from chain.keys import SIGNATURE_SIZE, Ed25519PrivateKey, Ed25519PublicKey
from contracts.rules.errors import RulesForbidden, RulesInvalid
from contracts.rules.limits import MAX_DOCUMENT_BYTES, MAX_SIGNED_BYTES
from contracts.rules.model import RuleVersion
from contracts.rules.parse import parse_rules

__all__ = [
    "MAX_SIGNED_BYTES",
    "RULES_ENTRY_PREFIX",
    "RULES_TYP",
    "SignedRules",
    "rules_entry",
    "sign_rules",
]

RULES_TYP: Final = "roadledger-rules"


@dataclass(frozen=True, slots=True)
class SignedRules:
    """A signed rules document, split but not yet verified. Build with :meth:`from_bytes`."""

    raw: bytes
    kid: str
    payload: bytes
    signature: bytes

    @classmethod
    def from_bytes(cls, raw: bytes) -> SignedRules:
        """Split ``raw`` and check its header (refusals name ``signature...``)."""
        if len(raw) > MAX_SIGNED_BYTES:
            raise RulesInvalid("signature", f"{len(raw)} bytes, limit is {MAX_SIGNED_BYTES}")
        parts = raw.strip().split(b".")
        if len(parts) != 3 or not all(parts):
            raise RulesInvalid("signature", "not a compact JWS (unsigned rules are refused)")
        if len(parts[0]) > MAX_HEADER_SEGMENT_BYTES:  # decoded and parsed before the signature
            raise RulesInvalid(
                "signature.header",
                f"{len(parts[0])} bytes encoded, limit is {MAX_HEADER_SEGMENT_BYTES}",
            )
        if len(parts[1]) * 3 // 4 > MAX_DOCUMENT_BYTES:  # base64url: 3 bytes per 4 characters
            raise RulesInvalid("", f"{len(parts[1]) * 3 // 4} bytes, limit is {MAX_DOCUMENT_BYTES}")
        try:
            header = JwsHeader.from_json(b64url_decode(parts[0].decode("ascii")))
            payload = b64url_decode(parts[1].decode("ascii"))
            signature = b64url_decode(parts[2].decode("ascii"))
        except (ChainError, UnicodeDecodeError, ValueError) as exc:
            raise RulesInvalid("signature.header", str(exc)) from None
        if header.typ != RULES_TYP:
            raise RulesInvalid("signature.header.typ", f"must be {RULES_TYP!r}")
        if len(signature) != SIGNATURE_SIZE:
            raise RulesInvalid("signature", f"{len(signature)} bytes, not {SIGNATURE_SIZE}")
        assert header.kid is not None  # from_json requires it
        return cls(raw.strip(), header.kid, payload, signature)

    def signed_by(self, public_key: Ed25519PublicKey) -> bool:
        """Whether the signature verifies under ``public_key``; the payload is not read."""
        signing_input = self.raw[: self.raw.rindex(b".")]
        return public_key.is_valid_signature(self.signature, signing_input)

    def rules(self) -> RuleVersion:
        """The parsed payload, keeping these signed bytes. Not verified: call it on a
        document whose signature was checked (:meth:`verify` does both), or offline on one's
        own document."""
        return replace(parse_rules(self.payload), signed=self.raw)

    def verify(self, public_key: Ed25519PublicKey) -> RuleVersion:
        """The rules if the signature verifies under ``public_key`` (checked before the
        payload is parsed); else :class:`RulesForbidden` (:class:`RulesInvalid` if the
        verified payload is not valid rules)."""
        if not self.signed_by(public_key):
            raise RulesForbidden("signature", f"does not verify under key {self.kid!r}")
        return self.rules()


def sign_rules(key: Ed25519PrivateKey, kid: str, payload: bytes) -> bytes:
    """Sign the verbatim rules ``payload`` (checked first: invalid rules are never signed)."""
    parse_rules(payload)
    header = JwsHeader(kid=kid, typ=RULES_TYP).to_json()
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}".encode("ascii")
    return signing_input + b"." + b64url_encode(key.sign(signing_input)).encode("ascii")


def rules_entry(signed: bytes) -> bytes:
    """The ledger entry for a published version: the prefix, then the JWS bytes verbatim."""
    return RULES_ENTRY_PREFIX + signed
