"""The audit log, one more log of the ledger (origin ``<origin_prefix>/audit``): open, append,
sign checkpoints.

Its leaves, nodes, checkpoints and witnesses' cosignatures are in the ledger tables, so every
ledger route, proof and witness applies to it as to a telemetry log (``docs/audit.md`` says
why). What differs is the writer: not a fenced sequencer but every API request, each appending
in its own transaction. Appends lock the single ``audit_head`` row for the rest of the caller's
transaction, so they go one after another, and an event written in the same transaction as
the change it records commits, or rolls back, with it. Signing needs the log key, which
request handlers do not carry: :func:`sign_head` signs the appended head (under the same lock)
and stores the checkpoint; the API runs it every ``audit_checkpoint_interval_ms`` while the log
grows, and before it serves the latest checkpoint or a proof.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from chain.checkpoint import Checkpoint, sign_checkpoint
from chain.hashing import leaf_hashes
from chain.merkle import append_plan, nodes_completed_by_append, root_plan
from chain.note_signers import NoteSigner
from contracts.errors import Conflict, NotFound, Unavailable
from roadledger.audit.events import AuditEvent
from roadledger.db.ledger_reads import LedgerLog, log_by_id
from roadledger.db.ledger_store import read_log_nodes, stored_node_rows
from roadledger.db.schema import NODE_MIN_STORED_LEVEL

__all__ = [
    "AuditHead",
    "AuditLogClosed",
    "AuditOriginConflict",
    "UnknownAuditEntry",
    "append_events",
    "audit_ledger_log",
    "audit_origin",
    "head",
    "open_log",
    "sign_head",
]


class UnknownAuditEntry(NotFound):
    """No audit entry at that index visible to the caller."""


class AuditLogClosed(Unavailable):
    """The audit log is no ledger log yet: the API opens it when it starts."""


class AuditOriginConflict(Conflict):
    """The audit log has another origin, or its origin is another log's."""


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The log's appended size and root, and its ledger log id."""

    size: int
    root_hash: bytes
    log_id: int


def audit_origin(origin_prefix: str) -> str:
    """The audit log's checkpoint origin (and key name) under the deployment's prefix."""
    return f"{origin_prefix}/audit"


async def open_log(conn: asyncpg.Connection, signer: NoteSigner) -> int:
    """Make the audit log the ledger log of origin ``signer.name`` (moving a legacy tree into
    it) unless it is already, and sign its head; its ``log_id``. Idempotent."""
    origin = signer.name
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT h.log_id, l.origin FROM audit_head h LEFT JOIN ledger_logs l USING (log_id) "
            "FOR UPDATE OF h"
        )
        if row["log_id"] is not None and row["origin"] != origin:
            raise AuditOriginConflict(
                f"origin_prefix: the audit log's origin is {row['origin']}, not {origin} (a "
                "new origin would start a history nobody can link to the old one)"
            )
        if row["log_id"] is None:
            log_id = await conn.fetchval(
                "INSERT INTO ledger_logs (origin, epoch) VALUES ($1, 1) "
                "ON CONFLICT (origin) DO NOTHING RETURNING log_id",
                origin,
            )
            if log_id is None:
                raise AuditOriginConflict(f"origin_prefix: {origin} is a telemetry log's origin")
            # The legacy tree (migration 8) moves as it is: same indexes, same bytes, so a
            # checkpoint or proof handed out before still verifies against the log.
            await conn.execute(
                "INSERT INTO ledger_entries (log_id, leaf_index, leaf_hash, entry) "
                "SELECT $1, leaf_index, leaf_hash, entry FROM audit_entries "
                "WHERE entry IS NOT NULL",
                log_id,
            )
            await conn.execute(
                "INSERT INTO ledger_nodes (log_id, level, node_index, hash) "
                "SELECT $1, level, node_index, hash FROM audit_nodes WHERE level >= $2",
                log_id,
                NODE_MIN_STORED_LEVEL,
            )
            await conn.execute("UPDATE audit_entries SET entry = NULL, leaf_hash = NULL")
            await conn.execute("DELETE FROM audit_nodes")
            await conn.execute("UPDATE audit_head SET log_id = $1", log_id)
    return await sign_head(conn, signer)


async def _locked_head(conn: asyncpg.Connection) -> AuditHead:
    row = await conn.fetchrow("SELECT tree_size, root_hash, log_id FROM audit_head FOR UPDATE")
    if row["log_id"] is None:
        raise AuditLogClosed("the audit log is not open yet: the API opens it when it starts")
    return AuditHead(int(row["tree_size"]), bytes(row["root_hash"]), int(row["log_id"]))


