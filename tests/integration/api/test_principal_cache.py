"""The API's memory of credentials (roadledger.identity.principal_cache, api/credentials.py) on
the real PostgreSQL: it spares the query, and never serves a credential that has changed:
revoked through this process (at once), in the database by anyone (as soon as the
notification arrives), or while its listener was down (it is off then)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from contracts.access import OrgKind, Role
from roadledger.db.credentials_schema import CREDENTIALS_CHANNEL
from roadledger.identity.principal import Principal
from roadledger.identity.principal_cache import PrincipalCache
from roadledger.settings import Settings
from tests.integration.api.conftest import bearer
from tests.support.pipeline import wait_until

pytestmark = [pytest.mark.postgres]


@pytest.fixture
async def served(
    api_settings: Settings, api_pool: asyncpg.Pool
) -> AsyncIterator[tuple[httpx.AsyncClient, PrincipalCache]]:
    app: FastAPI = create_app(api_settings, api_pool)
    async with app.router.lifespan_context(app):
        cache: PrincipalCache = app.state.principals
        await wait_until(lambda: cache.watching, "the credential listener to start", 10)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client, cache


async def _key(api: httpx.AsyncClient) -> dict[str, Any]:
    body = {"label": "cache", "roles": ["admin"], "scopes": [], "days": 30}
    answer = await api.post("/v1/api-keys", json=body, headers=await bearer(api, "fleet-a-admin"))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def test_a_known_credential_needs_no_query(
    served: tuple[httpx.AsyncClient, PrincipalCache],
) -> None:
    api, cache = served
    headers = {"X-API-Key": (await _key(api))["key"]}
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    hits = cache.hits
    for _ in range(5):
        assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert cache.hits == hits + 5


async def test_a_revocation_through_this_process_holds_for_the_next_request(
    served: tuple[httpx.AsyncClient, PrincipalCache],
) -> None:
    api, cache = served
    created = await _key(api)
    headers = {"X-API-Key": created["key"]}
    for _ in range(2):
        assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    admin = await bearer(api, "fleet-a-admin")
    revoked = await api.post(f"/v1/api-keys/{created['key_id']}/revoke", headers=admin)
    assert revoked.status_code == 204
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 401
    # A logout likewise: the access token is refused at once.
    token = await bearer(api, "fleet-a-analyst")
    assert (await api.get("/v1/auth/me", headers=token)).status_code == 200
    assert (await api.post("/v1/auth/revoke", headers=token)).status_code == 204
    assert (await api.get("/v1/auth/me", headers=token)).status_code == 401
    assert cache.watching


async def test_a_change_made_elsewhere_is_heard(
    served: tuple[httpx.AsyncClient, PrincipalCache], api_pool: asyncpg.Pool
) -> None:
    api, cache = served
    created = await _key(api)
    headers = {"X-API-Key": created["key"]}
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert len(cache) >= 1
    # Another process (here: a plain connection) revokes the key in the database.
    await api_pool.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", created["key_id"]
    )
    await wait_until(lambda: len(cache) == 0, "the revocation to empty the cache", 10)
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 401


async def test_the_triggers_notify_what_changes_a_principal_and_nothing_else(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    created = await _key(api)
    heard: list[str] = []
    sentinel = asyncio.Event()

    def note(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)
        if payload == "organisations":
            sentinel.set()

    async with api_pool.acquire() as listener:
        await listener.add_listener(CREDENTIALS_CHANNEL, note)
        try:
            for statement in (
                # last use is not what a principal is made of: no notification
                "UPDATE api_keys SET last_used_at = now() WHERE key_id = $1",
                "UPDATE api_keys SET roles = roles WHERE key_id = $1",
                "UPDATE api_sessions SET revoked_at = now() WHERE session_id = $1",
                "UPDATE members SET roles = roles WHERE member_id = $1",
                "UPDATE organisations SET name = name WHERE org_id = $1",
            ):
                await api_pool.execute(statement, created["key_id"])
            await asyncio.wait_for(sentinel.wait(), 10)
        finally:
            await listener.remove_listener(CREDENTIALS_CHANNEL, note)
    # Notifications arrive in commit order: the first statement sent none.
    assert heard == ["api_keys", "api_sessions", "members", "organisations"]


async def test_the_cache_is_off_while_its_listener_is_down_and_heals(
    served: tuple[httpx.AsyncClient, PrincipalCache], api_pool: asyncpg.Pool
) -> None:
    api, cache = served
    headers = {"X-API-Key": (await _key(api))["key"]}
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert cache.listener_pid is not None
    assert await api_pool.fetchval("SELECT pg_terminate_backend($1)", cache.listener_pid)
    await wait_until(lambda: not cache.watching, "the cache to turn off", 15)
    hits = cache.hits
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert cache.hits == hits  # off: the database was asked
    await wait_until(lambda: cache.watching, "the listener to come back", 15)
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 200
    assert cache.hits == hits + 1


async def test_a_lookup_begun_before_a_clear_is_not_remembered() -> None:
    cache = PrincipalCache()
    cache.watching = True
    principal = Principal("k", "org", OrgKind.INSURER, frozenset({Role.ANALYST}), "api_key")
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_lookup() -> Principal:
        started.set()
        await release.wait()
        return principal

    pending = asyncio.create_task(cache.principal("rlk_x", slow_lookup))
    await started.wait()
    cache.clear()  # e.g. a revocation answered meanwhile
    release.set()
    assert await pending is principal
    assert len(cache) == 0

    async def fast_lookup() -> Principal:
        return principal

    assert await cache.principal("rlk_x", fast_lookup) is principal
    assert len(cache) == 1
    cache.watching = False  # off: never served from memory
    assert await cache.principal("rlk_x", fast_lookup) is principal
    assert cache.hits == 0
