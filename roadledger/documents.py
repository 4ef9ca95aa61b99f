"""Vehicles' off-ledger documents: their SHA-256 in the vehicle's log, and the proof of it.

The owner registers a document's hash (``vehicle_documents``); the ledger entry
(:func:`chain.documents.document_entry`) goes into ``ledger_outbox`` in the same
transaction, so the outbox relay publishes it into the vehicle's log like its key records.
Once sequenced, :func:`document_proof` proves the entry against a checkpoint of that log.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from chain.documents import DocumentRecord, document_entry
from chain.hashing import leaf_hash
from contracts.errors import Conflict, NotFound
from roadledger.db.ledger_reads import (
    LedgerLog,
    best_checkpoint_size,
    checkpoint_note,
    inclusion_proofs,
    log_by_id,
)

__all__ = [
    "Document",
    "DocumentProof",
    "document_proof",
    "list_documents",
    "register_document",
]


class DocumentExists(Conflict):
    """That hash is registered for the vehicle under that kind already."""


class UnknownDocument(NotFound):
    """No such document of the vehicle."""


class NotLoggedYet(Conflict):
    """The document's entry is not in a log yet (the sequencer has not reached it)."""


@dataclass(frozen=True)
class Document:
    """A registered document: its hash and what the owner said of it."""

    document_id: str
    device_id: str
    org_id: str
    sha256: str
    kind: str
    description: str | None
    created_by: str
    registered_at_ms: int
    entry: bytes


@dataclass(frozen=True)
class DocumentProof:
    """A document's entry, where it is, and its inclusion proof to a signed checkpoint."""

    document: Document
    log: LedgerLog
    leaf_index: int
    tree_size: int
    proof: list[bytes]
    checkpoint: str


_COLUMNS = (
    "document_id, device_id, org_id, sha256, kind, description, created_by, created_at, entry"
)


def _document(row: asyncpg.Record) -> Document:
    return Document(
        row["document_id"],
        row["device_id"],
        row["org_id"],
        bytes(row["sha256"]).hex(),
        row["kind"],
        row["description"],
        row["created_by"],
        round(row["created_at"].timestamp() * 1000),  # written from whole ms
        bytes(row["entry"]),
    )


async def register_document(
    conn: asyncpg.Connection,
    org_id: str,
    device_id: str,
    sha256: str,
    kind: str,
    description: str | None,
    created_by: str,
) -> Document:
    """Register the hash of a document of ``device_id``, which ``org_id`` must own; the ledger
    entry is queued in the same transaction. ``conn`` must not be in a transaction."""
    owner = await conn.fetchval("SELECT owner_org FROM devices WHERE device_id = $1", device_id)
    if owner is None or owner != org_id:
        # Another's vehicle is not revealed: the same answer as an unknown one.
        raise UnknownDocument(f"device {device_id}: not a vehicle of {org_id!r}")
    now_ms = int(time.time() * 1000)
    record = DocumentRecord(
        device_id, f"doc_{secrets.token_hex(12)}", kind, org_id, now_ms, sha256.lower()
    )
    entry = document_entry(record)
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""
            INSERT INTO vehicle_documents (document_id, device_id, org_id, sha256, kind,
                                           description, entry, created_by, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (device_id, kind, sha256) DO NOTHING
            RETURNING {_COLUMNS}
            """,  # noqa: S608 - _COLUMNS is a constant
            record.document_id, device_id, org_id, bytes.fromhex(record.sha256), kind,
            description, entry, created_by, datetime.fromtimestamp(now_ms / 1000, UTC),
        )  # fmt: skip
        if row is None:
            raise DocumentExists(f"sha256: registered for {device_id} as a {kind} already")
        await conn.execute(
            "INSERT INTO ledger_outbox (device_id, entry) VALUES ($1, $2)", device_id, entry
        )
    return _document(row)


async def list_documents(pool: asyncpg.Pool, device_id: str) -> list[Document]:
    """The vehicle's registered documents, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM vehicle_documents WHERE device_id = $1 "  # noqa: S608
        "ORDER BY created_at, document_id",
        device_id,
    )
    return [_document(row) for row in rows]


async def document_proof(pool: asyncpg.Pool, device_id: str, document_id: str) -> DocumentProof:
    """The document's entry with its inclusion proof to the best covering checkpoint."""
    row = await pool.fetchrow(
        f"SELECT {_COLUMNS} FROM vehicle_documents "  # noqa: S608
        "WHERE device_id = $1 AND document_id = $2",
        device_id,
        document_id,
    )
    if row is None:
        raise UnknownDocument(f"document_id: {device_id} has no document {document_id!r}")
    document = _document(row)
    found = await pool.fetchrow(
        "SELECT log_id, leaf_index FROM ledger_entries WHERE leaf_hash = $1 "
        "ORDER BY log_id LIMIT 1",
        leaf_hash(document.entry),
    )
    if found is None:
        raise NotLoggedYet(f"document {document_id} is not in the ledger yet; try again soon")
    log = await log_by_id(pool, found["log_id"])
    index = int(found["leaf_index"])
    size = await best_checkpoint_size(pool, log, index)
    proof = (await inclusion_proofs(pool, log, [index], size))[index]
    note = await checkpoint_note(pool, log, size)
    return DocumentProof(document, log, index, size, proof, note)
