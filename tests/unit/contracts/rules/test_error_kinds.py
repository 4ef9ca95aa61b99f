"""Each refusal of a rules document is of the kind ``api/`` maps to a status code: malformed
or over a bound -> Invalid (422), a signature that does not authorise it -> Forbidden (403).
The refusals that need the database (unknown organisation, version not increasing, revoked
key) are pinned in ``tests/integration/test_rules_publish.py``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chain.keys import Ed25519PrivateKey
from contracts.errors import DomainError, Forbidden, Invalid
from contracts.rules import limits
from contracts.rules.errors import RulesError
from contracts.rules.parse import parse_rules
from contracts.rules.signing import SignedRules, sign_rules
from tests.unit.contracts.rules.conftest import document, encode

KEY = Ed25519PrivateKey.from_bytes(bytes(range(32)))
SIGNED = sign_rules(KEY, "k1", encode(document()))


def _resigned(header: bytes) -> bytes:
    return b".".join((header, *SIGNED.split(b".")[1:]))


CASES: dict[str, tuple[Callable[[], object], type[DomainError]]] = {
    "unknown field": (lambda: parse_rules(encode(document(surprise=1))), Invalid),
    "not JSON": (lambda: parse_rules(b"{not json"), Invalid),
    "not an integer": (lambda: parse_rules(encode(document(version=3.0))), Invalid),
    "document over its byte bound": (
        lambda: parse_rules(b" " * (limits.MAX_DOCUMENT_BYTES + 1)),
        Invalid,
    ),
    "too many geofences": (
        lambda: parse_rules(
            encode(document(geofences=[{}] * (limits.MAX_GEOFENCES + 1)))  # counted first
        ),
        Invalid,
    ),
    "unsigned": (lambda: SignedRules.from_bytes(encode(document())), Invalid),
    "envelope over its byte bound": (
        lambda: SignedRules.from_bytes(b"." * (limits.MAX_SIGNED_BYTES + 1)),
        Invalid,
    ),
    "header not base64url": (lambda: SignedRules.from_bytes(_resigned(b"!!!")), Invalid),
    "invalid rules are not signed": (
        lambda: sign_rules(KEY, "k1", encode(document(version=0))),
        Invalid,
    ),
    "signed by another key": (
        lambda: SignedRules.from_bytes(SIGNED).verify(Ed25519PrivateKey.generate().public_key),
        Forbidden,
    ),
}


@pytest.mark.parametrize(("refuse", "kind"), CASES.values(), ids=CASES.keys())
def test_a_refusal_is_of_its_kind_and_still_a_rules_error(
    refuse: Callable[[], object], kind: type[DomainError]
) -> None:
    with pytest.raises(kind) as caught:
        refuse()
    assert isinstance(caught.value, RulesError)
    assert isinstance(caught.value, ValueError), "callers that catch ValueError keep working"
