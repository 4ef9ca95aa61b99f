"""C2SP signed notes (https://c2sp.org/signed-note, v1.0.0): their text form, signing and checking.

A signed note is a UTF-8 text ending in a newline, a blank line, then one or more signature
lines ``"— <key name> <base64(4-byte key ID || signature)>\\n"`` (em dash U+2014, space).
A verifier ignores signatures from keys it does not know (same name *and* key ID), rejects the
whole note when a known key's signature fails, and rejects a note no known key signed.

Parsing is strict (canonical base64, no control characters, bounded number of signature lines)
so that one note has exactly one text form: ``Note.from_text(t).to_text() == t``. The keys'
names, IDs and text forms are in :mod:`chain.note_keys`; the keys that sign and verify, in
:mod:`chain.note_signers`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chain.encoding import b64_decode, b64_encode
from chain.errors import EncodingError, SignatureError
from chain.note_keys import check_key_name
from chain.note_signers import NoteSigner, NoteVerifier

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Note",
    "NoteSignature",
    "VerifiedNote",
    "add_signatures",
    "check_note_text",
    "open_note",
    "sign_note",
    "verify_signatures",
]

SIGNATURE_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100  # the spec asks for at least 16; Go's x/mod/sumdb/note allows 100
MAX_NOTE_BYTES = 1 << 20  # ~1 MiB: room for 100 post-quantum signatures, not for abuse

_ALLOWED_BYTES = bytes(b for b in range(256) if b >= 0x20 or b == 0x0A)


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
