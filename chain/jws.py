"""JWS compact serialization (RFC 7515 section 7.1) with Ed25519, verified on the verbatim bytes.

The signing input is exactly the first two segments *as received*: nothing is decoded and
re-encoded before verification or hashing, so no canonicalization is needed and the stored
bytes are the signed bytes.

Profile (stricter than RFC 7515, on purpose):

- at most :data:`MAX_JWS_BYTES` bytes, checked before any parsing (``oversize``);
- exactly three non-empty segments of strict unpadded base64url; the signature decodes to 64
  bytes; no whitespace anywhere, not even a trailing newline (``malformed``);
- the protected header is a UTF-8 JSON object without duplicate names (``malformed`` /
  ``bad_header``); ``alg`` is ``Ed25519`` (RFC 9864) or ``EdDSA`` (RFC 8037), anything else,
  ``none`` included, is ``unsupported_alg``; ``kid`` is a non-empty string; ``typ`` may be given
  as a string; any other parameter (``crit``, ``b64``, ``jwk``, ...) is ``bad_header``.

Every failure raises :class:`~chain.errors.TelemetryError` with its
:class:`~chain.errors.RejectReason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.encoding import b64url_decode, b64url_encode
from chain.errors import EncodingError, RejectReason, TelemetryError
from chain.keys import SIGNATURE_SIZE, Ed25519PrivateKey, Ed25519PublicKey
from chain.strict_json import JsonContentError, dumps_canonical, loads_object

__all__ = [
    "ACCEPTED_ALGS",
    "MAX_JWS_BYTES",
    "SIGNING_ALG",
    "CompactJws",
    "JwsHeader",
    "parse_json_object",
    "sign_compact",
]

MAX_JWS_BYTES = 16 * 1024
"""Largest accepted message. A maximal schema-valid telemetry message is about 12 KiB."""

SIGNING_ALG = "Ed25519"
ACCEPTED_ALGS = frozenset({"Ed25519", "EdDSA"})
_OPTIONAL_HEADER_PARAMS = frozenset({"kid", "typ"})


def parse_json_object(data: bytes, *, what: str, content_reason: RejectReason) -> dict[str, Any]:
    """Parse ``data`` as one strict UTF-8 JSON object (:func:`chain.strict_json.loads_object`).

    Not UTF-8, not JSON (``NaN``/``Infinity`` included), too deeply nested or not an object:
    ``malformed``. Duplicate member names (at any depth) or integer literals longer than 20
    digits: ``content_reason``. Floats parse as ``float``; schema checks reject them.
    """
    try:
        return loads_object(data, what)
    except JsonContentError as exc:
        raise TelemetryError(content_reason, str(exc)) from None
    except EncodingError as exc:
        raise TelemetryError(RejectReason.MALFORMED, str(exc)) from None


def _b64url(segment: bytes, what: str) -> bytes:
    try:
        return b64url_decode(segment, what)
    except EncodingError as exc:
        raise TelemetryError(RejectReason.MALFORMED, str(exc)) from None


@dataclass(frozen=True, slots=True)
class JwsHeader:
    """The protected header. ``kid`` is optional here only so RFC 8037 vectors parse."""

    alg: str = SIGNING_ALG
    kid: str | None = None
    typ: str | None = None

    def __post_init__(self) -> None:
        if type(self.alg) is not str:
            raise TelemetryError(RejectReason.BAD_HEADER, "header: alg must be a string")
        if self.alg not in ACCEPTED_ALGS:
            raise TelemetryError(RejectReason.UNSUPPORTED_ALG, f"header: alg {self.alg!r:.66}")
        if self.kid is not None and (type(self.kid) is not str or not self.kid):
            raise TelemetryError(RejectReason.BAD_HEADER, "header: kid must be a non-empty string")
        if self.kid is not None and len(self.kid) > MAX_KID_CHARS:
            # A kid is a device id (at most 64 characters): anything longer is refused before
            # a key lookup, a cache entry or a log line is spent on it.
            raise TelemetryError(
                RejectReason.BAD_HEADER,
                f"header: kid of {len(self.kid)} characters, limit is {MAX_KID_CHARS}",
            )
        if self.typ is not None and type(self.typ) is not str:
            raise TelemetryError(RejectReason.BAD_HEADER, "header: typ must be a string")

    @classmethod
    def from_json(cls, data: bytes, *, require_kid: bool = True) -> JwsHeader:
        """Parse the decoded protected header strictly (see the module docstring)."""
        obj = parse_json_object(data, what="header", content_reason=RejectReason.BAD_HEADER)
        if "alg" not in obj:
            raise TelemetryError(RejectReason.BAD_HEADER, "header: alg missing")
        alg = obj.pop("alg")
        header = cls(alg, obj.get("kid"), obj.get("typ"))  # alg is checked before the rest
        if unknown := obj.keys() - _OPTIONAL_HEADER_PARAMS:
            raise TelemetryError(
                RejectReason.BAD_HEADER, f"header: unsupported parameters {sorted(unknown)!r:.200}"
            )
        if nulls := [name for name, value in obj.items() if value is None]:
            raise TelemetryError(RejectReason.BAD_HEADER, f"header: null parameters {nulls}")
        if require_kid and header.kid is None:
            raise TelemetryError(RejectReason.BAD_HEADER, "header: kid missing")
        return header

    def to_json(self) -> bytes:
        """Compact JSON with sorted keys, e.g. ``{"alg":"Ed25519","kid":"veh-1"}``."""
        obj = {"alg": self.alg, "kid": self.kid, "typ": self.typ}
        present = {k: v for k, v in obj.items() if v is not None}
        return dumps_canonical(present).encode()


# Header segment -> parsed header. A device sends the same header with every message, so a
# fleet has as many distinct headers as devices; the cache is bounded and cleared when full.
# Only successful parses are kept (with the require_kid they passed), so a cached header is
# exactly what parsing the same bytes again would return. Nothing is authenticated yet when a
# header is parsed, so only segments of a real header's size are kept (the largest real one,
# '{"alg": "Ed25519", "kid": <64 characters>, "typ": "JWT"}', is 143 bytes): filled with
# junk of the largest size kept, the cache holds about 19 MB (measured with tracemalloc,
# tests/unit/chain/test_jws.py), in each process that parses (the verifier and its workers).
# A process that sees more distinct devices than the limit only parses some headers again.
MAX_KID_CHARS = 64
# A header segment longer than this is bad_header before it is even decoded: the largest real
# header is 143 bytes, and an unauthenticated 11 KB one must not cost a decode and a parse.
MAX_HEADER_SEGMENT_BYTES = 1024
_HEADER_CACHE_LIMIT = 32_768
_HEADER_CACHE_SEGMENT = 160
_headers: dict[tuple[bytes, bool], JwsHeader] = {}


def _header(segment: bytes, require_kid: bool) -> JwsHeader:
    cached = _headers.get((segment, require_kid))
    if cached is not None:
        return cached
    if len(segment) > MAX_HEADER_SEGMENT_BYTES:
        raise TelemetryError(
            RejectReason.BAD_HEADER,
            f"header: {len(segment)} bytes encoded, limit is {MAX_HEADER_SEGMENT_BYTES}",
        )
    header = JwsHeader.from_json(_b64url(segment, "header"), require_kid=require_kid)
    if len(segment) > _HEADER_CACHE_SEGMENT:
        return header
    if len(_headers) >= _HEADER_CACHE_LIMIT:
        _headers.clear()
    _headers[(segment, require_kid)] = header
    return header


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A parsed compact JWS that keeps the bytes it came from. Build with :meth:`from_bytes`."""

    raw: bytes
    header: JwsHeader
    payload: bytes
    signature: bytes

    @classmethod
    def from_bytes(cls, raw: bytes, *, require_kid: bool = True) -> CompactJws:
        """Split and decode ``raw`` without verifying the signature."""
        if len(raw) > MAX_JWS_BYTES:
            raise TelemetryError(
                RejectReason.OVERSIZE, f"{len(raw)} bytes, limit is {MAX_JWS_BYTES}"
            )
        if raw.count(b".") != 2:
            raise TelemetryError(
                RejectReason.MALFORMED, f"compact JWS needs 3 segments, got {raw.count(b'.') + 1}"
            )
        h_end = raw.index(b".")
        p_end = raw.index(b".", h_end + 1)
        if h_end == 0 or p_end == h_end + 1 or p_end == len(raw) - 1:
            raise TelemetryError(RejectReason.MALFORMED, "compact JWS has an empty segment")
        header = _header(raw[:h_end], require_kid)
        signature = _b64url(raw[p_end + 1 :], "signature")
        if len(signature) != SIGNATURE_SIZE:
            raise TelemetryError(
                RejectReason.MALFORMED, f"signature: {len(signature)} bytes, not {SIGNATURE_SIZE}"
            )
        payload = _b64url(raw[h_end + 1 : p_end], "payload")
        return cls(raw, header, payload, signature)

    def to_bytes(self) -> bytes:
        """The verbatim bytes this JWS was parsed from."""
        return self.raw

    @property
    def signing_input(self) -> bytes:
        """``BASE64URL(header) || '.' || BASE64URL(payload)`` exactly as received."""
        return self.raw[: self.raw.rindex(b".")]

    def verify_signature(self, public_key: Ed25519PublicKey) -> None:
        """Return if the signature verifies under ``public_key``, else raise ``bad_signature``."""
        if not public_key.is_valid_signature(self.signature, self.signing_input):
            raise TelemetryError(
                RejectReason.BAD_SIGNATURE,
                f"signature does not verify under key {public_key.to_b64url()}",
            )

    @classmethod
    def verify(
        cls, raw: bytes, public_key: Ed25519PublicKey, *, require_kid: bool = True
    ) -> CompactJws:
        """Parse ``raw`` and verify its signature; the payload is returned uninterpreted."""
        jws = cls.from_bytes(raw, require_kid=require_kid)
        jws.verify_signature(public_key)
        return jws


def sign_compact(
    signing_key: Ed25519PrivateKey, header: JwsHeader | bytes, payload: bytes
) -> bytes:
    """Sign ``payload`` under ``header`` (a :class:`JwsHeader` or its exact JSON bytes).

    The result is checked against the same profile as received messages, so a device never
    emits what the service would reject (``oversize``, ``malformed``, ``bad_header``, ...).
    """
    header_json = header.to_json() if isinstance(header, JwsHeader) else header
    JwsHeader.from_json(header_json, require_kid=False)
    if not payload:
        raise TelemetryError(RejectReason.MALFORMED, "empty payload (detached) is not supported")
    signing_input = f"{b64url_encode(header_json)}.{b64url_encode(payload)}".encode("ascii")
    raw = signing_input + b"." + b64url_encode(signing_key.sign(signing_input)).encode("ascii")
    if len(raw) > MAX_JWS_BYTES:
        raise TelemetryError(RejectReason.OVERSIZE, f"{len(raw)} bytes, limit is {MAX_JWS_BYTES}")
    return raw
