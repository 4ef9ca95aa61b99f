"""``roadledger api`` as a process: SIGTERM ends open streams (warnings, segments) and the
server, at once (uvicorn alone would wait for the endless response)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from roadledger.settings import Settings
from tests.integration.api.sse import WAIT_S, opened
from tests.integration.conftest import free_port
from tests.support.pipeline import wait_until

pytestmark = [pytest.mark.postgres]


async def test_sigterm_ends_open_streams_and_the_server(
    postgres: Settings, api_pool: asyncpg.Pool
) -> None:
    schema = await api_pool.fetchval("SELECT current_schema()")
    url = postgres.database_url
    port = free_port()
    env = os.environ | {
        "ROADLEDGER_DATABASE_URL": f"{url}{'&' if '?' in url else '?'}search_path={schema}"
    }
    command = Path(sys.executable).parent / "roadledger"
    process = await asyncio.create_subprocess_exec(
        command, "api", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S) as client:

            async def up() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"roadledger api exited {process.returncode}")
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(up, "roadledger api to answer", 60, every_s=0.1)
            async with (
                opened(client, "police-analyst") as feed,
                opened(client, "police-analyst", path="/v1/segments/stream") as segments,
            ):
                assert (await segments.next())["event"] == "segments"  # the snapshot
                process.send_signal(signal.SIGTERM)
                with pytest.raises(EOFError):
                    await feed.next()
                with pytest.raises(EOFError):
                    await segments.next()
        # uvicorn re-raises the signal it stopped for once it is done: -SIGTERM is its clean exit.
        assert await asyncio.wait_for(process.wait(), WAIT_S) in (0, -signal.SIGTERM)
        assert process.stderr is not None
        errors = (await process.stderr.read()).decode()
        assert "Traceback" not in errors
        assert "ERROR" not in errors
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
