"""What routes ask FastAPI for: ``Annotated`` dependencies, one per thing a route needs.

``SettingsDep``, ``PoolDep`` and ``SignersDep`` come from the application state (built once by
:func:`api.app.create_app`). ``PrincipalDep`` authenticates the request: a bearer access token
from a login (``rla_...``) or an API key (``Authorization: Bearer rlk_...`` or ``X-API-Key``);
no credentials or bad ones are 401. ``require_roles(...)`` adds a role check (403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final

import asyncpg
from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from contracts.access import Role
from contracts.errors import Unauthenticated
from roadledger.db.ledger_proofs import LedgerProofs
from roadledger.identity.api_keys import principal_of_api_key
from roadledger.identity.credentials import API_KEY_PREFIX
from roadledger.identity.errors import NotPermitted
from roadledger.identity.logins import LoginPolicy, principal_of_token
from roadledger.identity.principal import Principal
from roadledger.identity.principal_cache import PrincipalCache
from roadledger.settings import Settings
from roadledger.signer_pool import SignerPool

__all__ = [
    "PUBLIC_OPERATIONS",
    "PoolDep",
    "PrincipalDep",
    "ProofsDep",
    "SettingsDep",
    "SignersDep",
    "document_security",
    "login_policy",
    "require_roles",
]

TOKEN_URL = "/v1/auth/token"  # noqa: S105 - a path, not a secret
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (rlk_...)")


# Asynchronous although they wait for nothing: FastAPI runs a plain function dependency in a
# worker thread, a thread hop per request for reading an attribute.
async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


async def _proofs(request: Request) -> LedgerProofs:
    proofs: LedgerProofs = request.app.state.proofs
    return proofs


async def _signers(request: Request) -> SignerPool:
    signers: SignerPool = request.app.state.signers
    return signers


SettingsDep = Annotated[Settings, Depends(_settings)]
SignersDep = Annotated[SignerPool, Depends(_signers)]
PoolDep = Annotated[asyncpg.Pool, Depends(_pool)]
ProofsDep = Annotated[LedgerProofs, Depends(_proofs)]


def login_policy(settings: Settings) -> LoginPolicy:
    """Token lifetimes and the login limit of ``settings``."""
    return LoginPolicy(
        access_s=settings.api_access_token_s,
        refresh_s=settings.api_refresh_token_s,
        max_failures=settings.api_login_failures,
        window_s=settings.api_login_window_s,
    )


# The operations that take no credentials: health, and the two exchanges that carry theirs in
# the body (the authorisation matrix and test_auth check every other route answers 401).
PUBLIC_OPERATIONS: Final = frozenset(
    {("get", "/health"), ("post", TOKEN_URL), ("post", "/v1/auth/refresh")}
)


async def _principal(request: Request) -> Principal:
    # One dependency that reads its two headers itself, rather than FastAPI's security
    # dependencies (OAuth2PasswordBearer, APIKeyHeader) beneath it: each dependency costs
    # FastAPI 0.165 about 20 us a request, a tenth of a proof route's whole work
    # (bench/api_load.py). The schemes are documented by document_security instead.
    api_key = request.headers.get("x-api-key") or None
    scheme, _, param = request.headers.get("authorization", "").partition(" ")
    bearer = param if scheme.lower() == "bearer" else None
    pool: asyncpg.Pool = request.app.state.pool
    cache: PrincipalCache = request.app.state.principals
    if api_key is None and bearer is None:
        raise Unauthenticated("authentication required: a bearer token or an API key")
    if api_key is not None or (bearer or "").startswith(API_KEY_PREFIX + "_"):
        key = api_key or bearer or ""
        return await cache.principal(key, lambda: principal_of_api_key(pool, key))
    token = bearer or ""
    return await cache.principal(token, lambda: principal_of_token(pool, token))


PrincipalDep = Annotated[Principal, Depends(_principal)]


def document_security(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (an OpenAPI document of this app) with the two ways to authenticate
    declared, and required by every operation but :data:`PUBLIC_OPERATIONS`."""
    schemes = {
        _bearer.scheme_name: jsonable_encoder(_bearer.model, by_alias=True, exclude_none=True),
        _api_key.scheme_name: jsonable_encoder(_api_key.model, by_alias=True, exclude_none=True),
    }
    schema.setdefault("components", {})["securitySchemes"] = schemes
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if (method, path) not in PUBLIC_OPERATIONS:
                operation["security"] = [{name: []} for name in schemes]
    return schema


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that passes the principal on when it holds one of ``roles``, else 403."""
    names = ", ".join(sorted(roles))

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has(*roles):
            raise NotPermitted(f"this needs one of the roles {names}")
        return principal

    return check
