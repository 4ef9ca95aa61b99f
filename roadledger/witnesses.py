"""Witnesses of the logs: their registered keys, and the cosignatures they send.

A witness organisation (kind ``witness``) registers the cosignature/v1 verifier key of each
witness it runs (``witness_keys``). A cosignature line it sends for a checkpoint is accepted
only when it names one of that organisation's live keys (name and key ID) and verifies
over the body of a checkpoint the log signed; it is then stored (``ledger_cosignatures``,
the latest per witness) and served with the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from chain.checkpoint import SignedCheckpoint
from chain.cosignature import Cosignature, CosignatureVerifier
from chain.errors import ChainError
from contracts.access import OrgKind
from contracts.errors import Conflict, Forbidden, Invalid, NotFound
from roadledger.db.ledger_reads import LedgerLog, log_signed_note

__all__ = [
    "BadCosignature",
    "StoredCosignature",
    "WitnessKey",
    "WitnessKeyConflict",
    "WitnessNotPermitted",
    "add_cosignature",
    "list_witness_keys",
    "register_witness_key",
]


class WitnessKeyConflict(Conflict):
    """The witness name or public key is registered already."""


class WitnessNotPermitted(Forbidden):
    """Not a witness organisation, or not its key."""


class BadCosignature(Invalid):
    """The cosignature line is malformed or does not verify."""


class UnknownWitness(NotFound):
    """No witness key of that name."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's registered verifier key."""

    name: str
    org_id: str
    key_id: int
    vkey: str
    created_at_ms: int
    revoked: bool


@dataclass(frozen=True)
class StoredCosignature:
    """A cosignature as kept: whose, for which checkpoint, made when (POSIX seconds)."""

    log_id: int
    tree_size: int
    witness_name: str
    cosigned_at: int
    line: str


def _key(row: asyncpg.Record) -> WitnessKey:
    return WitnessKey(
        row["name"],
        row["org_id"],
        row["key_id"],
        row["vkey"],
        int(row["created_at"].timestamp() * 1000),
        row["revoked_at"] is not None,
    )


async def register_witness_key(
    conn: asyncpg.Connection, org_id: str, vkey: str, created_by: str
) -> WitnessKey:
    """Register ``vkey`` (type 0x04) as a witness of ``org_id``, a witness organisation."""
    try:
        verifier = CosignatureVerifier.from_vkey(vkey.strip())
    except ChainError as exc:
        raise BadCosignature(f"vkey: {exc}") from None
    kind = await conn.fetchval("SELECT kind FROM organisations WHERE org_id = $1", org_id)
    if kind is None:
        raise UnknownWitness(f"org_id: no organisation {org_id!r}")
    if kind != OrgKind.WITNESS:
        raise WitnessNotPermitted(f"org_id: {org_id!r} is a {kind}, not a witness organisation")
    row = await conn.fetchrow(
        """
        INSERT INTO witness_keys (name, org_id, key_id, public_key, vkey, created_by)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT DO NOTHING
        RETURNING name, org_id, key_id, vkey, created_at, revoked_at
        """,
        verifier.name, org_id, verifier.key_id, verifier.public_key, verifier.to_vkey(),
        created_by,
    )  # fmt: skip
    if row is None:
        raise WitnessKeyConflict(
            f"vkey: witness {verifier.name!r} or its public key is registered already"
        )
    return _key(row)


async def list_witness_keys(pool: asyncpg.Pool) -> list[WitnessKey]:
    """Every registered witness key, by name."""
    rows = await pool.fetch(
        "SELECT name, org_id, key_id, vkey, created_at, revoked_at FROM witness_keys ORDER BY name"
    )
    return [_key(row) for row in rows]


async def add_cosignature(
    pool: asyncpg.Pool, log: LedgerLog, org_id: str, tree_size: int, line: str
) -> StoredCosignature:
    """Verify ``line`` (a C2SP cosignature/v1 signature line) over the log's checkpoint of
    ``tree_size`` with the key of ``org_id`` it names, and keep it (a witness's newer
    cosignature of the same checkpoint replaces an older one)."""
    try:
        cosignature = Cosignature.from_line(line if line.endswith("\n") else line + "\n")
    except ChainError as exc:
        raise BadCosignature(f"cosignature: {exc}") from None
    key = await pool.fetchrow(
        "SELECT org_id, public_key, revoked_at FROM witness_keys WHERE name = $1 AND key_id = $2",
        cosignature.name,
        cosignature.key_id,
    )
    if key is None or key["org_id"] != org_id or key["revoked_at"] is not None:
        raise WitnessNotPermitted(
            f"cosignature: {cosignature.name} ({cosignature.key_id:08x}) is not a live witness "
            f"key of {org_id!r}"
        )
    note = await log_signed_note(pool, log, tree_size)
    body = SignedCheckpoint.from_text(note).checkpoint.to_text()
    verifier = CosignatureVerifier(cosignature.name, bytes(key["public_key"]))
    raw = cosignature.to_note_signature().signature
    if not verifier.verify(body.encode("utf-8"), raw):
        raise BadCosignature(
            f"cosignature: {cosignature.name}'s signature does not verify over the checkpoint "
            f"of size {tree_size}"
        )
    text = cosignature.to_line()
    await pool.execute(
        """
        INSERT INTO ledger_cosignatures (log_id, tree_size, witness_name, cosigned_at, line)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (log_id, tree_size, witness_name) DO UPDATE
           SET cosigned_at = excluded.cosigned_at, line = excluded.line,
               received_at = now()
         WHERE ledger_cosignatures.cosigned_at < excluded.cosigned_at
        """,
        log.log_id, tree_size, cosignature.name, cosignature.timestamp, text,
    )  # fmt: skip
    return StoredCosignature(log.log_id, tree_size, cosignature.name, cosignature.timestamp, text)
