"""Field types every resource shares."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Query
from pydantic import Field

__all__ = ["MAX_EPOCH_MS", "EpochMs", "EpochMsQuery"]

# 9999-12-31T23:59:59.999Z: the last instant PostgreSQL's timestamptz and Python's datetime
# both hold; a later one is a malformed request (422), not a server error.
MAX_EPOCH_MS: Final = 253_402_300_799_999

EpochMs = Annotated[int, Field(ge=0, le=MAX_EPOCH_MS, description="ms since the epoch (UTC)")]
EpochMsQuery = Annotated[int, Query(ge=0, le=MAX_EPOCH_MS, description="ms since the epoch")]
