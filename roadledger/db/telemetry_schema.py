"""Telemetry tables, in TimescaleDB or plain-PostgreSQL form (the store writer's schema).

Both modes have the same tables and columns, so readers never ask which one they are on:

- ``telemetry``: one row per verified message (vehicles and RSUs; an RSU's row has no
  odometer, speed or heading), primary key ``(device_id, seq, ts)``, hash index on
  ``leaf_hash`` (RFC 9162 leaf hash of the verbatim JWS) for the join to ``ledger_entries``.
- ``rsu_observations``: one row per vehicle an RSU message observed, primary key
  ``(rsu_id, seq, obs_index, ts)``.
- ``segment_speed_5m``: per road segment and 5-minute bucket, ``speed_sum``, ``samples``,
  ``vehicles`` (distinct) and ``avg_spd_cms``, counting vehicle messages matched to a segment.

TimescaleDB mode: hypertables on ``ts`` (1-day chunks), compression segmented by device (RSU)
and ordered by ``seq`` after 7 days, a retention policy, and ``segment_speed_5m`` as a
continuous aggregate (real-time, refreshed every minute).

Partitioned mode (plain PostgreSQL): native range partitions of one UTC day (``<table>_pYYYYMMDD``)
plus a DEFAULT partition, so no row is ever refused; the writer creates the days it needs
first (:func:`ensure_day_partitions`). ``segment_speed_5m`` is a table the writer updates in the
same transaction as the rows, counting only rows actually inserted; the distinct vehicles are
kept in ``segment_vehicles_5m`` (bucket, segment, device), day-partitioned like the rows.
:func:`apply_retention` drops whole days older than the window.

An existing database keeps its mode: :func:`apply` never converts one into the other, and
refuses an explicit request for the other mode. ``docs/storage.md`` has the details.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Final

import asyncpg

__all__ = [
    "AGGREGATE_COLUMNS",
    "DAY_PARTITIONED",
    "DEFAULT_RETENTION_DAYS",
    "MODE_PARTITIONED",
    "MODE_TIMESCALEDB",
    "TelemetrySchemaError",
    "apply",
    "apply_retention",
    "drop",
    "ensure_day_partitions",
    "ensure_retention_policy",
    "relation_exists",
    "storage_mode",
    "timescaledb_schema",
]

MODE_TIMESCALEDB: Final = "timescaledb"
MODE_PARTITIONED: Final = "partitioned"
DEFAULT_RETENTION_DAYS: Final = 365
COMPRESS_AFTER: Final = "7 days"
# How far back the aggregate refresh looks for late rows: the verifier's maximum message age
# (30 days by default) plus a margin. Refreshing only recomputes buckets that changed.
AGGREGATE_REFRESH_WINDOW: Final = "32 days"
BUCKET: Final = "5 minutes"
# time_bucket's origin for sub-month buckets; date_bin with it gives the same buckets.
BUCKET_ORIGIN: Final = "2000-01-03 00:00:00+00"

HYPERTABLES: Final = ("telemetry", "rsu_observations")
# (table, partitioning column) of every day-partitioned table of partitioned mode.
DAY_PARTITIONED: Final = (
    ("telemetry", "ts"),
    ("rsu_observations", "ts"),
    ("segment_vehicles_5m", "bucket"),
)
AGGREGATE_COLUMNS: Final = (
    "bucket", "segment_id", "speed_sum", "samples", "vehicles", "avg_spd_cms",
)  # fmt: skip
_DROP_TABLE: Final = "DROP TABLE %I.%I"
_DELETE_OLDER: Final = "DELETE FROM %I.%I WHERE %I < $1"
_PARTITION_NAME: Final = re.compile(r"^(?P<parent>[a-z_0-9]+)_p(?P<day>\d{8})$")


class TelemetrySchemaError(Exception):
    """The telemetry storage cannot be created in the mode asked for (the message says why)."""


def _telemetry_ddl(partition_by: str) -> tuple[str, ...]:
    return (
        f"""
        CREATE TABLE IF NOT EXISTS telemetry (
            device_id   text        NOT NULL,
            seq         bigint      NOT NULL,
            ts          timestamptz NOT NULL,
            recv_ts     timestamptz NOT NULL,
            odo_m       bigint,
            lat_e7      integer     NOT NULL,
            lon_e7      integer     NOT NULL,
            spd_cms     integer,
            hdg_cdeg    integer,
            segment_id  integer,
            leaf_hash   bytea       NOT NULL CHECK (length(leaf_hash) = 32),
            PRIMARY KEY (device_id, seq, ts)
        ){partition_by.format(column="ts")}
        """,
        f"""
        CREATE TABLE IF NOT EXISTS rsu_observations (
            rsu_id      text        NOT NULL,
            seq         bigint      NOT NULL,
            obs_index   smallint    NOT NULL,
            ts          timestamptz NOT NULL,
            vehicle_id  text        NOT NULL,
            obs_ts      timestamptz NOT NULL,
            lat_e7      integer     NOT NULL,
            lon_e7      integer     NOT NULL,
            segment_id  integer,
            leaf_hash   bytea       NOT NULL CHECK (length(leaf_hash) = 32),
            PRIMARY KEY (rsu_id, seq, obs_index, ts)
        ){partition_by.format(column="ts")}
        """,
    )


# (name, DDL). Created only when missing: CREATE INDEX IF NOT EXISTS would still take a SHARE
# lock on the table first, stalling every writer whenever a component starts.
_INDEXES: Final = (
    # Hash: 4-byte codes for 32 random bytes, cheaper to maintain than a B-tree, and the only
    # question asked of it is equality (the join to ledger_entries.leaf_hash).
    (
        "telemetry_leaf_hash",
        "CREATE INDEX IF NOT EXISTS telemetry_leaf_hash ON telemetry USING hash (leaf_hash)",
    ),
    # BRIN: rows arrive nearly in time order, so a few pages of summaries find the latest
    # minutes of a day's partition (analytics' warm-up) without a B-tree to maintain per row.
    (
        "telemetry_ts_brin",
        "CREATE INDEX IF NOT EXISTS telemetry_ts_brin ON telemetry USING brin (ts)",
    ),
    (
        "rsu_observations_vehicle",
        "CREATE INDEX IF NOT EXISTS rsu_observations_vehicle "
        "ON rsu_observations (vehicle_id, obs_ts)",
    ),
)

_PARTITIONED_DDL: Final = (
    *_telemetry_ddl(" PARTITION BY RANGE ({column})"),
    "CREATE TABLE IF NOT EXISTS telemetry_default PARTITION OF telemetry DEFAULT",
    "CREATE TABLE IF NOT EXISTS rsu_observations_default PARTITION OF rsu_observations DEFAULT",
    """
    CREATE TABLE IF NOT EXISTS segment_vehicles_5m (
        bucket      timestamptz NOT NULL,
        segment_id  integer     NOT NULL,
        device_id   text        NOT NULL,
        PRIMARY KEY (bucket, segment_id, device_id)
    ) PARTITION BY RANGE (bucket)
    """,
    "CREATE TABLE IF NOT EXISTS segment_vehicles_5m_default PARTITION OF segment_vehicles_5m "
    "DEFAULT",
    """
    CREATE TABLE IF NOT EXISTS segment_speed_5m (
        bucket       timestamptz NOT NULL,
        segment_id   integer     NOT NULL,
        speed_sum    bigint      NOT NULL,
        samples      bigint      NOT NULL,
        vehicles     bigint      NOT NULL,
        avg_spd_cms  double precision
                     GENERATED ALWAYS AS (speed_sum::double precision / nullif(samples, 0)) STORED,
        PRIMARY KEY (bucket, segment_id)
    )
    """,
    # One day partition of one table, created idempotently: serialised per (schema, table,
    # day) by a transaction advisory lock, rows of that day moved out of the DEFAULT
    # partition (which is locked first, so no insert slips in between), then attached.
    # ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent: inserts and reads go on.
    """
    CREATE OR REPLACE FUNCTION roadledger_attach_day_partition(parent text, day date)
    RETURNS boolean LANGUAGE plpgsql AS $fn$
    DECLARE
        sch   text := current_schema();
        col   text;
        part  text := parent || '_p' || to_char(day, 'YYYYMMDD');
        lo    timestamptz := day::timestamp AT TIME ZONE 'UTC';
        hi    timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    BEGIN
        col := CASE parent WHEN 'telemetry' THEN 'ts' WHEN 'rsu_observations' THEN 'ts'
                           WHEN 'segment_vehicles_5m' THEN 'bucket' END;
        IF col IS NULL THEN
            RAISE EXCEPTION 'not a day-partitioned telemetry table: %', parent;
        END IF;
        PERFORM pg_advisory_xact_lock(hashtext(sch || '.' || part));
        IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = sch AND c.relname = part) THEN
            RETURN false;
        END IF;
        EXECUTE format('LOCK TABLE %I.%I IN ACCESS EXCLUSIVE MODE', sch, parent || '_default');
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       sch, part, sch, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       sch, parent || '_default', col, col, sch, part) USING lo, hi;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, parent, sch, part, lo, hi);
        RETURN true;
    END
    $fn$
    """,
)


async def timescaledb_schema(conn: asyncpg.Connection) -> str | None:
    """The (quoted) schema of the timescaledb extension in this database, or None."""
    schema: str | None = await conn.fetchval(
        "SELECT format('%I', n.nspname) FROM pg_extension e "
        "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'timescaledb'"
    )
    return schema


async def storage_mode(conn: asyncpg.Connection) -> str | None:
    """The mode of the telemetry tables in the current schema, or None before :func:`apply`."""
    relkind = await conn.fetchval(
        "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = 'telemetry'"
    )
    if relkind is None:
        return None
    if relkind == "p":
        return MODE_PARTITIONED
    if await timescaledb_schema(conn) is not None and await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables "
        "WHERE hypertable_schema = current_schema() AND hypertable_name = 'telemetry')"
    ):
        return MODE_TIMESCALEDB
    raise TelemetrySchemaError(
        "telemetry exists but is neither partitioned nor a TimescaleDB hypertable "
        "(was the timescaledb extension dropped?)"
    )


async def apply(
    conn: asyncpg.Connection, *, timescaledb: bool | None, retention_days: int | None = None
) -> str:
    """Create the telemetry tables that do not exist yet; return the mode in use.

    ``timescaledb``: None uses TimescaleDB when the extension is installed in this database
    (``CREATE EXTENSION`` is the services scripts' job); False never uses it; True requires it.
    Tables that already exist keep their mode whatever is asked: ``None`` follows them,
    and an explicit request for the other mode raises :class:`TelemetrySchemaError`.

    ``retention_days`` (TimescaleDB mode): the retention policy; None keeps an existing
    policy or creates one of :data:`DEFAULT_RETENTION_DAYS`. Partitioned mode has no policy:
    the store writer calls :func:`apply_retention`.

    Runs in one transaction (a savepoint inside ``apply_schema``'s, whose advisory lock
    serialises concurrent callers).
    """
    async with conn.transaction():
        extension = await timescaledb_schema(conn)
        existing = await storage_mode(conn)
        if existing is not None:
            wanted = None
            if timescaledb is not None:
                wanted = MODE_TIMESCALEDB if timescaledb else MODE_PARTITIONED
            if wanted is not None and wanted != existing:
                raise TelemetrySchemaError(
                    f"telemetry storage is {existing} here and an existing database keeps its "
                    f"mode; {wanted} was asked for (see docs/storage.md, 'Switching modes')"
                )
            mode = existing
        elif timescaledb is True and extension is None:
            raise TelemetrySchemaError(
                "TimescaleDB was asked for but the timescaledb extension is not installed in "
                "this database (scripts/services runs CREATE EXTENSION when the server has it)"
            )
        else:
            use = extension is not None and timescaledb is not False
            mode = MODE_TIMESCALEDB if use else MODE_PARTITIONED
        if mode == MODE_TIMESCALEDB:
            assert extension is not None  # storage_mode says timescaledb only when installed
            await _apply_timescaledb(conn, extension, retention_days)
        else:
            for statement in _PARTITIONED_DDL:
                await conn.execute(statement)
            await _create_missing_indexes(conn)
            today = datetime.now(UTC).date()
            await ensure_day_partitions(conn, (today, today + timedelta(days=1)))
        return mode


async def _qualified(conn: asyncpg.Connection, table: str) -> str:
    name: str = await conn.fetchval("SELECT format('%I.%I', current_schema(), $1::text)", table)
    return name


async def relation_exists(conn: asyncpg.Connection, relation: str) -> bool:
    """Whether a table, index or view of this name exists in the current schema."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND c.relname = $1)",
        relation,
    )
    return found


