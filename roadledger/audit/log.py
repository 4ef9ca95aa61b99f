"""The audit log in PostgreSQL (tables of ``roadledger/db/audit_schema.py``): append, head,
inclusion proofs and the signed checkpoint.

Appends lock the single ``audit_head`` row for the rest of the caller's transaction, so
concurrent requests append one after another and an event written in the same transaction as
the change it records commits, or rolls back, with it. The Merkle arithmetic is
``chain.merkle``'s, as for the telemetry ledger; every completed node is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.errors import StorageError
from chain.hashing import leaf_hashes
from chain.merkle import NodeRef, append_plan, inclusion_plan, nodes_completed_by_append, root_plan
from contracts.errors import NotFound
from roadledger.audit.events import AuditEvent
from roadledger.log_key import LogKey

__all__ = [
    "AuditHead",
    "UnknownAuditEntry",
    "append_events",
    "audit_origin",
    "head",
    "inclusion_proof",
    "sign_head",
]


class UnknownAuditEntry(NotFound):
    """No audit entry at that index visible to the caller."""


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The log's committed size and root."""

    size: int
    root_hash: bytes


def audit_origin(origin_prefix: str) -> str:
    """The audit log's checkpoint origin (and key name) under the deployment's prefix."""
    return f"{origin_prefix}/audit"


async def _read_nodes(
    conn: asyncpg.Connection | asyncpg.Pool, refs: Sequence[NodeRef]
) -> list[bytes]:
    if not refs:
        return []
    rows = await conn.fetch(
        "SELECT n.level, n.node_index, n.hash FROM audit_nodes n "
        "JOIN unnest($1::smallint[], $2::bigint[]) AS want(level, node_index) "
        "USING (level, node_index)",
        [level for level, _ in refs],
        [index for _, index in refs],
    )
    found = {(row[0], row[1]): bytes(row[2]) for row in rows}
    try:
        return [found[ref] for ref in refs]
    except KeyError as exc:
        raise StorageError(f"audit log: node {exc.args[0]} is not stored") from None


async def append_events(conn: asyncpg.Connection, events: Sequence[AuditEvent]) -> list[int]:
    """Append ``events`` in order; their leaf indexes. Runs in the caller's transaction when
    there is one (the lock is then held until it ends), else in its own."""
    if not events:
        return []
    at_ms = int(time.time() * 1000)
    entries = [event.encode(at_ms) for event in events]
    hashes = leaf_hashes(entries)
    async with conn.transaction():
        size = int(await conn.fetchval("SELECT tree_size FROM audit_head FOR UPDATE"))
        frontier = await _read_nodes(conn, append_plan(size, len(hashes)))
        completed = nodes_completed_by_append(size, hashes, frontier)
        await conn.executemany(
            "INSERT INTO audit_nodes (level, node_index, hash) VALUES ($1, $2, $3)",
            [(level, index, digest) for (level, index), digest in completed],
        )
        at = datetime.fromtimestamp(at_ms / 1000, UTC)
        await conn.executemany(
            "INSERT INTO audit_entries (leaf_index, leaf_hash, entry, at, event, actor, "
            "actor_org, owner_org, device_id, scope, grant_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                (size + offset, digest, entry, at, str(e.event),
                 e.actor, e.actor_org, e.owner_org, e.device_id, e.scope, e.grant_id)
                for offset, (e, entry, digest)
                in enumerate(zip(events, entries, hashes, strict=True))
            ],
        )  # fmt: skip
        new_size = completed.new_size
        plan = root_plan(new_size)
        root = plan.assemble(await _read_nodes(conn, plan.nodes))
        await conn.execute(
            "UPDATE audit_head SET tree_size = $1, root_hash = $2, updated_at = now()",
            new_size,
            root,
        )
    return list(range(size, new_size))


async def head(conn: asyncpg.Connection | asyncpg.Pool) -> AuditHead:
    """The committed size and root (what a checkpoint signs)."""
    row = await conn.fetchrow("SELECT tree_size, root_hash FROM audit_head")
    return AuditHead(int(row["tree_size"]), bytes(row["root_hash"]))


async def inclusion_proof(
    conn: asyncpg.Connection | asyncpg.Pool, index: int, size: int
) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` (``size`` from
    :func:`head`, never from counting rows)."""
    if not 0 <= index < size:
        raise UnknownAuditEntry(f"index: no audit entry {index} in a log of size {size}")
    plan = inclusion_plan(index, size)
    return plan.assemble(await _read_nodes(conn, plan.nodes))


def sign_head(current: AuditHead, log_key: LogKey, origin: str) -> SignedCheckpoint:
    """The C2SP checkpoint of ``current``, signed with the log key under ``origin``."""
    return sign_checkpoint(
        Checkpoint(origin, current.size, current.root_hash), log_key.signer(origin)
    )
