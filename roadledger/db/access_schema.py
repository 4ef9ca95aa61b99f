"""The tables of identity and access (migration 7): who logs in, with what, and what was granted.

- ``organisations``: kinds are ``contracts.access.OrgKind`` (the legacy ``fleet`` and
  ``traffic_authority`` become ``fleet_owner`` and ``authority``; new rows are checked); it
  gains ``parent_id`` (a district unit's parent authority) and ``jurisdiction`` (an
  authority's area: a polygon of ``[lat_e7, lon_e7]`` vertices, JSON).
- ``members``: people who log in for an organisation, with their roles and an argon2id
  password hash (never the password).
- ``api_sessions``: one row per login; the SHA-256 of its short-lived access token and of its
  refresh token (the tokens themselves are shown once and never stored).
- ``api_refresh_used``: refresh tokens already rotated away; one presented again revokes
  its session (it was copied).
- ``api_keys``: machine credentials of an organisation; the SHA-256 of the secret, its roles,
  scopes and expiry.
- ``login_failures``: failed logins, for the rate limit (pruned as they age out).
- ``access_grants``: an owner organisation opens scopes on some of its devices to another
  organisation, for a period and a purpose, until revoked.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ACCESS_DDL"]

ACCESS_DDL: Final = (
    "ALTER TABLE organisations ADD COLUMN IF NOT EXISTS parent_id text "
    "REFERENCES organisations (org_id)",
    "ALTER TABLE organisations ADD COLUMN IF NOT EXISTS jurisdiction jsonb",
    # Before kinds were fixed, `roadledger devices register` defaulted to 'fleet' and the
    # simulator registered its authority as 'traffic_authority'.
    "UPDATE organisations SET kind = 'fleet_owner' WHERE kind = 'fleet'",
    "UPDATE organisations SET kind = 'authority' WHERE kind = 'traffic_authority'",
    # Dropped first so that running the migration again (a database whose record of it was
    # lost) does not fail on a constraint it already made.
    "ALTER TABLE organisations DROP CONSTRAINT IF EXISTS organisations_kind",
    "ALTER TABLE organisations ADD CONSTRAINT organisations_kind CHECK (kind IN "
    "('authority', 'insurer', 'fleet_owner', 'workshop', 'witness', 'operator')) NOT VALID",
    """
    CREATE TABLE IF NOT EXISTS members (
        member_id      text PRIMARY KEY,
        org_id         text NOT NULL REFERENCES organisations (org_id),
        username       text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{3,64}$'),
        password_hash  text NOT NULL,
        roles          text[] NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        disabled_at    timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS api_sessions (
        session_id          text PRIMARY KEY,
        member_id           text NOT NULL REFERENCES members (member_id),
        access_hash         bytea NOT NULL UNIQUE CHECK (length(access_hash) = 32),
        access_expires_at   timestamptz NOT NULL,
        refresh_hash        bytea NOT NULL UNIQUE CHECK (length(refresh_hash) = 32),
        refresh_expires_at  timestamptz NOT NULL,
        created_at          timestamptz NOT NULL DEFAULT now(),
        revoked_at          timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS api_refresh_used (
        refresh_hash  bytea PRIMARY KEY CHECK (length(refresh_hash) = 32),
        session_id    text NOT NULL REFERENCES api_sessions (session_id),
        used_at       timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id        text PRIMARY KEY,
        org_id        text NOT NULL REFERENCES organisations (org_id),
        created_by    text NOT NULL REFERENCES members (member_id),
        label         text NOT NULL,
        secret_hash   bytea NOT NULL CHECK (length(secret_hash) = 32),
        roles         text[] NOT NULL,
        scopes        text[] NOT NULL,
        expires_at    timestamptz NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        revoked_at    timestamptz,
        last_used_at  timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS login_failures (
        username   text NOT NULL,
        client     text NOT NULL,
        failed_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS login_failures_username ON login_failures (username, failed_at)",
    "CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures (client, failed_at)",
    """
    CREATE TABLE IF NOT EXISTS access_grants (
        grant_id     text PRIMARY KEY,
        owner_org    text NOT NULL REFERENCES organisations (org_id),
        grantee_org  text NOT NULL REFERENCES organisations (org_id),
        scopes       text[] NOT NULL CHECK (cardinality(scopes) > 0),
        device_ids   text[] NOT NULL CHECK (cardinality(device_ids) > 0),
        valid_from   timestamptz NOT NULL,
        valid_until  timestamptz NOT NULL CHECK (valid_until > valid_from),
        purpose      text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 500),
        created_by   text NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        revoked_at   timestamptz,
        revoked_by   text
    )
    """,
    "CREATE INDEX IF NOT EXISTS access_grants_devices ON access_grants USING gin (device_ids)",
    "CREATE INDEX IF NOT EXISTS access_grants_grantee ON access_grants (grantee_org)",
)
