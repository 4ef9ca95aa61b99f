"""Warnings: the list a caller may see, and one warning with where its evidence is in the
ledger. Who sees what: ``docs/api.md``, "Warnings" (the live feed: ``warning_feed``)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Query

from analytics.warnings.store import (
    Severity,
    Warning,
    WarningFilter,
    WarningType,
    ledger_positions,
    list_warnings,
    load_warning,
    located_in,
)
from api.access import require_access
from api.deps import PoolDep, PrincipalDep
from api.errors import ERROR_RESPONSES
from api.models.common import MAX_EPOCH_MS
from api.models.warnings import (
    EvidenceInLedgerPublic,
    EvidencePublic,
    WarningDetailPublic,
    WarningPublic,
)
from api.pagination import BadCursor, CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from contracts.access import DATA_ROLES, Scope
from contracts.errors import Invalid, NotFound
from roadledger.identity.errors import NotPermitted
from roadledger.identity.grants import UnknownDevice
from roadledger.identity.principal import Principal
from roadledger.identity.visibility import jurisdictions, visibility

__all__ = ["public", "router"]

router = APIRouter(prefix="/v1/warnings", tags=["warnings"], responses=ERROR_RESPONSES)


class UnknownWarning(NotFound):
    """No such warning visible to the caller."""


class BadSpan(Invalid):
    """``to_ms`` is not after ``from_ms``."""


def public(w: Warning) -> WarningPublic:
    """The API's form of a warning."""
    return WarningPublic(
        warning_id=w.warning_id,
        type=w.type.value,
        severity=w.severity.value,
        device_id=w.device_id,
        segment_id=w.segment_id,
        from_ts_ms=w.from_ts_ms,
        to_ts_ms=w.to_ts_ms,
        rule_version=w.rule_version,
        evidence=[EvidencePublic(**e.to_json()) for e in w.evidence],
        detail=dict(w.detail),
    )


@router.get("", response_model=Page[WarningPublic])
async def warnings(
    principal: PrincipalDep,
    pool: PoolDep,
    kind: Annotated[WarningType | None, Query(alias="type", description="Only this type")] = None,
    severity: Annotated[Severity | None, Query(description="Only this severity")] = None,
    device_id: Annotated[str | None, Query(max_length=128, description="Only this device")] = None,
    segment: Annotated[int | None, Query(ge=0, description="Only this segment's")] = None,
    from_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="Span ends at or after")
    ] = None,
    to_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="Span starts before")
    ] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[WarningPublic]:
    """The warnings the caller may see, newest first (by start, then id): its organisation's
    vehicles', those granted to it for ``warnings``, and an authority's located in its
    jurisdiction. The span filters keep warnings overlapping ``[from_ms, to_ms)``."""
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise BadSpan("to_ms: must be after from_ms")
    key = decode_cursor(cursor, 2)
    if key is not None and not (type(key[0]) is int and isinstance(key[1], str)):
        raise BadCursor("cursor: not a cursor of this list")
    seen = await visibility(pool, principal, Scope.WARNINGS)
    wanted = WarningFilter(
        kind.value if kind is not None else None,
        severity.value if severity is not None else None,
        device_id,
        segment,
        from_ms,
        to_ms,
    )
    found = await list_warnings(
        pool, seen, wanted, before=(key[0], key[1]) if key else None, limit=limit + 1
    )
    page = found[:limit]
    more = len(found) > limit
    return Page[WarningPublic](
        items=[public(w) for w in page],
        next_cursor=encode_cursor([page[-1].from_ts_ms, page[-1].warning_id]) if more else None,
    )


async def require_visible(pool: asyncpg.Pool, principal: Principal, found: Warning) -> None:
    """Pass when the caller may see ``found``: through its device (``require_access``), or as
    an authority where it is located in its jurisdiction; 404 (403 when a grant exists but does
    not open it now) otherwise."""
    refusal: Exception = UnknownWarning(f"no warning {found.warning_id!r} is visible to you")
    if found.device_id is not None:
        try:
            await require_access(
                pool, principal, found.device_id, Scope.WARNINGS,
                action="GET /v1/warnings/{warning_id}",
            )  # fmt: skip
            return
        except UnknownDevice:
            pass  # its message would name the device
        except NotPermitted as exc:
            refusal = exc
    if principal.has(*DATA_ROLES) and principal.may_use(Scope.WARNINGS):
        areas = await jurisdictions(pool, principal)
        if areas and await located_in(pool, found.warning_id, areas):
            return
    raise refusal


@router.get("/{warning_id}", response_model=WarningDetailPublic)
async def one_warning(
    warning_id: Annotated[str, Path(max_length=128)], principal: PrincipalDep, pool: PoolDep
) -> WarningDetailPublic:
    """One warning, with the ledger position (log, leaf index) of each record it cites: ask
    the ledger for their inclusion proofs. 404 unless the caller may see it."""
    found = await load_warning(pool, warning_id)
    if found is None:
        raise UnknownWarning(f"no warning {warning_id!r} is visible to you")
    await require_visible(pool, principal, found)
    leaves = [e.leaf_hash for e in found.evidence if e.leaf_hash is not None]
    where = await ledger_positions(pool, leaves)
    evidence = []
    for e in found.evidence:
        log, index = where.get(e.leaf_hash, (None, None)) if e.leaf_hash else (None, None)
        evidence.append(EvidenceInLedgerPublic(**e.to_json(), log=log, leaf_index=index))
    return WarningDetailPublic(**public(found).model_dump(exclude={"evidence"}), evidence=evidence)
