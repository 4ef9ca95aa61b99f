"""Waiting out outages: backoff with jitter, one log line per outage, health per dependency.

Every long-running process (bridge, ingest, sequencer, analytics, forecast) depends on
PostgreSQL, Kafka or MQTT, and each of them can go away for seconds or minutes. The rule:

- An operation on a dependency that fails *transiently* (:func:`is_transient`: a refused or
  reset connection, a server shutting down, a retriable broker error) is retried with bounded
  exponential backoff and full jitter (:class:`RetryPolicy`) until it succeeds or the process
  is asked to stop. Any other exception is a bug and propagates.
- The outage is logged once when it starts and once when it ends, with its length
  (:class:`Dependency`), never once per retry; ``Dependency.healthy`` is what health reports.
- A paused server refuses nothing; :func:`patiently` reports a call it has not answered for
  a few seconds as the outage. A commit refused because the consumer group rebalanced
  (:func:`is_rebalance`) is no outage: the records are read again.
- Client libraries' own per-retry lines are folded (:func:`quiet_client_retries`).
- Every wait returns as soon as the stop event is set, so SIGTERM is honoured mid-outage;
  :func:`serve_until_stopped` bounds what is still stuck on a paused server after a stop.

Callers retry only steps that are safe to repeat (idempotent writes, reads, reconnects).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg

from roadledger.stream.errors import StreamError

__all__ = [
    "Dependency",
    "RepeatFilter",
    "RetryPolicy",
    "is_rebalance",
    "is_transient",
    "patiently",
    "quiet_client_retries",
    "serve_until_stopped",
    "wait_or_stop",
]

T = TypeVar("T")

# SQLSTATE classes after which the same statement may well succeed: connection exceptions,
# operator intervention (shutdown, cannot connect now), insufficient resources, transaction
# rollback (deadlock, serialization failure), lock not available.
_TRANSIENT_SQLSTATE_CLASSES = ("08", "57", "53", "40")
_TRANSIENT_SQLSTATES = ("55P03",)
_DEAD_CONNECTION = ("connection is closed", "pool is closing", "connection was closed")


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means the dependency is unavailable, not that the request is wrong."""
    if isinstance(exc, StreamError):
        # Broker trouble or a lost group member. The stream layer also raises it for misuse
        # (start() twice, send before start); those are retried too, with their one line.
        return True
    if isinstance(exc, (OSError, asyncio.TimeoutError, EOFError)):
        return True  # refused, reset, unreachable, timed out (ConnectionError is an OSError)
    if isinstance(exc, asyncpg.InterfaceError):
        # Mostly misuse of the API (a bug); these few say the connection died under the call
        # or the pool is closing at shutdown.
        return any(sign in str(exc) for sign in _DEAD_CONNECTION)
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES or sqlstate in _TRANSIENT_SQLSTATES
    return False


# aiokafka's errors for "this member's offsets are not accepted now": the group rebalanced
# (e.g. the broker was paused past the session timeout). Nothing is unavailable any more.
_REBALANCE_ERRORS = frozenset(
    {
        "CommitFailedError",
        "IllegalGenerationError",
        "RebalanceInProgressError",
        "UnknownMemberIdError",
    }
)


def is_rebalance(exc: BaseException) -> bool:
    """True when a commit failed because the consumer group rebalanced under it: the records
    are not lost, whichever member owns their partition now reads them again."""
    cause = exc.__cause__ if isinstance(exc, StreamError) else exc
    return type(cause).__name__ in _REBALANCE_ERRORS or "rebalanced" in str(exc)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; True when stopping."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


