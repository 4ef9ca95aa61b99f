"""The store writer: ``telemetry.verified`` -> the telemetry tables, in batches, idempotent.

:class:`StoreWriter` consumes the topic in a consumer group and hands each batch to a
:class:`BatchWriter`, which needs no stream (tests and ``bench/store.py`` drive it directly).
Offsets are committed only after the batch's transaction committed; after a crash the records
since the last commit come again and insert nothing (at-least-once in, exactly once stored).

A batch is one transaction:

1. binary COPY of the decoded rows into temporary staging tables (``ON COMMIT DROP``: a pooled
   session keeps no state, see ``roadledger/db/pool.py``);
2. one statement: ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` into ``telemetry`` and
   ``rsu_observations`` (idempotent on the primary keys), and in partitioned mode, from the
   rows that statement actually inserted, the distinct vehicles (``segment_vehicles_5m``) and
   the sums of ``segment_speed_5m``. Rows go in key order, so concurrent writers take their
   locks in the same order.

In partitioned mode the day partitions a batch needs are created first, each in its own short
transaction (creating one while holding the batch's locks would make readers wait). Days older
than the retention window or more than a day ahead get no partition: their rows go to the
DEFAULT partition, from which retention or a later partition takes them. Storage modes and
tables: ``roadledger/db/telemetry_schema.py`` and ``docs/storage.md``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Final

import asyncpg

from contracts.map_matching import SegmentIndex
from contracts.roads import load_segments
from contracts.topics import VERIFIED
from ingest.telemetry_rows import (
    MS_PER_DAY,
    OBSERVATION_COLUMNS,
    TELEMETRY_COLUMNS,
    decode_records,
)
from roadledger.db import telemetry_schema
from roadledger.db.schema import apply_schema
from roadledger.db.telemetry_schema import (
    BUCKET,
    BUCKET_ORIGIN,
    DEFAULT_RETENTION_DAYS,
    MODE_PARTITIONED,
    MODE_TIMESCALEDB,
)
from roadledger.resilience import Dependency, RetryPolicy, is_rebalance, is_transient, patiently
from roadledger.settings import Settings
from roadledger.stream import Consumer, Stream, StreamRecord, TopicPartition, next_offsets
from roadledger.stream.errors import StreamError

__all__ = ["BatchWriter", "StoreWriter", "WriteCounts"]

log = logging.getLogger(__name__)

_EPOCH: Final = date(1970, 1, 1)
_STAGE_TELEMETRY: Final = "roadledger_stage_telemetry"
_STAGE_OBSERVATIONS: Final = "roadledger_stage_observations"
_STAGE_TELEMETRY_DDL: Final = f"""
    CREATE TEMPORARY TABLE {_STAGE_TELEMETRY} (
        device_id text, seq bigint, ts_ms bigint, recv_ms bigint, odo_m bigint,
        lat_e7 integer, lon_e7 integer, spd_cms integer, hdg_cdeg integer,
        segment_id integer, leaf_hash bytea
    ) ON COMMIT DROP
"""
_STAGE_OBSERVATIONS_DDL: Final = f"""
    CREATE TEMPORARY TABLE {_STAGE_OBSERVATIONS} (
        rsu_id text, seq bigint, obs_index smallint, ts_ms bigint, vehicle_id text,
        obs_ts_ms bigint, lat_e7 integer, lon_e7 integer, segment_id integer, leaf_hash bytea
    ) ON COMMIT DROP
"""


def _ms(column: str) -> str:
    # Exact: the interval's microseconds are an int64, ms * 1000 < 2**53.
    return f"timestamptz 'epoch' + {column} * interval '1 millisecond'"


_INSERT_TELEMETRY: Final = f"""
    INSERT INTO telemetry (device_id, seq, ts, recv_ts, odo_m, lat_e7, lon_e7, spd_cms,
                           hdg_cdeg, segment_id, leaf_hash)
    SELECT device_id, seq, {_ms("ts_ms")}, {_ms("recv_ms")}, odo_m, lat_e7, lon_e7, spd_cms,
           hdg_cdeg, segment_id, leaf_hash
      FROM {_STAGE_TELEMETRY}
     ORDER BY device_id, seq
    ON CONFLICT DO NOTHING
    RETURNING ts, device_id, segment_id, spd_cms
