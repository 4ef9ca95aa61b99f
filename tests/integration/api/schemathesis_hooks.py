"""Schemathesis hooks (``SCHEMATHESIS_HOOKS``): how to make a body of our own media types.

``POST /v1/rules`` takes a compact JWS (``application/jose``): three base64url segments
joined by dots. Generated ones are well-formed in shape and wrong in content (or random
bytes), so the route's refusals, not schemathesis' serializer, are what gets tested.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

_B64URL = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=200
)
_COMPACT_JWS = st.tuples(_B64URL, _B64URL, _B64URL).map(lambda parts: ".".join(parts).encode())

schemathesis.openapi.media_type(
    "application/jose", st.one_of(_COMPACT_JWS, st.binary(max_size=300))
)


@schemathesis.serializer("application/jose")
def jose_bytes(ctx: Any, value: Any) -> bytes:
    """The body as sent: bytes as they are, the schema's example string as UTF-8."""
    del ctx
    return value if isinstance(value, bytes) else str(value).encode()
