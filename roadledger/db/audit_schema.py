"""The audit log's tables (migration 8): an RFC 9162 Merkle log of who did what, when.

- ``audit_head``: one row, the log's tree size and root hash. Appending locks it
  (``FOR UPDATE``), so concurrent requests append one after another.
- ``audit_entries``: one row per leaf: the verbatim entry bytes (canonical JSON of ids and
  codes, never personal data) and their leaf hash, plus copies of the entry's fields as
  columns so ``GET /v1/audit`` filters by index (``owner_org`` is the owner of the vehicle
  read, ``actor_org`` the organisation acting).
- ``audit_nodes``: the hash of every completed perfect subtree, level 0 (the leaves) and up,
  written once, so a proof reads O(log n) rows.

Migration 11 makes the audit log one more log of the ledger (``docs/audit.md``): its leaves
and nodes move to ``ledger_entries`` and ``ledger_nodes`` under a ``ledger_logs`` row of origin
``<origin_prefix>/audit``, its checkpoints to ``ledger_checkpoints``, its witnesses'
cosignatures to ``ledger_cosignatures``. What stays here:

- ``audit_head``: the appended size and root (ahead of the latest checkpoint until the next
  one is signed), the append lock, and ``log_id``, the audit log's ``ledger_logs`` row. NULL
  until the API first opens the log (the origin is a setting, unknown to a migration); opening
  moves the leaves and nodes of migration 8 into the ledger tables, same indexes and bytes.
- ``audit_entries``: the filter columns only; ``entry`` and ``leaf_hash`` are NULL in rows
  written (or moved) since. ``audit_nodes`` is left empty.
"""

from __future__ import annotations

from typing import Final

__all__ = ["AUDIT_DDL", "AUDIT_LEDGER_DDL"]

AUDIT_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS audit_head (
        one         boolean PRIMARY KEY DEFAULT true CHECK (one),
        tree_size   bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
        root_hash   bytea NOT NULL CHECK (length(root_hash) = 32),
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    # The empty tree's root: SHA-256 of nothing (RFC 9162 section 2.1.1).
    "INSERT INTO audit_head (root_hash) VALUES (sha256(''::bytea)) ON CONFLICT DO NOTHING",
    """
    CREATE TABLE IF NOT EXISTS audit_entries (
        leaf_index  bigint PRIMARY KEY CHECK (leaf_index >= 0),
        leaf_hash   bytea NOT NULL CHECK (length(leaf_hash) = 32),
        entry       bytea NOT NULL,
        at          timestamptz NOT NULL,
        event       text NOT NULL,
        actor       text NOT NULL,
        actor_org   text,
        owner_org   text,
        device_id   text,
        scope       text,
        grant_id    text
    )
    """,
    "CREATE INDEX IF NOT EXISTS audit_entries_owner ON audit_entries (owner_org, leaf_index)",
    "CREATE INDEX IF NOT EXISTS audit_entries_actor ON audit_entries (actor_org, leaf_index)",
    """
    CREATE TABLE IF NOT EXISTS audit_nodes (
        level       smallint NOT NULL CHECK (level >= 0),
        node_index  bigint NOT NULL CHECK (node_index >= 0),
        hash        bytea NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, node_index)
    )
    """,
)

# Migration 11: the audit log's leaves live in the ledger tables (see the module docstring).
AUDIT_LEDGER_DDL: Final = (
    "ALTER TABLE audit_head ADD COLUMN IF NOT EXISTS log_id integer UNIQUE "
    "REFERENCES ledger_logs (log_id)",
    "ALTER TABLE audit_entries ALTER COLUMN entry DROP NOT NULL, "
    "ALTER COLUMN leaf_hash DROP NOT NULL",
)
