"""Signed rules: round trip, tampering, wrong key, unsigned and malformed envelopes."""

from __future__ import annotations

import pytest

from chain.encoding import b64url_decode, b64url_encode
from chain.keys import Ed25519PrivateKey
from contracts.rules.parse import RulesError, parse_rules
from contracts.rules.signing import RULES_ENTRY_PREFIX, SignedRules, rules_entry, sign_rules
from tests.unit.contracts.rules.conftest import document, encode

KEY = Ed25519PrivateKey.from_bytes(bytes(range(32)))


def test_sign_then_verify_returns_the_rules_and_keeps_the_bytes() -> None:
    payload = encode(document())
    signed = sign_rules(KEY, "k1", payload)
    envelope = SignedRules.from_bytes(signed)
    assert envelope.kid == "k1"
    assert envelope.payload == payload  # verbatim, not re-serialised
    rules = envelope.verify(KEY.public_key)
    assert rules == parse_rules(payload)
    assert rules.signed == signed
    assert rules_entry(signed) == RULES_ENTRY_PREFIX + signed


def test_a_changed_payload_does_not_verify() -> None:
    signed = sign_rules(KEY, "k1", encode(document()))
    header, payload, signature = signed.split(b".")
    forged = encode(document(thresholds={"speeding_tolerance_kmh": 50}))
    tampered = b".".join((header, b64url_encode(forged).encode(), signature))
    with pytest.raises(RulesError, match="does not verify") as caught:
        SignedRules.from_bytes(tampered).verify(KEY.public_key)
    assert caught.value.path == "signature"
    assert b64url_decode(payload.decode()) != forged


def test_another_key_does_not_verify() -> None:
    signed = sign_rules(KEY, "k1", encode(document()))
    with pytest.raises(RulesError, match="does not verify"):
        SignedRules.from_bytes(signed).verify(Ed25519PrivateKey.generate().public_key)


def test_invalid_rules_are_never_signed() -> None:
    with pytest.raises(RulesError) as caught:
        sign_rules(KEY, "k1", encode(document(version=-1)))
    assert caught.value.path == "version"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (encode(document()), "signature"),  # unsigned
        (b"a.b", "signature"),
        (b"a..c", "signature"),
        (b"!!.e30.AA", "signature.header"),
    ],
)
def test_unsigned_or_malformed_envelopes_are_refused(raw: bytes, field: str) -> None:
    with pytest.raises(RulesError) as caught:
        SignedRules.from_bytes(raw)
    assert caught.value.path == field


def test_a_telemetry_typed_jws_is_not_rules() -> None:
    from chain.jws import JwsHeader, sign_compact

    raw = sign_compact(KEY, JwsHeader(kid="k1"), encode(document()))
    with pytest.raises(RulesError) as caught:
        SignedRules.from_bytes(raw)
    assert caught.value.path == "signature.header.typ"
