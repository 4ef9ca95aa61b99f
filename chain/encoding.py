"""Strict base64 helpers: the one place that decodes base64 in chain/.

Decoders reject anything a lenient decoder would silently accept (padding where none belongs,
characters from the other alphabet, non-canonical trailing bits), because two different strings
that decode to the same bytes would let an attacker vary a signed message without detection.
"""

from __future__ import annotations

import base64
import binascii
import re

from chain.errors import EncodingError

__all__ = ["b64_decode", "b64_encode", "b64url_decode", "b64url_encode"]

_B64URL_BYTES = re.compile(rb"[A-Za-z0-9_-]*")
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_VALUE = {char: value for value, char in enumerate(_B64URL_ALPHABET)}
_UNUSED_BITS = {2: 0b1111, 3: 0b11}  # by len % 4
_PADDING = {0: b"", 2: b"==", 3: b"="}
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes, what: str = "base64url") -> bytes:
    """Decode unpadded base64url, refusing padding, foreign characters and non-canonical input."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError:
            raise EncodingError(f"{what}: not ASCII") from None
    tail = len(text) % 4
    if tail == 1 or not _B64URL_BYTES.fullmatch(text):
        if not text.isascii():
            raise EncodingError(f"{what}: not ASCII")
        raise EncodingError(f"{what}: not unpadded base64url")
    # Canonical means the bits of the last character that encode no byte are zero: 4 of them
    # after 2 characters of a final group, 2 after 3. Checking that is what re-encoding and
    # comparing would find, at a fraction of the cost.
    if tail and _B64URL_VALUE[text[-1]] & _UNUSED_BITS[tail]:
        raise EncodingError(f"{what}: non-canonical base64url")
    try:
        return binascii.a2b_base64(text.translate(_URL_TO_STD) + _PADDING[tail])
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what}: not unpadded base64url") from None


def b64_encode(data: bytes) -> str:
    """Standard padded base64 (RFC 4648 section 4), as C2SP notes use."""
    return base64.b64encode(data).decode("ascii")


def b64_decode(text: str, what: str = "base64") -> bytes:
    """Decode standard padded base64 strictly (canonical form only)."""
    if not _B64.fullmatch(text) or len(text) % 4:
        raise EncodingError(f"{what}: not padded standard base64")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EncodingError(f"{what}: not padded standard base64") from None
    if b64_encode(data) != text:
        raise EncodingError(f"{what}: non-canonical base64")
    return data
