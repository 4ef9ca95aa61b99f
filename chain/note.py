"""C2SP signed notes (https://c2sp.org/signed-note, v1.0.0) with Ed25519 keys.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more signature
lines ``"— <key name> <base64(4-byte key ID || signature)>\\n"`` (em dash U+2014, space).
A verifier ignores signatures from keys it does not know (same name *and* key ID), rejects the
whole note when a known key's signature fails, and rejects a note no known key signed.

Keys travel as text:

* verifier key (vkey): ``<name>+<hex key ID, 8 digits>+<base64(type byte || public key)>``
* signer key (skey):   ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type byte || seed)>``

The key ID is ``SHA-256(name || 0x0A || type byte || public key)[:4]`` read big-endian; the
type byte is 0x01 for plain Ed25519 note signatures (this module) and 0x04 for timestamped
witness cosignatures (:mod:`chain.cosignature`), so one name and public key yield two IDs.

Parsing is strict (canonical base64, lowercase hex, no control characters, bounded number of
signature lines) so that one note has exactly one text form: ``Note.from_text(t).to_text() == t``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import nacl.exceptions
import nacl.signing

from chain.encoding import b64_decode, b64_encode
from chain.errors import EncodingError, SignatureError

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "SIGNATURE_TYPE_ED25519",
    "Ed25519Signer",
    "Ed25519Verifier",
    "NamedSigner",
    "NamedVerifier",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignerKey",
    "VerifiedNote",
    "VerifierKey",
    "add_signatures",
    "check_key_name",
    "check_note_text",
    "compute_key_id",
    "open_note",
    "sign_note",
    "verify_signatures",
]

SIGNATURE_TYPE_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # the spec asks for at least 16; Go's x/mod/sumdb/note allows 100
MAX_NOTE_BYTES = 1 << 20  # ~1 MiB: room for 100 post-quantum signatures, not for abuse

_ED25519_KEY_BYTES = 32
_ED25519_SIG_BYTES = 64
_HEX_DIGITS = frozenset("0123456789abcdef")
_ALLOWED_BYTES = bytes(b for b in range(256) if b >= 0x20 or b == 0x0A)


# --- names, key IDs, text checks --------------------------------------------------------------


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


def check_note_text(text: str, what: str = "note") -> bytes:
    """Check ``text`` is a note text (UTF-8, no control characters but newline) and encode it."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise EncodingError(f"{what}: not valid UTF-8") from None
    _check_note_bytes(data, what)
    return data


def _check_note_bytes(data: bytes, what: str) -> None:
    if len(data) > MAX_NOTE_BYTES:
        raise EncodingError(f"{what}: larger than {MAX_NOTE_BYTES} bytes")
    # "No ASCII control characters (those below U+0020) other than newline": DEL is allowed,
    # as in Go's x/mod/sumdb/note, so that notes it accepts are accepted here too.
    bad = data.translate(None, _ALLOWED_BYTES)
    if bad:
        raise EncodingError(f"{what}: contains control character 0x{bad[0]:02x}")


def _parse_hex_id(text: str, what: str) -> int:
    if len(text) != 8 or not set(text) <= _HEX_DIGITS:
        raise EncodingError(f"{what}: key ID must be 8 lowercase hex digits")
    return int(text, 16)


# --- key text forms ---------------------------------------------------------------------------


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


# --- signers and verifiers --------------------------------------------------------------------


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


