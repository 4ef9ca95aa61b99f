"""Connection pools: the one place that opens asyncpg pools for the components.

Rule for every user of these pools: a connection carries no session state between uses (no
``SET``, ``LISTEN``, session advisory locks or temporary tables that outlive a transaction;
use ``SET LOCAL``, transaction advisory locks and ``ON COMMIT DROP``). That is what lets the
pool skip asyncpg's reset query on release, a full round trip on every proof served.
"""

from __future__ import annotations

import asyncio

import asyncpg

from roadledger.resilience import Dependency, RetryPolicy
from roadledger.settings import Settings

__all__ = ["create_pool", "wait_for_pool"]


async def _keep(connection: asyncpg.Connection) -> None:
    """Release without a reset query: sessions hold no state (see the module docstring)."""
    del connection


async def create_pool(
    settings: Settings,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """A pool on ``settings.database_url``."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=min_size,
        max_size=max_size,
        server_settings=server_settings,
        reset=_keep,
    )
    assert pool is not None  # asyncpg's stub says Optional; it is never None when awaited
    return pool


async def wait_for_pool(
    settings: Settings,
    stop: asyncio.Event,
    database: Dependency,
    *,
    max_size: int = 10,
    retry: RetryPolicy | None = None,
) -> asyncpg.Pool | None:
    """:func:`create_pool` for a long-running process: an unreachable server is waited for
    (backoff, one log line through ``database``); None if ``stop`` came first. Errors that
    waiting cannot mend (a wrong password, a missing database) are raised at once."""

    async def connect() -> asyncpg.Pool:
        return await create_pool(settings, max_size=max_size)

    return await (retry or RetryPolicy()).call(connect, database, stop)
