"""The PostgreSQL implementation of :class:`chain.sequencer.LedgerStore` (asyncpg).

Writes go through binary COPY inside one transaction that holds the log's row lock and checks
the fencing epoch first, so a stale sequencer writes nothing. Reads of a proof are one query
for its O(log n) nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import asyncpg

from chain.blocks import BlockHeader
from chain.errors import FencingError, StorageError
from chain.hashing import parent_hashes
from chain.merkle import CompletedNodes, NodeRef, consistency_plan, inclusion_plan, root_plan
from chain.sequencer import Integration, LogHead
from roadledger.db.schema import NODE_MIN_STORED_LEVEL

__all__ = ["PostgresLedgerStore", "read_log_nodes", "stored_node_rows"]

_READ_NODES = """
    SELECT 0::smallint, e.leaf_index, e.leaf_hash
      FROM ledger_entries e
     WHERE e.log_id = $1 AND e.leaf_index = ANY($2::bigint[])
    UNION ALL
    SELECT n.level, n.node_index, n.hash
      FROM ledger_nodes n
      JOIN unnest($3::smallint[], $4::bigint[]) AS want(level, node_index)
        ON n.log_id = $1 AND n.level = want.level AND n.node_index = want.node_index
"""


def _rebuild(ref: NodeRef, found: dict[NodeRef, bytes]) -> bytes:
    """Hash of a low node (level 1-3) from the leaf hashes it covers."""
    level, index = ref
    hashes = [found[(0, leaf)] for leaf in range(index << level, (index + 1) << level)]
    for _ in range(level):
        hashes = parent_hashes(hashes)
    return hashes[0]


async def read_log_nodes(
    conn: asyncpg.Connection, log_id: int, refs: Sequence[NodeRef], name: str
) -> list[bytes]:
    """The hashes of ``refs`` in log ``log_id`` (named ``name`` in errors), in order, read on
    ``conn``: in its transaction, so a writer holding the log's lock sees its own appends."""
    if not refs:
        return []
    leaves: set[int] = set()
    stored: list[NodeRef] = []
    for ref in refs:
        level, index = ref
        if level >= NODE_MIN_STORED_LEVEL:
            stored.append(ref)
        else:  # a leaf, or a low node rebuilt from its (at most 8) leaves
            leaves.update(range(index << level, (index + 1) << level))
    rows = await conn.fetch(
        _READ_NODES,
        log_id,
        sorted(leaves),
        [level for level, _ in stored],
        [index for _, index in stored],
    )
    found: dict[NodeRef, bytes] = {(row[0], row[1]): bytes(row[2]) for row in rows}
    try:
        return [
            _rebuild(ref, found) if 0 < ref[0] < NODE_MIN_STORED_LEVEL else found[ref]
            for ref in refs
        ]
    except KeyError as exc:
        raise StorageError(f"log {name}: node {exc.args[0]} is not stored") from None


def stored_node_rows(log_id: int, nodes: CompletedNodes) -> list[tuple[int, int, int, bytes]]:
    """The ``ledger_nodes`` rows of ``nodes``: the levels stored (leaves are entries)."""
    return [
        (log_id, level, nodes.first_index(level) + offset, digest)
        for level, hashes in enumerate(nodes.levels)
        if level >= NODE_MIN_STORED_LEVEL
        for offset, digest in enumerate(hashes)
    ]


