"""The demo's API over real HTTP (uvicorn on loopback) on the real PostgreSQL: its logins work,
the insurer holds the demo grant, and the server stops when the block ends."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from app.demo.api_server import INSURER_ORG, serve_demo_api
from roadledger.settings import Settings
from tests.integration.conftest import free_port

pytestmark = [pytest.mark.postgres]


async def test_the_demo_serves_the_api_with_a_login_per_role(
    api_settings: Settings, api_pool: asyncpg.Pool
) -> None:
    await api_pool.execute(
        "INSERT INTO devices (device_id, owner_org, kind) VALUES "
        "('veh-1', 'fleet-a', 'vehicle'), ('veh-2', 'fleet-a', 'vehicle')"
    )
    settings = api_settings.model_copy(update={"api_port": free_port()})
    async with serve_demo_api(settings, api_pool) as api:
        assert api.url == f"http://127.0.0.1:{settings.api_port}"
        assert {login.username for login in api.logins} == {
            "demo-operator", "demo-police", "demo-fleet", "demo-insurer"
        }  # fmt: skip
        text = "\n".join(api.lines())
        assert api.password in text
        assert f"dashboard: {api.url}/ui/" in text
        async with httpx.AsyncClient(base_url=api.url) as client:
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/ui/")).headers["content-type"].startswith("text/html")
            token = await client.post(
                "/v1/auth/token", data={"username": "demo-insurer", "password": api.password}
            )
            assert token.status_code == 200
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            me = (await client.get("/v1/auth/me", headers=headers)).json()
            assert (me["org_id"], me["roles"]) == (INSURER_ORG, ["insurer"])
            grants = await client.get("/v1/grants?direction=received", headers=headers)
            [grant] = grants.json()
            assert (grant["owner_org"], grant["device_ids"]) == ("fleet-a", ["veh-1", "veh-2"])
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=api.url) as client:
            await client.get("/health")


async def test_a_second_run_resets_the_password_and_keeps_one_grant(
    api_settings: Settings, api_pool: asyncpg.Pool
) -> None:
    await api_pool.execute(
        "INSERT INTO devices (device_id, owner_org, kind) VALUES ('veh-9', 'fleet-b', 'vehicle')"
    )
    passwords = []
    for _ in range(2):
        settings = api_settings.model_copy(update={"api_port": free_port()})
        async with serve_demo_api(settings, api_pool) as api:
            passwords.append(api.password)
            async with httpx.AsyncClient(base_url=api.url) as client:
                for password, code in ((api.password, 200), (passwords[0], None)):
                    answer = await client.post(
                        "/v1/auth/token", data={"username": "demo-fleet", "password": password}
                    )
                    assert answer.status_code == (code or (200 if len(passwords) == 1 else 401))
    assert passwords[0] != passwords[1]
    assert await api_pool.fetchval("SELECT count(*) FROM access_grants") == 1
