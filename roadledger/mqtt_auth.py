"""MQTT credentials for Mosquitto: per-device passwords, the service accounts, and the ACL.

Mosquitto reads two files, both reloaded on SIGHUP without dropping anyone:

- the password file (``mosquitto_passwd`` format): one ``username:$7$<iterations>$<salt>$<hash>``
  line per account, the hash PBKDF2-HMAC-SHA512 of the password over a 12-byte salt, both in
  standard base64 (what Mosquitto 2.x's ``mosquitto_passwd`` writes and its broker checks);
- the ACL file: a device (username = its device id) may only publish to its own topic
  ``roadledger/v1/telemetry/<device id>``; the bridge account reads every telemetry topic; the
  simulator account (a stand-in for a whole simulated fleet, development only) writes them.

:class:`PasswordFile` is the store of record for MQTT credentials: only hashes are kept, a
password is shown once when issued. Every change rewrites the file atomically under a lock, so
several registry commands (or test processes) may change it at once; lines for other users are
kept. :func:`reload_broker` sends SIGHUP to the broker ``roadledger services`` runs; a broker
elsewhere reads the same file (a shared volume) and is reloaded by its operator (SIGHUP).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.topics import MQTT_TELEMETRY_PREFIX

if TYPE_CHECKING:
    from roadledger.settings import Settings

__all__ = [
    "ITERATIONS",
    "MqttAccount",
    "MqttAuthError",
    "PasswordFile",
    "acl_text",
    "bridge_account",
    "hash_password",
    "new_password",
    "reload_broker",
    "sim_account",
    "verify_password",
]

ITERATIONS = 101  # mosquitto_passwd's default. Passwords are 192-bit random tokens: guessing
# is hopeless whatever the count, and a higher one costs the broker CPU on every CONNECT.
_SALT_BYTES = 12  # as mosquitto_passwd
_HASH_BYTES = 64  # SHA-512
# A username must not widen its ACL pattern (%u) or break a line of either file.
_USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class MqttAuthError(Exception):
    """A credential could not be issued, read or written; the message says which and why."""


@dataclass(frozen=True, slots=True)
class MqttAccount:
    """A username and its password in clear (settings, or just issued)."""

    username: str
    password: str


def bridge_account(settings: Settings) -> MqttAccount:
    """The bridge's service account (``ROADLEDGER_MQTT_BRIDGE_*``)."""
    return MqttAccount(settings.mqtt_bridge_username, settings.mqtt_bridge_password)


def sim_account(settings: Settings) -> MqttAccount | None:
    """The simulator's service account (``ROADLEDGER_MQTT_SIM_*``); None when disabled."""
    if not settings.mqtt_sim_password:
        return None
    return MqttAccount(settings.mqtt_sim_username, settings.mqtt_sim_password)


def new_password() -> str:
    """A fresh random password (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The ``$7$`` (PBKDF2-SHA512) hash of ``password`` as Mosquitto's password file holds it."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash; False for anything else."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4])
    except ValueError:
        return False
    again = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(digest))
    return hmac.compare_digest(again, digest)


def check_username(username: str) -> str:
    """``username`` if it is usable as an MQTT username here; else :class:`MqttAuthError`."""
    if not _USERNAME.fullmatch(username):
        raise MqttAuthError(
            f"username {username!r}: only letters, digits, '.', '_' and '-' (1-128) are allowed"
        )
    return username


def acl_text(bridge_user: str | None, sim_user: str | None) -> str:
    """The broker's ACL: devices publish to their own topic only (see the module docstring)."""
    telemetry_all = MQTT_TELEMETRY_PREFIX + "#"
    lines = ["# Written by roadledger (roadledger/mqtt_auth.py); edits are overwritten.", ""]
    if bridge_user:
        lines += [f"user {check_username(bridge_user)}", f"topic read {telemetry_all}", ""]
    if sim_user:
        lines += [f"user {check_username(sim_user)}", f"topic write {telemetry_all}", ""]
    # Any other user is a device whose username is its device id.
    lines += [f"pattern write {MQTT_TELEMETRY_PREFIX}%u", ""]
    return "\n".join(lines)


class PasswordFile:
    """A Mosquitto password file changed one account at a time (see the module docstring)."""

    def __init__(self, path: Path, *, owner: str | None = None, mode: int = 0o600) -> None:
        self.path = path
        self._owner = owner  # the broker's user, when we are root and it is not
        self._mode = mode  # 0o644 only where the broker runs as a user we cannot chown to

    def entries(self) -> dict[str, str]:
        """username -> hash, as the file holds them now (empty if there is no file)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise MqttAuthError(f"cannot read {self.path}: {exc.strerror}") from None
        found: dict[str, str] = {}
        for line in text.splitlines():
            user, sep, hashed = line.partition(":")
            if sep and user and not line.startswith("#"):
                found[user] = hashed
        return found

    def has(self, username: str) -> bool:
        return username in self.entries()

    def check(self, username: str, password: str) -> bool:
        """True if ``username`` is in the file with ``password``."""
        hashed = self.entries().get(username)
        return hashed is not None and verify_password(password, hashed)

    def issue(self, username: str) -> str:
        """A new password for ``username`` (replacing any earlier one); shown only here."""
        password = new_password()
        self.set(username, password)
        return password

    def set(self, username: str, password: str) -> bool:
        """Store ``password`` for ``username`` unless it already is its password; True if the
        file changed."""
        check_username(username)
        with self._locked() as current:
            hashed = current.get(username)
            if hashed is not None and verify_password(password, hashed):
                return False
            current[username] = hash_password(password)
            self._write(current)
            return True

    def set_many(self, accounts: Sequence[MqttAccount]) -> bool:
        """:meth:`set` for several accounts in one rewrite; True if the file changed."""
        with self._locked() as current:
            changed = False
            for account in accounts:
                hashed = current.get(check_username(account.username))
                if hashed is None or not verify_password(account.password, hashed):
                    current[account.username] = hash_password(account.password)
                    changed = True
            if changed:
                self._write(current)
            return changed

    def remove(self, username: str) -> bool:
        """Delete ``username``'s credential; True if it had one."""
        with self._locked() as current:
            if current.pop(username, None) is None:
                return False
            self._write(current)
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise MqttAuthError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self.entries()
        finally:
            os.close(fd)  # releases the lock

    def _write(self, entries: dict[str, str]) -> None:
        text = "".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items()))
        # Written beside it and renamed over it: the broker never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            os.chmod(tmp, self._mode)  # by default only the broker may read it
            if self._owner is not None:
                shutil.chown(tmp, self._owner, self._owner)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise MqttAuthError(f"cannot write {self.path}: {exc.strerror}") from None


def reload_broker(pid: int | None) -> bool:
    """SIGHUP the broker ``pid`` so it reads its password and ACL files again (connected clients
    stay connected). False when there is no such process."""
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return False
    return True
