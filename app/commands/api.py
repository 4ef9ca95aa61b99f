"""``roadledger api``: serve the HTTP API, and bootstrap its first operator admin."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

from contracts.errors import CommandError
from roadledger.settings import Settings

if TYPE_CHECKING:
    import asyncpg
    from fastapi import FastAPI

HELP = "serve the HTTP API (uvicorn); bootstrap its first operator admin"
DESCRIPTION = """\
The API for authorities, insurers, owners, auditors and witnesses (FastAPI, served by uvicorn
on ROADLEDGER_API_HOST:ROADLEDGER_API_PORT, default 127.0.0.1:58080; OpenAPI at /docs).
Every route but /health needs a login (POST /v1/auth/token) or an API key.

The first login needs a member to log in with: `bootstrap` creates the operator organisation
and its first admin (once: it refuses when an operator admin exists). The password is read
from ROADLEDGER_BOOTSTRAP_PASSWORD, or from the first line of standard input.

examples:
  roadledger api bootstrap --username ops-admin < password.txt
  roadledger api                      # serve until Ctrl-C / SIGTERM
  roadledger api serve --port 8080"""

OPERATOR_ORG = "operator"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the API (the default)")
    for target in (parser, serve):
        target.add_argument("--host", help="listen address (default: ROADLEDGER_API_HOST)")
        target.add_argument("--port", type=int, help="listen port (default: ROADLEDGER_API_PORT)")
    boot = actions.add_parser("bootstrap", help="create the operator organisation's first admin")
    boot.add_argument("--username", required=True, help="the admin's login name")
    boot.add_argument("--org-id", default=OPERATOR_ORG, help=f"default: {OPERATOR_ORG}")
    boot.add_argument("--org-name", default="RoadLedger operator", help="if the org is new")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "bootstrap":
        password = os.environ.get("ROADLEDGER_BOOTSTRAP_PASSWORD") or sys.stdin.readline()
        password = password.rstrip("\r\n")
        if not password:
            raise CommandError("no password: set ROADLEDGER_BOOTSTRAP_PASSWORD or pipe one in", 2)
        asyncio.run(_bootstrap(settings, args.org_id, args.org_name, args.username, password))
        print(f"operator admin {args.username} of {args.org_id} created; log in at /v1/auth/token")
        return 0
    return _serve(settings, args.host, args.port)


async def _bootstrap(
    settings: Settings, org_id: str, org_name: str, username: str, password: str
) -> None:
    from contracts.access import OrgKind, Role
    from roadledger.db.pool import open_database
    from roadledger.db.schema import apply_schema
    from roadledger.identity.errors import IdentityError
    from roadledger.identity.members import create_member
    from roadledger.identity.organisations import create_organisation, get_organisation

    pool = await open_database(settings)
    try:
        async with pool.acquire() as conn:
            await apply_schema(conn, retention_days=settings.retention_days)
            async with conn.transaction():
                await conn.execute("LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE")
                existing = await conn.fetchval(
                    "SELECT m.username FROM members m JOIN organisations o USING (org_id) "
                    "WHERE o.kind = 'operator' AND 'admin' = ANY (m.roles) LIMIT 1"
                )
                if existing is not None:
                    raise CommandError(
                        f"an operator admin exists ({existing}); it adds members through the API"
                    )
                try:
                    org = await get_organisation(conn, org_id)
                except IdentityError:
                    org = await create_organisation(conn, org_id, org_name, OrgKind.OPERATOR)
                if org.kind != OrgKind.OPERATOR:
                    raise CommandError(f"organisation {org_id} is a {org.kind}, not an operator")
                await create_member(conn, org_id, username, password, [Role.ADMIN, Role.OPERATOR])
    finally:
        await pool.close()


def build_app(settings: Settings, pool: asyncpg.Pool | None = None) -> FastAPI:
    """The API as ``roadledger api`` serves it: device credentials kept as `roadledger devices`
    keeps them (the broker's password file; the broker `roadledger services` runs is reloaded
    at once)."""
    from api.app import create_app
    from api.routes.devices import use_mqtt_credentials
    from app.commands.devices import device_credentials

    app = create_app(settings, pool)
    use_mqtt_credentials(app, lambda registry: device_credentials(registry, settings))
    return app


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    import logging

    import uvicorn

    from api.server import ApiServer

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,  # the client address is the peer's: a header could fake it
    )
    ApiServer(app, config).run()  # ends the live feeds when it stops (api/server.py)
    return 0