class PostgresLedgerStore:
    """Ledger storage in PostgreSQL (tables of :mod:`roadledger.db.schema`)."""

    def __init__(self, pool: asyncpg.Pool, log_ids: Mapping[str, int] | None = None) -> None:
        """``log_ids``: logs' ids already known (origin -> id), so reads need not look them up."""
        self.pool = pool
        self._log_ids: dict[str, int] = dict(log_ids or {})

    async def _log_id(self, conn: asyncpg.Connection, origin: str) -> int:
        log_id = self._log_ids.get(origin)
        if log_id is None:
            log_id = await conn.fetchval("SELECT log_id FROM ledger_logs WHERE origin = $1", origin)
            if log_id is None:
                raise StorageError(f"log {origin} does not exist")
            self._log_ids[origin] = log_id
        return int(log_id)

    async def acquire(self, origin: str) -> LogHead:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                INSERT INTO ledger_logs (origin, epoch) VALUES ($1, 1)
                ON CONFLICT (origin) DO UPDATE SET epoch = ledger_logs.epoch + 1,
                                                   updated_at = now()
                RETURNING log_id, epoch, tree_size
                """,
                origin,
            )
            self._log_ids[origin] = row["log_id"]
            header = await conn.fetchval(
                "SELECT header FROM ledger_blocks WHERE log_id = $1 ORDER BY height DESC LIMIT 1",
                row["log_id"],
            )
        size = int(row["tree_size"])
        frontier = await self.read_nodes(origin, root_plan(size).nodes)
        last_block = BlockHeader.decode(header) if header is not None else None
        return LogHead(origin, int(row["epoch"]), size, tuple(frontier), last_block)

    async def integrate(self, work: Integration) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            log_id = await self._log_id(conn, work.origin)
            row = await conn.fetchrow(
                "SELECT epoch, tree_size FROM ledger_logs WHERE log_id = $1 FOR UPDATE", log_id
            )
            if row["epoch"] != work.epoch:
                raise FencingError(
                    f"log {work.origin}: epoch {work.epoch} is stale, epoch {row['epoch']} owns it"
                )
            if row["tree_size"] != work.old_size:
                raise FencingError(
                    f"log {work.origin}: write expected size {work.old_size}, "
                    f"log has {row['tree_size']}"
                )
            first = work.old_size
            await conn.copy_records_to_table(
                "ledger_entries",
                columns=("log_id", "leaf_index", "leaf_hash", "entry"),
                records=[
                    (log_id, first + offset, digest, entry)
                    for offset, (digest, entry) in enumerate(
                        zip(work.leaf_hashes, work.entries, strict=True)
                    )
                ],
            )
            nodes = stored_node_rows(log_id, work.nodes)
            if nodes:
                await conn.copy_records_to_table(
                    "ledger_nodes", columns=("log_id", "level", "node_index", "hash"), records=nodes
                )
            block = work.block
            created = datetime.fromtimestamp(block.timestamp_ms / 1000, UTC)
            await conn.execute(
                """
                INSERT INTO ledger_blocks (log_id, height, block_hash, header, first_leaf_index,
                                           leaf_count, tree_size, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """,
                log_id, block.height, block.block_hash, block.encode(),
                block.first_leaf_index, block.leaf_count, block.tree_size, created,
            )  # fmt: skip
            note = work.checkpoint.to_text()
            await conn.execute(
                "INSERT INTO ledger_checkpoints (log_id, tree_size, note, created_at) "
                "VALUES ($1, $2, $3, $4)",
                log_id, block.tree_size, note, created,
            )  # fmt: skip
            await conn.execute(
                "UPDATE ledger_logs SET tree_size = $2, root_hash = $3, checkpoint = $4, "
                "updated_at = now() WHERE log_id = $1",
                log_id, block.tree_size, block.tree_root, note,
            )  # fmt: skip

    async def read_nodes(self, origin: str, refs: Sequence[NodeRef]) -> list[bytes]:
        if not refs:
            return []
        async with self.pool.acquire() as conn:
            log_id = await self._log_id(conn, origin)
            return await read_log_nodes(conn, log_id, refs, origin)

    async def find_leaves(self, origin: str, hashes: Sequence[bytes]) -> dict[bytes, int]:
        async with self.pool.acquire() as conn:
            log_id = await self._log_id(conn, origin)
            rows = await conn.fetch(
                "SELECT leaf_hash, leaf_index FROM ledger_entries "
                "WHERE log_id = $1 AND leaf_hash = ANY($2::bytea[])",
                log_id,
                list(hashes),
            )
        return {bytes(row[0]): int(row[1]) for row in rows}

    # --- reading, for proofs and certificates ------------------------------------------------

    async def inclusion_proof(self, origin: str, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        plan = inclusion_plan(index, size)
        return plan.assemble(await self.read_nodes(origin, plan.nodes))

    async def consistency_proof(self, origin: str, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof between two sizes of the log."""
        plan = consistency_plan(size1, size2)
        return plan.assemble(await self.read_nodes(origin, plan.nodes))

    async def root_at(self, origin: str, size: int) -> bytes:
        """Root hash of the log when it had ``size`` leaves."""
        plan = root_plan(size)
        return plan.assemble(await self.read_nodes(origin, plan.nodes))

    async def entry(self, origin: str, index: int) -> bytes:
        """The verbatim bytes of leaf ``index``."""
        async with self.pool.acquire() as conn:
            log_id = await self._log_id(conn, origin)
            value = await conn.fetchval(
                "SELECT entry FROM ledger_entries WHERE log_id = $1 AND leaf_index = $2",
                log_id,
                index,
            )
        if value is None:
            raise StorageError(f"log {origin}: no entry at index {index}")
        return bytes(value)

    async def blocks(self, origin: str) -> list[BlockHeader]:
        """Every block header of the log, by height."""
        async with self.pool.acquire() as conn:
            log_id = await self._log_id(conn, origin)
            rows = await conn.fetch(
                "SELECT header FROM ledger_blocks WHERE log_id = $1 ORDER BY height", log_id
            )
        return [BlockHeader.decode(row[0]) for row in rows]
