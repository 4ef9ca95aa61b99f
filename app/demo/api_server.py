"""The demo's API: served while the demo runs, with a login for each kind of user.

The demo's organisations come from the simulated fleet (its authority and fleet owners); this
module adds an operator and an insurer, one member for each role a visitor may want to try,
a grant from a fleet owner to the insurer for a few of its vehicles, and serves the API on
``ROADLEDGER_API_PORT`` (another free port if that one is taken). The password is new every
run and printed with the URL; the members are kept in the demo's database between runs (their
password is reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import uvicorn

from api.server import ApiServer
from app.commands.api import build_app
from contracts.access import OrgKind, Role, Scope
from roadledger.identity.credentials import new_id
from roadledger.identity.passwords import hash_password
from roadledger.settings import Settings
from roadledger.tcp_probe import port_open

__all__ = ["DemoApi", "DemoLogin", "serve_demo_api"]

OPERATOR_ORG = "operator"
INSURER_ORG = "insurer-demo"
GRANTED_VEHICLES = 3


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """One member a visitor can log in as."""

    who: str
    username: str
    org_id: str


@dataclass(frozen=True, slots=True)
class DemoApi:
    """Where the demo's API answers and who may log in (all with ``password``)."""

    url: str
    password: str
    logins: tuple[DemoLogin, ...]

    def lines(self) -> list[str]:
        """What the demo prints about its API."""
        found = [
            f"dashboard: {self.url}/ui/ (log in as one of these)",
            f"api: {self.url} (GET /health; log in: POST /v1/auth/token)",
        ]
        found += [
            f"  login {login.username:<14} ({login.who}, {login.org_id})" for login in self.logins
        ]
        found.append(f"  password for each: {self.password}")
        return found


async def _ensure_org(conn: asyncpg.Connection, org_id: str, name: str, kind: OrgKind) -> None:
    await conn.execute(
        "INSERT INTO organisations (org_id, name, kind) VALUES ($1, $2, $3) "
        "ON CONFLICT (org_id) DO NOTHING",
        org_id,
        name,
        str(kind),
    )


async def _ensure_member(
    conn: asyncpg.Connection, org_id: str, username: str, password_hash: str, roles: list[Role]
) -> None:
    await conn.execute(
        "INSERT INTO members (member_id, org_id, username, password_hash, roles) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO UPDATE "
        "SET password_hash = EXCLUDED.password_hash, disabled_at = NULL",
        new_id("m"),
        org_id,
        username,
        password_hash,
        sorted(roles),
    )


async def _first_org(conn: asyncpg.Connection, kind: OrgKind) -> str | None:
    """The first organisation of ``kind``, one that owns devices if there is one."""
    org: str | None = await conn.fetchval(
        "SELECT o.org_id FROM organisations o WHERE o.kind = $1 ORDER BY "
        "EXISTS (SELECT 1 FROM devices d WHERE d.owner_org = o.org_id) DESC, o.org_id LIMIT 1",
        str(kind),
    )
    return org


async def create_demo_logins(pool: asyncpg.Pool, password: str) -> tuple[DemoLogin, ...]:
    """The demo's members (see the module docstring), all with ``password``."""
    hashed = hash_password(password)
    logins = []
    async with pool.acquire() as conn, conn.transaction():
        await _ensure_org(conn, OPERATOR_ORG, "RoadLedger operator (demo)", OrgKind.OPERATOR)
        await _ensure_org(conn, INSURER_ORG, "Demo Insurance", OrgKind.INSURER)
        cast: list[tuple[str, str | None, str, list[Role]]] = [
            ("operator admin", OPERATOR_ORG, "demo-operator", [Role.ADMIN, Role.OPERATOR]),
            ("traffic authority", await _first_org(conn, OrgKind.AUTHORITY), "demo-police",
             [Role.ANALYST]),
            ("fleet owner admin", await _first_org(conn, OrgKind.FLEET_OWNER), "demo-fleet",
             [Role.ADMIN, Role.ANALYST]),
            ("insurer", INSURER_ORG, "demo-insurer", [Role.INSURER]),
        ]  # fmt: skip
        for who, org_id, username, roles in cast:
            if org_id is None:
                continue  # e.g. a fleet of RSUs only: no fleet owner to log in for
            await _ensure_member(conn, org_id, username, hashed, roles)
            logins.append(DemoLogin(who, username, org_id))
        fleet = next((login.org_id for login in logins if login.username == "demo-fleet"), None)
        if fleet is not None:
            await _grant_insurer(conn, fleet)
    return tuple(logins)


async def _grant_insurer(conn: asyncpg.Connection, fleet: str) -> None:
    devices = await conn.fetch(
        "SELECT device_id FROM devices WHERE owner_org = $1 AND kind = 'vehicle' "
        "ORDER BY device_id LIMIT $2",
        fleet,
        GRANTED_VEHICLES,
    )
    if not devices:
        return
    await conn.execute(
        "INSERT INTO access_grants (grant_id, owner_org, grantee_org, scopes, device_ids, "
        "valid_from, valid_until, purpose, created_by) "
        "SELECT $1, $2, $3, $4, $5, now() - interval '1 day', now() + interval '365 days', "
        "'demo: the insurer may certify these vehicles', 'demo' "
        "WHERE NOT EXISTS (SELECT 1 FROM access_grants WHERE owner_org = $2 AND grantee_org = $3 "
        "AND revoked_at IS NULL AND valid_until > now())",
        new_id("g"),
        fleet,
        INSURER_ORG,
        sorted([Scope.MILEAGE, Scope.CERTIFICATE, Scope.TRACK, Scope.WARNINGS]),
        [row["device_id"] for row in devices],
    )


def _free_port(settings: Settings) -> int:
    if not port_open(settings.api_host, settings.api_port):
        return settings.api_port
    import socket

    with socket.socket() as sock:
        sock.bind((settings.api_host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_demo_api(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[DemoApi]:
    """Serve the API on the demo's pool while the block runs."""

    password = secrets.token_urlsafe(12)
    logins = await create_demo_logins(pool, password)
    port = _free_port(settings)
    app = build_app(settings, pool)
    config = uvicorn.Config(app, host=settings.api_host, port=port, log_level="warning")
    server = ApiServer(app, config, take_signals=False)  # the demo handles its signals
    task = asyncio.create_task(server.serve(), name="demo api")
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            server.should_exit = True
            await task
            raise RuntimeError(f"the API did not start on {settings.api_host}:{port}")
        await asyncio.sleep(0.05)
    try:
        yield DemoApi(f"http://{settings.api_host}:{port}", password, logins)
    finally:
        server.should_exit = True
        await task
