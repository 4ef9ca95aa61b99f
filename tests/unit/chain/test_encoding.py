"""chain.encoding: strict base64url, checked against a decode-and-re-encode reference."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.encoding import b64url_decode, b64url_encode
from chain.errors import EncodingError

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def reference_decode(text: str) -> bytes | None:
    """The definition: decodes leniently, and only the one canonical spelling is accepted."""
    if len(text) % 4 == 1 or any(c not in ALPHABET for c in text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if b64url_encode(data) == text else None


@given(st.binary(max_size=80))
def test_round_trip(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(st.text(alphabet=ALPHABET + "=+/ .\n\u00e9", max_size=24))
def test_accepts_exactly_what_the_reference_accepts(text: str) -> None:
    expected = reference_decode(text)
    if expected is None:
        with pytest.raises(EncodingError):
            b64url_decode(text, "field")
    else:
        assert b64url_decode(text, "field") == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("QQ", None),  # "A"
        ("QR", "non-canonical"),  # same byte, a stray low bit
        ("QUI", None),  # "AB"
        ("QUJ", "non-canonical"),
        ("QUJD", None),
        ("QQ==", "not unpadded"),
        ("Q", "not unpadded"),
        ("a+b/", "not unpadded"),
    ],
)
def test_known_answers(text: str, why: str | None) -> None:
    if why is None:
        assert b64url_encode(b64url_decode(text)) == text
    else:
        with pytest.raises(EncodingError, match=why):
            b64url_decode(text, "sig")
