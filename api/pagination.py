"""Pagination, the same on every list route: ``?limit=`` (1-1000, default 100) and an opaque
``?cursor=`` taken from the previous page's ``next_cursor`` (null on the last page).

A cursor is base64url JSON of the last item's sort key; a malformed one is 422 naming
``cursor``. Lists are ordered by a unique key, so a page never repeats or skips an item
while new items arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from contracts.errors import Invalid

__all__ = ["CursorQuery", "LimitQuery", "Page", "decode_cursor", "encode_cursor"]

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Items per page")]
CursorQuery = Annotated[
    str | None, Query(max_length=500, description="next_cursor of the previous page")
]


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None


class BadCursor(Invalid):
    """The cursor is not one this API handed out."""


def encode_cursor(key: list[Any]) -> str:
    """The cursor after an item whose sort key is ``key``."""
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The sort key in ``cursor`` (a list of ``arity`` values), None for the first page."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise BadCursor("cursor: not a cursor this API handed out") from None
    if not isinstance(key, list) or len(key) != arity:
        raise BadCursor("cursor: not a cursor of this list")
    return key
