"""HTTP servers as real processes on free loopback ports: ``roadledger api`` on a scratch
schema (the database URL carries the schema as its ``search_path``), or any other ASGI app
under uvicorn, for tests and benchmarks that need real HTTP from outside their process
(schemathesis, ``bench/api_load.py``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx

from roadledger.settings import Settings
from tests.integration.conftest import free_port
from tests.support.pipeline import ROADLEDGER, wait_until

__all__ = ["scratch_url", "served_api", "served_process"]


async def scratch_url(settings: Settings, pool: asyncpg.Pool) -> str:
    """``settings.database_url`` pointed at ``pool``'s scratch schema."""
    schema = await pool.fetchval("SELECT current_schema()")
    separator = "&" if "?" in settings.database_url else "?"
    return f"{settings.database_url}{separator}search_path={schema}"


@asynccontextmanager
async def served_process(
    argv: Sequence[str], port: int, env: Mapping[str, str], health: str = "/health"
) -> AsyncIterator[str]:
    """The base URL of the server ``argv`` starts on ``port``, once ``health`` answers 200;
    stopped (SIGTERM) after."""
    process = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    async def healthy() -> bool:
        if process.returncode is not None:
            stderr = await process.stderr.read() if process.stderr else b""
            raise AssertionError(f"{argv[0]} exited: {stderr.decode()[-3000:]}")
        try:
            async with httpx.AsyncClient(base_url=url) as client:
                return (await client.get(health)).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_until(healthy, f"{Path(argv[0]).name} answers {health}", within_s=60)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            await asyncio.wait_for(process.communicate(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


@asynccontextmanager
async def served_api(
    settings: Settings, pool: asyncpg.Pool, env: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """The base URL of ``roadledger api serve`` on ``pool``'s schema (``env``: more settings),
    stopped (SIGTERM) after."""
    port = free_port()
    environment = {"ROADLEDGER_DATABASE_URL": await scratch_url(settings, pool),
                   "ROADLEDGER_LOG_LEVEL": "WARNING", **(env or {})}  # fmt: skip
    argv = [ROADLEDGER, "api", "serve", "--port", str(port)]
    async with served_process(argv, port, environment) as url:
        yield url
