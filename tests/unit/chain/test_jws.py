"""Ed25519 keys and the JWS compact profile: RFC 8037 vector, framing, header and signature."""

from __future__ import annotations

import base64
import gc
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import chain.jws as jws_module
from chain.encoding import b64url_encode
from chain.errors import EncodingError, RejectReason, SignatureError, TelemetryError
from chain.jws import MAX_JWS_BYTES, CompactJws, JwsHeader, sign_compact
from chain.keys import Ed25519PrivateKey, Ed25519PublicKey

SK = Ed25519PrivateKey.from_bytes(bytes(range(32)))
PK = SK.public_key
OTHER = Ed25519PrivateKey.from_bytes(bytes(range(1, 33)))
HEADER = b'{"alg":"Ed25519","kid":"veh-1"}'
PAYLOAD = b'{"hello":"world"}'


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def compact(header: bytes, payload: bytes, key: Ed25519PrivateKey = SK) -> bytes:
    """Sign without any profile check, so a rejection is never just a bad signature."""
    signing_input = b64(header) + b"." + b64(payload)
    return signing_input + b"." + b64(key.sign(signing_input))


GOOD = compact(HEADER, PAYLOAD)
H, P, S = GOOD.split(b".")


def reason_of(raw: bytes, *, require_kid: bool = True) -> RejectReason:
    with pytest.raises(TelemetryError) as info:
        CompactJws.verify(raw, PK, require_kid=require_kid)
    return info.value.reason


@pytest.fixture(scope="module")
def rfc8037(vectors_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors_dir / "rfc8037-jws-ed25519.json").read_text())
    return data


# --- RFC 8037 appendix A.4 -----------------------------------------------------------------


def test_rfc8037_vector_verifies(rfc8037: dict[str, Any]) -> None:
    public = Ed25519PublicKey.from_b64url(rfc8037["public_key_x_b64url"])
    jws = CompactJws.verify(rfc8037["jws_compact"].encode(), public, require_kid=False)
    assert jws.header == JwsHeader(alg="EdDSA")
    assert jws.payload == rfc8037["payload_utf8"].encode()
    assert jws.signing_input == rfc8037["jws_compact"].encode().rsplit(b".", 1)[0]


def test_rfc8037_vector_signing_is_byte_exact(rfc8037: dict[str, Any]) -> None:
    private = Ed25519PrivateKey.from_b64url(rfc8037["private_key_d_b64url"])
    assert private.public_key.to_b64url() == rfc8037["public_key_x_b64url"]
    raw = sign_compact(
        private, rfc8037["protected_header_json"].encode(), rfc8037["payload_utf8"].encode()
    )
    assert raw == rfc8037["jws_compact"].encode()


def test_rfc8037_vector_needs_kid_in_our_profile(rfc8037: dict[str, Any]) -> None:
    public = Ed25519PublicKey.from_b64url(rfc8037["public_key_x_b64url"])
    with pytest.raises(TelemetryError) as info:
        CompactJws.verify(rfc8037["jws_compact"].encode(), public)
    assert info.value.reason is RejectReason.BAD_HEADER


def test_rfc8037_vector_rejects_other_key(rfc8037: dict[str, Any]) -> None:
    with pytest.raises(TelemetryError) as info:
        CompactJws.verify(rfc8037["jws_compact"].encode(), PK, require_kid=False)
    assert info.value.reason is RejectReason.BAD_SIGNATURE


# --- keys --------------------------------------------------------------------------------------


def test_key_round_trips() -> None:
    assert Ed25519PrivateKey.from_bytes(SK.to_bytes()) == SK
    assert Ed25519PrivateKey.from_b64url(SK.to_b64url()) == SK
    assert Ed25519PublicKey.from_bytes(PK.to_bytes()) == PK
    assert Ed25519PublicKey.from_b64url(PK.to_b64url()) == PK
    assert SK != OTHER
    assert Ed25519PrivateKey.generate() != Ed25519PrivateKey.generate()


def test_private_key_never_shows_its_bytes() -> None:
    seed = SK.to_bytes()
    for text in (repr(SK), str(SK), f"{SK}", repr([SK])):
        assert seed.hex() not in text
        assert SK.to_b64url() not in text
        assert PK.to_b64url() in text


