"""The tables of the ledger API (migration 9): witnesses' keys and the cosignatures they sent,
and vehicles' off-ledger documents.

- ``witness_keys``: the cosignature/v1 verifier keys (C2SP vkey, type ``0x04``) a witness
  organisation registered. A key name is one witness; one public key never serves two names
  (the v1 signed message does not commit to the name).
- ``ledger_cosignatures``: per log checkpoint (``log_id``, ``tree_size``), the latest verified
  cosignature line of each witness; served with the checkpoint note.
- ``vehicle_documents``: a document's SHA-256 registered for a vehicle by its owner, with the
  ledger entry (``chain.documents``) also written to ``ledger_outbox`` in the same transaction.
  The description stays off the ledger.
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
    """
    CREATE TABLE IF NOT EXISTS vehicle_documents (
        document_id   text PRIMARY KEY,
        device_id     text NOT NULL REFERENCES devices (device_id),
        org_id        text NOT NULL REFERENCES organisations (org_id),
        sha256        bytea NOT NULL CHECK (length(sha256) = 32),
        kind          text NOT NULL,
        description   text,
        entry         bytea NOT NULL,
        created_by    text NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE (device_id, kind, sha256)
    )
    """,
)
