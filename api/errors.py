"""Domain errors to HTTP, in one place: the only module that chooses a status for a refusal.

Every error body is ``{"detail": "<one line>"}`` (:class:`ErrorPublic`); a request that fails
validation gets 422 with ``detail`` naming the first bad field and ``errors`` listing each one
as ``{"field": "body.username", "reason": "..."}``. A service that cannot be reached (a
:class:`~contracts.errors.Unavailable`, or PostgreSQL gone mid-request) is 503 with
``Retry-After``; too many attempts is 429 with ``Retry-After``. Anything else unexpected is a
500 whose body says nothing of the cause (the log has it).
"""

from __future__ import annotations

import logging

import asyncpg
from asyncpg.exceptions import _base as asyncpg_base
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chain.errors import EncodingError
from contracts.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

__all__ = ["ERROR_RESPONSES", "ErrorPublic", "FieldErrorPublic", "install", "status_of"]

log = logging.getLogger("roadledger.api")
RETRY_AFTER_S = 5

# The most specific kind first: a class may derive from one kind only, but order is explicit.
_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Invalid, 422),
    (RateLimited, 429),
    (Unavailable, 503),
)


class ErrorPublic(BaseModel):
    """Why a request was refused, in one line."""

    detail: str


class FieldErrorPublic(BaseModel):
    """One field that failed validation."""

    field: str
    reason: str


class ValidationErrorPublic(ErrorPublic):
    """A request that failed validation: the first reason in ``detail``, every one in
    ``errors``."""

    errors: list[FieldErrorPublic]


def _doc(description: str, model: type[BaseModel] = ErrorPublic) -> dict[str, object]:
    # The content is named too: on a route whose success is not JSON (GeoJSON, text, a
    # stream) FastAPI would otherwise document its errors in the success's media type.
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"model": model, "description": description,
            "content": {"application/json": {"schema": schema}}}  # fmt: skip


# For routes' ``responses=``: the error answers every authenticated route may give.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    400: _doc("The body is not what the media type says (e.g. JSON that does not parse)"),
    401: _doc("Not authenticated, or the token or API key is wrong, expired or revoked"),
    403: _doc("Authenticated, but not allowed (role, grant, key scope)"),
    404: _doc("Not found, or not visible to the caller"),
    409: _doc("The request contradicts what is stored (e.g. an id already taken)"),
    422: _doc("The request is malformed; the detail names the field", ValidationErrorPublic),
    503: _doc("A service the request needs is unreachable; retry after Retry-After seconds"),
}


def status_of(exc: DomainError) -> int:
    """The HTTP status of a domain refusal (500 for a DomainError of no kind)."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def _headers(exc: DomainError, status: int) -> dict[str, str]:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_S)}
    return {}


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = status_of(exc)
    if status == 500:
        log.error(
            "%s %s: stored data failed its own checks: %s", request.method, request.url.path, exc
        )
        return JSONResponse({"detail": "internal error"}, status_code=500)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=_headers(exc, status))


async def _chain(request: Request, exc: Exception) -> JSONResponse:
    # chain/ refused an encoding (a key, an id, base64) the request handed it.
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(part) for part in error.get("loc", ())),
            "reason": error.get("msg", ""),
        }
        for error in exc.errors()
    ]
    first = errors[0] if errors else {"field": "request", "reason": "invalid"}
    return JSONResponse(
        {"detail": f"{first['field']}: {first['reason']}", "errors": errors}, status_code=422
    )


async def _data_refused(request: Request, exc: Exception) -> JSONResponse:
    # SQLSTATE class 22: a value from the request the database cannot hold (a NUL character in
    # an id, a number out of range): the request's fault, whichever field carried it.
    return JSONResponse(
        {"detail": f"a value in the request is not acceptable: {str(exc).splitlines()[0]}"},
        status_code=422,
    )


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # A time or number from the request beyond what dates hold (e.g. year 10000): its fault.
    return JSONResponse({"detail": f"a value in the request is out of range: {exc}"}, 422)


async def _database_gone(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: PostgreSQL unavailable: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def install(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(EncodingError, _chain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(asyncpg.DataError, _data_refused)
    # asyncpg's own check of an argument (an integer beyond bigint): an InterfaceError, which
    # would otherwise read as the database being gone.
    app.add_exception_handler(asyncpg_base.DataError, _data_refused)
    app.add_exception_handler(OverflowError, _out_of_range)
    for gone in (
        OSError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.TooManyConnectionsError,
        asyncpg.ConnectionFailureError,
    ):
        app.add_exception_handler(gone, _database_gone)
