"""Does the ledger hold everything that was stored? The queries of ``roadledger ledger check``.

Every verified message the store writer kept (a ``telemetry`` row, an RSU report's
``rsu_observations`` rows) must be a leaf of some log: the rows carry the leaf hash of their
verbatim JWS, so a stored row whose hash is in no log is a message the ledger lost. Each log
must also agree with itself: as many entries as its tree size, leaf indices without holes, no
leaf twice, and the root recomputed from its stored nodes equal to its latest checkpoint's.

Rows received in the last moments are still on their way to the sequencer; ``settled_before``
leaves them out (a check of a quiet pipeline passes ``None``: every row counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from chain.checkpoint import SignedCheckpoint
from chain.errors import StorageError
from roadledger.db.ledger_store import PostgresLedgerStore

__all__ = ["LedgerReport", "LogReport", "MissingRow", "check_ledger"]

# Stored rows whose leaf hash is in no log. ``$1`` bounds recv_ts (NULL: no bound).
_MISSING_TELEMETRY = """
    SELECT t.device_id, t.seq, t.ts
    FROM telemetry t
    WHERE ($1::timestamptz IS NULL OR t.recv_ts < $1)
      AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.leaf_hash = t.leaf_hash)
    ORDER BY t.device_id, t.seq
"""
_MISSING_RSU_REPORTS = """
    SELECT DISTINCT r.rsu_id, r.seq, r.ts
    FROM rsu_observations r
    WHERE ($1::timestamptz IS NULL OR r.ts < $1)  -- no receive time: device time
      AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.leaf_hash = r.leaf_hash)
    ORDER BY r.rsu_id, r.seq
"""
_STORED = """
    SELECT (SELECT count(*) FROM telemetry),
           (SELECT count(DISTINCT (rsu_id, seq)) FROM rsu_observations)
"""
# The audit log (roadledger/audit/log.py) appends before it signs: its entries beyond its
# latest checkpoint are the next checkpoint's, not a fault. Every other log writes its entries
# and their checkpoint in one transaction.
_LOGS = """
    SELECT l.log_id, l.origin, l.tree_size, l.checkpoint,
           count(e.leaf_index) AS entries,
           coalesce(max(e.leaf_index) + 1, 0) AS index_end,
           count(DISTINCT e.leaf_hash) AS distinct_leaves
    FROM ledger_logs l LEFT JOIN ledger_entries e ON e.log_id = l.log_id
     AND (e.leaf_index < l.tree_size OR l.log_id IS DISTINCT FROM (SELECT log_id FROM audit_head))
    GROUP BY l.log_id ORDER BY l.origin
"""


@dataclass(frozen=True)
class MissingRow:
    """A stored message with no leaf: which device, which seq, its device time."""

    device_id: str
    seq: int
    ts: datetime


@dataclass(frozen=True)
class LogReport:
    """One log's self-consistency."""

    origin: str
    tree_size: int
    entries: int
    index_end: int
    distinct_leaves: int
    checkpoint_root_ok: bool | None  # None: the log has no checkpoint yet

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        if self.entries != self.tree_size:
            found.append(f"{self.entries} entries for tree size {self.tree_size}")
        if self.index_end != self.entries:
            found.append(f"leaf indices run to {self.index_end - 1} over {self.entries} entries")
        if self.distinct_leaves != self.entries:
            found.append(f"{self.entries - self.distinct_leaves} leaves appear twice")
        if self.checkpoint_root_ok is False:
            found.append("the root of the stored tree is not the latest checkpoint's")
        return found


@dataclass(frozen=True)
class LedgerReport:
    """The result of :func:`check_ledger`; ``ok`` when nothing is missing or inconsistent."""

    telemetry_rows: int
    rsu_reports: int
    missing: list[MissingRow] = field(default_factory=list)
    logs: list[LogReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not any(report.problems for report in self.logs)


async def check_ledger(
    pool: asyncpg.Pool, *, settled_before: datetime | None = None
) -> LedgerReport:
    """Compare the stored telemetry with the logs, and each log with itself."""
    store = PostgresLedgerStore(pool)
    async with pool.acquire() as conn:
        telemetry_rows, rsu_reports = await conn.fetchrow(_STORED)
        missing = [
            MissingRow(row[0], row[1], row[2])
            for query in (_MISSING_TELEMETRY, _MISSING_RSU_REPORTS)
            for row in await conn.fetch(query, settled_before)
        ]
        log_rows = await conn.fetch(_LOGS)
    logs = []
    for row in log_rows:
        root_ok: bool | None = None
        if row["checkpoint"] is not None:
            checkpoint = SignedCheckpoint.from_text(row["checkpoint"]).checkpoint
            try:
                root = await store.root_at(row["origin"], checkpoint.size)
            except StorageError:  # a node under the checkpoint's tree is gone
                root = None
            root_ok = root == checkpoint.root_hash
        logs.append(
            LogReport(
                origin=row["origin"],
                tree_size=row["tree_size"],
                entries=row["entries"],
                index_end=row["index_end"],
                distinct_leaves=row["distinct_leaves"],
                checkpoint_root_ok=root_ok,
            )
        )
    return LedgerReport(telemetry_rows, rsu_reports, missing, logs)
