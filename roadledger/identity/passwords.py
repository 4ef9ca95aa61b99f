"""Password hashes: argon2id (RFC 9106) through argon2-cffi.

Parameters: OWASP's first recommendation for argon2id (19 MiB, 2 passes, 1 lane): about 30 ms
a hash here. argon2-cffi's default (RFC 9106's 64 MiB profile) took 330 ms on this 2-core
machine, which would let a burst of logins starve the API of CPU.

The hash string carries its own parameters, so raising them later upgrades each member's hash
at their next successful login (:func:`needs_rehash`).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["MIN_PASSWORD_LENGTH", "hash_password", "needs_rehash", "verify_password"]

MIN_PASSWORD_LENGTH = 12
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)  # argon2id
# A hash to verify against when the username is unknown, so that the answer takes as long
# as for a known one (no username enumeration by timing).
_DUMMY = _HASHER.hash("not-a-real-password-only-for-timing")


def hash_password(password: str) -> str:
    """The argon2id hash string of ``password``."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; None (unknown user) costs the same and fails."""
    try:
        _HASHER.verify(stored or _DUMMY, password)  # True or raises
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


def needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than today's."""
    return _HASHER.check_needs_rehash(stored)
