"""The logs' signing key: one Ed25519 seed, one C2SP key name per log (its origin).

A witness requires a checkpoint's key name to equal the log's origin, and there is one log
per partition, so the seed is kept once (as C2SP skey text, in ``ROADLEDGER_LOG_KEY_FILE``)
and a signer is derived per origin. The key file is created, mode 0600, on first use in
development; in production a missing key file is an error (a new key would start an
unverifiable history).
"""

from __future__ import annotations

import os
import secrets

from chain.errors import EncodingError
from chain.note_keys import SIGNATURE_TYPE_ED25519, SignerKey
from chain.note_signers import Ed25519Signer
from contracts.errors import CommandError, Unavailable
from roadledger.settings import Settings

__all__ = ["LogKey", "LogKeyUnavailable", "existing_log_key", "load_log_key"]

_FILE_KEY_NAME = "roadledger-log"


class LogKey:
    """The seed behind every log's checkpoint signatures. Never printed or logged."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed

    def signer(self, origin: str) -> Ed25519Signer:
        """The checkpoint signer of the log ``origin`` (key name = origin)."""
        return Ed25519Signer(origin, self._seed)

    def vkey(self, origin: str) -> str:
        """The verifier key text an auditor, witness or insurer needs for ``origin``."""
        return self.signer(origin).to_vkey()

    def __repr__(self) -> str:
        return "LogKey(<secret>)"


def load_log_key(settings: Settings) -> LogKey:
    """Read the log key file; create it in development when it does not exist."""
    path = settings.log_key_path
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if settings.env != "development":
            raise CommandError(
                f"log key file {path} not found: restore it or set ROADLEDGER_LOG_KEY_FILE "
                "(a new key would start a history that nobody can link to the old one)"
            ) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = secrets.token_bytes(32)
        text = SignerKey.create(_FILE_KEY_NAME, SIGNATURE_TYPE_ED25519, seed).to_text()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text + "\n")
        return LogKey(seed)
    except OSError as exc:
        raise CommandError(f"cannot read log key file {path}: {exc.strerror}") from None
    try:
        key = SignerKey.from_text(text)
    except EncodingError as exc:
        raise CommandError(f"log key file {path}: {exc}") from None
    if os.stat(path).st_mode & 0o077:
        raise CommandError(f"log key file {path} is readable by others; chmod 600 it")
    return LogKey(key.seed)


class LogKeyUnavailable(Unavailable):
    """The log key file is missing or unreadable (the sequencer has not made it yet)."""


def existing_log_key(settings: Settings) -> LogKey:
    """The log key, for publishing its verifier keys: never created here (a reader such as
    the API must not start a history of its own)."""
    if not settings.log_key_path.exists():
        raise LogKeyUnavailable("the log key is not there yet: the sequencer creates it")
    try:
        return load_log_key(settings)
    except CommandError:
        raise LogKeyUnavailable("the log key is not readable") from None
