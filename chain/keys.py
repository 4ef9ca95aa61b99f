"""Ed25519 keys over pynacl: raw 32-byte and base64url forms, detached signatures.

:class:`Ed25519PublicKey` is cheap to verify with and safe to cache and share (callers on the hot
path keep one per device). :class:`Ed25519PrivateKey` never shows its bytes in ``repr``/``str``
and compares in constant time.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

import nacl.bindings
import nacl.exceptions
import nacl.signing

from chain.encoding import b64url_decode, b64url_encode
from chain.errors import EncodingError, SignatureError

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
]

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64


@dataclass(frozen=True, slots=True)
class Ed25519PublicKey:
    """An Ed25519 public key: the 32 raw bytes of RFC 8032 (JWK ``x``)."""

    raw: bytes

    def __post_init__(self) -> None:
        if type(self.raw) is not bytes or len(self.raw) != PUBLIC_KEY_SIZE:
            raise EncodingError(f"Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes")

    @classmethod
    def from_bytes(cls, raw: bytes) -> Ed25519PublicKey:
        """Build from the 32 raw bytes."""
        return cls(bytes(raw))

    def to_bytes(self) -> bytes:
        """The 32 raw bytes."""
        return self.raw

    @classmethod
    def from_b64url(cls, text: str | bytes) -> Ed25519PublicKey:
        """Build from unpadded base64url (the JWK ``x`` form)."""
        return cls(b64url_decode(text, "Ed25519 public key"))

    def to_b64url(self) -> str:
        """Unpadded base64url of the raw bytes."""
        return b64url_encode(self.raw)

    def is_valid_signature(self, signature: bytes, message: bytes) -> bool:
        """True iff ``signature`` is a valid Ed25519 signature of ``message`` under this key."""
        if len(signature) != SIGNATURE_SIZE:
            return False
        try:
            # The binding directly: no VerifyKey object, no encoder round trip.
            nacl.bindings.crypto_sign_open(signature + message, self.raw)
        except nacl.exceptions.BadSignatureError:
            return False
        return True

    def verify(self, signature: bytes, message: bytes) -> None:
        """Return if ``signature`` over ``message`` verifies, else raise :class:`SignatureError`."""
        if not self.is_valid_signature(signature, message):
            raise SignatureError(f"Ed25519 signature does not verify under {self.to_b64url()}")

    def __repr__(self) -> str:
        return f"Ed25519PublicKey({self.to_b64url()!r})"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Ed25519PrivateKey:
    """An Ed25519 private key, held as its 32-byte RFC 8032 seed (JWK ``d``)."""

    _signing_key: nacl.signing.SigningKey
    public_key: Ed25519PublicKey = field(init=False)

    def __post_init__(self) -> None:
        public = Ed25519PublicKey(bytes(self._signing_key.verify_key))
        object.__setattr__(self, "public_key", public)

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_bytes(cls, seed: bytes) -> Ed25519PrivateKey:
        """Build from the 32-byte seed."""
        if len(seed) != SEED_SIZE:
            raise EncodingError(f"Ed25519 private key seed must be {SEED_SIZE} bytes")
        return cls(nacl.signing.SigningKey(bytes(seed)))

    def to_bytes(self) -> bytes:
        """The 32-byte seed. Handle with care: this is the secret."""
        return bytes(self._signing_key)

    @classmethod
    def from_b64url(cls, text: str | bytes) -> Ed25519PrivateKey:
        """Build from the unpadded base64url seed (the JWK ``d`` form)."""
        return cls.from_bytes(b64url_decode(text, "Ed25519 private key"))

    def to_b64url(self) -> str:
        """Unpadded base64url of the seed. Handle with care: this is the secret."""
        return b64url_encode(self.to_bytes())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._signing_key.sign(message).signature

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ed25519PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        # The public half identifies the key; the secret never appears in logs or tracebacks.
        return f"Ed25519PrivateKey(public_key={self.public_key.to_b64url()!r})"

    __str__ = __repr__