async def _create_missing_indexes(conn: asyncpg.Connection) -> None:
    for name, statement in _INDEXES:
        if not await relation_exists(conn, name):
            await conn.execute(statement)


async def _apply_timescaledb(
    conn: asyncpg.Connection, ext: str, retention_days: int | None
) -> None:
    for statement in _telemetry_ddl(""):
        await conn.execute(statement)
    for table, segment_by, order_by in (
        ("telemetry", "device_id", "seq"),
        ("rsu_observations", "rsu_id", "seq, obs_index"),
    ):
        relation = await _qualified(conn, table)
        compressed = await conn.fetchval(
            "SELECT compression_enabled FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = current_schema() AND hypertable_name = $1",
            table,
        )
        if compressed is None:  # not a hypertable yet
            await conn.execute(
                f"SELECT {ext}.create_hypertable($1::regclass, 'ts', "
                "chunk_time_interval => INTERVAL '1 day')",
                relation,
            )
        if not compressed:
            # Constants only: ALTER TABLE takes no parameters.
            await conn.execute(
                f"ALTER TABLE {table} SET (timescaledb.compress, "
                f"timescaledb.compress_segmentby = '{segment_by}', "
                f"timescaledb.compress_orderby = '{order_by}')"
            )
        await conn.execute(
            f"SELECT {ext}.add_compression_policy($1::regclass, INTERVAL '{COMPRESS_AFTER}', "
            "if_not_exists => TRUE)",
            relation,
        )
    await _create_missing_indexes(conn)
    await ensure_retention_policy(conn, retention_days)
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = current_schema() AND view_name = 'segment_speed_5m')"
    )
    if not exists:
        await conn.execute(
            f"""
            CREATE MATERIALIZED VIEW segment_speed_5m
            WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
            SELECT {ext}.time_bucket(INTERVAL '{BUCKET}', ts) AS bucket,
                   segment_id,
                   sum(spd_cms)::bigint AS speed_sum,
                   count(*) AS samples,
                   count(DISTINCT device_id) AS vehicles,
                   sum(spd_cms)::double precision / count(*) AS avg_spd_cms
              FROM telemetry
             WHERE segment_id IS NOT NULL AND spd_cms IS NOT NULL
             GROUP BY {ext}.time_bucket(INTERVAL '{BUCKET}', ts), segment_id
            WITH NO DATA
            """  # noqa: S608 - constants only
        )
    await conn.execute(
        f"SELECT {ext}.add_continuous_aggregate_policy($1::regclass, "
        f"start_offset => INTERVAL '{AGGREGATE_REFRESH_WINDOW}', "
        f"end_offset => INTERVAL '{BUCKET}', schedule_interval => INTERVAL '1 minute', "
        "if_not_exists => TRUE)",
        await _qualified(conn, "segment_speed_5m"),
    )