"""  # noqa: S608 - constants only
_INSERT_OBSERVATIONS: Final = f"""
    INSERT INTO rsu_observations (rsu_id, seq, obs_index, ts, vehicle_id, obs_ts, lat_e7,
                                  lon_e7, segment_id, leaf_hash)
    SELECT rsu_id, seq, obs_index, {_ms("ts_ms")}, vehicle_id, {_ms("obs_ts_ms")}, lat_e7,
           lon_e7, segment_id, leaf_hash
      FROM {_STAGE_OBSERVATIONS}
     ORDER BY rsu_id, seq, obs_index
    ON CONFLICT DO NOTHING
    RETURNING 1
"""  # noqa: S608 - constants only
# Partitioned mode: the aggregates from exactly the rows inserted above (a data-modifying
# CTE runs once whether or not it is read; the outer query does not see its rows in the
# tables, only through RETURNING). A vehicle counts once per (bucket, segment): its first
# row there inserts into segment_vehicles_5m, later ones conflict and return nothing.
_AGGREGATES: Final = f"""
    , moving AS (
        SELECT date_bin(INTERVAL '{BUCKET}', ts, TIMESTAMPTZ '{BUCKET_ORIGIN}') AS bucket,
               segment_id, device_id, spd_cms
          FROM tel
         WHERE segment_id IS NOT NULL AND spd_cms IS NOT NULL
    ), new_vehicles AS (
        INSERT INTO segment_vehicles_5m (bucket, segment_id, device_id)
        SELECT DISTINCT bucket, segment_id, device_id FROM moving
         ORDER BY bucket, segment_id, device_id
        ON CONFLICT DO NOTHING
        RETURNING bucket, segment_id
    ), speeds AS (
        INSERT INTO segment_speed_5m AS a (bucket, segment_id, speed_sum, samples, vehicles)
        SELECT m.bucket, m.segment_id, m.speed_sum, m.samples, coalesce(v.vehicles, 0)
          FROM (SELECT bucket, segment_id, sum(spd_cms) AS speed_sum, count(*) AS samples
                  FROM moving GROUP BY bucket, segment_id) AS m
          LEFT JOIN (SELECT bucket, segment_id, count(*) AS vehicles
                       FROM new_vehicles GROUP BY bucket, segment_id) AS v
            USING (bucket, segment_id)
         ORDER BY m.bucket, m.segment_id
        ON CONFLICT (bucket, segment_id) DO UPDATE
           SET speed_sum = a.speed_sum + EXCLUDED.speed_sum,
               samples = a.samples + EXCLUDED.samples,
               vehicles = a.vehicles + EXCLUDED.vehicles
        RETURNING 1
    )
"""  # noqa: S608 - constants only


def _statement(mode: str, with_observations: bool) -> str:
    """The one statement of a batch; a batch of vehicles only (the common case) neither
    creates nor reads the observations' staging table."""
    parts = [f"WITH tel AS ({_INSERT_TELEMETRY})"]
    if with_observations:
        parts.append(f", obs AS ({_INSERT_OBSERVATIONS})")
    if mode == MODE_PARTITIONED:
        parts.append(_AGGREGATES)
    counted = "(SELECT count(*) FROM obs)" if with_observations else "0"
    parts.append(f"SELECT (SELECT count(*) FROM tel), {counted}")  # noqa: S608 - constants
    return "\n".join(parts)


