"""Migration 12: every change to what a principal is made of notifies the API processes.

The triggers notify :data:`CREDENTIALS_CHANNEL` after a statement that UPDATEs or DELETEs
rows of ``api_keys``, ``api_sessions``, ``members`` or ``organisations``, which is what
:mod:`roadledger.identity.principal_cache` listens for to forget the principals it holds.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CREDENTIALS_CHANNEL", "CREDENTIALS_TRIGGER_DDL"]

CREDENTIALS_CHANNEL: Final = "roadledger_credentials"

# Migration 12. api_keys' last_used_at (written once a minute per key in use) is left out:
# it changes no principal, and would empty every cache each minute.
_WATCHED: Final = (
    ("api_keys", "UPDATE OF secret_hash, org_id, roles, scopes, expires_at, revoked_at OR DELETE"),
    ("api_sessions", "UPDATE OR DELETE"),
    ("members", "UPDATE OR DELETE"),
    ("organisations", "UPDATE OR DELETE"),
)
CREDENTIALS_TRIGGER_DDL: Final = (
    f"""
    CREATE OR REPLACE FUNCTION roadledger_credentials_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('{CREDENTIALS_CHANNEL}', TG_TABLE_NAME);
        RETURN NULL;
    END $$
    """,
    *(
        statement
        for table, events in _WATCHED
        for statement in (
            f"DROP TRIGGER IF EXISTS {table}_credentials_changed ON {table}",
            f"CREATE TRIGGER {table}_credentials_changed AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION roadledger_credentials_changed()",
        )
    ),
)
