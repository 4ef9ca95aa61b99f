"""Backoff, outage lines and the retry loop, with an injected clock and no real waiting."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from roadledger.resilience import (
    Dependency,
    RepeatFilter,
    RetryPolicy,
    is_rebalance,
    is_transient,
    patiently,
    serve_until_stopped,
)
from roadledger.stream.errors import StreamError


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError("reset"),
        ConnectionRefusedError("refused"),
        OSError("unreachable"),
        TimeoutError(),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.InterfaceError(
            "cannot call Connection.fetch(): the underlying connection is closed"
        ),
        StreamError("commit failed: CommitFailedError", retriable=False),
    ],
    ids=type,
)
def test_outages_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        KeyError("bug"),
        asyncpg.exceptions.UndefinedTableError("no table"),
        asyncpg.exceptions.UniqueViolationError("dup"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): released back to the pool"),
    ],
    ids=type,
)
def test_errors_of_the_request_are_not(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_backoff_grows_to_the_cap_with_full_jitter() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=4.0, rng=random.Random(1))
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for failures, ceiling in enumerate(ceilings, start=1):
        delays = [policy.delay(failures) for _ in range(200)]
        assert min(delays) >= 0
        assert max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8, "spread over the whole range, not fixed"
    assert policy.delay(10_000) <= 4.0


def test_one_line_per_outage_and_one_on_recovery(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    dependency = Dependency("PostgreSQL", logging.getLogger("test.dep"), clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.dep"):
        for _ in range(50):
            dependency.down(ConnectionResetError("reset by peer"))
        assert (dependency.healthy, dependency.failures) == (False, 50)
        now[0] = 112.5
        dependency.up()
        dependency.up()
    assert [r.getMessage() for r in caplog.records] == [
        "PostgreSQL unavailable (ConnectionResetError: reset by peer); retrying with backoff",
        "PostgreSQL is back after 12.5 s (50 failed attempts)",
    ]
    assert (dependency.healthy, dependency.outages, dependency.failures) == (True, 1, 0)


async def test_call_retries_transient_failures_until_it_succeeds() -> None:
    attempts = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionRefusedError("down")
        return "done"

    dependency = Dependency("Kafka", logging.getLogger("test.kafka"))
    slept = Sleeps()
    policy = RetryPolicy(base_s=1.0, cap_s=3.0, rng=random.Random(7), sleep=slept)
    assert await policy.call(flaky, dependency, asyncio.Event()) == "done"
    assert len(attempts) == 4
    expected = RetryPolicy(base_s=1.0, cap_s=3.0, rng=random.Random(7))
    assert slept.delays == [expected.delay(n) for n in (1, 2, 3)], "backoff after each failure"
    assert dependency.healthy
    assert dependency.outages == 1


async def test_call_gives_up_when_stopped_and_lets_bugs_through() -> None:
    stop = asyncio.Event()

    async def down() -> None:
        stop.set()  # SIGTERM arrives during the outage
        raise ConnectionRefusedError("down")

    dependency = Dependency("MQTT", logging.getLogger("test.mqtt"))
    policy = RetryPolicy(base_s=60, cap_s=60)  # the real wait: it must return at the stop
    assert await asyncio.wait_for(policy.run(down, dependency, stop), timeout=5) is False

    async def bug() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await policy.run(bug, dependency, asyncio.Event())


class Sleeps:
    """A RetryPolicy ``sleep`` that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, stop: asyncio.Event, seconds: float) -> bool:
        self.delays.append(seconds)
        await asyncio.sleep(0)  # other tasks run meanwhile, as during a real pause
        return stop.is_set()


