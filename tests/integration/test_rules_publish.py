"""Publishing rules on PostgreSQL: verified, versioned, refused with reasons (each of the kind
``api/`` maps to a status), into the ledger."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from chain.encoding import b64url_encode
from chain.hashing import leaf_hash
from chain.jws import JwsHeader
from chain.keys import Ed25519PrivateKey
from chain.merkle import inclusion_plan, verify_inclusion
from contracts.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from contracts.rules.errors import StoredRulesCorrupt
from contracts.rules.parse import RulesError
from contracts.rules.signing import RULES_ENTRY_PREFIX, SignedRules, rules_entry, sign_rules
from ingest.outbox_relay import relay_outbox
from roadledger.registry import DeviceRegistry
from roadledger.rules_areas import set_jurisdiction
from roadledger.rules_store import (
    add_organisation_key,
    list_rule_versions,
    load_rulebook,
    outbox_key,
    publish_rules,
    revoke_organisation_key,
)
from roadledger.settings import Settings
from roadledger.stream.memory import MemoryStream
from tests.integration.test_outbox_relay import ledger_relayed
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres

TOPIC = "telemetry.verified"
NOW = 1_764_000_000_000
KEY = Ed25519PrivateKey.from_bytes(bytes(range(32)))
# The authorities' jurisdiction (rules apply only inside the publisher's) and a point in it.
AREA = [
    (524000000, 132000000),
    (524000000, 136000000),
    (527000000, 136000000),
    (527000000, 132000000),
]
HERE = (525000000, 134000000)


async def _authorities(pool: asyncpg.Pool, *org_ids: str) -> None:
    for org_id in org_ids:
        await DeviceRegistry(pool).ensure_organisation(org_id, org_id.title(), "authority")
        await set_jurisdiction(pool, org_id, AREA)


def _doc(version: int, effective: int, org_id: str = "metro-police", **extra: Any) -> bytes:
    doc = {
        "format": "roadledger-rules/1",
        "org_id": org_id,
        "rule_set": "city",
        "version": version,
        "effective_from_ms": effective,
        "thresholds": {"speeding_tolerance_kmh": version},
        **extra,
    }
    return json.dumps(doc).encode()


async def test_publish_two_versions_refuse_bad_ones_and_ledger_them(
    postgres: Settings, tmp_path: Path
) -> None:
    v1 = sign_rules(KEY, "k1", _doc(1, NOW + 1000))
    v2 = sign_rules(KEY, "k1", _doc(2, NOW + 2000))
    async with scratch_schema_pool(postgres) as pool:
        await _authorities(pool, "metro-police", "other")
        await add_organisation_key(pool, "metro-police", "k1", KEY.public_key, NOW - 1)
        async with pool.acquire() as conn:
            assert (await publish_rules(conn, v1, NOW)).label == "metro-police/city@1"
            assert (await publish_rules(conn, v2, NOW)).label == "metro-police/city@2"

            refusals = {
                "version": v1,  # not greater than the latest
                "signature": sign_rules(Ed25519PrivateKey.generate(), "k1", _doc(3, NOW)),
                "signature.header.kid": sign_rules(KEY, "k9", _doc(3, NOW)),
                "org_id": sign_rules(KEY, "k1", _doc(3, NOW, org_id="nobody")),
                "thresholds.bogus": _doc(3, NOW, thresholds={"bogus": 1}),  # unsigned too
            }
            for field, signed in refusals.items():
                expected = "signature" if field == "thresholds.bogus" else field
                with pytest.raises(RulesError) as caught:
                    await publish_rules(conn, signed, NOW)
                assert caught.value.path == expected, (field, caught.value)
            # The key of one organisation does not sign for another.
            with pytest.raises(RulesError, match="signed with key 'k1' of 'metro-police'"):
                await publish_rules(conn, sign_rules(KEY, "k1", _doc(1, NOW, "other")), NOW)

            await revoke_organisation_key(conn, "metro-police", "k1", NOW + 10)
            with pytest.raises(RulesError, match="revoked"):
                await publish_rules(conn, sign_rules(KEY, "k1", _doc(3, NOW)), NOW + 10)

        book = await load_rulebook(pool)
        assert book.in_force(NOW + 999).at(*HERE).label == "builtin@0"
        assert book.in_force(NOW + 1000).at(*HERE).threshold("speeding_tolerance_kmh") == (
            1,
            "metro-police/city@1",
        )
        assert book.in_force(NOW + 2000).at(*HERE).label == "metro-police/city@2"
        # Outside Metro Police's jurisdiction its rules do not apply.
        assert book.in_force(NOW + 2000).at(100, 100).label == "builtin@0"
        assert [v.signed for v in await list_rule_versions(pool)] == [v1, v2]
        outbox = await pool.fetch("SELECT device_id, entry FROM ledger_outbox ORDER BY outbox_id")
        assert [(r["device_id"], bytes(r["entry"])) for r in outbox] == [
            (outbox_key("metro-police"), rules_entry(v1)),
            (outbox_key("metro-police"), rules_entry(v2)),
        ]

        stream = MemoryStream(partitions=3)
        stream.create_topic(TOPIC)
        producer = stream.producer(client_id="outbox")
        await producer.start()
        assert await relay_outbox(pool, producer, topic=TOPIC) == 2

    settings, store, partition = await ledger_relayed(stream, tmp_path)

    origin = settings.log_origin(partition)
    log = store.logs[origin]
    checkpoint = log.checkpoints[-1].checkpoint
    for signed in (v1, v2):
        entry = rules_entry(signed)
        index = log.entries.index(entry)
        plan = inclusion_plan(index, checkpoint.size)
        proof = plan.assemble(await store.read_nodes(origin, plan.nodes))
        verify_inclusion(index, checkpoint.size, leaf_hash(entry), checkpoint.root_hash, proof)
        # Offline: the entry alone and the organisation's public key check the rules.
        offline = SignedRules.from_bytes(entry.removeprefix(RULES_ENTRY_PREFIX))
        assert offline.verify(KEY.public_key).signed == signed


def _unparsed(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """From the call on, decoding any JSON text over 1 KiB (a document, not a JWS header)
    fails the test; the returned function lifts the ban."""
    real = json.JSONDecoder.decode

    def guarded(self: json.JSONDecoder, text: str, *args: Any, **kwargs: Any) -> Any:
        if len(text) > 1024:
            raise AssertionError("a document was parsed before its signature was verified")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(json.JSONDecoder, "decode", guarded)
    return monkeypatch.undo


async def test_a_document_is_parsed_only_once_its_signature_verifies(
    postgres: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stranger = Ed25519PrivateKey.generate()
    padding = {"description": "x" * 2000}  # over the 1 KiB that the guard lets through
    forged = sign_rules(stranger, "k1", _doc(1, NOW, **padding))
    unknown_kid = sign_rules(KEY, "k7", _doc(1, NOW, **padding))
    genuine = sign_rules(KEY, "k1", _doc(1, NOW, **padding))
    async with scratch_schema_pool(postgres) as pool:
        await _authorities(pool, "metro-police", "other")
        await add_organisation_key(pool, "metro-police", "k1", KEY.public_key, NOW - 1)
        # Another organisation's key of the same id is tried too, and does not verify either.
        await add_organisation_key(pool, "other", "k1", Ed25519PrivateKey.generate().public_key, 0)
        async with pool.acquire() as conn:
            allow = _unparsed(monkeypatch)
            with pytest.raises(RulesError, match="does not verify under any registered key"):
                await publish_rules(conn, forged, NOW)
            with pytest.raises(RulesError, match="no organisation has a key 'k7'"):
                await publish_rules(conn, unknown_kid, NOW)
            allow()
            assert (await publish_rules(conn, genuine, NOW)).label == "metro-police/city@1"

            # Loading checks the stored bytes again before parsing them: a row changed in the
            # database is refused, not applied.
            await conn.execute("UPDATE rule_versions SET signed = $1", forged)
            _unparsed(monkeypatch)
            with pytest.raises(RulesError, match="does not verify") as caught:
                await load_rulebook(conn)
            assert caught.value.path == "signature"


@pytest.fixture
async def published(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    """metro-police/city@1 published with k1; "other" has k2 (valid from NOW + 1000) and k3
    (revoked at NOW)."""
    async with scratch_schema_pool(postgres) as pool:
        await _authorities(pool, "metro-police", "other")
        await add_organisation_key(pool, "metro-police", "k1", KEY.public_key, NOW - 1)
        await add_organisation_key(pool, "other", "k2", KEY.public_key, NOW + 1000)
        await add_organisation_key(pool, "other", "k3", KEY.public_key, 0)
        await revoke_organisation_key(pool, "other", "k3", NOW)
        async with pool.acquire() as conn:
            await publish_rules(conn, sign_rules(KEY, "k1", _doc(1, NOW)), NOW)
        yield pool


async def _publish(pool: asyncpg.Pool, signed: bytes) -> object:
    async with pool.acquire() as conn:
        return await publish_rules(conn, signed, NOW)


Refusal = Callable[[asyncpg.Pool], Awaitable[object]]
STRANGER = Ed25519PrivateKey.from_bytes(bytes(32))

REFUSALS: dict[str, tuple[Refusal, type[DomainError], str]] = {
    "a key for an unknown organisation": (
        lambda pool: add_organisation_key(pool, "nobody", "k1", KEY.public_key, 0),
        NotFound,
        "unknown organisation 'nobody'",
    ),
    "revoking an unknown key": (
        lambda pool: revoke_organisation_key(pool, "metro-police", "k5", NOW),
        NotFound,
        "no unrevoked key 'k5'",
    ),
    "a key id taken": (
        lambda pool: add_organisation_key(pool, "metro-police", "k1", KEY.public_key, 0),
        Conflict,
        "already has a key 'k1'",
    ),
    "a version not above the latest": (
        lambda pool: _publish(pool, sign_rules(KEY, "k1", _doc(1, NOW))),
        Conflict,
        "must be greater than 1",
    ),
    "unsigned rules": (lambda pool: _publish(pool, _doc(2, NOW)), Invalid, "not a compact JWS"),
    "invalid rules under a valid signature": (
        lambda pool: _publish(pool, _resigned(_doc(2, NOW, thresholds={"bogus": 1}))),
        Invalid,
        "unknown threshold",
    ),
    "a key id no organisation has": (
        lambda pool: _publish(pool, sign_rules(KEY, "k9", _doc(2, NOW))),
        Forbidden,
        "no organisation has a key 'k9'",
    ),
    "a signature by a stranger": (
        lambda pool: _publish(pool, sign_rules(STRANGER, "k1", _doc(2, NOW))),
        Forbidden,
        "does not verify under any registered key",
    ),
    "another organisation's key": (
        lambda pool: _publish(pool, sign_rules(KEY, "k1", _doc(1, NOW, org_id="other"))),
        Forbidden,
        "signed with key 'k1' of 'metro-police'",
    ),
    "a key not valid yet": (
        lambda pool: _publish(pool, sign_rules(KEY, "k2", _doc(1, NOW, org_id="other"))),
        Forbidden,
        "'k2' is not valid yet",
    ),
    "a revoked key": (
        lambda pool: _publish(pool, sign_rules(KEY, "k3", _doc(1, NOW, org_id="other"))),
        Forbidden,
        "'k3' is revoked",
    ),
}


def _resigned(payload: bytes) -> bytes:
    """``payload`` signed with k1 without the check that refuses to sign invalid rules."""
    header = JwsHeader(kid="k1", typ="roadledger-rules").to_json()
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}".encode("ascii")
    return signing_input + b"." + b64url_encode(KEY.sign(signing_input)).encode("ascii")


@pytest.mark.parametrize(("refuse", "kind", "message"), REFUSALS.values(), ids=REFUSALS.keys())
async def test_each_refusal_is_of_its_kind(
    published: asyncpg.Pool, refuse: Refusal, kind: type[DomainError], message: str
) -> None:
    with pytest.raises(kind, match=message) as caught:
        await refuse(published)
    assert isinstance(caught.value, RulesError), "except RulesError keeps working"
    assert [v.version for v in await list_rule_versions(published)] == [1]


@pytest.mark.parametrize("stored", [b"not a compact JWS", sign_rules(STRANGER, "k1", _doc(1, NOW))])
async def test_a_stored_version_that_fails_its_checks_is_the_servers_fault(
    published: asyncpg.Pool, stored: bytes
) -> None:
    """Not of any kind (a 500): nothing the caller sent is wrong."""
    await published.execute("UPDATE rule_versions SET signed = $1", stored)
    with pytest.raises(StoredRulesCorrupt) as caught:
        await load_rulebook(published)
    kinds = (NotFound, Conflict, Invalid, Forbidden, Unavailable)
    assert not isinstance(caught.value, kinds), caught.value
