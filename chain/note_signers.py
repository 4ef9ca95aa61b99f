"""Who signs and checks note signatures: the signer and verifier protocols and their Ed25519 keys.

:class:`NamedSigner` and :class:`NamedVerifier` hold what every key of one signature type
shares (name, key ID, public key, text forms); :class:`Ed25519Signer` and
:class:`Ed25519Verifier` are plain note signatures (type 0x01), and :mod:`chain.cosignature`
derives the witnesses' timestamped ones (type 0x04) from the same bases.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import nacl.exceptions
import nacl.signing

from chain.errors import EncodingError
from chain.note_keys import (
    _ED25519_KEY_BYTES,
    SIGNATURE_TYPE_ED25519,
    SignerKey,
    VerifierKey,
    check_key_name,
    compute_key_id,
)

__all__ = [
    "Ed25519Signer",
    "Ed25519Verifier",
    "NamedSigner",
    "NamedVerifier",
    "NoteSigner",
    "NoteVerifier",
]

_ED25519_SIG_BYTES = 64


@runtime_checkable
class NoteVerifier(Protocol):
    """Checks note signatures of one key, identified by ``(name, key_id)``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the 4-byte key ID) is valid for ``message``."""
        ...


@runtime_checkable
class NoteSigner(Protocol):
    """Signs note texts with one key, identified by ``(name, key_id)``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes) -> bytes:
        """The signature bytes (without the 4-byte key ID) over ``message``."""
        ...


def _ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != _ED25519_SIG_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


class _NamedKey:
    """Name, key ID and Ed25519 public key of a note key of one signature type."""

    signature_type: ClassVar[int]
    _name: str
    _public_key: bytes
    _key_id: int

    def _set_key(self, name: str, public_key: bytes) -> None:
        check_key_name(name)
        if len(public_key) != _ED25519_KEY_BYTES:
            raise EncodingError(f"{name}: an Ed25519 public key is 32 bytes")
        self._name = name
        self._public_key = bytes(public_key)
        self._key_id = compute_key_id(name, self.signature_type, self._public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> int:
        return self._key_id

    @property
    def public_key(self) -> bytes:
        return self._public_key

    def to_vkey(self) -> str:
        return VerifierKey.create(self._name, self.signature_type, self._public_key).to_text()


class NamedVerifier(_NamedKey):
    """The public half: what a :class:`NoteVerifier` of one signature type shares."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self._set_key(name, public_key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_vkey()!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, NamedVerifier)
        return (self._name, self._public_key) == (other._name, other._public_key)

    def __hash__(self) -> int:
        return hash((type(self), self._name, self._public_key))


class NamedSigner(_NamedKey):
    """The private half: what a :class:`NoteSigner` of one signature type shares.

    Holds a secret: it never appears in ``repr`` and is written only by :meth:`to_skey`.
    """

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != _ED25519_KEY_BYTES:
            raise EncodingError(f"{name}: an Ed25519 seed is 32 bytes")
        self._signing_key = nacl.signing.SigningKey(bytes(seed))
        self._set_key(name, bytes(self._signing_key.verify_key))

    def to_skey(self) -> str:
        """The private key text. Write it only to a protected file."""
        return SignerKey.create(self._name, self.signature_type, bytes(self._signing_key)).to_text()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, key_id={self._key_id:08x})"


class Ed25519Verifier(NamedVerifier):
    """Verifies plain Ed25519 note signatures (type 0x01), e.g. a log's checkpoint signature."""

    signature_type = SIGNATURE_TYPE_ED25519

    @classmethod
    def from_vkey(cls, text: str) -> Ed25519Verifier:
        """Parse a vkey of signature type 0x01; raises :class:`EncodingError`."""
        key = VerifierKey.from_text(text)
        if key.signature_type != cls.signature_type:
            raise EncodingError(
                f"vkey {key.name}: signature type 0x{key.signature_type:02x}, "
                f"expected 0x{cls.signature_type:02x}"
            )
        return cls(key.name, key.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        return _ed25519_verify(self._public_key, message, signature)


class Ed25519Signer(NamedSigner):
    """Signs notes with Ed25519 (type 0x01). Holds a secret: never logged or printed."""

    signature_type = SIGNATURE_TYPE_ED25519

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        """A fresh random key for ``name``."""
        return cls(name, bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_skey(cls, text: str) -> Ed25519Signer:
        """Parse an skey of signature type 0x01; raises :class:`EncodingError`."""
        key = SignerKey.from_text(text)
        if key.signature_type != cls.signature_type:
            raise EncodingError(
                f"skey {key.name}: signature type 0x{key.signature_type:02x}, "
                f"expected 0x{cls.signature_type:02x}"
            )
        return cls(key.name, key.seed)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self._name, self._public_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._signing_key.sign(message).signature)
