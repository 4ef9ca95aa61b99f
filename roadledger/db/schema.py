"""The database schema: every table RoadLedger creates is defined here and only here.

``apply_schema`` is idempotent and serialised by an advisory lock, so every component may call
it at start-up. Tables are created in the connection's current schema (tests use a private
schema per run).

Schema changes are numbered forward migrations (:data:`MIGRATIONS`, run and recorded by
``roadledger/db/migrations.py``). Numbering continues the single ``version`` the project
recorded before (1..6):

- Migration 5, the baseline: every table of released schema version 5, written with ``IF NOT
  EXISTS``, and the telemetry storage (``telemetry_schema.apply``). Versions 1 to 5 only ever
  added tables and indexes, so on a legacy database recorded at 1..4 the baseline adds what is
  missing, exactly as the old ``apply_schema`` did; versions 1..4 were not reconstructed as
  migrations of their own.
- Migration 6: ``device_messages.prev``, ``key_id``, ``signed_ts`` (``ALTER TABLE``).
- Migration 7: identity and access (``roadledger/db/access_schema.py``): the organisations'
  hierarchy and jurisdiction, members, sessions, API keys, login failures, grants.
- Migration 8: the audit log (``roadledger/db/audit_schema.py``): ``audit_head``,
  ``audit_entries``, ``audit_nodes``.
- Migration 9: the ledger API (``roadledger/db/ledger_api_schema.py``): witnesses' keys,
  the cosignatures they sent, vehicles' off-ledger documents.
- Migration 11: the audit log becomes a log of the ledger (``audit_head.log_id``; the
  leaves' bytes leave ``audit_entries``), see ``roadledger/db/audit_schema.py``.

A fresh database runs every migration; a legacy 5 runs 6 and up; a legacy 6, 7 and up. A
change to a table goes into a new migration appended to :data:`MIGRATIONS` (an ``ALTER``),
never into the DDL of a released one. The telemetry tables' DDL depends on the mode chosen at
run time and lives in ``telemetry_schema``; ``apply_schema`` also calls
``telemetry_schema.apply`` after the migrations, which recreates missing telemetry tables in
their baseline form.

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

Registry tables: ``organisations``, ``devices`` and ``device_keys`` (every key a device ever
had, with its validity window and its canonical record), and ``ledger_outbox`` (registry
records waiting to be published into the device's ledger; written in the same transaction as
the change, so no change is ever missing from the ledger). ``device_messages``: the verifier's
record of the first bytes accepted for each (device, seq), for dedupe and conflicts, with each
message's ``prev`` link, signing key and ``ts`` for the hash-chain check (``ingest/chain_links``).

Road network: ``road_segments`` (``contracts/roads.py``). Telemetry tables, with their
TimescaleDB and plain-PostgreSQL variants: ``roadledger/db/telemetry_schema.py``, applied from
here.

Forecasts: ``segment_forecasts`` and ``vehicle_mileage_forecasts`` (``docs/forecasts.md``).
Warnings: ``warnings`` (``analytics/warnings``, ``docs/warnings.md``); its feed's notification
and read indexes: ``roadledger/db/warnings_feed_schema.py`` (migration 10).
Rules: ``organisation_keys``, ``rule_versions`` (``analytics/rules``, ``docs/rules.md``).
"""

from __future__ import annotations

from typing import Final

import asyncpg

from roadledger.db.access_schema import ACCESS_DDL
from roadledger.db.audit_schema import AUDIT_DDL, AUDIT_LEDGER_DDL
from roadledger.db.credentials_schema import CREDENTIALS_TRIGGER_DDL
from roadledger.db.ledger_api_schema import LEDGER_API_DDL
from roadledger.db.migrations import (
    Migration,
    StorageChoice,
    apply_pending,
    check_order,
    recorded_number,
    statements,
)
from roadledger.db.warnings_feed_schema import WARNINGS_FEED_DDL

__all__ = [
    "LEDGER_TABLES",
    "MIGRATIONS",
    "NODE_MIN_STORED_LEVEL",
    "SCHEMA_VERSION",
    "apply_schema",
]

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


