"""A checkpoint witness: C2SP tlog-witness ``add-checkpoint`` semantics, without the HTTP.

Spec: https://c2sp.org/tlog-witness (v1.0.0). For each log origin the witness keeps the latest
checkpoint it cosigned. Given a new log-signed checkpoint, the size of the checkpoint the client
believes the witness has (``old_size``) and a consistency proof from it, the witness verifies
the log signature and the proof, records the new checkpoint durably, and only then returns its
cosignature line (:mod:`chain.cosignature`). It never cosigns a smaller tree than one it
cosigned, nor two different roots for one size.

Refusals, with the tlog-witness HTTP status each corresponds to:

* 404 :class:`UnknownLogError` -- the origin is not the log key's name;
* 403 :class:`chain.errors.SignatureError` -- no valid signature from the log key;
* 400 :class:`chain.errors.EncodingError` -- malformed note or proof, ``old_size`` > size;
* 409 :class:`OldSizeMismatchError` -- ``old_size`` is not the witness's latest size, which
  ``.known_size`` carries (the body of the 409 reply);
* 422 :class:`chain.errors.ProofError` -- size-0 checkpoint without the empty-tree root, or a
  proof where none belongs (from size 0, or between equal sizes);
* 422 :class:`chain.errors.ConsistencyError` -- fork (same size, other root), rollback
  (smaller size) or a consistency proof that fails; ``.old`` and ``.new`` are both log-signed
  checkpoints, ``.proof`` the proof hashes: evidence an operator can publish.

State lives behind :class:`WitnessStateStore` (a file store and an in-memory one here). The
update is a compare-and-swap, so two concurrent requests can never roll the state back (the
race the spec warns about); the loser re-reads and is judged against the new state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from chain.checkpoint import HASH_BYTES, SignedCheckpoint
from chain.cosignature import Cosignature, CosignatureSigner, CosignatureVerifier, cosign
from chain.encoding import b64_decode, b64_encode
from chain.errors import (
    ChainError,
    ConsistencyError,
    EncodingError,
    ProofError,
    SignatureError,
    StorageError,
)
from chain.hashing import EMPTY_ROOT
from chain.merkle import verify_consistency
from chain.note_signers import NoteVerifier

__all__ = [
    "MAX_PROOF_HASHES",
    "AddCheckpointRequest",
    "FileWitnessStateStore",
    "MemoryWitnessStateStore",
    "OldSizeMismatchError",
    "StaleStateError",
    "UnknownLogError",
    "Witness",
    "WitnessStateStore",
    "format_proof_lines",
    "parse_proof_lines",
]

MAX_PROOF_HASHES = 63  # tlog-witness: a client MUST NOT send more than 63 proof lines
_CAS_ATTEMPTS = 5
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class UnknownLogError(SignatureError):
    """The checkpoint's origin is not a log this witness was given a key for (HTTP 404)."""


class OldSizeMismatchError(ChainError):
    """``old_size`` is not the size of the witness's latest cosigned checkpoint (HTTP 409).

    ``known_size`` is what the witness has (0 if it never cosigned this origin): the client
    should fetch a consistency proof from there and try again.
    """

    def __init__(self, origin: str, old_size: int, known_size: int) -> None:
        super().__init__(
            f"{origin}: old size {old_size} does not match the witness's latest cosigned "
            f"size {known_size}"
        )
        self.origin = origin
        self.old_size = old_size
        self.known_size = known_size


class StaleStateError(StorageError):
    """A compare-and-swap on the witness state lost a race (someone updated it first)."""


# --- proofs and requests ----------------------------------------------------------------------


