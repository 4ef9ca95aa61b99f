"""Migration 10: the wake-up of the warnings feed, and the indexes of the warnings reads.

- ``warnings_notify``: every statement that inserts into ``warnings`` (whoever runs it: the
  trigger cannot be bypassed the way a call in one store function could) sends, at commit,
  one notification on :data:`WARNINGS_CHANNEL` whose payload is ``<schema> <micros>``: the
  table's schema (scratch schemas share a database and so the channel) and the newest
  ``stored_at`` of the rows inserted, in microseconds since the epoch. A statement that
  inserted nothing (``ON CONFLICT DO NOTHING``) sends none. It is a wake-up only: the feed
  reads the rows from the table (``api/routes/warning_feed.py``, ``roadledger/db/listener.py``).
- Indexes (each seen used by ``EXPLAIN`` on 100,000 rows: ``tests/integration/
  test_warnings_indexes.py``): the feed's order and cursor (``stored_at``, ``warning_id``);
  the list's order and cursor (``from_ts``, ``warning_id``, newest first); the list's span
  filter, an overlap of ranges (GiST on ``[from_ts, to_ts]``: a B-tree bounds only one end,
  and a narrow window of sparse visible rows was a walk to the table's start); the warm-up's
  ``to_ts >= since`` (``to_ts``); a segment's warnings (``segment_id``, ``from_ts``).
  ``warnings_device`` and ``warnings_type_time`` (baseline) serve the device and type filters.
  And ``devices (owner_org)``: every visibility test lists the caller's organisation's devices.
"""

from __future__ import annotations

from typing import Final

__all__ = ["WARNINGS_CHANNEL", "WARNINGS_FEED_DDL"]

WARNINGS_CHANNEL: Final = "roadledger_warnings"

WARNINGS_FEED_DDL: Final = (
    "CREATE INDEX IF NOT EXISTS warnings_stored ON warnings (stored_at, warning_id)",
    "CREATE INDEX IF NOT EXISTS warnings_start ON warnings (from_ts, warning_id)",
    "CREATE INDEX IF NOT EXISTS warnings_end ON warnings (to_ts)",
    "CREATE INDEX IF NOT EXISTS warnings_span ON warnings USING gist "
    "(tstzrange(from_ts, to_ts, '[]'))",
    "CREATE INDEX IF NOT EXISTS warnings_segment ON warnings (segment_id, from_ts) "
    "WHERE segment_id IS NOT NULL",
    # Every visibility test reads the caller's organisation's devices.
    "CREATE INDEX IF NOT EXISTS devices_owner ON devices (owner_org)",
    f"""
    CREATE OR REPLACE FUNCTION warnings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        newest timestamptz;
    BEGIN
        SELECT max(stored_at) INTO newest FROM inserted;
        IF newest IS NOT NULL THEN
            PERFORM pg_notify('{WARNINGS_CHANNEL}', TG_TABLE_SCHEMA || ' '
                              || floor(extract(epoch FROM newest) * 1000000)::bigint);
        END IF;
        RETURN NULL;
    END
    $$
    """,  # noqa: S608 - a constant
    # No CREATE OR REPLACE TRIGGER before PostgreSQL 14; a migration may run twice.
    "DROP TRIGGER IF EXISTS warnings_notify ON warnings",
    "CREATE TRIGGER warnings_notify AFTER INSERT ON warnings REFERENCING NEW TABLE AS inserted "
    "FOR EACH STATEMENT EXECUTE FUNCTION warnings_notify()",
)
