"""Schemathesis (a tool we did not write) against the real API process on the real
PostgreSQL: every operation of the OpenAPI description, fed generated input by an operator
admin, a fleet owner's admin and an insurer, never answers 5xx and always answers as the
schema says it may."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from roadledger.settings import Settings
from tests.integration.api.conftest import PASSWORD
from tests.support.served import served_api

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SCHEMATHESIS = str(Path(sys.executable).parent / "st")
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("username", ["ops", "fleet-a-admin", "insurer-x-agent"])
async def test_no_operation_answers_5xx(
    api_settings: Settings, api_pool: asyncpg.Pool, username: str, tmp_path: Path
) -> None:
    async with served_api(api_settings, api_pool) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            token = await client.post(
                "/v1/auth/token", data={"username": username, "password": PASSWORD}
            )
            assert token.status_code == 200, token.text
            access = token.json()["access_token"]
        done = await asyncio.to_thread(
            subprocess.run,
            [
                SCHEMATHESIS, "run", f"{url}/v1/openapi.json",
                "--header", f"Authorization: Bearer {access}",
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance",
                "--max-examples", "25",
                "--exclude-path", "/v1/auth/revoke",  # it would end the session under test
                "--report-dir", str(tmp_path),
                "--no-color",
            ],
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.integration.api.schemathesis_hooks",
                 "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,  # its cache of crashes stays out of the checkout
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
