"""One PostgreSQL ``LISTEN`` connection per process, fanned out to every task that waits on it.

A table's trigger sends ``<schema> <micros>`` on a channel at commit (migration 10:
``roadledger/db/warnings_feed_schema.py``). :class:`TableWakeups` holds the one connection
that listens, keeps the notifications of its pool's schema and wakes every waiter at once
(:meth:`TableWakeups.next_change`); each waiter then reads the table itself, by its own cursor.
A notification is only a wake-up: one that is missed (the connection was down) costs a waiter
its latency, never a row, as long as it also polls now and then.

The connection is not pooled (``LISTEN`` is session state, which pooled connections never
keep: ``roadledger/db/pool.py``). When it is lost (a PostgreSQL restart, a terminated backend)
or stops answering, it is opened again with backoff; the outage is logged once when it starts
and once when it ends (``roadledger.resilience.Dependency``), and every waiter is woken after
it, since what was committed meanwhile was never announced. :attr:`TableWakeups.live` says
whether notifications arrive now (a waiter polls faster when they do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import asyncpg

from roadledger.resilience import Dependency, RetryPolicy, is_transient
from roadledger.settings import Settings

__all__ = ["TableWakeups"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCHEMA_OF = (
    "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = to_regclass($1)"
)


class ListenerLost(ConnectionError):
    """The listening connection was closed or stopped answering."""


class TableWakeups:
    """Notifications of ``table`` on ``channel``, for the schema ``pool`` reads it from."""

    def __init__(
        self,
        settings: Settings,
        channel: str,
        table: str,
        logger: logging.Logger,
        *,
        check_s: float = 15.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._channel = channel
        self._table = table
        self._check_s = check_s
        self._retry = retry or RetryPolicy()
        self._log = logger
        self.database = Dependency(f"PostgreSQL ({channel} listener)", logger)
        self._schema: str | None = None
        self._changed = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self.newest: datetime | None = None
        self.notifications = 0

    @property
    def live(self) -> bool:
        """Whether the connection listens now (notifications arrive)."""
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The listening connection's server process (None when it is down)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    def next_change(self) -> asyncio.Event:
        """The event set at the next notification (or reconnection, or stop). Take it
        *before* reading the table: what commits during the read then wakes the next wait."""
        return self._changed

    def behind(self, horizon: datetime) -> bool:
        """Whether a row was announced at or after ``horizon``: a reader that read up to it
        has not read that row yet (an open transaction holds its horizon back)."""
        return self.newest is not None and self.newest >= horizon

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _notified(
        self, _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, _pid: int,
        _channel: str, payload: object,
    ) -> None:  # fmt: skip
        schema, _, micros = str(payload).partition(" ")
        if schema != self._schema:
            return  # another schema's table, on the same channel
        with contextlib.suppress(ValueError):
            stored = _EPOCH + timedelta(microseconds=int(micros))
            self.newest = stored if self.newest is None else max(self.newest, stored)
        self.notifications += 1
        self._wake()

    async def run(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        """Listen until ``stop`` is set, reconnecting through outages; wakes every waiter
        when it returns. A failure that is no outage is logged (waiters keep polling)."""
        try:
            await self._listen(pool, stop)
        except Exception:
            self._log.exception("%s listener failed; feeds fall back to polling", self._channel)
        finally:
            await self._close()
            self._wake()

    async def _listen(self, pool: asyncpg.Pool, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                lost = await self._connect(pool)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                self.database.down(exc, self)
                if await self._retry.pause(self.database, stop):
                    self.database.forget(self)
                    return
                continue
            self.database.up(self)
            self._wake()  # what committed while nobody listened was never announced
            failure = await self._watch(lost, stop)
            await self._close()
            if failure is not None:
                self.database.down(failure, self)
                self._wake()

    async def _connect(self, pool: asyncpg.Pool) -> asyncio.Event:
        self._schema = await pool.fetchval(_SCHEMA_OF, self._table)
        # Named, so an operator (and a test) tells it from the pool's connections.
        name = f"roadledger {self._table} listener {self._schema}"[:63]
        conn = await asyncpg.connect(
            self._settings.database_url, server_settings={"application_name": name}
        )
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            await conn.close(timeout=1)
            raise
        self._conn = conn
        return lost

    async def _watch(self, lost: asyncio.Event, stop: asyncio.Event) -> Exception | None:
        """Until the connection is lost (the reason) or ``stop`` (None)."""
        waits = [asyncio.ensure_future(lost.wait()), asyncio.ensure_future(stop.wait())]
        try:
            while True:
                await asyncio.wait(waits, timeout=self._check_s, return_when="FIRST_COMPLETED")
                if stop.is_set():
                    return None
                if lost.is_set() or self._conn is None:
                    return ListenerLost("the listening connection was closed")
                try:  # a connection that died without a word (no FIN) answers nothing
                    await asyncio.wait_for(self._conn.execute("SELECT 1"), self._check_s)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    return exc
        finally:
            for wait in waits:
                wait.cancel()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except Exception:  # already broken: drop it
                conn.terminate()
