"""Rules in PostgreSQL: organisations' signing keys, publishing a version, loading the book.

:func:`publish_rules` verifies a signed document against the organisation's registered key,
refuses a version that does not increase, and stores the version and its ledger entry (into
``ledger_outbox``, keyed ``rules:<org_id>``) in one transaction, like the device registry does
for device keys: no accepted version can be missing from the ledger.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import asyncpg

from analytics.rules.model import RuleBook, RuleVersion
from analytics.rules.parse import RulesError
from analytics.rules.signing import SignedRules, rules_entry
from chain.keys import Ed25519PublicKey

__all__ = [
    "add_organisation_key",
    "list_rule_versions",
    "load_rulebook",
    "outbox_key",
    "publish_rules",
    "revoke_organisation_key",
]

# Serialises publishers of the same rule set (the version check and the insert are one step).
_PUBLISH_LOCK: Final = 0x52756C6573  # "Rules"

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


def outbox_key(org_id: str) -> str:
    """The stream key (``ledger_outbox.device_id``) of an organisation's rules entries."""
    return f"rules:{org_id}"


async def add_organisation_key(
    conn: Conn, org_id: str, key_id: str, public_key: Ed25519PublicKey, valid_from_ms: int
) -> None:
    """Register a rule-signing key; the organisation must exist (``registry``)."""
    try:
        await conn.execute(
            "INSERT INTO organisation_keys (org_id, key_id, public_key, valid_from_ms) "
            "VALUES ($1, $2, $3, $4)",
            org_id,
            key_id,
            public_key.to_bytes(),
            valid_from_ms,
        )
    except asyncpg.ForeignKeyViolationError:
        raise RulesError("org_id", f"unknown organisation {org_id!r}") from None
    except asyncpg.UniqueViolationError:
        raise RulesError("key_id", f"{org_id!r} already has a key {key_id!r}") from None


async def revoke_organisation_key(conn: Conn, org_id: str, key_id: str, at_ms: int) -> None:
    """Revoke a key from ``at_ms``: documents published from then on under it are refused."""
    done = await conn.execute(
        "UPDATE organisation_keys SET revoked_at_ms = $3 "
        "WHERE org_id = $1 AND key_id = $2 AND revoked_at_ms IS NULL",
        org_id,
        key_id,
        at_ms,
    )
    if done != "UPDATE 1":
        raise RulesError("key_id", f"no unrevoked key {key_id!r} for {org_id!r}")


async def publish_rules(conn: asyncpg.Connection, signed: bytes, now_ms: int) -> RuleVersion:
    """Verify, check and store one signed rules version; :class:`RulesError` says why not."""
    envelope = SignedRules.from_bytes(signed)
    # The payload names the organisation whose key must sign it; only that name is read
    # before the signature is checked (the full parse, geometry included, comes after).
    claimed = envelope.claimed_org()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PUBLISH_LOCK)
        if not await conn.fetchval("SELECT 1 FROM organisations WHERE org_id = $1", claimed):
            raise RulesError("org_id", f"unknown organisation {claimed!r}")
        key = await conn.fetchrow(
            "SELECT public_key, valid_from_ms, revoked_at_ms FROM organisation_keys "
            "WHERE org_id = $1 AND key_id = $2",
            claimed,
            envelope.kid,
        )
        if key is None:
            raise RulesError("signature.header.kid", f"{claimed!r} has no key {envelope.kid!r}")
        if key["revoked_at_ms"] is not None and key["revoked_at_ms"] <= now_ms:
            raise RulesError("signature.header.kid", f"key {envelope.kid!r} is revoked")
        if key["valid_from_ms"] > now_ms:
            raise RulesError("signature.header.kid", f"key {envelope.kid!r} is not valid yet")
        rules = envelope.verify(Ed25519PublicKey.from_bytes(bytes(key["public_key"])))
        latest = await conn.fetchval(
            "SELECT max(version) FROM rule_versions WHERE org_id = $1 AND rule_set = $2",
            rules.org_id,
            rules.rule_set,
        )
        if latest is not None and rules.version <= latest:
            raise RulesError(
                "version", f"must be greater than {latest}, the latest of {rules.rule_set!r}"
            )
        await conn.execute(
            "INSERT INTO rule_versions "
            "(org_id, rule_set, version, effective_from_ms, key_id, signed) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            rules.org_id,
            rules.rule_set,
            rules.version,
            rules.effective_from_ms,
            envelope.kid,
            envelope.raw,
        )
        await conn.execute(
            "INSERT INTO ledger_outbox (device_id, entry) VALUES ($1, $2)",
            outbox_key(rules.org_id),
            rules_entry(envelope.raw),
        )
    return rules


async def list_rule_versions(conn: Conn) -> list[RuleVersion]:
    """Every accepted version, by organisation, rule set and version."""
    rows = await conn.fetch("SELECT signed FROM rule_versions ORDER BY org_id, rule_set, version")
    # Re-parse what was verified at publication: the stored bytes are the only source.
    return [SignedRules.from_bytes(bytes(r["signed"])).rules() for r in rows]


async def load_rulebook(conn: Conn) -> RuleBook:
    """The rule book of every accepted (verified at publication) version in the database."""
    return RuleBook(tuple(await list_rule_versions(conn)))
