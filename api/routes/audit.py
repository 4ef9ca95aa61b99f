"""The audit log: who read or granted what, with inclusion proofs to a signed checkpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.access import is_operator_admin
from api.deps import PoolDep, PrincipalDep, SettingsDep, require_roles
from api.errors import ERROR_RESPONSES
from api.models.audit import AuditCheckpointPublic, AuditEntryPublic, AuditProofPublic
from api.models.common import MAX_EPOCH_MS
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from contracts.access import OrgKind, Role, Scope
from roadledger.audit.events import EventKind
from roadledger.audit.log import AuditHead, audit_origin, head, inclusion_proof, sign_head
from roadledger.audit.query import AuditFilter, AuditRow, get_entry, list_entries
from roadledger.identity.principal import Principal
from roadledger.log_key import load_log_key
from roadledger.settings import Settings

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)

Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.AUDITOR))]


def _viewer(principal: Principal) -> str | None:
    """The organisation whose entries the caller sees; None: the operator's, all of them."""
    if is_operator_admin(principal) or (
        principal.org_kind == OrgKind.OPERATOR and principal.has(Role.AUDITOR)
    ):
        return None
    return principal.org_id


def _entry(row: AuditRow) -> AuditEntryPublic:
    known = set(AuditEntryPublic.model_fields) - {"index", "leaf_hash", "entry"}
    fields = {k: v for k, v in row.fields.items() if k in known}
    return AuditEntryPublic(
        index=row.leaf_index, leaf_hash=row.leaf_hash.hex(), entry=row.entry.decode(), **fields
    )


def _checkpoint(current: AuditHead, settings: Settings) -> AuditCheckpointPublic:
    origin = audit_origin(settings.origin_prefix)
    key = load_log_key(settings)
    return AuditCheckpointPublic(
        origin=origin,
        tree_size=current.size,
        root_hash=current.root_hash.hex(),
        checkpoint=sign_head(current, key, origin).to_text(),
        vkey=key.vkey(origin),
    )


@router.get("", response_model=Page[AuditEntryPublic], summary="Audit entries")
async def entries(
    principal: Reader,
    pool: PoolDep,
    device_id: Annotated[str | None, Query(max_length=200)] = None,
    actor_org: Annotated[str | None, Query(max_length=64)] = None,
    scope: Scope | None = None,
    event: EventKind | None = None,
    since_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="From this time (ms, inclusive)")
    ] = None,
    until_ms: Annotated[
        int | None, Query(ge=0, le=MAX_EPOCH_MS, description="Before this time (ms)")
    ] = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[AuditEntryPublic]:
    """Audit entries the caller's organisation may see, newest first: those about its vehicles
    and grants, and its own members' and keys' actions (an admin or auditor; the operator's
    see all). ``scope`` matches data reads; a grant's entry holds its scopes joined by
    commas."""
    key = decode_cursor(cursor, 1)
    before = int(key[0]) if key is not None else None
    where = AuditFilter(
        device_id=device_id,
        actor_org=actor_org,
        scope=str(scope) if scope is not None else None,
        event=str(event) if event is not None else None,
        since_ms=since_ms,
        until_ms=until_ms,
    )
    rows = await list_entries(pool, _viewer(principal), where, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor([rows[-1].leaf_index]) if more else None
    return Page[AuditEntryPublic](items=[_entry(r) for r in rows], next_cursor=next_cursor)


@router.get("/checkpoint", response_model=AuditCheckpointPublic, summary="Audit checkpoint")
async def checkpoint(
    principal: PrincipalDep, pool: PoolDep, settings: SettingsDep
) -> AuditCheckpointPublic:
    """The audit log's latest checkpoint, signed with the log key (any authenticated caller:
    it reveals the log's size and root, nothing of its entries)."""
    del principal
    return _checkpoint(await head(pool), settings)


@router.get("/{index}/proof", response_model=AuditProofPublic, summary="Audit entry proof")
async def proof(
    index: Annotated[int, Path(ge=0)],
    principal: Reader,
    pool: PoolDep,
    settings: SettingsDep,
) -> AuditProofPublic:
    """Entry ``index`` (one the caller may see) and its inclusion proof in the tree of the
    latest signed checkpoint, which the answer carries."""
    row = await get_entry(pool, _viewer(principal), index)
    current = await head(pool)
    path = await inclusion_proof(pool, index, current.size)
    return AuditProofPublic(
        entry=_entry(row),
        tree_size=current.size,
        inclusion_path=[p.hex() for p in path],
        checkpoint=_checkpoint(current, settings),
    )
