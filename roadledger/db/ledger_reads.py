"""Reading the live ledger for the API: logs, checkpoints with their cosignatures, blocks,
entries and RFC 9162 proofs.

Proofs are the ones :class:`~roadledger.db.ledger_store.PostgresLedgerStore` computes (the
plans of :mod:`chain.merkle`); :func:`inclusion_proofs` reads the nodes of many proofs in a
few queries, which is what a certificate of thousands of messages needs. Cosignatures are
kept beside the log's own checkpoints (``ledger_cosignatures``, see
:mod:`roadledger.witness_keys`) and appended to the note when it is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from chain.blocks import BlockHeader
from chain.checkpoint import SignedCheckpoint
from chain.entries import entry_kind, parse_device_key_entry
from chain.errors import ChainError
from chain.merkle import NodeRef, inclusion_plan
from chain.note import NoteSignature
from chain.telemetry import parse
from contracts.errors import Invalid, NotFound
from roadledger.db.ledger_store import PostgresLedgerStore

__all__ = [
    "LedgerLog",
    "NoSuchCheckpoint",
    "NoSuchEntry",
    "NoSuchLog",
    "ProofRequestInvalid",
    "best_checkpoint_size",
    "blocks_after",
    "checkpoint_note",
    "consistency_proof",
    "cosignature_lines",
    "entry_at",
    "entry_subject",
    "inclusion_proofs",
    "leaf_index_of",
    "list_logs",
    "log_by_id",
    "log_signed_note",
    "log_store",
    "root_at",
]

# Nodes per query when reading many proofs at once: bounded arrays, bounded answers.
_NODES_PER_QUERY = 20_000


class NoSuchLog(NotFound):
    """No log has that id."""


class NoSuchCheckpoint(NotFound):
    """The log signed no checkpoint of that size."""


class NoSuchEntry(NotFound):
    """The log has no such leaf (yet)."""


class ProofRequestInvalid(Invalid):
    """The sizes or indices asked for make no proof."""


@dataclass(frozen=True)
class LedgerLog:
    """One log as the API lists it."""

    log_id: int
    origin: str
    tree_size: int
    root_hash: bytes | None
    checkpoint: str | None


async def list_logs(pool: asyncpg.Pool) -> list[LedgerLog]:
    """Every log, by origin."""
    rows = await pool.fetch(
        "SELECT log_id, origin, tree_size, root_hash, checkpoint FROM ledger_logs ORDER BY origin"
    )
    return [_log(row) for row in rows]


async def log_by_id(pool: asyncpg.Pool, log_id: int) -> LedgerLog:
    """The log ``log_id``; :class:`NoSuchLog` otherwise."""
    row = await pool.fetchrow(
        "SELECT log_id, origin, tree_size, root_hash, checkpoint FROM ledger_logs "
        "WHERE log_id = $1",
        log_id,
    )
    if row is None:
        raise NoSuchLog(f"log {log_id}: no such log")
    return _log(row)


def _log(row: asyncpg.Record) -> LedgerLog:
    root = bytes(row["root_hash"]) if row["root_hash"] is not None else None
    return LedgerLog(row["log_id"], row["origin"], row["tree_size"], root, row["checkpoint"])


async def cosignature_lines(pool: asyncpg.Pool, log_id: int, size: int) -> list[str]:
    """The stored cosignature lines of the checkpoint of ``size``, by witness name."""
    rows = await pool.fetch(
        "SELECT line FROM ledger_cosignatures WHERE log_id = $1 AND tree_size = $2 "
        "ORDER BY witness_name",
        log_id,
        size,
    )
    return [row["line"] for row in rows]


async def log_signed_note(pool: asyncpg.Pool, log: LedgerLog, size: int) -> str:
    """The checkpoint of ``size`` as the log signed it (no cosignatures)."""
    note = await pool.fetchval(
        "SELECT note FROM ledger_checkpoints WHERE log_id = $1 AND tree_size = $2",
        log.log_id,
        size,
    )
    if note is None:
        raise NoSuchCheckpoint(f"tree_size: log {log.log_id} signed no checkpoint of size {size}")
    return str(note)


async def checkpoint_note(pool: asyncpg.Pool, log: LedgerLog, tree_size: int | None = None) -> str:
    """The log's signed checkpoint of ``tree_size`` (None: the latest) with every cosignature
    collected for it, as C2SP signed-note text."""
    size = log.tree_size if tree_size is None else tree_size
    note = await log_signed_note(pool, log, size)
    lines = await cosignature_lines(pool, log.log_id, size)
    if not lines:
        return note
    signed = SignedCheckpoint.from_text(note)
    return signed.with_signature_lines([NoteSignature.from_line(line) for line in lines]).to_text()


async def blocks_after(
    pool: asyncpg.Pool, log_id: int, after_height: int | None, limit: int
) -> list[BlockHeader]:
    """Up to ``limit`` block headers of the log above ``after_height``, by height."""
    rows = await pool.fetch(
        "SELECT header FROM ledger_blocks WHERE log_id = $1 AND height > $2 "
        "ORDER BY height LIMIT $3",
        log_id,
        -1 if after_height is None else after_height,
        limit,
    )
    return [BlockHeader.decode(bytes(row["header"])) for row in rows]


def log_store(pool: asyncpg.Pool, log: LedgerLog) -> PostgresLedgerStore:
    """The ledger store for reading ``log``, its id known (no query to look it up)."""
    return PostgresLedgerStore(pool, {log.origin: log.log_id})


async def root_at(pool: asyncpg.Pool, log: LedgerLog, size: int) -> bytes:
    """The root hash of ``log`` at ``size`` leaves (the latest checkpoint's without a query)."""
    if size == log.tree_size and log.root_hash is not None:
        return log.root_hash
    return await log_store(pool, log).root_at(log.origin, size)


async def entry_at(pool: asyncpg.Pool, log: LedgerLog, leaf_index: int) -> bytes:
    """The verbatim bytes of leaf ``leaf_index`` (a leaf the log's tree holds)."""
    if not 0 <= leaf_index < log.tree_size:
        raise NoSuchEntry(f"index: log {log.log_id} has leaves 0..{log.tree_size - 1}")
    value = await pool.fetchval(
        "SELECT entry FROM ledger_entries WHERE log_id = $1 AND leaf_index = $2",
        log.log_id,
        leaf_index,
    )
    if value is None:
        raise NoSuchEntry(f"index: log {log.log_id} has no leaf {leaf_index}")
    return bytes(value)


async def leaf_index_of(pool: asyncpg.Pool, log: LedgerLog, leaf_hash: bytes) -> int:
    """The index of the leaf whose RFC 9162 hash is ``leaf_hash``."""
    found = await log_store(pool, log).find_leaves(log.origin, [leaf_hash])
    if leaf_hash not in found:
        raise NoSuchEntry(f"leaf_hash: log {log.log_id} holds no leaf with that hash")
    return found[leaf_hash]


# The checkpoints covering a leaf that most witnesses cosigned, newest first.
_BEST_COSIGNED = """
    SELECT tree_size FROM ledger_cosignatures
     WHERE log_id = $1 AND tree_size > $2
     GROUP BY tree_size ORDER BY count(*) DESC, tree_size DESC LIMIT 1
"""


async def best_checkpoint_size(pool: asyncpg.Pool, log: LedgerLog, last_leaf: int) -> int:
    """The size of the checkpoint to prove leaves up to ``last_leaf`` against: of those that
    cover it, the one most witnesses cosigned (the newest of those), else the latest."""
    size = await pool.fetchval(_BEST_COSIGNED, log.log_id, last_leaf)
    size = log.tree_size if size is None else int(size)
    if size <= last_leaf:
        raise NoSuchCheckpoint(f"log {log.log_id}: no checkpoint covers leaf {last_leaf} yet")
    return size


def _check_size(log: LedgerLog, size: int, what: str) -> None:
    if not 0 <= size <= log.tree_size:
        raise ProofRequestInvalid(f"{what}: {size} is not a size the log had (0..{log.tree_size})")


async def inclusion_proofs(
    pool: asyncpg.Pool, log: LedgerLog, leaf_indices: Sequence[int], tree_size: int
) -> dict[int, list[bytes]]:
    """RFC 9162 inclusion proofs of ``leaf_indices`` in the tree of ``tree_size``, by index.

    The nodes of all the proofs are read together (each node once), so thousands of proofs
    cost a few queries instead of one each.
    """
    _check_size(log, tree_size, "tree_size")
    try:
        plans = {index: inclusion_plan(index, tree_size) for index in set(leaf_indices)}
    except ChainError as exc:
        raise ProofRequestInvalid(f"leaf_index: {exc}") from None
    wanted: list[NodeRef] = list(
        dict.fromkeys(ref for plan in plans.values() for ref in plan.nodes)
    )
    store = log_store(pool, log)
    hashes: dict[NodeRef, bytes] = {}
    for start in range(0, len(wanted), _NODES_PER_QUERY):
        chunk = wanted[start : start + _NODES_PER_QUERY]
        hashes.update(zip(chunk, await store.read_nodes(log.origin, chunk), strict=True))
    return {
        index: plan.assemble([hashes[ref] for ref in plan.nodes]) for index, plan in plans.items()
    }


async def consistency_proof(
    pool: asyncpg.Pool, log: LedgerLog, first: int, second: int
) -> list[bytes]:
    """The RFC 9162 consistency proof from size ``first`` to size ``second`` of the log."""
    _check_size(log, second, "second")
    if not 0 <= first <= second:
        raise ProofRequestInvalid(f"first: {first} must be between 0 and second ({second})")
    return await log_store(pool, log).consistency_proof(log.origin, first, second)


def entry_subject(entry: bytes) -> tuple[str, str | None]:
    """An entry's kind and the device whose data it is (None: no device's, e.g. rules)."""
    kind = entry_kind(entry)
    try:
        if kind == "device-key":
            return kind, parse_device_key_entry(entry).device_id
        if kind == "telemetry":
            return kind, parse(entry).telemetry.dev
    except ChainError:
        return "unknown", None
    return kind, None