async def test_a_shared_dependency_logs_one_outage_for_all_its_callers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two components retrying through the same outage: one line down, one line back, and
    the first to recover does not announce it while the other still fails."""
    now = [0.0]
    database = Dependency("PostgreSQL", logging.getLogger("test.shared"), clock=lambda: now[0])
    policy = RetryPolicy(sleep=Sleeps())
    succeeded: list[str] = []

    def server_up() -> bool:
        return database.failures >= 6  # both retry loops have failed a few times

    def component(name: str, failures_after_return: int) -> Callable[[], Awaitable[None]]:
        left = [failures_after_return]

        async def step() -> None:
            now[0] += 1.0
            if not server_up() or left[0] > 0:
                if server_up():
                    left[0] -= 1
                raise ConnectionResetError(f"{name}: reset")
            succeeded.append(name)

        return step

    verifier, store = component("verifier", 0), component("store", 3)

    with caplog.at_level(logging.INFO, logger="test.shared"):
        stop = asyncio.Event()
        await asyncio.gather(
            policy.run(verifier, database, stop), policy.run(store, database, stop)
        )
    assert succeeded == ["verifier", "store"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("PostgreSQL unavailable (ConnectionResetError: verifier: reset)")
    assert lines[1].startswith("PostgreSQL is back after "), "only once the store writer is"
    assert (database.healthy, database.outages, database.status()) == (True, 1, "PostgreSQL up")


def test_status_says_how_long_a_dependency_has_been_down() -> None:
    now = [10.0]
    kafka = Dependency("Kafka", logging.getLogger("test.status"), clock=lambda: now[0])
    kafka.down(OSError("refused"))
    now[0] = 22.4
    assert kafka.status() == "Kafka down for 12 s"


async def test_serve_until_stopped_cancels_work_stuck_past_the_grace() -> None:
    stop = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> None:  # e.g. a call to a paused broker with no timeout
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = asyncio.get_running_loop()
    loop.call_soon(stop.set)
    await asyncio.wait_for(serve_until_stopped(stuck(), stop, grace_s=0.0), timeout=5)
    assert cancelled.is_set()


async def test_serve_until_stopped_lets_work_finish_and_raises_its_bugs() -> None:
    stop = asyncio.Event()

    async def finishing() -> None:
        await stop.wait()
        await asyncio.sleep(0)  # what it does after the stop request

    asyncio.get_running_loop().call_soon(stop.set)
    await serve_until_stopped(finishing(), stop, grace_s=60.0)

    async def buggy() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await serve_until_stopped(buggy(), asyncio.Event())


def test_deadlocks_and_lock_timeouts_are_transient() -> None:
    assert is_transient(asyncpg.exceptions.DeadlockDetectedError("deadlock"))
    assert is_transient(asyncpg.exceptions.SerializationError("could not serialize"))
    assert is_transient(asyncpg.exceptions.LockNotAvailableError("lock timeout"))


def test_client_retry_lines_are_folded_once_a_minute() -> None:
    now = [0.0]
    folded = RepeatFilter("aiokafka", interval_s=60, clock=lambda: now[0])

    def record(name: str, level: int, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, msg, (), None)

    unable = "Unable connect to node with id %s: %s"
    passed = []
    for second in range(0, 28):  # an outage: ~90 lines a second from aiokafka
        now[0] = float(second)
        for _ in range(90):
            line = record("aiokafka.conn", logging.ERROR, unable)
            if folded.filter(line):
                passed.append(line)
    assert len(passed) == 1
    now[0] = 61.0
    line = record("aiokafka.conn", logging.ERROR, unable)
    assert folded.filter(line)
    assert line.msg.endswith("(and 2519 like it in the last 60 s)")
    assert folded.filter(record("aiokafka.conn", logging.INFO, unable)), "info is not ours"
    assert folded.filter(record("roadledger.x", logging.ERROR, unable)), "only the prefix"


async def test_patiently_reports_a_call_that_hangs_and_its_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A paused broker refuses nothing; a call to it just waits. One line when the wait
    passes ``slow_after_s``, one when the answer comes."""
    kafka = Dependency("Kafka", logging.getLogger("test.patient"))
    answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    with caplog.at_level(logging.INFO, logger="test.patient"):
        waiting = asyncio.ensure_future(patiently(answer, kafka, "commit", slow_after_s=0.0))
        for _ in range(100):  # a few loop turns: the slow call is reported at once
            if not kafka.healthy:
                break
            await asyncio.sleep(0)
        assert not kafka.healthy, "the hanging call was not reported"
        answer.set_result("ok")
        assert await waiting == "ok"
        assert await patiently(asyncio.sleep(0, "fast"), kafka, "commit", slow_after_s=60) == "fast"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Kafka unavailable (TimeoutError: no answer for 0 s)")
    assert lines[1].startswith("Kafka is back after ")


async def test_patiently_lets_the_failure_through_to_the_retry() -> None:
    kafka = Dependency("Kafka", logging.getLogger("test.patient"))

    async def refused() -> None:
        raise StreamError("producer p: delivery failed: KafkaConnectionError", retriable=True)

    with pytest.raises(StreamError):
        await patiently(refused(), kafka, "produce")
    assert kafka.healthy, "the caller's retry reports the failure, not patiently()"


def test_a_commit_refused_after_a_rebalance_is_no_outage() -> None:
    class CommitFailedError(Exception):  # aiokafka's, by name
        pass

    refused = StreamError("consumer c: commit failed: CommitFailedError")
    refused.__cause__ = CommitFailedError("the group has already rebalanced")
    assert is_rebalance(refused)
    timed_out = StreamError("consumer c: commit failed: RequestTimedOutError")
    timed_out.__cause__ = TimeoutError()
    assert not is_rebalance(timed_out)


def test_a_client_traceback_for_an_outage_is_cut_to_one_line() -> None:
    folded = RepeatFilter("asyncpg", interval_s=60, clock=lambda: 0.0)
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        line = logging.LogRecord(
            "asyncpg.pool", logging.WARNING, __file__, 1, "Failed to restore %s", ("the floor",),
            sys.exc_info(),
        )  # fmt: skip
    assert folded.filter(line)
    assert line.exc_info is None
    assert line.getMessage() == (
        "Failed to restore the floor (ConnectionResetError: [Errno 104] Connection reset by peer)"
    )
    try:
        raise KeyError("a bug")
    except KeyError:
        bug = logging.LogRecord(
            "asyncpg.pool", logging.ERROR, __file__, 1, "callback failed", (), sys.exc_info()
        )
    assert folded.filter(bug)
    assert bug.exc_info is not None, "a bug keeps its traceback"
