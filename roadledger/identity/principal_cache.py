"""Who a credential is, remembered briefly: authentication without a query per request.

A credential's principal (its organisation, kind, roles, scopes) changes only when a row of
``api_keys``, ``api_sessions``, ``members`` or ``organisations`` does. Migration 12 makes every
such change (an UPDATE of what a principal is made of, or a DELETE) notify
:data:`CREDENTIALS_CHANNEL`; :func:`watch_credentials` listens on one connection and empties
the cache on each notification. The cache answers only while that connection is up (and is
emptied when it comes back): a change it could not hear of is never served from memory.

What remains is the notification's delay, between a revocation's commit and its arrival at
another process (milliseconds). Within one process there is none: :meth:`PrincipalCache.clear`
is called when a request that changes state answers (``api/``), and a lookup that began
before a clear is not remembered (the generation check), so a revocation through this
process is in force for the very next request. Entries also expire after ``ttl_s`` and never
outlive the credential's own expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg

from roadledger.db.credentials_schema import CREDENTIALS_CHANNEL
from roadledger.identity.credentials import secret_hash
from roadledger.identity.principal import Principal

__all__ = ["PrincipalCache", "watch_credentials"]

log = logging.getLogger(__name__)


class PrincipalCache:
    """Principals by credential digest, at most ``max_entries``, each for at most ``ttl_s``."""

    def __init__(self, ttl_s: float = 60.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.watching = False  # set by watch_credentials while its connection listens
        self.listener_pid: int | None = None  # that connection's server process
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._generation = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every principal; lookups begun before this are not remembered."""
        self._entries.clear()
        self._generation += 1

    async def principal(
        self, credential: str, lookup: Callable[[], Awaitable[Principal]]
    ) -> Principal:
        """The principal of ``credential``: remembered, or ``lookup()`` (which raises for a
        bad credential; nothing is remembered then)."""
        if not self.watching:
            return await lookup()
        digest = secret_hash(credential)
        now = time.monotonic()
        held = self._entries.get(digest)
        if held is not None:
            until, found = held
            if now < until:
                self.hits += 1
                return found
            del self._entries[digest]
        generation = self._generation
        found = await lookup()
        if self._unchanged_since(generation):
            self._remember(digest, found, now)
        return found

    def _unchanged_since(self, generation: int) -> bool:
        # Not the same test as at the start: the lookup awaited, and a clear (or the
        # listener's loss) may have happened meanwhile.
        return self.watching and generation == self._generation

    def _remember(self, digest: bytes, principal: Principal, now: float) -> None:
        until = now + self.ttl_s
        if principal.expires_at is not None:
            left = (principal.expires_at - datetime.now(UTC)).total_seconds()
            until = min(until, now + left)
        self._entries[digest] = (until, principal)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


async def watch_credentials(
    pool: asyncpg.Pool, cache: PrincipalCache, stopping: asyncio.Event, check_s: float = 5.0
) -> None:
    """Keep ``cache`` told of credential changes until ``stopping`` is set: LISTEN on one
    connection of ``pool``, checked every ``check_s``; while it is down the cache is off,
    and it is emptied when the connection comes back. One log line per outage."""

    def heard(*_: object) -> None:
        cache.clear()

    backoff = 0.5
    while not stopping.is_set():
        try:
            async with pool.acquire() as conn:
                await conn.add_listener(CREDENTIALS_CHANNEL, heard)
                try:
                    cache.clear()
                    cache.listener_pid = conn.get_server_pid()
                    cache.watching = True
                    if backoff > 0.5:
                        log.info("credential changes heard again: the principal cache is on")
                    backoff = 0.5
                    while not stopping.is_set():
                        try:
                            await asyncio.wait_for(stopping.wait(), check_s)
                        except TimeoutError:
                            await conn.execute("SELECT 1", timeout=check_s)
                finally:
                    cache.watching = False
                    cache.clear()
                    if not conn.is_closed():
                        await conn.remove_listener(CREDENTIALS_CHANNEL, heard)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            cache.watching = False
            cache.clear()
            if backoff == 0.5:
                log.warning(
                    "credential changes not heard (%s): every request asks the database until "
                    "the listener is back",
                    type(exc).__name__,
                )
            try:
                await asyncio.wait_for(stopping.wait(), backoff)
            except TimeoutError:
                backoff = min(backoff * 2, 10.0)
