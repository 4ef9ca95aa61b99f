"""One batch of ``telemetry.verified`` records into the telemetry tables, idempotent.

:class:`BatchWriter` needs no stream: the store writer's loop (:mod:`ingest.store_writer`)
hands it each batch, and tests and ``bench/store.py`` drive it directly.

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

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Final

import asyncpg

from contracts.map_matching import SegmentIndex
from contracts.roads import load_segments
from ingest.telemetry_rows import (
    MS_PER_DAY,
    OBSERVATION_COLUMNS,
    TELEMETRY_COLUMNS,
    decode_records,
)
from roadledger.db import telemetry_schema
from roadledger.db.telemetry_partitions import ensure_day_partitions
from roadledger.db.telemetry_schema import MODE_PARTITIONED, MODE_TIMESCALEDB
from roadledger.db.telemetry_tables import BUCKET, BUCKET_ORIGIN, DEFAULT_RETENTION_DAYS
from roadledger.metrics import Sample, counters
from roadledger.stream import StreamRecord

__all__ = ["BatchWriter", "WriteCounts"]

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

    def samples(self) -> list[Sample]:
        """Prometheus samples of these counts (``roadledger_store_<field>_total``)."""
        return counters("roadledger_store", {f.name: getattr(self, f.name) for f in fields(self)})

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
            created = await ensure_day_partitions(
                conn, (_EPOCH + timedelta(days=day) for day in wanted)
            )
        except asyncpg.PostgresError as exc:
            # Never fatal: the rows go to the DEFAULT partition and the next batch retries.
            log.warning("could not create day partitions %s: %s", sorted(wanted), exc)
            return
        if created:
            log.info("created %d day partitions for %s", created, sorted(wanted))
        self._known_days |= wanted
