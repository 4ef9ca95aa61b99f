"""API fixtures: the application on a scratch schema of the real PostgreSQL, called in process
through httpx (the ASGI app itself, lifespan included), with organisations and members made
through the kernel so each test starts from a known cast."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from api.app import create_app
from contracts.access import OrgKind, Role
from roadledger.identity.members import create_member
from roadledger.identity.organisations import create_organisation
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Cast:
    """Who exists in a test's database: organisation id -> kind, username -> (org, roles)."""

    orgs: dict[str, OrgKind]
    members: dict[str, tuple[str, tuple[Role, ...]]]


CAST = Cast(
    orgs={
        "operator": OrgKind.OPERATOR,
        "fleet-a": OrgKind.FLEET_OWNER,
        "fleet-b": OrgKind.FLEET_OWNER,
        "insurer-x": OrgKind.INSURER,
        "police": OrgKind.AUTHORITY,
    },
    members={
        "ops": ("operator", (Role.ADMIN, Role.OPERATOR)),
        "fleet-a-admin": ("fleet-a", (Role.ADMIN,)),
        "fleet-a-analyst": ("fleet-a", (Role.ANALYST,)),
        "fleet-b-admin": ("fleet-b", (Role.ADMIN,)),
        "insurer-x-agent": ("insurer-x", (Role.INSURER,)),
        "insurer-x-admin": ("insurer-x", (Role.ADMIN,)),
        "police-admin": ("police", (Role.ADMIN,)),
        "police-analyst": ("police", (Role.ANALYST,)),
    },
)


@pytest.fixture
async def api_pool(postgres: Settings) -> AsyncIterator[asyncpg.Pool]:
    async with scratch_schema_pool(postgres, max_size=6) as pool:
        async with pool.acquire() as conn:
            for org_id, kind in CAST.orgs.items():
                await create_organisation(conn, org_id, org_id.title(), kind)
            for username, (org_id, roles) in CAST.members.items():
                await create_member(conn, org_id, username, PASSWORD, roles)
        yield pool


@pytest.fixture
def api_settings(postgres: Settings) -> Settings:
    """Settings with a small login limit, so the limit is reached in a few requests."""
    return postgres.model_copy(update={"api_login_failures": 3})


@pytest.fixture
async def api(api_settings: Settings, api_pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings, api_pool)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def login(api: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    """The token answer of a successful login (fails the test otherwise)."""
    answer = await api.post("/v1/auth/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def bearer(api: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Authorization headers of a fresh login of ``username``."""
    return {"Authorization": f"Bearer {(await login(api, username))['access_token']}"}