# --- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key ID and the signature bytes after the key ID."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise EncodingError("signature: key ID out of range")
        if not self.signature:
            raise EncodingError("signature: empty")

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse ``"— <name> <base64>"`` (with or without the final newline)."""
        if line.endswith("\n"):
            line = line[:-1]
        if "\n" in line or not line.startswith(SIGNATURE_PREFIX):
            raise EncodingError("signature line: must start with an em dash and a space")
        rest = line[len(SIGNATURE_PREFIX) :]
        name, sep, sig64 = rest.partition(" ")
        if not sep or not sig64:
            raise EncodingError("signature line: expected '— <name> <base64>'")
        check_key_name(name)
        raw = b64_decode(sig64, f"signature line of {name}")
        if len(raw) < 5:
            raise EncodingError(f"signature line of {name}: shorter than key ID + 1 byte")
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])

    def to_line(self) -> str:
        """The signature line including its final newline."""
        raw = self.key_id.to_bytes(4, "big") + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {b64_encode(raw)}\n"


@dataclass(frozen=True)
class Note:
    """A signed note as parsed, signatures not yet verified (see :func:`open_note`)."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        check_note_text(self.text, "note text")
        if not self.text.endswith("\n"):
            raise EncodingError("note text: must end with a newline")
        if not self.signatures:
            raise EncodingError("note: no signature lines")
        if len(self.signatures) > MAX_SIGNATURES:
            raise EncodingError(f"note: more than {MAX_SIGNATURES} signature lines")

    @classmethod
    def from_text(cls, note: str | bytes) -> Note:
        """Parse a signed note; raises :class:`EncodingError` when it is malformed."""
        if isinstance(note, bytes):
            data = note
            try:
                note = data.decode("utf-8")
            except UnicodeDecodeError:
                raise EncodingError("note: not valid UTF-8") from None
        else:
            try:
                data = note.encode("utf-8")
            except UnicodeEncodeError:
                raise EncodingError("note: not valid UTF-8") from None
        _check_note_bytes(data, "note")
        split = note.rfind("\n\n")
        if split < 0:
            raise EncodingError("note: no blank line before the signatures")
        text, block = note[: split + 1], note[split + 2 :]
        if not block or not block.endswith("\n"):
            raise EncodingError("note: signature block must end with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise EncodingError(f"note: more than {MAX_SIGNATURES} signature lines")
        return cls(text, tuple(NoteSignature.from_line(line) for line in lines))

    def to_text(self) -> str:
        """The note in its wire form; ``Note.from_text(n.to_text()) == n``."""
        return self.text + "\n" + "".join(sig.to_line() for sig in self.signatures)

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """This note with ``extra`` appended, dropping lines identical to ones already present."""
        merged = list(self.signatures)
        for sig in extra:
            if sig not in merged:
                merged.append(sig)
        return Note(self.text, tuple(merged))


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose signatures were checked against a set of trusted keys."""

    note: Note
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]

    @property
    def text(self) -> str:
        return self.note.text

    @property
    def signer_names(self) -> tuple[str, ...]:
        """Names of the trusted keys that signed, in note order, without repeats."""
        return tuple(dict.fromkeys(sig.name for sig in self.verified))


def _verifier_map(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    known: dict[tuple[str, int], NoteVerifier] = {}
    for verifier in verifiers:
        key = (verifier.name, verifier.key_id)
        if key in known and known[key] != verifier:
            raise SignatureError(
                f"two trusted keys share name {verifier.name} and key ID {verifier.key_id:08x}"
            )
        known[key] = verifier
    return known


def verify_signatures(note: Note, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Check every signature of a known key; unknown keys are set aside, not trusted.

    Raises :class:`SignatureError` naming the key when a known key's signature does not
    verify. Does *not* require any signature to verify: :func:`open_note` adds that rule.
    """
    known = _verifier_map(verifiers)
    message = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if not verifier.verify(message, sig.signature):
            raise SignatureError(
                f"signature of {sig.name} (key ID {sig.key_id:08x}) does not verify"
            )
        if sig not in verified:
            verified.append(sig)
    return VerifiedNote(note, tuple(verified), tuple(unverified))


def open_note(note: str | bytes | Note, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Parse ``note`` and verify it: at least one trusted key must have signed it.

    Raises :class:`EncodingError` when the note is malformed and :class:`SignatureError` when
    no trusted key signed it or a trusted key's signature does not verify.
    """
    parsed = note if isinstance(note, Note) else Note.from_text(note)
    result = verify_signatures(parsed, verifiers)
    if not result.verified:
        names = ", ".join(sorted({s.name for s in parsed.signatures}))
        raise SignatureError(f"note has no signature from a trusted key (signed by: {names})")
    return result


def _signature_of(data: bytes, signer: NoteSigner) -> NoteSignature:
    check_key_name(signer.name)
    return NoteSignature(signer.name, signer.key_id, signer.sign(data))


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` (which must end in a newline) with each signer; return the note text."""
    if not signers:
        raise SignatureError("sign_note: no signers")
    data = check_note_text(text, "note text")
    if not text.endswith("\n"):
        raise EncodingError("note text: must end with a newline")
    return Note(text, tuple(_signature_of(data, s) for s in signers)).to_text()


def add_signatures(note: str | bytes | Note, signers: Sequence[NoteSigner]) -> str:
    """Add signatures to an existing note, after its present lines (which are kept as is)."""
    parsed = note if isinstance(note, Note) else Note.from_text(note)
    data = parsed.text.encode("utf-8")
    new = [_signature_of(data, s) for s in signers]
    return parsed.with_signatures(new).to_text()
