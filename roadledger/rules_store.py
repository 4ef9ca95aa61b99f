"""Rules in PostgreSQL: organisations' signing keys, publishing a version, loading the book.

:func:`publish_rules` verifies a signed document against the organisation's registered key,
refuses a version that does not increase, and stores the version and its ledger entry (into
``ledger_outbox``, keyed ``rules:<org_id>``) in one transaction, like the device registry does
for device keys: no accepted version can be missing from the ledger.

The signature is checked over the raw bytes before anything in the document is read, both
when publishing and when loading: an unauthenticated document costs a signature check (linear
in its bytes, bounded by ``limits.MAX_SIGNED_BYTES``), never a parse.

Sovereignty (``contracts/rules/sovereignty.py``): only an authority publishes, inside its
jurisdiction (:mod:`roadledger.rules_areas`); the book gives each version its publisher's
area, so that it applies there alone (a version of an organisation that is not an authority
with a jurisdiction, published before these checks, applies nowhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeAlias

import asyncpg

from chain.keys import Ed25519PublicKey
from contracts.rules.errors import (
    RulesConflict,
    RulesForbidden,
    RulesInvalid,
    RulesNotFound,
    StoredRulesCorrupt,
)
from contracts.rules.model import RuleBook, RuleVersion
from contracts.rules.signing import SignedRules, rules_entry
from contracts.rules.sovereignty import check_sovereignty
from roadledger.rules_areas import Area, publishers, segment_ends

__all__ = [
    "StoredVersion",
    "add_organisation_key",
    "find_rule_versions",
    "get_rule_version",
    "list_rule_versions",
    "load_rulebook",
    "outbox_key",
    "page_rule_versions",
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
        raise RulesNotFound("org_id", f"unknown organisation {org_id!r}") from None
    except asyncpg.UniqueViolationError:
        raise RulesConflict("key_id", f"{org_id!r} already has a key {key_id!r}") from None


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
        raise RulesNotFound("key_id", f"no unrevoked key {key_id!r} for {org_id!r}")


async def publish_rules(
    conn: asyncpg.Connection, signed: bytes, now_ms: int, *, publisher: str | None = None
) -> RuleVersion:
    """Verify, check and store one signed rules version; a :class:`RulesError` says why not
    (its kind: :mod:`contracts.rules.errors`). ``publisher``, if given, is the organisation
    asking (the API's caller): a document of another organisation is refused.

    The signer is found by the signature alone: the registered keys with the header's ``kid``
    (one per organisation that uses that id) are tried on the raw bytes, and the document is
    parsed only once one verifies; its ``org_id`` must then be that key's organisation.
    """
    envelope = SignedRules.from_bytes(signed)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _PUBLISH_LOCK)
        keys = await conn.fetch(
            "SELECT org_id, public_key, valid_from_ms, revoked_at_ms FROM organisation_keys "
            "WHERE key_id = $1 ORDER BY org_id",
            envelope.kid,
        )
        if not keys:
            raise RulesForbidden(
                "signature.header.kid", f"no organisation has a key {envelope.kid!r}"
            )
        key = next(
            (k for k in keys if envelope.signed_by(Ed25519PublicKey.from_bytes(k["public_key"]))),
            None,
        )
        if key is None:
            raise RulesForbidden(
                "signature", f"does not verify under any registered key {envelope.kid!r}"
            )
        if key["revoked_at_ms"] is not None and key["revoked_at_ms"] <= now_ms:
            raise RulesForbidden("signature.header.kid", f"key {envelope.kid!r} is revoked")
        if key["valid_from_ms"] > now_ms:
            raise RulesForbidden("signature.header.kid", f"key {envelope.kid!r} is not valid yet")
        rules = envelope.rules()  # authenticated: now it may cost a parse
        if rules.org_id != key["org_id"]:
            raise RulesForbidden(
                "org_id",
                f"{rules.org_id!r}, but the document is signed with key {envelope.kid!r} "
                f"of {key['org_id']!r}",
            )
        if publisher is not None and rules.org_id != publisher:
            raise RulesForbidden(
                "org_id", f"{rules.org_id!r}, but the caller publishes for {publisher!r} only"
            )
        kind, area = (await publishers(conn)).get(rules.org_id, ("", None))
        segments = [s.segment_id for s in rules.speed_limits if s.segment_id is not None]
        check_sovereignty(rules, kind, area, await segment_ends(conn, segments))
        latest = await conn.fetchval(
            "SELECT max(version) FROM rule_versions WHERE org_id = $1 AND rule_set = $2",
            rules.org_id,
            rules.rule_set,
        )
        if latest is not None and rules.version <= latest:
            raise RulesConflict(
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
    """Every accepted version, by organisation, rule set and version.

    Each is verified again under the key it was published with before it is parsed (the
    stored bytes are the only source), so a row changed in the database is refused with
    :class:`StoredRulesCorrupt` rather than applied: the server's fault, not the caller's.
    """
    rows = await conn.fetch(
        "SELECT v.org_id, v.rule_set, v.version, v.key_id, v.signed, k.public_key "
        "FROM rule_versions v JOIN organisation_keys k USING (org_id, key_id) "
        "ORDER BY v.org_id, v.rule_set, v.version"
    )
    areas = {org: area or Area(org, ()) for org, (_, area) in (await publishers(conn)).items()}
    return [
        replace(rules, area=areas.get(rules.org_id, Area(rules.org_id, ())))
        for rules in map(_verified, rows)
    ]


def _verified(row: Mapping[str, Any]) -> RuleVersion:
    """The stored version of ``row`` (its ``signed`` bytes, ``key_id`` and ``public_key``),
    verified again and parsed; :class:`StoredRulesCorrupt` if it no longer checks out."""
    label = f"{row['org_id']}/{row['rule_set']}@{row['version']}"
    try:
        envelope = SignedRules.from_bytes(bytes(row["signed"]))
        if envelope.kid != row["key_id"] or not envelope.signed_by(
            Ed25519PublicKey.from_bytes(row["public_key"])
        ):
            raise StoredRulesCorrupt(
                "signature", f"stored {label} does not verify under {row['key_id']!r}"
            )
        rules = envelope.rules()
    except RulesInvalid as exc:  # it was valid when published: the row has changed since
        raise StoredRulesCorrupt(exc.path, exc.reason) from None
    if rules.label != label:
        raise StoredRulesCorrupt("", f"stored as {label}, the signed document is {rules.label}")
    return rules


async def load_rulebook(conn: Conn) -> RuleBook:
    """The rule book of every accepted (verified at publication) version in the database."""
    return RuleBook(tuple(await list_rule_versions(conn)))


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """A published version as listed: its row, not its (unverified, unparsed) document."""

    org_id: str
    rule_set: str
    version: int
    effective_from_ms: int
    key_id: str
    published_at_ms: int

    @property
    def label(self) -> str:
        return f"{self.org_id}/{self.rule_set}@{self.version}"

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredVersion:
        return cls(
            row["org_id"],
            row["rule_set"],
            row["version"],
            row["effective_from_ms"],
            row["key_id"],
            int(row["published_at"].timestamp() * 1000),
        )


_LISTED = "org_id, rule_set, version, effective_from_ms, key_id, published_at"


async def page_rule_versions(
    conn: Conn, *, org_id: str | None, after: tuple[str, str, int] | None, limit: int
) -> list[StoredVersion]:
    """Up to ``limit`` versions after ``after`` (org, rule set, version order), of ``org_id``
    only if given."""
    org, rule_set, version = after if after is not None else ("", "", 0)
    rows = await conn.fetch(
        f"SELECT {_LISTED} FROM rule_versions "  # noqa: S608 - a constant column list
        "WHERE ($1::text IS NULL OR org_id = $1) AND (org_id, rule_set, version) > ($2, $3, $4) "
        "ORDER BY org_id, rule_set, version LIMIT $5",
        org_id,
        org,
        rule_set,
        version,
        limit,
    )
    return [StoredVersion.from_row(r) for r in rows]


async def find_rule_versions(
    conn: Conn, org_id: str, rule_set: str | None, version: int
) -> list[StoredVersion]:
    """The versions numbered ``version`` of ``org_id`` (of ``rule_set`` only, if given)."""
    rows = await conn.fetch(
        f"SELECT {_LISTED} FROM rule_versions "  # noqa: S608 - a constant column list
        "WHERE org_id = $1 AND ($2::text IS NULL OR rule_set = $2) AND version = $3 "
        "ORDER BY rule_set",
        org_id,
        rule_set,
        version,
    )
    return [StoredVersion.from_row(r) for r in rows]


async def get_rule_version(
    conn: Conn, org_id: str, rule_set: str, version: int
) -> tuple[StoredVersion, RuleVersion]:
    """One version, verified again under its key and parsed (``signed``: its bytes).

    :class:`RulesNotFound` if there is no such version.
    """
    row = await conn.fetchrow(
        "SELECT v.org_id, v.rule_set, v.version, v.effective_from_ms, v.key_id, "
        "v.published_at, v.signed, k.public_key "
        "FROM rule_versions v JOIN organisation_keys k USING (org_id, key_id) "
        "WHERE v.org_id = $1 AND v.rule_set = $2 AND v.version = $3",
        org_id,
        rule_set,
        version,
    )
    if row is None:
        raise RulesNotFound("version", f"no version {org_id}/{rule_set}@{version}")
    return StoredVersion.from_row(row), _verified(row)