def parse_proof_lines(text: str) -> tuple[bytes, ...]:
    """Parse consistency proof lines: one base64 32-byte hash per newline-terminated line."""
    if text == "":
        return ()
    if not text.endswith("\n"):
        raise EncodingError("proof: every line must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_PROOF_HASHES:
        raise EncodingError(f"proof: more than {MAX_PROOF_HASHES} hashes")
    hashes = tuple(b64_decode(line, f"proof line {i + 1}") for i, line in enumerate(lines))
    for i, digest in enumerate(hashes):
        if len(digest) != HASH_BYTES:
            raise EncodingError(f"proof line {i + 1}: not a {HASH_BYTES}-byte hash")
    return hashes


def format_proof_lines(proof: Sequence[bytes]) -> str:
    """The inverse of :func:`parse_proof_lines`."""
    return "".join(b64_encode(digest) + "\n" for digest in proof)


@dataclass(frozen=True)
class AddCheckpointRequest:
    """The body of a tlog-witness ``add-checkpoint`` request.

    Text form: ``"old <size>\\n"``, zero or more proof lines, an empty line, the checkpoint note.
    """

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    @classmethod
    def from_text(cls, body: str) -> AddCheckpointRequest:
        head, sep, checkpoint = body.partition("\n\n")
        if not sep:
            raise EncodingError("add-checkpoint: no empty line before the checkpoint")
        first, _, proof_text = (head + "\n").partition("\n")
        if not first.startswith("old ") or not _SIZE.fullmatch(first[4:]):
            raise EncodingError("add-checkpoint: first line must be 'old <size>'")
        return cls(int(first[4:]), parse_proof_lines(proof_text), checkpoint)

    def to_text(self) -> str:
        return f"old {self.old_size}\n{format_proof_lines(self.proof)}\n{self.checkpoint}"


# --- state stores -----------------------------------------------------------------------------


class WitnessStateStore(Protocol):
    """Where a witness keeps, per origin, the latest checkpoint it cosigned.

    The record is the signed checkpoint note text (log signature + the witness's cosignature),
    exactly what tlog-witness monitors fetch. Contract:

    * ``load`` returns the last record ``store`` wrote for ``origin``, or ``None``.
    * ``store`` replaces the record only if it is still ``expected`` (``None``: no record), and
      raises :class:`StaleStateError` otherwise; the check and the write are atomic with
      respect to every other ``store`` on the same state. When it returns, the record MUST be
      durable: a witness returns a cosignature only after this.
    """

    def load(self, origin: str) -> str | None: ...

    def store(self, origin: str, expected: str | None, record: str) -> None: ...


class MemoryWitnessStateStore:
    """In-memory state for tests and embedded runs: lost when the process ends."""

    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self, origin: str) -> str | None:
        with self._lock:
            return self._records.get(origin)

    def store(self, origin: str, expected: str | None, record: str) -> None:
        with self._lock:
            if self._records.get(origin) != expected:
                raise StaleStateError(f"{origin}: witness state changed concurrently")
            self._records[origin] = record