@pytest.mark.parametrize(
    "build",
    [
        lambda: Ed25519PublicKey.from_bytes(bytes(31)),
        lambda: Ed25519PublicKey.from_bytes(bytes(33)),
        lambda: Ed25519PublicKey.from_b64url(PK.to_b64url() + "="),
        lambda: Ed25519PublicKey.from_b64url(PK.to_b64url()[:-1]),
        lambda: Ed25519PrivateKey.from_bytes(bytes(64)),
        lambda: Ed25519PrivateKey.from_b64url("not base64!"),
    ],
)
def test_bad_key_material_is_encoding_error(build: Any) -> None:
    with pytest.raises(EncodingError):
        build()


def test_raw_sign_verify() -> None:
    sig = SK.sign(b"msg")
    assert sig == SK.sign(b"msg")  # deterministic (RFC 8032)
    PK.verify(sig, b"msg")
    assert not PK.is_valid_signature(sig, b"msh")
    assert not PK.is_valid_signature(sig[:-1], b"msg")
    assert not OTHER.public_key.is_valid_signature(sig, b"msg")
    with pytest.raises(SignatureError):
        PK.verify(bytes(64), b"msg")


# --- framing and base64 ------------------------------------------------------------------------


def flip_last_bits(segment: bytes) -> bytes:
    """Same decoded bytes as far as a lenient decoder cares, but non-canonical trailing bits."""
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1:])
    return segment[:-1] + alphabet[last ^ 1 : (last ^ 1) + 1]


MALFORMED_FRAMES = {
    "empty": b"",
    "one segment": H,
    "two segments": H + b"." + P,
    "four segments": GOOD + b"." + S,
    "dots only": b"..",
    "empty header": b"." + P + b"." + S,
    "empty payload": H + b".." + S,
    "empty signature": H + b"." + P + b".",
    "trailing newline": GOOD + b"\n",
    "trailing CRLF": GOOD + b"\r\n",
    "trailing space": GOOD + b" ",
    "leading space": b" " + GOOD,
    "space inside": H + b" ." + P + b"." + S,
    "header bad char": b"!" + H[1:] + b"." + P + b"." + S,
    "payload bad char": H + b"." + P[:-1] + b"*." + S,
    "signature bad char": H + b"." + P + b"." + S[:-1] + b"~",
    "header padded": H + b"=." + P + b"." + S,
    "payload padded": H + b"." + P + b"==." + S,
    "signature padded": GOOD + b"==",
    "header std alphabet": H.replace(b"_", b"/").replace(b"-", b"+") + b"+." + P + b"." + S,
    "signature non-canonical": H + b"." + P + b"." + flip_last_bits(S),
    "header length 4n+1": H + b"A." + P + b"." + S,
    "non-ascii byte": H + b"." + P + b"\xff." + S,
    "signature 63 bytes": H + b"." + P + b"." + b64(SK.sign(H + b"." + P)[:63]),
    "signature 65 bytes": H + b"." + P + b"." + b64(SK.sign(H + b"." + P) + b"\0"),
}


@pytest.mark.parametrize("raw", MALFORMED_FRAMES.values(), ids=MALFORMED_FRAMES.keys())
def test_malformed_frames(raw: bytes) -> None:
    assert reason_of(raw) is RejectReason.MALFORMED


def test_size_limit_is_checked_before_parsing() -> None:
    assert reason_of(b"a" * MAX_JWS_BYTES) is RejectReason.MALFORMED
    assert reason_of(b"a" * (MAX_JWS_BYTES + 1)) is RejectReason.OVERSIZE
    assert reason_of(compact(HEADER, b"x" * MAX_JWS_BYTES)) is RejectReason.OVERSIZE


# --- protected header --------------------------------------------------------------------------

