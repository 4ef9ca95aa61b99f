"""``roadledger api`` as a real process on a free loopback port, on a test's scratch schema
(the database URL carries the schema as its ``search_path``), for tests that need real HTTP
from outside this process (schemathesis, benchmarks)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx

from roadledger.settings import Settings
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until

ROADLEDGER = str(Path(sys.executable).parent / "roadledger")


async def scratch_url(settings: Settings, pool: asyncpg.Pool) -> str:
    """``settings.database_url`` pointed at ``pool``'s scratch schema."""
    schema = await pool.fetchval("SELECT current_schema()")
    separator = "&" if "?" in settings.database_url else "?"
    return f"{settings.database_url}{separator}search_path={schema}"


@asynccontextmanager
async def served_api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[str]:
    """The base URL of ``roadledger api serve`` on ``pool``'s schema, stopped (SIGTERM) after."""
    port = free_port()
    env = {**os.environ, "ROADLEDGER_DATABASE_URL": await scratch_url(settings, pool),
           "ROADLEDGER_LOG_LEVEL": "WARNING"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        ROADLEDGER, "api", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        if process.returncode is not None:
            stderr = await process.stderr.read() if process.stderr else b""
            raise AssertionError(f"roadledger api exited: {stderr.decode()[-3000:]}")
        try:
            async with httpx.AsyncClient(base_url=url) as client:
                return (await client.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_until(healthy, "roadledger api answers /health", within_s=60)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.communicate(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
