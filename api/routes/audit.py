"""The audit log: who read or granted what, with inclusion proofs to its stored, cosigned
checkpoints. The audit log is a ledger log (``roadledger/audit/log.py``): its consistency
proofs, checkpoints by size and witnesses' cosignatures are the ledger routes' too."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request

from api.access import is_operator_admin
from api.deps import PoolDep, PrincipalDep, require_roles
from api.errors import ERROR_RESPONSES
from api.models.audit import AuditCheckpointPublic, AuditEntryPublic, AuditProofPublic
from api.models.common import MAX_EPOCH_MS
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from chain.checkpoint import SignedCheckpoint
from chain.note_signers import Ed25519Signer
from contracts.access import OrgKind, Role, Scope
from roadledger.audit.events import EventKind
from roadledger.audit.log import audit_ledger_log, sign_head
from roadledger.audit.query import AuditFilter, AuditRow, get_entry, list_entries
from roadledger.db.ledger_reads import (
    LedgerLog,
    ProofRequestInvalid,
    checkpoint_note,
    inclusion_proofs,
)
from roadledger.identity.principal import Principal

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)

Reader = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.AUDITOR))]
SizeQuery = Annotated[
    int | None, Query(ge=0, description="A stored checkpoint's tree size (default: the latest)")
]


def _signer(request: Request) -> Ed25519Signer:
    """The audit log's checkpoint signer, made when the API started (``api.app``)."""
    signer: Ed25519Signer = request.app.state.audit_signer
    return signer


SignerDep = Annotated[Ed25519Signer, Depends(_signer)]


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


async def _checkpoint(
    pool: asyncpg.Pool, signer: Ed25519Signer, tree_size: int | None
) -> tuple[LedgerLog, AuditCheckpointPublic]:
    """The stored checkpoint of ``tree_size`` with its cosignatures; None: the latest, the
    appended head signed first so that it covers every entry the caller may have seen."""
    if tree_size is None:
        async with pool.acquire() as conn:
            await sign_head(conn, signer)
    log = await audit_ledger_log(pool)
    note = await checkpoint_note(pool, log, tree_size)
    signed = SignedCheckpoint.from_text(note).checkpoint
    return log, AuditCheckpointPublic(
        log_id=log.log_id,
        origin=log.origin,
        tree_size=signed.size,
        root_hash=signed.root_hash.hex(),
        checkpoint=note,
        vkey=signer.to_vkey(),
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
    principal: PrincipalDep, pool: PoolDep, signer: SignerDep, tree_size: SizeQuery = None
) -> AuditCheckpointPublic:
    """The audit log's checkpoint signed with the log key, with every witness cosignature
    collected for it: the latest, or the stored one of ``tree_size`` (any authenticated
    caller: it reveals the log's size and root, nothing of its entries). Consistency proofs
    and cosignatures go through the ledger routes of its ``log_id``."""
    del principal
    return (await _checkpoint(pool, signer, tree_size))[1]


@router.get("/{index}/proof", response_model=AuditProofPublic, summary="Audit entry proof")
async def proof(
    index: Annotated[int, Path(ge=0)],
    principal: Reader,
    pool: PoolDep,
    signer: SignerDep,
    tree_size: SizeQuery = None,
) -> AuditProofPublic:
    """Entry ``index`` (one the caller may see) and its inclusion proof in the tree of a
    stored checkpoint, which the answer carries with its cosignatures: the latest, or the one
    of ``tree_size`` (e.g. one the caller's witnesses cosigned)."""
    row = await get_entry(pool, _viewer(principal), index)
    log, signed = await _checkpoint(pool, signer, tree_size)
    if index >= signed.tree_size:
        raise ProofRequestInvalid(
            f"tree_size: the checkpoint of size {signed.tree_size} does not hold entry {index}"
        )
    path = (await inclusion_proofs(pool, log, [index], signed.tree_size))[index]
    return AuditProofPublic(
        entry=_entry(row),
        tree_size=signed.tree_size,
        inclusion_path=[p.hex() for p in path],
        checkpoint=signed,
    )