HEADERS: dict[str, tuple[bytes, RejectReason]] = {
    "not utf-8": (b'{"alg":"Ed25519","kid":"\xff"}', RejectReason.MALFORMED),
    "utf-16": ('{"alg":"Ed25519","kid":"v"}'.encode("utf-16"), RejectReason.MALFORMED),
    "bom": (b"\xef\xbb\xbf" + HEADER, RejectReason.MALFORMED),
    "not json": (b"alg=Ed25519", RejectReason.MALFORMED),
    "truncated json": (HEADER[:-1], RejectReason.MALFORMED),
    "array": (b'["alg","Ed25519"]', RejectReason.MALFORMED),
    "string": (b'"Ed25519"', RejectReason.MALFORMED),
    "null": (b"null", RejectReason.MALFORMED),
    "NaN": (b'{"alg":"Ed25519","kid":"v","x":NaN}', RejectReason.MALFORMED),
    # over MAX_HEADER_SEGMENT_BYTES: refused before it is decoded (the payload's own deep
    # nesting case is in test_telemetry.py)
    "deep nesting": (b'{"alg":' + b"[" * 5000 + b"]" * 5000 + b"}", RejectReason.BAD_HEADER),
    "alg none": (b'{"alg":"none","kid":"v"}', RejectReason.UNSUPPORTED_ALG),
    "alg HS256": (b'{"alg":"HS256","kid":"v"}', RejectReason.UNSUPPORTED_ALG),
    "alg ES256": (b'{"alg":"ES256","kid":"v"}', RejectReason.UNSUPPORTED_ALG),
    "alg lower case": (b'{"alg":"ed25519","kid":"v"}', RejectReason.UNSUPPORTED_ALG),
    "alg Ed448": (b'{"alg":"Ed448","kid":"v"}', RejectReason.UNSUPPORTED_ALG),
    "alg empty": (b'{"alg":"","kid":"v"}', RejectReason.UNSUPPORTED_ALG),
    "alg missing": (b'{"kid":"v"}', RejectReason.BAD_HEADER),
    "alg number": (b'{"alg":1,"kid":"v"}', RejectReason.BAD_HEADER),
    "alg null": (b'{"alg":null,"kid":"v"}', RejectReason.BAD_HEADER),
    "kid missing": (b'{"alg":"Ed25519"}', RejectReason.BAD_HEADER),
    "kid empty": (b'{"alg":"Ed25519","kid":""}', RejectReason.BAD_HEADER),
    "kid number": (b'{"alg":"Ed25519","kid":7}', RejectReason.BAD_HEADER),
    "kid bool": (b'{"alg":"Ed25519","kid":true}', RejectReason.BAD_HEADER),
    "kid null": (b'{"alg":"Ed25519","kid":null}', RejectReason.BAD_HEADER),
    "kid array": (b'{"alg":"Ed25519","kid":["v"]}', RejectReason.BAD_HEADER),
    "typ number": (b'{"alg":"Ed25519","kid":"v","typ":1}', RejectReason.BAD_HEADER),
    "typ null": (b'{"alg":"Ed25519","kid":"v","typ":null}', RejectReason.BAD_HEADER),
    "crit": (b'{"alg":"Ed25519","kid":"v","crit":["exp"],"exp":1}', RejectReason.BAD_HEADER),
    "b64 false": (
        b'{"alg":"Ed25519","kid":"v","b64":false,"crit":["b64"]}',
        RejectReason.BAD_HEADER,
    ),
    "embedded jwk": (b'{"alg":"Ed25519","kid":"v","jwk":{"kty":"OKP"}}', RejectReason.BAD_HEADER),
    "duplicate alg": (b'{"alg":"Ed25519","alg":"none","kid":"v"}', RejectReason.BAD_HEADER),
    "duplicate kid": (b'{"alg":"Ed25519","kid":"a","kid":"b"}', RejectReason.BAD_HEADER),
    "duplicate nested": (b'{"alg":"Ed25519","kid":"v","x":{"a":1,"a":2}}', RejectReason.BAD_HEADER),
    "huge integer": (
        b'{"alg":"Ed25519","kid":"v","x":' + b"9" * 30 + b"}",
        RejectReason.BAD_HEADER,
    ),
}


@pytest.mark.parametrize(("header", "reason"), HEADERS.values(), ids=HEADERS.keys())
def test_header_rejections(header: bytes, reason: RejectReason) -> None:
    assert reason_of(compact(header, PAYLOAD)) is reason


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b'{"alg":"Ed25519","kid":"veh-1"}', JwsHeader("Ed25519", "veh-1")),
        (b'{"alg":"EdDSA","kid":"veh-1"}', JwsHeader("EdDSA", "veh-1")),
        (b'{"kid":"veh-1","typ":"JWT","alg":"Ed25519"}', JwsHeader("Ed25519", "veh-1", "JWT")),
        (b' { "alg" : "Ed25519" , "kid" : "veh-1" } ', JwsHeader("Ed25519", "veh-1")),
    ],
)
def test_accepted_headers(header: bytes, expected: JwsHeader) -> None:
    assert CompactJws.verify(compact(header, PAYLOAD), PK).header == expected