_REGISTRY_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS organisations (
        org_id      text PRIMARY KEY CHECK (org_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
        name        text NOT NULL,
        kind        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS devices (
        device_id      text PRIMARY KEY,
        owner_org      text NOT NULL REFERENCES organisations (org_id),
        kind           text NOT NULL CHECK (kind IN ('vehicle', 'rsu')),
        vin            text,
        vehicle_class  text,
        created_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS device_keys (
        device_id      text NOT NULL REFERENCES devices (device_id),
        key_id         text NOT NULL,
        public_key     bytea NOT NULL CHECK (length(public_key) = 32),
        valid_from_ms  bigint NOT NULL,
        revoked_at_ms  bigint,
        record         text NOT NULL,
        updated_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, key_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_outbox (
        outbox_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id     text NOT NULL,
        entry         bytea NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        published_at  timestamptz
    )
    """,
    "CREATE INDEX IF NOT EXISTS ledger_outbox_pending ON ledger_outbox (outbox_id) "
    "WHERE published_at IS NULL",
    # The verifier's memory of (device, seq): which bytes it accepted first and from where.
    """
    CREATE TABLE IF NOT EXISTS device_messages (
        device_id         text NOT NULL,
        seq               bigint NOT NULL,
        message_hash      bytea NOT NULL CHECK (length(message_hash) = 32),
        source_partition  integer NOT NULL,
        source_offset     bigint NOT NULL,
        seen_at           timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, seq)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS road_segments (
        segment_id       integer PRIMARY KEY,
        name             text NOT NULL,
        road_class       text NOT NULL,
        speed_limit_kmh  integer NOT NULL CHECK (speed_limit_kmh > 0),
        a_lat_e7         integer NOT NULL,
        a_lon_e7         integer NOT NULL,
        b_lat_e7         integer NOT NULL,
        b_lon_e7         integer NOT NULL
    )
    """,
)


# Warnings (analytics/warnings, docs/warnings.md): one row per deterministic warning id, so
# reprocessing the stream stores nothing twice. stored_at: when this row was first written
# (bench/warning_latency.py measures publish -> stored with it).
_WARNINGS_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS warnings (
        warning_id    text PRIMARY KEY,
        type          text NOT NULL,
        severity      text NOT NULL,
        device_id     text,
        segment_id    integer,
        from_ts       timestamptz NOT NULL,
        to_ts         timestamptz NOT NULL,
        rule_version  text NOT NULL,
        evidence      jsonb NOT NULL,
        detail        jsonb NOT NULL,
        stored_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
        CHECK (device_id IS NOT NULL OR segment_id IS NOT NULL),
        CHECK (to_ts >= from_ts)
    )
    """,
    "CREATE INDEX IF NOT EXISTS warnings_device ON warnings (device_id, from_ts)",
    "CREATE INDEX IF NOT EXISTS warnings_type_time ON warnings (type, from_ts)",
    # How far each analytics consumer group got (arrival time of the newest record it
    # committed): where a restarted engine's warm-up replays from (analytics/warnings/warmup).
    """
    CREATE TABLE IF NOT EXISTS analytics_progress (
        group_id    text PRIMARY KEY,
        recv_ms     bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
)


# Rules (analytics/rules, docs/rules.md): organisations' rule-signing keys, and every accepted
# rules version with its signed bytes verbatim (also written to ledger_outbox, same transaction).
_RULES_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS organisation_keys (
        org_id         text NOT NULL REFERENCES organisations (org_id),
        key_id         text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
        public_key     bytea NOT NULL CHECK (length(public_key) = 32),
        valid_from_ms  bigint NOT NULL,
        revoked_at_ms  bigint,
        created_at     timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, key_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS rule_versions (
        org_id             text NOT NULL,
        rule_set           text NOT NULL,
        version            integer NOT NULL CHECK (version > 0),
        effective_from_ms  bigint NOT NULL,
        key_id             text NOT NULL,
        signed             bytea NOT NULL,
        published_at       timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (org_id, rule_set, version),
        FOREIGN KEY (org_id, key_id) REFERENCES organisation_keys (org_id, key_id)
    )
    """,
)

# Forecasts (analytics/forecast, docs/forecasts.md). Keyed so that refreshing the same issue
# time again overwrites instead of duplicating.
_FORECAST_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS segment_forecasts (
        segment_id    integer NOT NULL,
        issued_at     timestamptz NOT NULL,
        horizon_min   integer NOT NULL CHECK (horizon_min > 0),
        target_at     timestamptz NOT NULL,
        speed_kmh     double precision CHECK (speed_kmh >= 0),
        flow_vehicles double precision CHECK (flow_vehicles >= 0),
        speed_method  text NOT NULL,
        flow_method   text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (segment_id, issued_at, horizon_min)
    )
    """,
    "CREATE INDEX IF NOT EXISTS segment_forecasts_issued ON segment_forecasts (issued_at)",
    """
    CREATE TABLE IF NOT EXISTS vehicle_mileage_forecasts (
        device_id       text NOT NULL,
        issued_on       date NOT NULL,
        first_day       date NOT NULL,
        last_day        date NOT NULL,
        days            integer NOT NULL CHECK (days > 0),
        mean_daily_km   double precision NOT NULL,
        annual_km       double precision NOT NULL,
        annual_low_km   double precision NOT NULL,
        annual_high_km  double precision NOT NULL,
        interval_level  double precision NOT NULL,
        method          text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, issued_on)
    )
    """,
)


# Migration 6: the message's prev link (empty for seq 1), signing key and device time, for the
# verifier's hash-chain check and its rule on claims of revoked keys (ingest/chain_links).
# NULL in older rows: those take part in neither. IF NOT EXISTS: a legacy database's recorded
# version is trusted, but costs nothing to double-check here.
_DEVICE_MESSAGES_CHAIN_DDL: Final = (
    "ALTER TABLE device_messages ADD COLUMN IF NOT EXISTS prev bytea "
    "CHECK (length(prev) IN (0, 32))",
    "ALTER TABLE device_messages ADD COLUMN IF NOT EXISTS key_id text",
    "ALTER TABLE device_messages ADD COLUMN IF NOT EXISTS signed_ts bigint",
)


async def _baseline(conn: asyncpg.Connection, choice: StorageChoice) -> None:
    from roadledger.db import telemetry_schema

    for statement in (
        *_LEDGER_DDL,
        *_REGISTRY_DDL,
        *_FORECAST_DDL,
        *_WARNINGS_DDL,
        *_RULES_DDL,
    ):
        await conn.execute(statement)
    await telemetry_schema.apply(
        conn, timescaledb=choice.timescaledb, retention_days=choice.retention_days
    )


# In order; append, never edit a released one (a database that has it would not get the edit).
MIGRATIONS: Final = (
    Migration(5, "baseline: the tables of released schema version 5", _baseline),
    Migration(
        6,
        "device_messages.prev, key_id, signed_ts (hash-chain check)",
        statements(*_DEVICE_MESSAGES_CHAIN_DDL),
    ),
    Migration(
        7,
        "identity and access: organisation hierarchy and jurisdiction, members, sessions, "
        "API keys, login failures, grants",
        statements(*ACCESS_DDL),
    ),
    Migration(8, "the audit log: an RFC 9162 Merkle log of access", statements(*AUDIT_DDL)),
    Migration(
        9,
        "ledger API: witness keys, the cosignatures they sent, vehicle documents",
        statements(*LEDGER_API_DDL),
    ),
    Migration(
        10,
        "warnings: a notification per insert (the live feed's wake-up), indexes of the reads",
        statements(*WARNINGS_FEED_DDL),
    ),
    Migration(
        11,
        "the audit log becomes a ledger log: its leaves, checkpoints and cosignatures in the "
        "ledger tables",
        statements(*AUDIT_LEDGER_DDL),
    ),
    Migration(
        12,
        "credential changes notify the API processes (their principal caches)",
        statements(*CREDENTIALS_TRIGGER_DDL),
    ),
)
check_order(MIGRATIONS)

# The newest migration number: a database recording it is current.
SCHEMA_VERSION: Final = MIGRATIONS[-1].number


async def apply_schema(
    conn: asyncpg.Connection,
    *,
    timescaledb: bool | None = None,
    retention_days: int | None = None,
) -> str:
    """Bring the database to :data:`SCHEMA_VERSION` (safe to run concurrently).

    Runs the migrations above the database's recorded number, in order, in one transaction
    holding an advisory lock (:mod:`roadledger.db.migrations`), then lets
    ``telemetry_schema.apply`` create whatever telemetry storage is missing and check the mode.

    ``timescaledb``: use the extension for telemetry (None: when the database has it).
    ``retention_days``: how long telemetry is kept (None: the schema's default).
    Returns the telemetry storage mode in use ('timescaledb' or 'partitioned').

    A database already at :data:`SCHEMA_VERSION` is left alone (when ``timescaledb`` is None
    and its telemetry tables exist): components call this at every start, and DDL would take
    table locks that stall the writers. A database recorded above :data:`SCHEMA_VERSION` is
    refused with :class:`~roadledger.db.migrations.SchemaTooNewError`.
    """
    from roadledger.db import telemetry_schema

    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        current = await recorded_number(conn)
        if current == SCHEMA_VERSION and timescaledb is None:
            mode = await telemetry_schema.storage_mode(conn)
            if mode is not None:
                return mode
        choice = StorageChoice(timescaledb=timescaledb, retention_days=retention_days)
        await apply_pending(conn, MIGRATIONS, choice)
        # Idempotent: recreates telemetry tables that are missing, refuses the other mode.
        return await telemetry_schema.apply(
            conn, timescaledb=timescaledb, retention_days=retention_days
        )
