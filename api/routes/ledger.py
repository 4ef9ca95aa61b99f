"""The ledger, read side: logs, signed checkpoints with cosignatures, blocks, RFC 9162 proofs,
entries, keys; and the witnesses' side: their keys and the cosignatures they send.

Proofs, checkpoints and blocks reveal hashes only: any member reads them. An entry holds a
vehicle's signed data: it is read through ``require_access`` (scope ``track``) for the device
it belongs to.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from api.access import is_operator_admin, require_access
from api.deps import PoolDep, PrincipalDep, ProofsDep, SettingsDep, require_roles
from api.errors import ERROR_RESPONSES
from api.models.ledger import (
    BlockPublic,
    ConsistencyProofPublic,
    CosignatureCreate,
    CosignaturePublic,
    EntryPublic,
    InclusionProofPublic,
    LedgerKeysPublic,
    LogKeyPublic,
    LogPublic,
    WitnessKeyCreate,
    WitnessKeyPublic,
)
from api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from chain.encoding import b64_decode, b64_encode
from chain.errors import EncodingError
from chain.hashing import leaf_hash as hash_of_leaf
from contracts.access import OrgKind, Role, Scope
from roadledger.db.ledger_reads import (
    LedgerLog,
    ProofRequestInvalid,
    blocks_after,
    checkpoint_note,
    entry_at,
    entry_subject,
    leaf_index_of,
    list_logs,
    log_by_id,
)
from roadledger.identity.errors import NotPermitted
from roadledger.identity.principal import Principal
from roadledger.log_key import existing_log_key
from roadledger.witnesses import (
    WitnessKey,
    add_cosignature,
    list_witness_keys,
    register_witness_key,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/ledger", tags=["ledger"], responses=ERROR_RESPONSES)

SizeQuery = Annotated[int | None, Query(ge=0, description="A tree size (default: the latest)")]


def _log(log: LedgerLog) -> LogPublic:
    root = b64_encode(log.root_hash) if log.root_hash is not None else None
    return LogPublic(
        log_id=log.log_id,
        origin=log.origin,
        tree_size=log.tree_size,
        root_hash=root,
        checkpoint=log.checkpoint,
    )


def _witness(key: WitnessKey) -> WitnessKeyPublic:
    return WitnessKeyPublic(
        name=key.name,
        org_id=key.org_id,
        key_id=f"{key.key_id:08x}",
        vkey=key.vkey,
        created_at_ms=key.created_at_ms,
        revoked=key.revoked,
    )


@router.get("/logs", response_model=list[LogPublic])
async def logs(principal: PrincipalDep, pool: PoolDep) -> list[LogPublic]:
    """Every log: origin, tree size, root hash and latest signed checkpoint."""
    del principal
    return [_log(log) for log in await list_logs(pool)]


@router.get("/logs/{log_id}/checkpoint", response_class=PlainTextResponse)
async def checkpoint(
    log_id: int, principal: PrincipalDep, pool: PoolDep, tree_size: SizeQuery = None
) -> PlainTextResponse:
    """The log's signed checkpoint (C2SP tlog-checkpoint, text/plain) with every witness
    cosignature collected for it: the latest, or the one of ``tree_size``."""
    del principal
    note = await checkpoint_note(pool, await log_by_id(pool, log_id), tree_size)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get("/logs/{log_id}/blocks", response_model=Page[BlockPublic])
async def blocks(
    log_id: int,
    principal: PrincipalDep,
    pool: PoolDep,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[BlockPublic]:
    """The log's block headers, by height."""
    del principal
    log = await log_by_id(pool, log_id)
    after = decode_cursor(cursor, 1)
    if after is not None and not isinstance(after[0], int):
        raise ProofRequestInvalid("cursor: not a cursor of this list")
    found = await blocks_after(pool, log.log_id, None if after is None else after[0], limit)
    more = len(found) == limit
    return Page[BlockPublic](
        items=[BlockPublic(**block.to_json()) for block in found],
        next_cursor=encode_cursor([found[-1].height]) if more and found else None,
    )


@router.get("/logs/{log_id}/proofs/inclusion", response_model=InclusionProofPublic)
async def inclusion(
    log_id: int,
    principal: PrincipalDep,
    pool: PoolDep,
    proofs: ProofsDep,
    leaf_index: Annotated[int | None, Query(ge=0, description="The leaf, by index")] = None,
    leaf_hash: Annotated[
        str | None, Query(max_length=64, description="The leaf, by its RFC 9162 hash (base64)")
    ] = None,
    tree_size: SizeQuery = None,
) -> InclusionProofPublic:
    """The RFC 9162 inclusion proof of a leaf (by index or by leaf hash) in the tree of
    ``tree_size`` leaves (default: the latest checkpoint's)."""
    del principal
    if (leaf_index is None) == (leaf_hash is None):
        raise ProofRequestInvalid("leaf_index: give exactly one of leaf_index and leaf_hash")
    log = await proofs.logs.covering(pool, log_id, tree_size)
    size = log.tree_size if tree_size is None else tree_size
    if leaf_hash is not None:
        try:
            digest = b64_decode(leaf_hash, "leaf_hash")
        except EncodingError as exc:
            raise ProofRequestInvalid(f"leaf_hash: {exc}") from None
        leaf_index = await leaf_index_of(pool, log, digest)
    assert leaf_index is not None
    answer = await proofs.inclusion(pool, log, leaf_index, size)
    return InclusionProofPublic(
        log_id=log.log_id,
        leaf_index=leaf_index,
        tree_size=size,
        leaf_hash=b64_encode(answer.leaf_hash),
        root_hash=b64_encode(answer.root),
        proof=[b64_encode(node) for node in answer.proof],
    )


