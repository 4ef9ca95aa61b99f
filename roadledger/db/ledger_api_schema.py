"""The tables of the ledger API (migration 10): witnesses' keys and the cosignatures they sent.

- ``witness_keys``: the cosignature/v1 verifier keys (C2SP vkey, type ``0x04``) a witness
  organisation registered. A key name is one witness; one public key never serves two names
  (the v1 signed message does not commit to the name).
- ``ledger_cosignatures``: per log checkpoint (``log_id``, ``tree_size``), the latest verified
  cosignature line of each witness; served with the checkpoint note.
"""

from __future__ import annotations

from typing import Final

__all__ = ["LEDGER_API_DDL"]

LEDGER_API_DDL: Final = (
    """
    CREATE TABLE IF NOT EXISTS witness_keys (
        name        text PRIMARY KEY,
        org_id      text NOT NULL REFERENCES organisations (org_id),
        key_id      bigint NOT NULL,
        public_key  bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
        vkey        text NOT NULL,
        created_by  text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        revoked_at  timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_cosignatures (
        log_id        integer NOT NULL REFERENCES ledger_logs (log_id),
        tree_size     bigint NOT NULL,
        witness_name  text NOT NULL REFERENCES witness_keys (name),
        cosigned_at   bigint NOT NULL,
        line          text NOT NULL,
        received_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (log_id, tree_size, witness_name)
    )
    """,
)