@dataclass
class Dependency:
    """One service a process needs, its health, and the lines it logs about it.

    Share one instance per service among the components of a process: an outage is then
    one ``unavailable`` line and one ``back`` line however many components notice it. A
    component that failed passes itself (any hashable ``caller``, e.g. the retry in progress)
    to :meth:`down` and :meth:`up`; the outage is over when every caller that failed during
    it has succeeded since, so one component's success does not announce a recovery that
    another is still waiting for (and then log a second outage).
    """

    name: str
    logger: logging.Logger
    clock: Callable[[], float] = time.monotonic
    healthy: bool = True
    outages: int = 0
    _since: float = field(default=0.0, init=False)
    _failures: int = field(default=0, init=False)
    _stuck: set[Hashable] = field(default_factory=set, init=False)

    def down(self, exc: BaseException, caller: Hashable = None) -> None:
        """Record a failure of ``caller``; the first one of an outage is logged."""
        self._failures += 1
        self._stuck.add(caller)
        if not self.healthy:
            return
        self.healthy = False
        self.outages += 1
        self._since = self.clock()
        self.logger.warning("%s unavailable (%s); retrying with backoff", self.name, _describe(exc))

    def up(self, caller: Hashable = None) -> None:
        """Record a success of ``caller``; the outage ends (one line) once no caller that
        failed during it is still failing."""
        self._stuck.discard(caller)
        if self.healthy or self._stuck:
            return
        self.healthy = True
        self.logger.info(
            "%s is back after %.1f s (%d failed attempts)",
            self.name,
            self.clock() - self._since,
            self._failures,
        )
        self._failures = 0

    def forget(self, caller: Hashable) -> None:
        """``caller`` gave up (the process is stopping): it no longer holds the outage open."""
        self._stuck.discard(caller)

    @property
    def failures(self) -> int:
        """Failed attempts in the current outage (0 when healthy)."""
        return self._failures

    @property
    def down_for_s(self) -> float | None:
        """Seconds since the current outage began; None when healthy."""
        return None if self.healthy else round(self.clock() - self._since, 1)

    def status(self) -> str:
        """``"PostgreSQL up"`` or ``"PostgreSQL down for 12 s"``, for a process's health line."""
        if self.healthy:
            return f"{self.name} up"
        return f"{self.name} down for {self.clock() - self._since:.0f} s"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2^n))."""

    base_s: float = 0.2
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False)
    # How a pause waits: tests pass a recorder that returns at once.
    sleep: Callable[[asyncio.Event, float], Awaitable[bool]] = field(
        default=wait_or_stop, compare=False
    )

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1-based)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(failures - 1, 0), 30))
        return self.rng.uniform(0, ceiling)

    async def pause(self, dependency: Dependency, stop: asyncio.Event) -> bool:
        """Back off after a failure of ``dependency``; True when ``stop`` was set meanwhile."""
        return await self.sleep(stop, self.delay(max(dependency.failures, 1)))

    async def call(
        self,
        operation: Callable[[], Awaitable[T]],
        dependency: Dependency,
        stop: asyncio.Event,
    ) -> T | None:
        """``operation()``, retried through transient failures until it succeeds; None when
        it failed and ``stop`` is set (a stop does not prevent the first attempt, so work
        under way at a graceful stop is still finished when the dependency is there)."""
        caller = object()  # this retry, until it succeeds: see Dependency
        while True:
            try:
                result = await operation()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                dependency.down(exc, caller)
                if await self.pause(dependency, stop):
                    dependency.forget(caller)
                    return None
                continue
            dependency.up(caller)
            return result

    async def run(
        self,
        operation: Callable[[], Awaitable[None]],
        dependency: Dependency,
        stop: asyncio.Event,
    ) -> bool:
        """:meth:`call` for an operation without a result: True once it succeeded."""

        async def done() -> bool:
            await operation()
            return True

        return await self.call(done, dependency, stop) is not None


async def patiently(
    operation: Awaitable[T],
    dependency: Dependency,
    caller: Hashable,
    *,
    slow_after_s: float = 5.0,
) -> T:
    """``await operation``, reporting ``dependency`` down (one line) when it has not answered
    within ``slow_after_s``, and up again once it has.

    A paused or wedged server refuses nothing: calls to it just hang (a SIGSTOPped Kafka holds
    deliveries and commits until its request timeout). Without this the outage would be
    noticed, if at all, only after it ended. An exception from ``operation`` propagates; the
    caller's retry reports it."""
    task = asyncio.ensure_future(operation)
    try:
        done, _ = await asyncio.wait({task}, timeout=slow_after_s)
        if not done:
            dependency.down(TimeoutError(f"no answer for {slow_after_s:.0f} s"), caller)
        result = await task
    except BaseException:
        task.cancel()
        dependency.forget(caller)
        raise
    dependency.up(caller)
    return result


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RepeatFilter(logging.Filter):
    """Lets a client library's warning or error through once per ``interval_s`` per message
    shape; the repeats in between are dropped and counted on the next one let through.

    aiokafka logs every failed reconnect at ERROR (a 28 s Kafka outage wrote ~2,450 lines to
    one process log), asyncpg's pool every failed reconnect with a traceback; our
    :class:`Dependency` already says the outage once. The traceback of a transient error is
    cut to its one-line description (it is an outage, not a bug).
    """

    def __init__(
        self, prefix: str, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._dropped: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix) or record.levelno < logging.WARNING:
            return True
        shape = (record.name, str(record.msg))
        now = self.clock()
        last = self._last.get(shape)
        if last is not None and now - last < self.interval_s:
            self._dropped[shape] = self._dropped.get(shape, 0) + 1
            return False
        self._last[shape] = now
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and is_transient(error):
            record.msg = f"{record.getMessage()} ({_describe(error)})".replace("%", "%%")
            record.args, record.exc_info, record.exc_text = None, None, None
        dropped = self._dropped.pop(shape, 0)
        if dropped:
            record.msg = f"{record.msg} (and {dropped} like it in the last {self.interval_s:.0f} s)"
        return True


def quiet_client_retries(prefixes: tuple[str, ...] = ("aiokafka", "asyncpg")) -> None:
    """Fold the per-retry lines of client libraries (see :class:`RepeatFilter`) on every
    handler of the root logger; call after ``logging.basicConfig``."""
    for handler in logging.getLogger().handlers:
        for prefix in prefixes:
            handler.addFilter(RepeatFilter(prefix))


async def serve_until_stopped(
    work: Awaitable[None], stop: asyncio.Event, *, grace_s: float = 10.0, cleanup_s: float = 3.0
) -> None:
    """Run ``work`` until it returns; once ``stop`` is set, give it ``grace_s`` to finish
    what it is doing, then cancel it, so SIGTERM is honoured even while a call hangs on a
    paused server. Cancelling is as safe as a crash: nothing is committed past the last
    durable write, and what was under way is done again after the restart. Cleanup that
    hangs too (closing a client of a paused server) is cancelled again, for at most
    ``cleanup_s`` in all."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    abandoned = False
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=grace_s)
            if not done:
                logging.getLogger(__name__).warning(
                    "still busy %.0f s after the stop request; abandoning the work under way "
                    "(it is done again after the restart)",
                    grace_s,
                )
                abandoned = True
                deadline = asyncio.get_running_loop().time() + cleanup_s
                while not task.done() and asyncio.get_running_loop().time() < deadline:
                    task.cancel()  # again: each cancel ends the await the cleanup is stuck in
                    await asyncio.wait({task}, timeout=0.5)
    finally:
        stopping.cancel()
    if not task.done() or task.cancelled():
        return
    error = task.exception()
    if error is None:
        return
    if abandoned:  # an error of the interrupted cleanup, not of the work
        logging.getLogger(__name__).info("cleanup ended with %s", _describe(error))
        return
    raise error