async def ensure_retention_policy(conn: asyncpg.Connection, retention_days: int | None) -> None:
    """TimescaleDB mode: make the retention policy of both hypertables ``retention_days``.

    None keeps an existing policy (or creates the default one). Partitioned mode: nothing to
    do here, retention is :func:`apply_retention`, called by the store writer.
    """
    ext = await timescaledb_schema(conn)
    if ext is None or await storage_mode(conn) != MODE_TIMESCALEDB:
        return
    for table in HYPERTABLES:
        relation = await _qualified(conn, table)
        current = await conn.fetchval(
            "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_schema = current_schema() "
            "AND hypertable_name = $1",
            table,
        )
        if current is not None and (retention_days is None or current == timedelta(retention_days)):
            continue
        if current is not None:
            await conn.execute(f"SELECT {ext}.remove_retention_policy($1::regclass)", relation)
        days = DEFAULT_RETENTION_DAYS if retention_days is None else retention_days
        await conn.execute(
            f"SELECT {ext}.add_retention_policy($1::regclass, $2::interval)",
            relation,
            timedelta(days=days),
        )


async def ensure_day_partitions(conn: asyncpg.Connection, days: Iterable[date]) -> int:
    """Partitioned mode: create the day partitions of ``days`` that are missing.

    Idempotent and safe to run concurrently (see ``roadledger_attach_day_partition``). Each
    (table, day) is its own statement: outside a transaction, its locks last only as long
    as it does. Returns how many partitions were created.
    """
    created = 0
    for day in sorted(set(days)):
        for table, _ in DAY_PARTITIONED:
            if await conn.fetchval("SELECT roadledger_attach_day_partition($1, $2)", table, day):
                created += 1
    return created