async def append_events(conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> list[int]:
    """Append ``events`` in order; their leaf indexes. Runs in the caller's transaction when
    there is one (the lock is then held until it ends), else in its own."""
    if not events:
        return []
    at_ms = int(time.time() * 1000)
    async with conn.transaction():
        current = await _locked_head(conn)
        size, log_id = current.size, current.log_id
        entries = [event.encode(at_ms, size + n) for n, event in enumerate(events)]
        hashes = leaf_hashes(entries)
        frontier = await read_log_nodes(conn, log_id, append_plan(size, len(hashes)), "audit")
        completed = nodes_completed_by_append(size, hashes, frontier)
        await conn.executemany(
            "INSERT INTO ledger_entries (log_id, leaf_index, leaf_hash, entry) "
            "VALUES ($1, $2, $3, $4)",
            [(log_id, size + n, digest, entry)
             for n, (digest, entry) in enumerate(zip(hashes, entries, strict=True))],
        )  # fmt: skip
        nodes = stored_node_rows(log_id, completed)
        if nodes:
            await conn.executemany(
                "INSERT INTO ledger_nodes (log_id, level, node_index, hash) "
                "VALUES ($1, $2, $3, $4)",
                nodes,
            )
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        await conn.executemany(
            "INSERT INTO audit_entries (leaf_index, at, event, actor, actor_org, owner_org, "
            "device_id, scope, grant_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [(size + n, at, str(e.event), e.actor, e.actor_org, e.owner_org, e.device_id,
              e.scope, e.grant_id) for n, e in enumerate(events)],
        )  # fmt: skip
        new_size = completed.new_size
        plan = root_plan(new_size)
        root = plan.assemble(await read_log_nodes(conn, log_id, plan.nodes, "audit"))
        await conn.execute(
            "UPDATE audit_head SET tree_size = $1, root_hash = $2, updated_at = now()",
            new_size,
            root,
        )
    return list(range(size, new_size))


async def head(conn: asyncpg.Connection | asyncpg.Pool) -> AuditHead:
    """The appended size and root (what the next checkpoint signs)."""
    row = await conn.fetchrow("SELECT tree_size, root_hash, log_id FROM audit_head")
    if row["log_id"] is None:
        raise AuditLogClosed("the audit log is not open yet: the API opens it when it starts")
    return AuditHead(int(row["tree_size"]), bytes(row["root_hash"]), int(row["log_id"]))


async def sign_head(conn: asyncpg.Connection, signer: NoteSigner) -> int:
    """Sign the appended head with ``signer`` (key name = the log's origin) and store the
    checkpoint, unless the latest one has that size already; the log's id. One checkpoint
    per size ever: the head's lock orders this with appends and other signers."""
    # Most calls find nothing new: they answer without the lock appends wait for.
    signed = await conn.fetchrow(
        "SELECT h.log_id, h.tree_size = l.tree_size AND l.checkpoint IS NOT NULL AS current "
        "FROM audit_head h JOIN ledger_logs l USING (log_id)"
    )
    if signed is not None and signed["current"]:
        return int(signed["log_id"])
    async with conn.transaction():
        current = await _locked_head(conn)
        row = await conn.fetchrow(
            "SELECT origin, tree_size, checkpoint FROM ledger_logs WHERE log_id = $1",
            current.log_id,
        )
        if row["origin"] != signer.name:
            raise AuditOriginConflict(
                f"origin_prefix: the audit log's origin is {row['origin']}, not {signer.name}"
            )
        if row["checkpoint"] is not None and row["tree_size"] == current.size:
            return current.log_id
        checkpoint = Checkpoint(signer.name, current.size, current.root_hash)
        note = sign_checkpoint(checkpoint, signer).to_text()
        await conn.execute(
            "INSERT INTO ledger_checkpoints (log_id, tree_size, note) VALUES ($1, $2, $3)",
            current.log_id, current.size, note,
        )  # fmt: skip
        await conn.execute(
            "UPDATE ledger_logs SET tree_size = $2, root_hash = $3, checkpoint = $4, "
            "updated_at = now() WHERE log_id = $1",
            current.log_id, current.size, current.root_hash, note,
        )  # fmt: skip
    return current.log_id


async def audit_ledger_log(pool: asyncpg.Pool) -> LedgerLog:
    """The audit log as the ledger lists it: its id and latest signed checkpoint."""
    log_id = await pool.fetchval("SELECT log_id FROM audit_head")
    if log_id is None:
        raise AuditLogClosed("the audit log is not open yet: the API opens it when it starts")
    return await log_by_id(pool, int(log_id))
