"""Signed-note keys (https://c2sp.org/signed-note): key names, key IDs, and their text forms.

Keys travel as text:

* verifier key (vkey): ``<name>+<hex key ID, 8 digits>+<base64(type byte || public key)>``
* signer key (skey):   ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type byte || seed)>``

The key ID is ``SHA-256(name || 0x0A || type byte || public key)[:4]`` read big-endian; the
type byte is 0x01 for plain Ed25519 note signatures (:mod:`chain.note_signers`) and 0x04 for
timestamped witness cosignatures (:mod:`chain.cosignature`), so one name and public key yield
two IDs. Parsing is strict (canonical base64, lowercase hex) so a key has one text form.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

import nacl.signing

from chain.encoding import b64_decode, b64_encode
from chain.errors import EncodingError

__all__ = [
    "SIGNATURE_TYPE_ED25519",
    "SignerKey",
    "VerifierKey",
    "check_key_name",
    "compute_key_id",
]

SIGNATURE_TYPE_ED25519 = 0x01

_ED25519_KEY_BYTES = 32
_HEX_DIGITS = frozenset("0123456789abcdef")


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid key name: non-empty, no Unicode spaces, no ``+``.

    Control characters are refused too (a note may not contain them anyway).
    Raises :class:`EncodingError` otherwise.
    """
    value: object = name  # callers may hand us anything parsed from the wire
    if not isinstance(value, str) or not value:
        raise EncodingError("key name: empty")
    for ch in name:
        if ch == "+" or ch.isspace() or unicodedata.category(ch) in {"Cc", "Cs"}:
            raise EncodingError(f"key name {name!r}: contains {ch!r}")
    return name


def compute_key_id(name: str, signature_type: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || signature_type || public_key)[:4]`` as a big-endian uint32."""
    if not 0 <= signature_type <= 0xFF:
        raise ValueError(f"signature type {signature_type} is not a byte")
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key
    ).digest()
    return int.from_bytes(digest[:4], "big")


def _parse_hex_id(text: str, what: str) -> int:
    if len(text) != 8 or not set(text) <= _HEX_DIGITS:
        raise EncodingError(f"{what}: key ID must be 8 lowercase hex digits")
    return int(text, 16)


@dataclass(frozen=True)
class VerifierKey:
    """A parsed verifier key (vkey): name, key ID, signature type and public key bytes.

    ``from_text`` checks the syntax and that the key ID matches the name and key material;
    it does not care which algorithm the type byte names (callers check that).
    """

    name: str
    key_id: int
    signature_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise EncodingError(f"vkey {self.name}: key ID out of range")
        if not 0 <= self.signature_type <= 0xFF:
            raise EncodingError(f"vkey {self.name}: signature type out of range")
        if not self.public_key:
            raise EncodingError(f"vkey {self.name}: no key material")
        expected = compute_key_id(self.name, self.signature_type, self.public_key)
        if expected != self.key_id:
            raise EncodingError(
                f"vkey {self.name}: key ID {self.key_id:08x} does not match the key "
                f"(expected {expected:08x})"
            )

    @classmethod
    def create(cls, name: str, signature_type: int, public_key: bytes) -> VerifierKey:
        """The vkey of ``public_key`` under ``name``, with its key ID computed."""
        check_key_name(name)
        return cls(
            name,
            compute_key_id(name, signature_type, public_key),
            signature_type,
            bytes(public_key),
        )

    @classmethod
    def from_text(cls, text: str) -> VerifierKey:
        """Parse ``<name>+<hexid>+<base64(type || key)>``; raises :class:`EncodingError`."""
        if not isinstance(text, str):
            raise EncodingError("vkey: not text")
        parts = text.split("+", 2)  # the base64 part may itself contain '+'
        if len(parts) != 3:
            raise EncodingError("vkey: expected <name>+<hex key ID>+<base64 key>")
        name, hex_id, key64 = parts
        check_key_name(name)
        key_id = _parse_hex_id(hex_id, "vkey")
        material = b64_decode(key64, "vkey key material")
        if len(material) < 2:
            raise EncodingError("vkey: key material too short")
        return cls(name, key_id, material[0], material[1:])

    def to_text(self) -> str:
        """The vkey text form; ``from_text(k.to_text()) == k``."""
        material = bytes([self.signature_type]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{b64_encode(material)}"

    def __str__(self) -> str:
        return self.to_text()


@dataclass(frozen=True, repr=False)
class SignerKey:
    """A parsed signer key (skey). Secret: its ``repr`` never shows the key material.

    The key ID in the text is checked against the public key derived from the seed, so a
    corrupted or mislabelled key file is refused instead of producing unverifiable signatures.
    """

    name: str
    key_id: int
    signature_type: int
    seed: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.seed) != _ED25519_KEY_BYTES:
            raise EncodingError(f"skey {self.name}: an Ed25519 seed is 32 bytes")
        expected = compute_key_id(self.name, self.signature_type, self.public_key)
        if expected != self.key_id:
            raise EncodingError(
                f"skey {self.name}: key ID {self.key_id:08x} does not match the key "
                f"(expected {expected:08x})"
            )

    def __repr__(self) -> str:
        return (
            f"SignerKey(name={self.name!r}, key_id={self.key_id:08x}, "
            f"signature_type={self.signature_type}, seed=<secret>)"
        )

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key derived from the seed."""
        return bytes(nacl.signing.SigningKey(self.seed).verify_key)

    @classmethod
    def create(cls, name: str, signature_type: int, seed: bytes) -> SignerKey:
        """The skey of ``seed`` under ``name``, with its key ID computed."""
        check_key_name(name)
        if len(seed) != _ED25519_KEY_BYTES:
            raise EncodingError("skey: an Ed25519 seed is 32 bytes")
        public = bytes(nacl.signing.SigningKey(bytes(seed)).verify_key)
        return cls(name, compute_key_id(name, signature_type, public), signature_type, bytes(seed))

    @classmethod
    def from_text(cls, text: str) -> SignerKey:
        """Parse ``PRIVATE+KEY+<name>+<hexid>+<base64(type || seed)>`` (Ed25519 seeds only)."""
        if not isinstance(text, str):
            raise EncodingError("skey: not text")
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise EncodingError("skey: expected PRIVATE+KEY+<name>+<hex key ID>+<base64 key>")
        _, _, name, hex_id, key64 = parts
        check_key_name(name)
        key_id = _parse_hex_id(hex_id, "skey")
        material = b64_decode(key64, "skey key material")
        if len(material) != 1 + _ED25519_KEY_BYTES:
            raise EncodingError("skey: expected a type byte and a 32-byte Ed25519 seed")
        return cls(name, key_id, material[0], material[1:])

    def to_text(self) -> str:
        """The skey text form. It is the private key: write it only to a protected file."""
        material = bytes([self.signature_type]) + self.seed
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64_encode(material)}"