class FileWitnessStateStore:
    """One file per origin in ``directory``: ``<sha256(origin) hex>.checkpoint``.

    The file name is the tlog-witness "origin hash", and the content the checkpoint note a
    monitor would fetch. Writes go to a temporary file in the same directory, are fsynced,
    renamed over the record and the directory is fsynced, so a crash leaves either the old or
    the new record, never a torn one. An exclusive ``flock`` on ``directory/.lock`` makes the
    compare-and-swap atomic across processes sharing the directory.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        try:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"witness state {self._dir}: {exc.strerror or exc}") from None
        if not self._dir.is_dir():
            raise StorageError(f"witness state {self._dir}: not a directory")
        self._thread_lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self._dir

    def path_for(self, origin: str) -> Path:
        digest = hashlib.sha256(origin.encode("utf-8")).hexdigest()
        return self._dir / f"{digest}.checkpoint"

    def load(self, origin: str) -> str | None:
        path = self.path_for(origin)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"witness state {path}: {exc.strerror or exc}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise StorageError(f"witness state {path}: not UTF-8") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the flock

    def store(self, origin: str, expected: str | None, record: str) -> None:
        path = self.path_for(origin)
        try:
            with self._locked():
                if self.load(origin) != expected:
                    raise StaleStateError(f"{origin}: witness state changed concurrently")
                self._write_atomically(path, record.encode("utf-8"))
        except OSError as exc:
            raise StorageError(f"witness state {path}: {exc.strerror or exc}") from None

    def _write_atomically(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".tmp-", suffix=".checkpoint")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# --- the witness ------------------------------------------------------------------------------


class Witness:
    """Verifies and cosigns checkpoints, remembering per origin the latest one it cosigned.

    The witness's name is its signer's key name. ``add_checkpoint`` is safe to call from
    several threads (and, with :class:`FileWitnessStateStore`, several processes).
    """

    def __init__(self, signer: CosignatureSigner, store: WitnessStateStore) -> None:
        self._signer = signer
        self._store = store

    @property
    def name(self) -> str:
        return self._signer.name

    def verifier(self) -> CosignatureVerifier:
        """The verifier clients use for this witness's cosignatures."""
        return self._signer.verifier()

    def latest(self, origin: str) -> SignedCheckpoint | None:
        """The latest checkpoint cosigned for ``origin`` (with the log's and this witness's
        signatures), or ``None``. This is what tlog-witness serves to monitors."""
        record = self._store.load(origin)
        return None if record is None else self._parse_record(origin, record)

    def _parse_record(self, origin: str, record: str) -> SignedCheckpoint:
        try:
            signed = SignedCheckpoint.from_text(record)
        except EncodingError as exc:
            raise StorageError(f"witness state for {origin} is corrupt: {exc}") from None
        if signed.checkpoint.origin != origin:
            raise StorageError(
                f"witness state for {origin} holds a checkpoint of {signed.checkpoint.origin}"
            )
        return signed

    def add_checkpoint(
        self,
        signed_checkpoint_text: str | bytes,
        old_size: int,
        consistency_proof: Sequence[bytes],
        log_verifier: NoteVerifier,
    ) -> str:
        """Verify ``signed_checkpoint_text`` against the state and cosign it.

        Returns the cosignature line (``"— <witness> <base64>\\n"``) to append to the note.
        Raises as listed in the module docstring; nothing is stored on a refusal.
        """
        size_value: object = old_size
        if isinstance(size_value, bool) or not isinstance(size_value, int) or size_value < 0:
            raise EncodingError(f"old size {old_size!r} is not a non-negative integer")
        proof = tuple(consistency_proof)
        if len(proof) > MAX_PROOF_HASHES:
            raise EncodingError(f"consistency proof has more than {MAX_PROOF_HASHES} hashes")
        hashes: tuple[object, ...] = proof
        if any(not isinstance(h, bytes) or len(h) != HASH_BYTES for h in hashes):
            raise EncodingError(f"consistency proof hashes must be {HASH_BYTES} bytes each")

        new = SignedCheckpoint.from_text(signed_checkpoint_text)
        checkpoint = new.checkpoint
        origin = checkpoint.origin
        if origin != log_verifier.name:
            raise UnknownLogError(
                f"checkpoint origin {origin!r} is not the log key's name {log_verifier.name!r}"
            )
        log_signatures = new.verify_log_signature(log_verifier).verified
        if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
            raise ProofError(f"{origin}: a size-0 checkpoint must have the empty-tree root")

        # What gets stored: the body, the log signature(s) verified, then our cosignature.
        submitted = new.keep_signatures(log_signatures)
        for _ in range(_CAS_ATTEMPTS):
            record = self._store.load(origin)
            previous = None if record is None else self._parse_record(origin, record)
            self._check_against(previous, submitted, old_size, proof)
            cosignature = cosign(checkpoint, self._signer, self._timestamp(previous))
            updated = submitted.with_signature_lines([cosignature.to_note_signature()])
            try:
                self._store.store(origin, record, updated.to_text())
            except StaleStateError:
                continue
            return cosignature.to_line()
        raise StorageError(f"{origin}: witness state kept changing; try again")

    def _timestamp(self, previous: SignedCheckpoint | None) -> int:
        """Now, but never before this witness's last cosignature for the log.

        A v1 cosignature says "as of this time, this is the largest tree I have seen"; a clock
        stepping back must not make a newer statement look older than the one it replaces.
        """
        now = self._signer.now()
        if previous is None:
            return now
        for sig in previous.signatures:
            if (sig.name, sig.key_id) == (self._signer.name, self._signer.key_id):
                with contextlib.suppress(EncodingError):
                    now = max(now, Cosignature.from_note_signature(sig).timestamp)
        return now

    def _check_against(
        self,
        previous: SignedCheckpoint | None,
        new: SignedCheckpoint,
        old_size: int,
        proof: tuple[bytes, ...],
    ) -> None:
        checkpoint = new.checkpoint
        origin = checkpoint.origin
        known_size = 0 if previous is None else previous.checkpoint.size
        if previous is not None:
            old = previous.checkpoint
            if checkpoint.size == old.size and checkpoint.root_hash != old.root_hash:
                raise ConsistencyError(
                    f"{origin}: fork: size {old.size} was cosigned with root "
                    f"{old.root_hash.hex()}, now offered with root {checkpoint.root_hash.hex()}",
                    old=previous,
                    new=new,
                    proof=proof,
                )
            if checkpoint.size < old.size:
                raise ConsistencyError(
                    f"{origin}: rollback: size {checkpoint.size} offered after size {old.size} "
                    f"was cosigned",
                    old=previous,
                    new=new,
                    proof=proof,
                )
        # Fork and rollback come first: they are evidence whatever old size the client sent.
        if old_size > checkpoint.size:
            raise EncodingError(
                f"{origin}: old size {old_size} is larger than the checkpoint size "
                f"{checkpoint.size}"
            )
        if old_size != known_size:
            raise OldSizeMismatchError(origin, old_size, known_size)
        if previous is None:  # so old_size == 0: the empty tree is consistent with every tree
            if proof:
                raise ProofError(f"{origin}: a proof from size 0 must be empty")
            return
        if checkpoint.size == known_size:
            if proof:
                raise ProofError(f"{origin}: same size {known_size}: the proof must be empty")
            return  # same checkpoint again: cosign it again (idempotent)
        try:
            verify_consistency(
                known_size,
                checkpoint.size,
                previous.checkpoint.root_hash,
                checkpoint.root_hash,
                list(proof),
            )
        except ChainError as exc:
            raise ConsistencyError(
                f"{origin}: size {checkpoint.size} root {checkpoint.root_hash.hex()} is not "
                f"proven consistent with cosigned size {known_size} root "
                f"{previous.checkpoint.root_hash.hex()}: {exc}",
                old=previous,
                new=new,
                proof=proof,
            ) from exc
