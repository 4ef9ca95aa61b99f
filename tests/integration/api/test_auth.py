"""Logins on the real PostgreSQL: the password flow, refresh with rotation, revocation, expiry,
the failed-login limit, and that no route but /health answers without credentials."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from api.app import create_app
from roadledger.identity.credentials import secret_hash
from roadledger.settings import Settings
from tests.integration.api.conftest import PASSWORD, bearer, login

pytestmark = [pytest.mark.postgres]


async def test_a_login_gives_tokens_that_say_who_logged_in(api: httpx.AsyncClient) -> None:
    tokens = await login(api, "fleet-a-analyst")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    assert tokens["access_token"].startswith("rla_")
    assert tokens["refresh_token"].startswith("rlr_")
    me = await api.get("/v1/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    body = me.json()
    assert (body["username"], body["org_id"], body["org_kind"], body["roles"], body["via"]) == (
        "fleet-a-analyst",
        "fleet-a",
        "fleet_owner",
        ["analyst"],
        "session",
    )


async def test_tokens_are_stored_only_as_hashes(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    tokens = await login(api, "ops")
    row = await api_pool.fetchrow("SELECT access_hash, refresh_hash FROM api_sessions")
    assert bytes(row["access_hash"]) == secret_hash(tokens["access_token"])
    assert bytes(row["refresh_hash"]) == secret_hash(tokens["refresh_token"])
    password_hash = await api_pool.fetchval(
        "SELECT password_hash FROM members WHERE username = 'ops'"
    )
    assert password_hash.startswith("$argon2id$")
    assert PASSWORD not in password_hash


@pytest.mark.parametrize("username", ["fleet-a-analyst", "nobody-at-all"])
async def test_a_wrong_password_or_unknown_user_is_the_same_401(
    api: httpx.AsyncClient, username: str
) -> None:
    answer = await api.post(
        "/v1/auth/token", data={"username": username, "password": "wrong password 123"}
    )
    assert answer.status_code == 401
    assert answer.json() == {"detail": "wrong username or password"}
    assert answer.headers["WWW-Authenticate"] == "Bearer"


async def test_failed_logins_are_limited_per_username(api: httpx.AsyncClient) -> None:
    form = {"username": "fleet-a-admin", "password": "not the password"}
    codes = [(await api.post("/v1/auth/token", data=form)).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    limited = await api.post("/v1/auth/token", data=form)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 900
    # The right password is refused too while the limit holds: guessing stays slow.
    right = {"username": "fleet-a-admin", "password": PASSWORD}
    assert (await api.post("/v1/auth/token", data=right)).status_code == 429
    # Another username from the same client is still let in (its own limit is 4x).
    await login(api, "fleet-b-admin")


async def test_a_success_clears_the_failures(api: httpx.AsyncClient) -> None:
    form = {"username": "police-admin", "password": "not the password"}
    for _ in range(2):
        assert (await api.post("/v1/auth/token", data=form)).status_code == 401
    await login(api, "police-admin")
    for _ in range(2):
        assert (await api.post("/v1/auth/token", data=form)).status_code == 401
    await login(api, "police-admin")


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(
    api: httpx.AsyncClient,
) -> None:
    first = await login(api, "insurer-x-agent")
    second = await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    fresh = second.json()
    assert fresh["access_token"] != first["access_token"]
    old = {"Authorization": f"Bearer {first['access_token']}"}
    new = {"Authorization": f"Bearer {fresh['access_token']}"}
    assert (await api.get("/v1/auth/me", headers=old)).status_code == 401
    assert (await api.get("/v1/auth/me", headers=new)).status_code == 200
    # The first refresh token again: copied by someone, so the whole session ends.
    reused = await api.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    assert "revoked" in reused.json()["detail"]
    assert (await api.get("/v1/auth/me", headers=new)).status_code == 401
    stale = await api.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert stale.status_code == 401


async def test_revoke_ends_the_session_at_once(api: httpx.AsyncClient) -> None:
    headers = await bearer(api, "police-analyst")
    assert (await api.post("/v1/auth/revoke", headers=headers)).status_code == 204
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 401


async def test_an_expired_access_token_is_refused(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    headers = await bearer(api, "fleet-b-admin")
    await api_pool.execute("UPDATE api_sessions SET access_expires_at = now() - interval '1 s'")
    answer = await api.get("/v1/auth/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["detail"] == "the access token is unknown, expired or revoked"


async def test_a_disabled_member_is_refused_at_once(
    api: httpx.AsyncClient, api_pool: asyncpg.Pool
) -> None:
    headers = await bearer(api, "fleet-a-analyst")
    await api_pool.execute("UPDATE members SET disabled_at = now() WHERE username = $1",
                           "fleet-a-analyst")  # fmt: skip
    assert (await api.get("/v1/auth/me", headers=headers)).status_code == 401


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"Authorization": "Bearer rla_not-a-token"},
        {"Authorization": "Basic b3BzOnBhc3M="},
        {"X-API-Key": "rlk_0123456789abcdef.not-the-secret-not-the-secret-not-the-secre"},
        {"X-API-Key": "garbage"},
    ],
)
async def test_every_route_but_health_needs_credentials(
    api: httpx.AsyncClient, api_settings: Settings, credentials: dict[str, str]
) -> None:
    paths = create_app(api_settings).openapi()["paths"]
    assert len(paths) >= 12
    open_routes = []
    for template, methods in paths.items():
        path = template.replace("{", "").replace("}", "")  # any value: auth comes first
        for method in methods:
            answer = await api.request(method.upper(), path, headers=credentials)
            if answer.status_code != 401:
                open_routes.append(f"{method.upper()} {template}: {answer.status_code}")
            else:
                assert answer.headers["WWW-Authenticate"] == "Bearer"
    # Health, and the two routes that take credentials in their body (a password, a refresh
    # token): without a body they can only say what is missing.
    assert open_routes == [
        "GET /health: 200",
        "POST /v1/auth/token: 422",
        "POST /v1/auth/refresh: 422",
    ]


async def test_there_is_no_unauthenticated_schema_or_docs_page(api: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await api.get(path)).status_code == 404
    headers = await bearer(api, "fleet-a-analyst")
    schema = await api.get("/v1/openapi.json", headers=headers)
    assert schema.status_code == 200
    assert "/v1/auth/token" in schema.json()["paths"]


async def test_a_value_the_database_cannot_hold_is_422_not_500(api: httpx.AsyncClient) -> None:
    headers = await bearer(api, "ops")
    answer = await api.get("/v1/organisations/bad%00id", headers=headers)
    assert answer.status_code == 422
    assert "not acceptable" in answer.json()["detail"]
