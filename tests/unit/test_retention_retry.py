"""drop_chunks is retried when TimescaleDB's own jobs deadlock with it (seen in CI)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from roadledger.db import telemetry_timescaledb


class _Conn:
    """Answers drop_chunks after failing ``failures`` times with ``error``."""

    def __init__(self, failures: int, error: type[Exception]) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def fetch(self, query: str, *args: Any) -> list[tuple[str]]:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error("deadlock detected")
        return [("_hyper_1_1_chunk",)]


CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("error", [asyncpg.DeadlockDetectedError, asyncpg.LockNotAvailableError])
async def test_a_deadlocked_drop_is_tried_again(error: type[Exception]) -> None:
    conn = _Conn(2, error)
    rows = await telemetry_timescaledb._drop_chunks(conn, "public", "telemetry", CUTOFF)
    assert rows == [("_hyper_1_1_chunk",)]
    assert conn.calls == 3


async def test_a_drop_that_keeps_deadlocking_fails_with_the_database_error() -> None:
    conn = _Conn(100, asyncpg.DeadlockDetectedError)
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await telemetry_timescaledb._drop_chunks(conn, "public", "telemetry", CUTOFF)
    assert conn.calls == telemetry_timescaledb._DROP_CHUNKS_ATTEMPTS


async def test_other_errors_are_not_retried() -> None:
    conn = _Conn(1, asyncpg.UndefinedTableError)
    with pytest.raises(asyncpg.UndefinedTableError):
        await telemetry_timescaledb._drop_chunks(conn, "public", "telemetry", CUTOFF)
    assert conn.calls == 1
