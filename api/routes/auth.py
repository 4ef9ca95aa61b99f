"""Logins: the OAuth2 password flow, refresh with rotation, revoke, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import PoolDep, PrincipalDep, SettingsDep, login_policy
from api.errors import ERROR_RESPONSES, ErrorPublic
from api.models.auth import PrincipalPublic, RefreshCreate, TokenPublic
from roadledger.audit.events import EventKind, by_principal
from roadledger.audit.record import (
    record,
    record_login,
    record_login_failed,
    record_refresh,
    record_refresh_refused,
)
from roadledger.identity.errors import BadCredentials, NotPermitted, TooManyLogins
from roadledger.identity.logins import Tokens, login, refresh, revoke

__all__ = ["router"]

router = APIRouter(prefix="/v1/auth", tags=["auth"])

_LOGIN_ERRORS: dict[int | str, dict[str, object]] = {
    400: ERROR_RESPONSES[400],
    401: {"model": ErrorPublic, "description": "Wrong username or password"},
    422: ERROR_RESPONSES[422],
    429: {"model": ErrorPublic, "description": "Too many failed logins; see Retry-After"},
}


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _public(tokens: Tokens) -> TokenPublic:
    return TokenPublic(
        access_token=tokens.access_token,
        expires_in=tokens.access_expires_in_s,
        refresh_token=tokens.refresh_token,
    )


@router.post("/token", response_model=TokenPublic, responses=_LOGIN_ERRORS, summary="Log in")
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    pool: PoolDep,
    settings: SettingsDep,
) -> TokenPublic:
    """Trade a username and password (form fields, OAuth2 password flow) for a short-lived
    access token and a refresh token. Failed logins are limited per username and client.
    Every attempt is in the audit log (a failure names a hash of the username)."""
    action = "POST /v1/auth/token"
    try:
        tokens, _member = await login(
            pool, form.username, form.password, _client(request), login_policy(settings)
        )
    except (BadCredentials, TooManyLogins) as exc:
        outcome = "rate_limited" if isinstance(exc, TooManyLogins) else "bad_credentials"
        await record_login_failed(pool, form.username, outcome, action)
        raise
    await record_login(pool, tokens.session_id, action)
    return _public(tokens)


@router.post(
    "/refresh", response_model=TokenPublic, responses=_LOGIN_ERRORS, summary="Refresh tokens"
)
async def refresh_tokens(body: RefreshCreate, pool: PoolDep, settings: SettingsDep) -> TokenPublic:
    """New tokens for a refresh token, which stops working; a refresh token presented twice
    revokes its session (it was copied)."""
    action = "POST /v1/auth/refresh"
    try:
        tokens = await refresh(pool, body.refresh_token, login_policy(settings))
    except BadCredentials:
        await record_refresh_refused(pool, body.refresh_token, action)
        raise
    await record_refresh(pool, tokens.session_id, action)
    return _public(tokens)


@router.post("/revoke", status_code=204, responses=ERROR_RESPONSES, summary="Log out")
async def revoke_session(principal: PrincipalDep, pool: PoolDep) -> Response:
    """End the caller's session: its access and refresh tokens stop working at once."""
    if principal.session_id is None:
        raise NotPermitted("an API key has no session; revoke the key instead")
    async with pool.acquire() as conn, conn.transaction():
        await revoke(conn, principal.session_id)
        event = by_principal(
            principal,
            EventKind.TOKEN_REVOKE,
            target=principal.session_id,
            action="POST /v1/auth/revoke",
        )
        await record(conn, event)
    return Response(status_code=204)


@router.get("/me", response_model=PrincipalPublic, responses=ERROR_RESPONSES, summary="Who am I")
async def me(principal: PrincipalDep) -> PrincipalPublic:
    """The caller: member or API key, organisation, roles."""
    return PrincipalPublic(
        subject=principal.subject,
        via=principal.via,
        username=principal.username,
        org_id=principal.org_id,
        org_kind=principal.org_kind,
        roles=sorted(principal.roles),
    )
