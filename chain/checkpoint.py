"""C2SP transparency-log checkpoints (https://c2sp.org/tlog-checkpoint, v1.0.0).

A checkpoint body is at least three newline-terminated lines::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 of the 32-byte RFC 9162 root hash>
    [<extension line>...]

and is published as a signed note (:mod:`chain.note`) signed by the log's key; witnesses add
their cosignature lines (:mod:`chain.cosignature`) to the same note.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chain.encoding import b64_decode, b64_encode
from chain.errors import EncodingError, SignatureError
from chain.note import Note, NoteSignature, VerifiedNote, check_note_text, verify_signatures
from chain.note_signers import NoteSigner, NoteVerifier

__all__ = ["HASH_BYTES", "MAX_TREE_SIZE", "Checkpoint", "SignedCheckpoint", "sign_checkpoint"]

HASH_BYTES = 32
MAX_TREE_SIZE = (1 << 64) - 1  # tree sizes are uint64 in every tlog format
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


def _check_line(line: object, what: str) -> None:
    if not isinstance(line, str) or not line:
        raise EncodingError(f"checkpoint: {what} is empty")
    if "\n" in line:
        raise EncodingError(f"checkpoint: {what} contains a newline")
    check_note_text(line, f"checkpoint {what}")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise EncodingError("checkpoint: tree size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise EncodingError(f"checkpoint: tree size {self.size} out of range")
        root: object = self.root_hash  # typed, but also built from untrusted input
        if not isinstance(root, bytes) or len(root) != HASH_BYTES:
            raise EncodingError(f"checkpoint: root hash must be {HASH_BYTES} bytes")
        extensions: object = self.extensions
        if not isinstance(extensions, tuple):
            raise EncodingError("checkpoint: extensions must be a tuple of lines")
        for line in extensions:
            _check_line(line, "extension line")

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body strictly; raises :class:`EncodingError` when malformed."""
        if not text.endswith("\n"):
            raise EncodingError("checkpoint: body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise EncodingError("checkpoint: expected origin, tree size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text):
            raise EncodingError(
                f"checkpoint: tree size {size_text!r} is not a decimal without leading zeros"
            )
        root = b64_decode(root_text, "checkpoint root hash")
        return cls(origin, int(size_text), root, tuple(extensions))

    def to_text(self) -> str:
        """The body, each line ending in a newline; ``from_text(c.to_text()) == c``."""
        lines = [self.origin, str(self.size), b64_encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    def __str__(self) -> str:
        return f"{self.origin}@{self.size}:{self.root_hash.hex()}"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the signed note carrying it (log signature plus any cosignatures).

    ``from_text`` only parses; ``open`` also verifies the log's signature. Signature lines of
    keys that were not checked stay in ``note`` untouched, so the text round-trips exactly.
    """

    checkpoint: Checkpoint
    note: Note

    def __post_init__(self) -> None:
        if self.checkpoint.to_text() != self.note.text:
            raise EncodingError("signed checkpoint: note text is not the checkpoint body")

    @classmethod
    def from_text(cls, text: str | bytes) -> SignedCheckpoint:
        """Parse a signed checkpoint without verifying any signature."""
        note = Note.from_text(text)
        return cls(Checkpoint.from_text(note.text), note)

    def to_text(self) -> str:
        return self.note.to_text()

    @classmethod
    def open(
        cls, text: str | bytes, log_verifier: NoteVerifier | Iterable[NoteVerifier]
    ) -> SignedCheckpoint:
        """Parse and require a valid signature from the log key (or one of the log's keys).

        Raises :class:`EncodingError` for a malformed note or body, :class:`SignatureError`
        when the log did not sign it or one of its signatures fails.
        """
        signed = cls.from_text(text)
        signed.verify_log_signature(log_verifier)
        return signed

    def verify_log_signature(
        self, log_verifier: NoteVerifier | Iterable[NoteVerifier]
    ) -> VerifiedNote:
        """Check the log's signature; return which lines verified and which were unknown."""
        verifiers = [log_verifier] if isinstance(log_verifier, NoteVerifier) else list(log_verifier)
        result = verify_signatures(self.note, verifiers)
        if not result.verified:
            names = ", ".join(v.name for v in verifiers)
            raise SignatureError(
                f"checkpoint {self.checkpoint.origin} size {self.checkpoint.size} "
                f"is not signed by the log key ({names})"
            )
        return result

    @property
    def signatures(self) -> tuple[NoteSignature, ...]:
        return self.note.signatures

    def with_signature_lines(self, lines: str | Iterable[NoteSignature]) -> SignedCheckpoint:
        """Add signature lines (e.g. cosignatures a witness returned), dropping exact repeats.

        ``lines`` is either text of one or more ``"— name base64\\n"`` lines, or parsed
        signatures. Nothing is verified here.
        """
        if isinstance(lines, str):
            if not lines.endswith("\n"):
                raise EncodingError("signature lines: must end with a newline")
            parsed = [NoteSignature.from_line(line) for line in lines[:-1].split("\n")]
        else:
            parsed = list(lines)
        return SignedCheckpoint(self.checkpoint, self.note.with_signatures(parsed))

    def keep_signatures(self, keep: Iterable[NoteSignature]) -> SignedCheckpoint:
        """This checkpoint with only the signature lines in ``keep`` (in note order)."""
        wanted = set(keep)
        kept = tuple(sig for sig in self.note.signatures if sig in wanted)
        return SignedCheckpoint(self.checkpoint, Note(self.note.text, kept))


def sign_checkpoint(checkpoint: Checkpoint, log_signer: NoteSigner) -> SignedCheckpoint:
    """Sign ``checkpoint`` with the log's key.

    The key name SHOULD be the origin (tlog-checkpoint); this is not enforced here, but
    :class:`chain.witness.Witness` requires it.
    """
    text = checkpoint.to_text()
    sig = NoteSignature(log_signer.name, log_signer.key_id, log_signer.sign(text.encode("utf-8")))
    return SignedCheckpoint(checkpoint, Note(text, (sig,)))
