"""Telemetry tables, in TimescaleDB or plain-PostgreSQL form (the store writer's schema).

Placeholder until the store writer lands: no telemetry tables yet.
"""

from __future__ import annotations

import asyncpg

__all__ = ["apply"]


async def apply(conn: asyncpg.Connection, *, timescaledb: bool | None) -> str:
    """Create the telemetry tables; return the storage mode in use."""
    del conn, timescaledb
    return "none"