_WRITE: Final = {
    (mode, with_observations): _statement(mode, with_observations)
    for mode in (MODE_PARTITIONED, MODE_TIMESCALEDB)
    for with_observations in (False, True)
}


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What happened to the records of one batch (or, summed with ``+``, of many)."""

    records: int = 0
    telemetry: int = 0
    """Telemetry messages decoded (vehicle and RSU), one row each."""
    telemetry_inserted: int = 0
    """Of those, rows new to the table (the rest were already stored: redelivery)."""
    observations: int = 0
    observations_inserted: int = 0
    device_key_entries: int = 0
    """Device key records on the topic (ledger entries, not telemetry): skipped."""
    undecodable: int = 0
    """Records that are neither (logged with their offset, skipped)."""
    unmatched: int = 0
    """Telemetry rows and observations not within reach of a road segment."""

    def __add__(self, other: WriteCounts) -> WriteCounts:
        return WriteCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(WriteCounts))
        )

    @property
    def duplicates(self) -> int:
        """Rows (telemetry and observations) that were already stored."""
        return (
            self.telemetry
            - self.telemetry_inserted
            + self.observations
            - self.observations_inserted
        )


class BatchWriter:
    """Writes batches of ``telemetry.verified`` records into the telemetry tables.

    Build with :meth:`open` (reads the storage mode and the road network), or directly when
    both are known. Tasks may share one, each writing on its own connection.
    """

    def __init__(
        self,
        mode: str,
        segments: SegmentIndex | None = None,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in (MODE_PARTITIONED, MODE_TIMESCALEDB):
            raise ValueError(f"unknown telemetry storage mode {mode!r}")
        self.mode = mode
        self.segments = segments
        self.retention_days = retention_days
        self._clock = clock
        self._known_days: set[int] = set()
        self.seconds = {"decode": 0.0, "database": 0.0}
        """Time spent so far decoding and map matching, and in the database (per stage)."""

    @classmethod
    async def open(
        cls, conn: asyncpg.Connection, *, retention_days: int = DEFAULT_RETENTION_DAYS
    ) -> BatchWriter:
        """A writer for the tables in ``conn``'s schema (``apply_schema`` must have run)."""
        mode = await telemetry_schema.storage_mode(conn)
        if mode is None:
            raise telemetry_schema.TelemetrySchemaError(
                "no telemetry tables in the current schema: run apply_schema first"
            )
        segments = SegmentIndex(await load_segments(conn))
        return cls(mode, segments, retention_days=retention_days)

    async def write_batch(
        self, conn: asyncpg.Connection, records: Sequence[StreamRecord]
    ) -> WriteCounts:
        """Store ``records`` (idempotent) in one transaction of its own; return the counts.

        ``conn`` must not be inside a transaction: day partitions are created before it.
        """
        if conn.is_in_transaction():
            raise ValueError("write_batch runs its own transactions: conn is inside one")
        now_ms = int(self._clock() * 1000)
        started = time.perf_counter()
        batch = decode_records(records, self.segments, now_ms=now_ms)
        decoded = time.perf_counter()
        self.seconds["decode"] += decoded - started
        for problem in batch.problems:
            log.error("undecodable record on the verified topic, skipped: %s", problem)
        inserted = observations_inserted = 0
        if batch.telemetry:  # every observation comes with its RSU's telemetry row
            if self.mode == MODE_PARTITIONED:
                await self._ensure_partitions(conn, batch.days(), now_ms // MS_PER_DAY)
            with_obs = bool(batch.observations)
            async with conn.transaction():
                await conn.execute(
                    _STAGE_TELEMETRY_DDL + (";" + _STAGE_OBSERVATIONS_DDL if with_obs else "")
                )
                await conn.copy_records_to_table(
                    _STAGE_TELEMETRY, records=batch.telemetry, columns=TELEMETRY_COLUMNS
                )
                if with_obs:
                    await conn.copy_records_to_table(
                        _STAGE_OBSERVATIONS,
                        records=batch.observations,
                        columns=OBSERVATION_COLUMNS,
                    )
                row = await conn.fetchrow(_WRITE[self.mode, with_obs])
                inserted, observations_inserted = int(row[0]), int(row[1])
            self.seconds["database"] += time.perf_counter() - decoded
        return WriteCounts(
            records=len(records),
            telemetry=len(batch.telemetry),
            telemetry_inserted=inserted,
            observations=len(batch.observations),
            observations_inserted=observations_inserted,
            device_key_entries=batch.device_key_entries,
            undecodable=batch.undecodable,
            unmatched=batch.unmatched,
        )

    async def _ensure_partitions(
        self, conn: asyncpg.Connection, days: set[int], today: int
    ) -> None:
        lowest = today - self.retention_days
        wanted = {day for day in days - self._known_days if lowest <= day <= today + 1}
        if not wanted:
            return
        try:
            created = await telemetry_schema.ensure_day_partitions(
                conn, (_EPOCH + timedelta(days=day) for day in wanted)
            )
        except asyncpg.PostgresError as exc:
            # Never fatal: the rows go to the DEFAULT partition and the next batch retries.
            log.warning("could not create day partitions %s: %s", sorted(wanted), exc)
            return
        if created:
            log.info("created %d day partitions for %s", created, sorted(wanted))
        self._known_days |= wanted


_POLL_MS: Final = 250
_SEGMENTS_FINGERPRINT: Final = (
    "SELECT md5(coalesce(string_agg(r::text, ',' ORDER BY r.segment_id), '')) FROM road_segments r"
)


class StoreWriter:
    """Consumes ``topic`` in group ``group_id`` and stores every record (see module docstring).

    Every ``segment_refresh_s`` it reloads the road network if ``road_segments`` changed
    (rows stored before a segment existed keep ``segment_id`` NULL); in partitioned mode it
    applies retention every ``retention_interval_s`` (TimescaleDB runs its own policy, which
    :meth:`start` sets to ``settings.retention_days``).
    """

    def __init__(
        self,
        settings: Settings,
        stream: Stream,
        pool: asyncpg.Pool,
        *,
        topic: str = VERIFIED,
        group_id: str = "roadledger-store",
        client_id: str = "roadledger-store",
        segment_refresh_s: float = 60.0,
        retention_interval_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        database: Dependency | None = None,
        kafka: Dependency | None = None,
    ) -> None:
        self.settings = settings
        self.stream = stream
        self.pool = pool
        # Shared with the process's other components: one outage, one pair of log lines.
        self.database = database or Dependency("PostgreSQL", log)
        self.kafka = kafka or Dependency("Kafka", log)
        self._retry = retry or RetryPolicy()
        self.topic = topic
        self.group_id = group_id
        self.client_id = client_id
        self.segment_refresh_s = segment_refresh_s
        self.retention_interval_s = retention_interval_s
        self.totals = WriteCounts()
        self.batches = 0
        self._clock = clock
        self._writer: BatchWriter | None = None
        self._segments_fingerprint: str | None = None
        self._segments_checked = self._retention_applied = -math.inf
        self._batch_lock = asyncio.Lock()
        self._progress = asyncio.Condition()

    @property
    def mode(self) -> str | None:
        """The storage mode, once :meth:`start` has run."""
        return self._writer.mode if self._writer is not None else None

    async def start(self) -> None:
        """Apply the schema (idempotent), set retention, load the road network."""
        wanted = None if self.settings.timescaledb == "auto" else False
        async with self.pool.acquire() as conn:
            mode = await apply_schema(conn, timescaledb=wanted)
            await telemetry_schema.ensure_retention_policy(conn, self.settings.retention_days)
            self._writer = BatchWriter(mode, retention_days=self.settings.retention_days)
            await self._maintain(conn)
        log.info(
            "store writer: %s storage, %d road segments, retention %d days",
            mode,
            len(self._writer.segments or ()),
            self.settings.retention_days,
        )

    async def write_batch(
        self, conn: asyncpg.Connection, records: Sequence[StreamRecord]
    ) -> WriteCounts:
        """Store one batch (no stream needed): :meth:`BatchWriter.write_batch`."""
        if self._writer is None:
            self._writer = await BatchWriter.open(conn, retention_days=self.settings.retention_days)
        return await self._writer.write_batch(conn, records)

    async def run(self, stop: asyncio.Event) -> None:
        """Store until ``stop`` is set; the batch under way is finished and committed first.

        Outages of PostgreSQL (lost connection, deadlock, shutdown) and Kafka are waited out
        with backoff, offsets uncommitted, one log line each way; any other error ends the run
        (the supervisor restarts the writer, which resumes at the last commit).
        """
        if self._writer is None and not await self._retry.run(self.start, self.database, stop):
            return
        consumer = self.stream.consumer(
            [self.topic], group_id=self.group_id, client_id=self.client_id, listener=self
        )
        if not await self._retry.run(consumer.start, self.kafka, stop):
            return
        try:
            while not stop.is_set():
                fetch = functools.partial(
                    consumer.getmany, timeout_ms=_POLL_MS, max_records=self.settings.batch_size
                )
                records = await self._retry.call(fetch, self.kafka, stop)
                if records is None:  # stopped while Kafka was away
                    break
                if records:
                    async with self._batch_lock:
                        counts = await self._write_retrying(records, stop)
                        if counts is None:  # stopped while the database was away
                            break
                        await self._commit(consumer, records)
                    await self._count(counts)
                if self._clock() - self._segments_checked >= self.segment_refresh_s or (
                    self._clock() - self._retention_applied >= self.retention_interval_s
                ):
                    try:
                        async with self.pool.acquire() as conn:
                            await self._maintain(conn)
                    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                        if not is_transient(exc):
                            log.warning("store writer: maintenance failed, retried later: %s", exc)
                            continue
                        self.database.down(exc, "maintenance")  # one line per outage
                        await self._retry.pause(self.database, stop)
                    except asyncpg.InterfaceError as exc:
                        if not is_transient(exc):
                            raise  # misuse of asyncpg: a bug
                        self.database.down(exc, "maintenance")
                        await self._retry.pause(self.database, stop)
                    else:
                        self.database.up("maintenance")
        finally:
            await consumer.stop()
            seconds = self._writer.seconds if self._writer else {}
            log.info(
                "store writer stopped: %s; seconds %s",
                self.totals,
                " ".join(f"{stage}={value:.1f}" for stage, value in seconds.items()),
            )

    async def wait_for(self, predicate: Callable[[WriteCounts], bool]) -> WriteCounts:
        """Wait until ``predicate(totals)`` holds (checked after each committed batch).

        Bound the wait with ``asyncio.timeout``.
        """
        async with self._progress:
            await self._progress.wait_for(lambda: predicate(self.totals))
            return self.totals

    async def _count(self, counts: WriteCounts) -> None:
        async with self._progress:
            self.totals += counts
            self.batches += 1
            self._progress.notify_all()

    async def _commit(self, consumer: Consumer, records: Sequence[StreamRecord]) -> None:
        try:
            # A paused broker holds a commit until its request timeout: patiently() says so.
            await patiently(consumer.commit(next_offsets(records)), self.kafka, "commit")
        except StreamError as exc:
            # The rows are stored; whoever reads these records again inserts nothing.
            if is_rebalance(exc):
                log.info("store writer: offsets not committed, the group rebalanced: read again")
            else:
                self.kafka.down(exc, "commit")

    async def _write_retrying(
        self, records: Sequence[StreamRecord], stop: asyncio.Event
    ) -> WriteCounts | None:
        writer = self._writer
        assert writer is not None

        async def write() -> WriteCounts:
            async with self.pool.acquire() as conn:
                return await writer.write_batch(conn, records)

        return await self._retry.call(write, self.database, stop)

    async def _maintain(self, conn: asyncpg.Connection) -> None:
        """Reload the road network if it changed; apply retention when due."""
        assert self._writer is not None
        now = self._clock()
        if now - self._segments_checked >= self.segment_refresh_s:
            self._segments_checked = now
            fingerprint = await conn.fetchval(_SEGMENTS_FINGERPRINT)
            if fingerprint != self._segments_fingerprint:
                self._writer.segments = SegmentIndex(await load_segments(conn))
                self._segments_fingerprint = fingerprint
                log.info(
                    "store writer: road network loaded, %d segments", len(self._writer.segments)
                )
        if (
            self._writer.mode == MODE_PARTITIONED
            and now - self._retention_applied >= self.retention_interval_s
        ):
            self._retention_applied = now
            dropped = await telemetry_schema.apply_retention(conn, self.settings.retention_days)
            if dropped:
                log.info("store writer: retention dropped %s", ", ".join(dropped))

    # --- PartitionsListener -------------------------------------------------------------------

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Wait for the batch under way: it is stored and committed before the handover."""
        async with self._batch_lock:
            pass

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Nothing to prepare: the tables and the committed offsets are the whole state."""
