"""Numbered forward migrations: how a database records which schema changes it has.

A :class:`Migration` is a number, a description and an async function that changes the schema.
:func:`apply_pending` runs, in order, every migration numbered above the database's recorded
number, each in the caller's transaction (the one holding ``apply_schema``'s advisory lock),
and records it in ``roadledger_migrations`` (``number``, ``description``, ``applied_at``) in
the same transaction: a migration that fails leaves nothing applied and nothing recorded.
Nothing is ever migrated down: a database recorded above the newest number this code knows is
refused with :class:`SchemaTooNewError`, naming both numbers.

Legacy databases. Before numbered migrations, ``apply_schema`` recorded one ``version`` (1..6)
in ``roadledger_schema``. Migration numbers continue those versions: legacy version *v* means
"migrations up to *v* are applied", so a legacy 6 is current, a legacy 5 gets migration 6 and
nothing else. A database without ``roadledger_migrations`` is read through that legacy table;
when ``roadledger_migrations`` is first created there, the numbers the legacy version implies
are recorded with ``applied_at`` NULL (applied before this table existed; when is unknown).
``roadledger_schema`` is kept at the newest applied number, so a binary from before numbered
migrations still recognises a current database (and takes its fast path) during a rollout.

The migrations themselves (the baseline and the numbers after it) are listed in
``roadledger/db/schema.py``; ``docs/storage.md`` ("Schema migrations") says how to add one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from roadledger.db.telemetry_tables import relation_exists

__all__ = [
    "MIGRATIONS_TABLE",
    "Migration",
    "SchemaTooNewError",
    "StorageChoice",
    "applied_numbers",
    "apply_pending",
    "check_order",
    "recorded_number",
    "statements",
]

MIGRATIONS_TABLE: Final = "roadledger_migrations"
LEGACY_TABLE: Final = "roadledger_schema"


class SchemaTooNewError(Exception):
    """The database records a schema number above the newest migration this code knows."""

    def __init__(self, recorded: int, supported: int) -> None:
        super().__init__(
            f"the database schema is at migration {recorded}, but this RoadLedger knows "
            f"migrations up to {supported} only: refusing to use it (run a RoadLedger at least "
            f"as new as the one that migrated it; schemas are never migrated down)"
        )
        self.recorded = recorded
        self.supported = supported


@dataclass(frozen=True)
class StorageChoice:
    """What the caller of ``apply_schema`` asked of the telemetry storage (its arguments)."""

    timescaledb: bool | None = None
    retention_days: int | None = None


@dataclass(frozen=True)
class Migration:
    """One forward schema change; ``apply`` runs inside the migrating transaction."""

    number: int
    description: str
    apply: Callable[[asyncpg.Connection, StorageChoice], Awaitable[None]]


def statements(*ddl: str) -> Callable[[asyncpg.Connection, StorageChoice], Awaitable[None]]:
    """A migration body that executes ``ddl`` in order."""

    async def run(conn: asyncpg.Connection, _choice: StorageChoice) -> None:
        for statement in ddl:
            await conn.execute(statement)

    return run


def check_order(migrations: Sequence[Migration]) -> None:
    """Raise ValueError unless the numbers are positive and strictly increasing."""
    previous = 0
    for migration in migrations:
        if migration.number <= previous:
            raise ValueError(
                f"migration {migration.number} ({migration.description}) is not above "
                f"{previous}: numbers must be positive and strictly increasing"
            )
        previous = migration.number


async def recorded_number(conn: asyncpg.Connection) -> int:
    """The newest migration number the database records (0: none, a fresh database).

    Reads only catalogs and the two bookkeeping tables: no DDL, no lock on the project's
    tables. Only the current schema's tables count: a scratch schema must not read
    ``public``'s bookkeeping.
    """
    if await relation_exists(conn, MIGRATIONS_TABLE):
        number = await conn.fetchval(f"SELECT max(number) FROM {MIGRATIONS_TABLE}")  # noqa: S608
        if number is not None:
            return int(number)
    if await relation_exists(conn, LEGACY_TABLE):
        version = await conn.fetchval(f"SELECT max(version) FROM {LEGACY_TABLE}")  # noqa: S608
        if version is not None:
            return int(version)
    return 0


async def applied_numbers(conn: asyncpg.Connection) -> list[tuple[int, str, bool]]:
    """(number, description, whether applied_at is known) of every recorded migration."""
    if not await relation_exists(conn, MIGRATIONS_TABLE):
        return []
    rows = await conn.fetch(
        f"SELECT number, description, applied_at IS NOT NULL AS dated "  # noqa: S608
        f"FROM {MIGRATIONS_TABLE} ORDER BY number"
    )
    return [(row["number"], row["description"], row["dated"]) for row in rows]


async def apply_pending(
    conn: asyncpg.Connection, migrations: Sequence[Migration], choice: StorageChoice
) -> list[int]:
    """Run the migrations above the recorded number, in order; return the numbers run.

    The caller holds a transaction and the advisory lock that serialises migrating
    processes: everything here, DDL and records alike, commits or rolls back with it.
    Raises :class:`SchemaTooNewError` for a database recorded above ``migrations[-1]``.
    """
    check_order(migrations)
    latest = migrations[-1].number
    current = await recorded_number(conn)
    if current > latest:
        raise SchemaTooNewError(current, latest)
    if not await relation_exists(conn, MIGRATIONS_TABLE):
        await conn.execute(
            f"""
            CREATE TABLE {MIGRATIONS_TABLE} (
                number       integer PRIMARY KEY CHECK (number > 0),
                description  text NOT NULL,
                applied_at   timestamptz DEFAULT clock_timestamp()
            )
            """
        )
        # A legacy database: record what its version implies, date unknown.
        await conn.executemany(
            f"INSERT INTO {MIGRATIONS_TABLE} (number, description, applied_at) "  # noqa: S608
            "VALUES ($1, $2, NULL)",
            [(m.number, m.description) for m in migrations if m.number <= current],
        )
    ran = []
    for migration in migrations:
        if migration.number <= current:
            continue
        await migration.apply(conn, choice)
        await conn.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (number, description) VALUES ($1, $2)",  # noqa: S608
            migration.number,
            migration.description,
        )
        ran.append(migration.number)
    if ran:
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {LEGACY_TABLE} (version integer NOT NULL)")
        await conn.execute(f"DELETE FROM {LEGACY_TABLE}")  # noqa: S608
        await conn.execute(f"INSERT INTO {LEGACY_TABLE} (version) VALUES ($1)", ran[-1])  # noqa: S608
    return ran
