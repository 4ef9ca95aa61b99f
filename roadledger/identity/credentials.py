"""Bearer secrets: generated here, shown once, stored only as their SHA-256.

An access or refresh token is ``<prefix>_<43 base64url chars>`` (256 random bits): a plain
SHA-256 suffices to store it (no dictionary to attack, unlike a password) and lets a request be
authenticated with one indexed lookup. An API key is ``rlk_<key_id>.<secret>``: the key id
names the row, the secret's hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

__all__ = [
    "ACCESS_PREFIX",
    "API_KEY_PREFIX",
    "REFRESH_PREFIX",
    "new_api_key",
    "new_id",
    "new_token",
    "secret_hash",
    "secrets_equal",
    "split_api_key",
]

ACCESS_PREFIX: Final = "rla"
REFRESH_PREFIX: Final = "rlr"
API_KEY_PREFIX: Final = "rlk"
_API_KEY = re.compile(r"^rlk_([a-z0-9]{16})\.([A-Za-z0-9_-]{43})$")


def new_id(prefix: str) -> str:
    """A random identifier such as ``m_3f9a...`` (80 bits, hex)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def new_token(prefix: str) -> tuple[str, bytes]:
    """A fresh bearer token and the SHA-256 to store."""
    token = f"{prefix}_{secrets.token_urlsafe(32)}"
    return token, secret_hash(token)


def secret_hash(secret: str) -> bytes:
    """SHA-256 of a token or API-key secret (UTF-8)."""
    return hashlib.sha256(secret.encode()).digest()


def secrets_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two hashes."""
    return hmac.compare_digest(a, b)


def new_api_key() -> tuple[str, str, bytes]:
    """(key_id, the full key to show once, the secret's hash to store)."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{API_KEY_PREFIX}_{key_id}.{secret}", secret_hash(secret)


def split_api_key(key: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed API key, else None."""
    match = _API_KEY.match(key)
    return (match.group(1), match.group(2)) if match else None
