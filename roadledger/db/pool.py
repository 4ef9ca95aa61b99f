"""Connection pools: the one place that opens asyncpg pools for the components.

Rule for every user of these pools: a connection carries no session state between uses (no
``SET``, ``LISTEN``, session advisory locks or temporary tables that outlive a transaction;
use ``SET LOCAL``, transaction advisory locks and ``ON COMMIT DROP``). That is what lets the
pool skip asyncpg's reset query on release, a full round trip on every proof served.
"""

from __future__ import annotations

import asyncio

import asyncpg

from contracts.errors import Unavailable
from roadledger.resilience import Dependency, RetryPolicy, is_transient
from roadledger.settings import Settings

__all__ = ["DatabaseUnavailable", "create_pool", "open_database", "wait_for_pool"]


class DatabaseUnavailable(Unavailable):
    """PostgreSQL cannot be reached, or refuses this client (wrong password, no such
    database); the message says where (never the password) and why, on one line."""


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


def _refused(settings: Settings, exc: BaseException) -> DatabaseUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseUnavailable(
        f"cannot connect to PostgreSQL at {settings.redacted_database_url()}: {reason}"
    )


async def open_database(
    settings: Settings,
    *,
    max_size: int = 2,
    server_settings: dict[str, str] | None = None,
) -> asyncpg.Pool:
    """:func:`create_pool` for a command that runs once: a server that is down or refuses
    us is :class:`DatabaseUnavailable` at once (the command line prints its one line)."""
    try:
        return await create_pool(settings, max_size=max_size, server_settings=server_settings)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _refused(settings, exc) from exc


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
    waiting cannot mend (a wrong password, a missing database) are raised at once as
    :class:`DatabaseUnavailable`."""

    async def connect() -> asyncpg.Pool:
        try:
            return await create_pool(settings, max_size=max_size)
        except asyncpg.PostgresError as exc:
            if is_transient(exc):
                raise  # waited out
            raise _refused(settings, exc) from exc

    return await (retry or RetryPolicy()).call(connect, database, stop)