# drop_chunks takes its locks in an order TimescaleDB's own background jobs (aggregate
# refresh, compression) can take the other way round; PostgreSQL then aborts one of the two.
# The aborted drop changed nothing, so it is simply tried again.
_DROP_CHUNKS_ATTEMPTS: Final = 5


async def _drop_chunks(
    conn: asyncpg.Connection, ext: str | None, relation: str | None, cutoff: datetime
) -> list[asyncpg.Record]:
    for attempt in range(1, _DROP_CHUNKS_ATTEMPTS + 1):
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                f"SELECT {ext}.drop_chunks($1::regclass, older_than => $2::timestamptz)",
                relation,
                cutoff,
            )
            return rows
        except (asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError):
            if attempt == _DROP_CHUNKS_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def apply_retention(
    conn: asyncpg.Connection, retention_days: int, *, now: datetime | None = None
) -> list[str]:
    """Drop the telemetry older than ``retention_days`` that fills whole days (or chunks).

    Partitioned mode: drops every day partition that ends at or before the cutoff, and
    deletes older rows from the DEFAULT partitions; ``segment_speed_5m`` is kept (as the
    continuous aggregate is in TimescaleDB mode). TimescaleDB mode: ``drop_chunks`` (what
    the retention policy runs on its own). Returns the dropped tables or chunks.
    """
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    mode = await storage_mode(conn)
    if mode == MODE_TIMESCALEDB:
        ext = await timescaledb_schema(conn)
        dropped: list[str] = []
        for table in HYPERTABLES:
            rows = await _drop_chunks(conn, ext, await _qualified(conn, table), cutoff)
            dropped.extend(str(row[0]) for row in rows)
        return dropped
    if mode != MODE_PARTITIONED:
        return []
    parents = [table for table, _ in DAY_PARTITIONED]
    children = await conn.fetch(
        """
        SELECT c.relname AS child
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
          JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace n ON n.oid = p.relnamespace
         WHERE n.nspname = current_schema() AND p.relname = ANY($1::text[])
         ORDER BY c.relname
        """,
        parents,
    )
    dropped = []
    for row in children:
        match = _PARTITION_NAME.match(row["child"])
        if match is None or match["parent"] not in parents:
            continue
        day = datetime.strptime(match["day"], "%Y%m%d").replace(tzinfo=UTC)
        if day + timedelta(days=1) > cutoff:
            continue
        statement = await conn.fetchval(
            "SELECT format($1::text, current_schema(), $2::text)", _DROP_TABLE, row["child"]
        )
        try:
            async with conn.transaction():
                # Dropping a partition locks its parent exclusively: give up rather than
                # queue behind a long reader (every writer would queue behind us); next time.
                await conn.execute("SET LOCAL lock_timeout = '5s'")
                await conn.execute(statement)
        except asyncpg.LockNotAvailableError:
            continue
        dropped.append(row["child"])
    for table, column in DAY_PARTITIONED:
        statement = await conn.fetchval(
            "SELECT format($1::text, current_schema(), $2::text, $3::text)",
            _DELETE_OLDER,
            table + "_default",
            column,
        )
        await conn.execute(statement, cutoff)
    return dropped


