"""The bounds of a rules document (``limits.py``): each refusal names the field and the limit,
and comes before the work it bounds (sizes before decoding, counts before any geometry, the
signature before any parse)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chain.encoding import b64url_encode
from chain.keys import Ed25519PrivateKey
from contracts.rules import limits
from contracts.rules.parse import RulesError, parse_rules
from contracts.rules.signing import SignedRules, sign_rules
from tests.unit.contracts.rules.conftest import SQUARE, document, encode

KEY = Ed25519PrivateKey.from_bytes(bytes(range(32)))
SIGNED = sign_rules(KEY, "k1", encode(document()))  # signed before any test forbids parsing


def compact(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def fence(k: int, vertices: int = 4) -> dict[str, Any]:
    """A geofence with ``vertices`` vertices on a circle-ish grid outline (always simple)."""
    if vertices == 4:
        polygon = SQUARE
    else:  # up the west side, down the east side
        half = vertices // 2
        polygon = [[i, 0] for i in range(half)] + [[i, 1] for i in reversed(range(half))]
    return {"id": f"zone-{k}", "kind": "no_entry", "polygon": polygon}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any JSON decoding or polygon check fails the test: the refusal must come first."""

    def forbidden(*_: object, **__: object) -> Any:
        raise AssertionError("work done before the bound was checked")

    monkeypatch.setattr("contracts.rules.parse.loads_object", forbidden)
    monkeypatch.setattr("contracts.rules.parse.polygon_problem", forbidden)
    monkeypatch.setattr("contracts.rules.signing.parse_rules", forbidden)


def test_an_oversize_document_is_refused_before_it_is_decoded(no_work: None) -> None:
    data = b'{"description":"' + b"x" * limits.MAX_DOCUMENT_BYTES + b'"}'
    with pytest.raises(RulesError, match=f"limit is {limits.MAX_DOCUMENT_BYTES}") as caught:
        parse_rules(data)
    assert caught.value.path == ""
    assert f"{len(data)} bytes" in str(caught.value)


def test_oversize_signed_rules_are_refused_before_anything_is_decoded(no_work: None) -> None:
    raw = b"e30." + b"A" * limits.MAX_SIGNED_BYTES + b".AA"
    with pytest.raises(RulesError, match=f"limit is {limits.MAX_SIGNED_BYTES}") as caught:
        SignedRules.from_bytes(raw)
    assert caught.value.path == "signature"
    # Within the envelope's limit, a payload over the document's is refused undecoded too.
    header = SIGNED.split(b".")[0]
    payload = b64url_encode(b" " * (limits.MAX_DOCUMENT_BYTES + 100)).encode()
    raw = b".".join((header, payload, b"A" * 86))
    assert len(raw) <= limits.MAX_SIGNED_BYTES
    with pytest.raises(RulesError, match=f"limit is {limits.MAX_DOCUMENT_BYTES}"):
        SignedRules.from_bytes(raw)


def test_an_oversize_header_is_refused_before_it_is_decoded(no_work: None) -> None:
    header = b64url_encode(b'{"alg":"Ed25519","kid":"' + b"k" * 2000 + b'"}').encode()
    with pytest.raises(RulesError, match="limit is 1024") as caught:
        SignedRules.from_bytes(b".".join((header, b"e30", b"A" * 86)))
    assert caught.value.path == "signature.header"


def test_the_largest_document_fits_the_signed_limit() -> None:
    """A document at its limit, signed under a 64-character kid, is within the envelope's."""
    data = compact(document())
    data = data[:-1] + b" " * (limits.MAX_DOCUMENT_BYTES - len(data)) + b"}"
    assert len(data) == limits.MAX_DOCUMENT_BYTES
    signed = sign_rules(KEY, "k" * 64, data)
    assert len(signed) <= limits.MAX_SIGNED_BYTES
    assert SignedRules.from_bytes(signed).verify(KEY.public_key).signed == signed


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        (
            {"geofences": [fence(k) for k in range(limits.MAX_GEOFENCES + 1)]},
            "geofences",
            f"{limits.MAX_GEOFENCES + 1} items, limit is {limits.MAX_GEOFENCES}",
        ),
        (
            {"geofences": [fence(0), fence(1, limits.MAX_VERTICES + 2)]},
            "geofences[1].polygon",
            f"{limits.MAX_VERTICES + 2} vertices, limit is {limits.MAX_VERTICES}",
        ),
        (
            {"geofences": [fence(k, limits.MAX_VERTICES) for k in range(41)]},
            "geofences",
            f"41000 vertices in all, limit is {limits.MAX_TOTAL_VERTICES}",
        ),
        (
            {"speed_limits": [{"segment_id": 1, "max_kmh": 30}] * (limits.MAX_SPEED_LIMITS + 1)},
            "speed_limits",
            f"limit is {limits.MAX_SPEED_LIMITS}",
        ),
    ],
    ids=["geofences", "vertices", "total vertices", "speed limits"],
)
def test_counts_are_refused_before_any_item_is_checked(
    monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any], field: str, reason: str
) -> None:
    def no_geometry(*_: object) -> str | None:
        raise AssertionError("a polygon was checked before the counts")

    monkeypatch.setattr("contracts.rules.parse.polygon_problem", no_geometry)
    data = compact(document(**changes))
    assert len(data) <= limits.MAX_DOCUMENT_BYTES
    with pytest.raises(RulesError) as caught:
        parse_rules(data)
    assert caught.value.path == field
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("changes", "field", "limit"),
    [
        (
            {"windows": [{"days": [0], "start_min": 0, "end_min": 1}] * 33},
            "geofences[0].windows",
            limits.MAX_WINDOWS,
        ),
        (
            {"vehicle_classes": [f"c{k}" for k in range(33)]},
            "geofences[0].vehicle_classes",
            limits.MAX_VEHICLE_CLASSES,
        ),
    ],
)
def test_per_geofence_lists_are_bounded(changes: dict[str, Any], field: str, limit: int) -> None:
    data = compact(document(geofences=[{**fence(0), **changes}]))
    with pytest.raises(RulesError, match=f"limit is {limit}") as caught:
        parse_rules(data)
    assert caught.value.path == field


def test_the_description_is_bounded() -> None:
    text = "x" * (limits.MAX_DESCRIPTION_CHARS + 1)
    with pytest.raises(RulesError, match=f"limit is {limits.MAX_DESCRIPTION_CHARS}") as caught:
        parse_rules(compact(document(description=text)))
    assert caught.value.path == "description"


def test_documents_at_the_limits_are_accepted() -> None:
    per = limits.MAX_TOTAL_VERTICES // limits.MAX_VERTICES
    doc = document(
        geofences=[fence(k, limits.MAX_VERTICES) for k in range(per)],
        speed_limits=[{"segment_id": k, "max_kmh": 30} for k in range(limits.MAX_SPEED_LIMITS)],
    )
    rules = parse_rules(compact(doc))
    assert sum(len(g.polygon) for g in rules.geofences) == limits.MAX_TOTAL_VERTICES


def test_a_bad_signature_is_refused_without_parsing(no_work: None) -> None:
    envelope = SignedRules.from_bytes(SIGNED)
    assert not envelope.signed_by(Ed25519PrivateKey.generate().public_key)
    with pytest.raises(RulesError, match="does not verify") as caught:
        envelope.verify(Ed25519PrivateKey.generate().public_key)
    assert caught.value.path == "signature"
