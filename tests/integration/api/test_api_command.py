"""``roadledger api`` as a process: ``bootstrap`` on a fresh database (once; the password never
printed), and serving on a free port until SIGTERM.

The fresh database is an empty scratch schema named in the URL's ``search_path`` (dropped
afterwards): the test role may not ``CREATE DATABASE``, and an empty schema is the same
start for the command (it brings its own tables up, as on a new database)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from roadledger.identity.logins import LoginPolicy, login
from roadledger.settings import Settings
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until_sync
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = [pytest.mark.postgres]

ENTRY_POINT = shutil.which("roadledger", path=str(Path(sys.executable).parent))
PASSWORD = "bootstrap password 4 tests"


@pytest.fixture
async def fresh_database(postgres: Settings) -> AsyncIterator[tuple[Settings, asyncpg.Pool]]:
    """Settings whose database URL names an empty schema, and a pool on that schema."""
    async with scratch_schema_pool(postgres, max_size=2, with_tables=False) as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        url = f"{postgres.database_url}?search_path={schema}"
        yield postgres.model_copy(update={"database_url": url}), pool


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "ROADLEDGER_DATABASE_URL": settings.database_url, **extra}


async def _bootstrap(
    settings: Settings, username: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``roadledger api bootstrap`` (in a thread: the event loop stays free)."""
    assert ENTRY_POINT is not None
    environment = _env(settings, **env)
    if "ROADLEDGER_BOOTSTRAP_PASSWORD" not in env:
        environment.pop("ROADLEDGER_BOOTSTRAP_PASSWORD", None)
    return await asyncio.to_thread(
        subprocess.run,
        [ENTRY_POINT, "api", "bootstrap", "--username", username],
        env=environment, input=stdin, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


async def test_bootstrap_creates_the_first_operator_admin_once(
    fresh_database: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = fresh_database
    first = await _bootstrap(settings, "boot-admin", ROADLEDGER_BOOTSTRAP_PASSWORD=PASSWORD)
    assert first.returncode == 0, first.stderr
    assert "operator admin boot-admin of operator created" in first.stdout
    again = await _bootstrap(settings, "boot-admin-2", ROADLEDGER_BOOTSTRAP_PASSWORD=PASSWORD)
    assert again.returncode != 0
    assert "an operator admin exists (boot-admin)" in again.stderr
    for run in (first, again):
        assert PASSWORD not in run.stdout + run.stderr
    members = await pool.fetch("SELECT username, roles FROM members ORDER BY username")
    assert [(r[0], sorted(r[1])) for r in members] == [("boot-admin", ["admin", "operator"])]
    assert await pool.fetchval("SELECT kind FROM organisations") == "operator"
    _tokens, member = await login(pool, "boot-admin", PASSWORD, "test", LoginPolicy())
    assert member == await pool.fetchval("SELECT member_id FROM members")


async def test_bootstrap_reads_the_password_from_stdin_and_refuses_none(
    fresh_database: tuple[Settings, asyncpg.Pool],
) -> None:
    settings, pool = fresh_database
    empty = await _bootstrap(settings, "boot-admin")
    assert empty.returncode == 2
    assert "no password" in empty.stderr
    piped = await _bootstrap(settings, "boot-admin", stdin=PASSWORD + "\n")
    assert piped.returncode == 0, piped.stderr
    assert PASSWORD not in piped.stdout + piped.stderr
    await login(pool, "boot-admin", PASSWORD, "test", LoginPolicy())  # the newline is not in it


def test_serve_answers_and_stops_on_sigterm(
    fresh_database: tuple[Settings, asyncpg.Pool],
) -> None:
    assert ENTRY_POINT is not None
    settings, _pool = fresh_database
    port = free_port()
    server = subprocess.Popen(
        [ENTRY_POINT, "api", "--port", str(port)],
        env=_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert server.poll() is None, "the server exited"
            try:
                return httpx.get(f"{base}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until_sync(healthy, "the API answers /health", within_s=60)
        me = httpx.get(f"{base}/v1/auth/me", timeout=5)
        assert me.status_code == 401
        assert me.headers["WWW-Authenticate"] == "Bearer"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
        output = server.communicate(timeout=10)[0]
    assert "Traceback" not in output, output
