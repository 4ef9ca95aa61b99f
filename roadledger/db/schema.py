"""The database schema: every table RoadLedger creates is defined here and only here.

``apply_schema`` is idempotent and serialised by an advisory lock, so every component may call
it at start-up. Tables are created in the connection's ``search_path`` (tests use a private
schema per run).

Ledger tables (one row set per log, ``log_id`` a small integer for compact indexes):

- ``ledger_logs``: origin, fencing epoch, tree size and root, latest signed checkpoint.
- ``ledger_entries``: verbatim entry bytes and leaf hash by leaf index. These rows are also
  the level-0 nodes. The leaf hash has a hash index for dedupe lookups; it is unique per log
  because the log's single fenced sequencer looks every batch up before writing it (a unique
  B-tree on 32 random bytes would cost 40% of the ingest rate for a check that cannot fail).
- ``ledger_nodes``: hashes of the completed perfect subtrees of level >= 4, written once.
  Levels 1-3 are recomputed from at most 8 leaf hashes when read: 8x fewer rows to write,
  and a proof still reads O(log n) rows in one query.
- ``ledger_blocks``, ``ledger_checkpoints``: every block header and signed checkpoint.
"""

from __future__ import annotations

from typing import Final

import asyncpg

__all__ = ["LEDGER_TABLES", "NODE_MIN_STORED_LEVEL", "apply_schema"]

NODE_MIN_STORED_LEVEL: Final = 4

# Any constant will do; it only has to be the same for every process of the project.
_MIGRATION_LOCK: Final = 0x526F61644C656467  # "RoadLedg"

LEDGER_TABLES: Final = (
    "ledger_logs",
    "ledger_entries",
    "ledger_nodes",
    "ledger_blocks",
    "ledger_checkpoints",
)

_LEDGER_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS ledger_logs (
        log_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        origin      text NOT NULL UNIQUE,
        epoch       bigint NOT NULL CHECK (epoch >= 1),
        tree_size   bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
        root_hash   bytea,
        checkpoint  text,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    # No foreign keys on the bulk tables: the sequencer writes them in the same transaction
    # as the ledger_logs row it has locked, and a per-row FK check would halve COPY speed.
    """
    CREATE TABLE IF NOT EXISTS ledger_entries (
        log_id      integer NOT NULL,
        leaf_index  bigint NOT NULL,
        leaf_hash   bytea NOT NULL CHECK (length(leaf_hash) = 32),
        entry       bytea NOT NULL,
        PRIMARY KEY (log_id, leaf_index)
    )
    """,
    "CREATE INDEX IF NOT EXISTS ledger_entries_leaf_hash ON ledger_entries USING hash (leaf_hash)",
    f"""
    CREATE TABLE IF NOT EXISTS ledger_nodes (
        log_id      integer NOT NULL,
        level       smallint NOT NULL CHECK (level >= {NODE_MIN_STORED_LEVEL}),
        node_index  bigint NOT NULL,
        hash        bytea NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (log_id, level, node_index)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_blocks (
        log_id            integer NOT NULL,
        height            bigint NOT NULL,
        block_hash        bytea NOT NULL UNIQUE,
        header            bytea NOT NULL,
        first_leaf_index  bigint NOT NULL,
        leaf_count        bigint NOT NULL,
        tree_size         bigint NOT NULL,
        created_at        timestamptz NOT NULL,
        PRIMARY KEY (log_id, height)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_checkpoints (
        log_id      integer NOT NULL,
        tree_size   bigint NOT NULL,
        note        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (log_id, tree_size)
    )
    """,
)


async def apply_schema(conn: asyncpg.Connection) -> None:
    """Create every table and index that does not exist yet (safe to run concurrently)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        for statement in _LEDGER_DDL:
            await conn.execute(statement)