def test_header_round_trip() -> None:
    header = JwsHeader("Ed25519", "veh-1")
    assert header.to_json() == HEADER
    assert JwsHeader.from_json(header.to_json()) == header
    with_typ = JwsHeader("EdDSA", "veh-1", "JWT")
    assert JwsHeader.from_json(with_typ.to_json()) == with_typ


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"alg": "none"}, RejectReason.UNSUPPORTED_ALG),
        ({"alg": "Ed25519", "kid": ""}, RejectReason.BAD_HEADER),
        ({"alg": "Ed25519", "typ": 1}, RejectReason.BAD_HEADER),
    ],
)
def test_header_constructor_validates(kwargs: dict[str, Any], reason: RejectReason) -> None:
    with pytest.raises(TelemetryError) as info:
        JwsHeader(**kwargs)
    assert info.value.reason is reason


# --- signature over the verbatim bytes ---------------------------------------------------------


def test_round_trip_keeps_the_bytes() -> None:
    raw = sign_compact(SK, JwsHeader("Ed25519", "veh-1"), PAYLOAD)
    assert raw == GOOD
    jws = CompactJws.verify(raw, PK)
    assert jws.to_bytes() is raw
    assert CompactJws.from_bytes(jws.to_bytes()) == jws
    assert jws.signing_input == H + b"." + P
    assert (jws.payload, jws.signature) == (PAYLOAD, SK.sign(H + b"." + P))


def tamper_char(segment: bytes, index: int) -> bytes:
    char = b"B" if segment[index : index + 1] != b"B" else b"C"
    return segment[:index] + char + segment[index + 1 :]


def tamper_signature_byte(segment: bytes) -> bytes:
    sig = bytearray(base64.urlsafe_b64decode(segment + b"=="))
    sig[10] ^= 0x01
    return b64(bytes(sig))


BAD_SIGNATURES = {
    "payload char": H + b"." + tamper_char(P, 5) + b"." + S,
    "payload re-encoded with a space": H + b"." + b64(b'{"hello": "world"}') + b"." + S,
    "header re-encoded": b64(b'{"kid":"veh-1","alg":"Ed25519"}') + b"." + P + b"." + S,
    "header kid swapped": b64(b'{"alg":"Ed25519","kid":"veh-2"}') + b"." + P + b"." + S,
    "alg EdDSA relabelled": b64(b'{"alg":"EdDSA","kid":"veh-1"}') + b"." + P + b"." + S,
    "signature byte": H + b"." + P + b"." + tamper_signature_byte(S),
    "signature zero": H + b"." + P + b"." + b64(bytes(64)),
    "other key": compact(HEADER, PAYLOAD, OTHER),
    "signature of other message": H + b"." + P + b"." + b64(SK.sign(b"other")),
}


@pytest.mark.parametrize("raw", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_bad_signatures(raw: bytes) -> None:
    CompactJws.from_bytes(raw)  # structurally fine: the signature is what fails
    assert reason_of(raw) is RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        (b'{"alg":"none"}', PAYLOAD, RejectReason.UNSUPPORTED_ALG),
        (b'{"alg":"Ed25519","crit":["x"]}', PAYLOAD, RejectReason.BAD_HEADER),
        (HEADER, b"", RejectReason.MALFORMED),
        (HEADER, b"x" * MAX_JWS_BYTES, RejectReason.OVERSIZE),
    ],
)
def test_signer_refuses_what_verifier_rejects(
    header: bytes, payload: bytes, reason: RejectReason
) -> None:
    with pytest.raises(TelemetryError) as info:
        sign_compact(SK, header, payload)
    assert info.value.reason is reason


def _compact(header: bytes) -> bytes:
    """A compact JWS with ``header`` (JSON) and a payload and signature that parse."""
    parts = (header, b'{"v":1}', bytes(64))
    return b".".join(b64url_encode(part).encode() for part in parts)