async def drop(conn: asyncpg.Connection) -> None:
    """Drop the telemetry tables of the current schema, whichever mode (scratch teardown).

    TimescaleDB mode first deletes the schema's jobs and drops the chunks: ``DROP SCHEMA ...
    CASCADE`` alone leaves compressed chunks behind in ``_timescaledb_internal`` (seen with
    TimescaleDB 2.28). A job already running when it is deleted can still make a statement
    fail with "tuple concurrently deleted"; the drop is then tried again, a few times.
    """
    for attempt in range(_DROP_ATTEMPTS):
        try:
            await _drop(conn)
            return
        except (asyncpg.InternalServerError, asyncpg.LockNotAvailableError) as exc:
            if attempt == _DROP_ATTEMPTS - 1 or (
                isinstance(exc, asyncpg.InternalServerError) and "concurrently" not in str(exc)
            ):
                raise
            await asyncio.sleep(0.2 * (attempt + 1))  # let the background job finish


_DROP_ATTEMPTS: Final = 10


async def _drop(conn: asyncpg.Connection) -> None:
    mode = await storage_mode(conn)
    if mode == MODE_TIMESCALEDB:
        ext = await timescaledb_schema(conn)
        await conn.execute(
            f"SELECT {ext}.delete_job(job_id) FROM timescaledb_information.jobs "  # noqa: S608
            "WHERE hypertable_schema = current_schema()"
        )
        await conn.execute("DROP MATERIALIZED VIEW IF EXISTS segment_speed_5m")
        for table in HYPERTABLES:
            await conn.execute(
                f"SELECT {ext}.drop_chunks($1::regclass, older_than => $2::timestamptz)",
                await _qualified(conn, table),
                datetime(9999, 12, 31, tzinfo=UTC),
            )
        await conn.execute("DROP TABLE IF EXISTS telemetry, rsu_observations")
    elif mode == MODE_PARTITIONED:
        await conn.execute(
            "DROP TABLE IF EXISTS telemetry, rsu_observations, segment_vehicles_5m, "
            "segment_speed_5m"
        )
        await conn.execute("DROP FUNCTION IF EXISTS roadledger_attach_day_partition(text, date)")