@router.get("/logs/{log_id}/proofs/consistency", response_model=ConsistencyProofPublic)
async def consistency(
    log_id: int,
    principal: PrincipalDep,
    pool: PoolDep,
    proofs: ProofsDep,
    first: Annotated[int, Query(ge=0, description="The older tree size")],
    second: SizeQuery = None,
) -> ConsistencyProofPublic:
    """The RFC 9162 consistency proof from the tree of ``first`` leaves to that of ``second``
    (default: the latest), with both roots."""
    del principal
    log = await proofs.logs.covering(pool, log_id, first, second)
    size = log.tree_size if second is None else second
    answer = await proofs.consistency(pool, log, first, size)
    return ConsistencyProofPublic(
        log_id=log.log_id,
        first=first,
        second=size,
        first_root=b64_encode(answer.first_root),
        second_root=b64_encode(answer.second_root),
        proof=[b64_encode(node) for node in answer.proof],
    )


@router.get("/logs/{log_id}/entries/{index}", response_model=EntryPublic)
async def entry(log_id: int, index: int, principal: PrincipalDep, pool: PoolDep) -> EntryPublic:
    """One leaf's verbatim bytes. A vehicle's message or key record needs the ``track`` scope
    on that vehicle (its owner, or a grant); a rules entry is public to members."""
    log = await log_by_id(pool, log_id)
    raw = await entry_at(pool, log, index)
    kind, device_id = entry_subject(raw)
    if device_id is not None:
        await require_access(
            pool, principal, device_id, Scope.TRACK,
            action="GET /v1/ledger/logs/{log_id}/entries/{index}",
        )  # fmt: skip
    elif kind != "rules":
        raise NotPermitted(f"index: leaf {index} is not an entry this API shows")
    return EntryPublic(
        log_id=log.log_id,
        leaf_index=index,
        kind=kind,
        device_id=device_id,
        leaf_hash=b64_encode(hash_of_leaf(raw)),
        entry=b64_encode(raw),
    )


@router.get("/keys", response_model=LedgerKeysPublic)
async def keys(principal: PrincipalDep, pool: PoolDep, settings: SettingsDep) -> LedgerKeysPublic:
    """The keys a verifier trusts: each log's checkpoint key and every witness's key (C2SP
    vkeys). Compare them with what the operator and the witnesses publish elsewhere."""
    del principal
    found = await list_logs(pool)
    log_keys = []
    if found:
        key = existing_log_key(settings)
        log_keys = [LogKeyPublic(origin=log.origin, vkey=key.vkey(log.origin)) for log in found]
    witnesses = [_witness(key) for key in await list_witness_keys(pool)]
    return LedgerKeysPublic(logs=log_keys, witnesses=witnesses)


@router.post("/witness-keys", status_code=201, response_model=WitnessKeyPublic)
async def add_witness_key(
    body: WitnessKeyCreate,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
    pool: PoolDep,
) -> WitnessKeyPublic:
    """Register a witness's cosignature/v1 verifier key: an admin of a witness organisation
    for its own, an operator admin for any witness organisation (``org_id``)."""
    org_id = body.org_id or principal.org_id
    if not is_operator_admin(principal) and org_id != principal.org_id:
        raise NotPermitted("org_id: only an operator admin registers another's witness key")
    async with pool.acquire() as conn:
        return _witness(await register_witness_key(conn, org_id, body.vkey, principal.subject))


@router.post("/logs/{log_id}/cosignatures", status_code=201, response_model=CosignaturePublic)
async def cosign(
    log_id: int,
    body: CosignatureCreate,
    principal: Annotated[Principal, Depends(require_roles(Role.WITNESS))],
    pool: PoolDep,
) -> CosignaturePublic:
    """A witness's cosignature of the log's checkpoint of ``tree_size``: verified with the
    witness organisation's registered key it names, kept, and served with the checkpoint."""
    if principal.org_kind != OrgKind.WITNESS:
        raise NotPermitted("only a witness organisation's members send cosignatures")
    log = await log_by_id(pool, log_id)
    stored = await add_cosignature(pool, log, principal.org_id, body.tree_size, body.cosignature)
    return CosignaturePublic(
        log_id=stored.log_id,
        tree_size=stored.tree_size,
        witness_name=stored.witness_name,
        cosigned_at=stored.cosigned_at,
    )