def test_a_long_kid_is_refused_before_anything_is_spent_on_it() -> None:
    with pytest.raises(TelemetryError) as caught:
        CompactJws.from_bytes(_compact(b'{"alg":"Ed25519","kid":"' + b"k" * 11_000 + b'"}'))
    assert caught.value.reason is RejectReason.BAD_HEADER
    assert "14702 bytes encoded, limit is 1024" in str(caught.value), "by size, not decoded"
    with pytest.raises(TelemetryError) as caught:
        CompactJws.from_bytes(_compact(b'{"alg":"Ed25519","kid":"' + b"k" * 65 + b'"}'))
    assert caught.value.reason is RejectReason.BAD_HEADER
    assert "kid of 65 characters, limit is 64" in str(caught.value)


def test_junk_headers_leave_the_header_cache_bounded() -> None:
    # 20,000 distinct headers larger than a real one (a valid kid, padded with typ) before any
    # signature check: they parse, and none of them may stay in memory.
    jws_module._headers.clear()
    for i in range(20_000):
        header = {"alg": "Ed25519", "kid": f"junk-{i}", "typ": "x" * 500}
        CompactJws.from_bytes(_compact(json.dumps(header).encode()))
    assert len(jws_module._headers) == 0
    CompactJws.from_bytes(_compact(b'{"alg":"Ed25519","kid":"veh-1"}'))
    assert len(jws_module._headers) == 1, "real headers are still cached"


def _retained_bytes(action: Callable[[], None]) -> int:
    """Bytes still allocated after ``action`` (tracemalloc), its garbage collected."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_header_over_the_size_limit_is_refused_before_it_is_decoded() -> None:
    limit = jws_module.MAX_HEADER_SEGMENT_BYTES
    fits = b'{"alg":"Ed25519","kid":"v","typ":"' + b"x" * 700 + b'"}'
    assert len(b64url_encode(fits)) <= limit
    CompactJws.from_bytes(_compact(fits))
    big = _compact(b'{"alg":"Ed25519","kid":"v","typ":"' + b"x" * 800 + b'"}')
    with pytest.raises(TelemetryError) as caught:
        CompactJws.from_bytes(big)
    assert caught.value.reason is RejectReason.BAD_HEADER
    assert f"limit is {limit}" in str(caught.value)
    # not even decoded: invalid base64 of that size is bad_header too, not malformed
    with pytest.raises(TelemetryError) as caught:
        CompactJws.from_bytes(b"*" * (limit + 1) + b"." + big.split(b".", 1)[1])
    assert caught.value.reason is RejectReason.BAD_HEADER


def test_twenty_thousand_junk_messages_with_large_kids_retain_nothing() -> None:
    # The attack: an 11 KB kid per message (20,000 of them cost +498 MB). Refused as
    # bad_header before any cache entry, so memory does not grow at all.
    jws_module._headers.clear()

    def send() -> None:
        for i in range(20_000):
            kid = f"{i:06d}" + "k" * 11_000
            with pytest.raises(TelemetryError):
                CompactJws.from_bytes(_compact(b'{"alg":"Ed25519","kid":"%s"}' % kid.encode()))

    assert _retained_bytes(send) < 256 * 1024
    assert len(jws_module._headers) == 0


def test_the_header_cache_at_capacity_holds_a_bounded_amount_of_memory() -> None:
    # The worst junk can do: fill the cache with distinct headers of the largest size kept.
    jws_module._headers.clear()
    limit = jws_module._HEADER_CACHE_LIMIT

    def header(i: int) -> bytes:
        raw = json.dumps({"alg": "Ed25519", "kid": f"{i:064d}", "typ": "x" * 14}).encode()
        assert len(b64url_encode(raw)) <= jws_module._HEADER_CACHE_SEGMENT
        return _compact(raw)

    def fill() -> None:
        for i in range(limit):
            CompactJws.from_bytes(header(i))

    retained = _retained_bytes(fill)
    assert len(jws_module._headers) == limit
    assert retained < 24 * 1024 * 1024, f"{retained / 1e6:.1f} MB at capacity"
    CompactJws.from_bytes(header(limit))  # one more: cleared, never past the limit
    assert len(jws_module._headers) == 1
    jws_module._headers.clear()
