"""Vehicles' off-ledger documents: the owner registers a document's hash, which goes into
the vehicle's log; readers with the ``certificate`` scope list them and get the proof."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.access import require_access
from api.deps import PoolDep, PrincipalDep, require_roles
from api.errors import ERROR_RESPONSES
from api.models.documents import DocumentCreate, DocumentProofPublic, DocumentPublic
from chain.encoding import b64_encode
from chain.hashing import leaf_hash
from contracts.access import Role, Scope
from roadledger.documents import Document, document_proof, list_documents, register_document
from roadledger.identity.principal import Principal

__all__ = ["router"]

router = APIRouter(prefix="/v1/vehicles", tags=["documents"], responses=ERROR_RESPONSES)


def _public(document: Document) -> DocumentPublic:
    return DocumentPublic(
        document_id=document.document_id,
        device_id=document.device_id,
        org_id=document.org_id,
        sha256=document.sha256,
        kind=document.kind,
        description=document.description,
        created_by=document.created_by,
        registered_at_ms=document.registered_at_ms,
        entry=b64_encode(document.entry),
    )


@router.post("/{device_id}/documents", status_code=201, response_model=DocumentPublic)
async def register(
    device_id: str,
    body: DocumentCreate,
    principal: Annotated[Principal, Depends(require_roles(Role.ADMIN))],
    pool: PoolDep,
) -> DocumentPublic:
    """Register a document's SHA-256 for one of the caller's vehicles (an admin of its owner).
    The hash goes into the vehicle's log; the description stays here."""
    async with pool.acquire() as conn:
        document = await register_document(
            conn, principal.org_id, device_id, body.sha256, body.kind, body.description,
            principal.subject,
        )  # fmt: skip
    return _public(document)


@router.get("/{device_id}/documents", response_model=list[DocumentPublic])
async def documents(device_id: str, principal: PrincipalDep, pool: PoolDep) -> list[DocumentPublic]:
    """The vehicle's registered documents (``certificate`` access to the vehicle)."""
    await require_access(
        pool, principal, device_id, Scope.CERTIFICATE,
        action="GET /v1/vehicles/{device_id}/documents",
    )  # fmt: skip
    return [_public(document) for document in await list_documents(pool, device_id)]


@router.get("/{device_id}/documents/{document_id}/proof", response_model=DocumentProofPublic)
async def proof(
    device_id: str, document_id: str, principal: PrincipalDep, pool: PoolDep
) -> DocumentProofPublic:
    """The proof that the document's hash is in the ledger: its entry's inclusion proof to a
    signed checkpoint (the one most witnesses cosigned); 409 until it is sequenced."""
    await require_access(
        pool, principal, device_id, Scope.CERTIFICATE,
        action="GET /v1/vehicles/{device_id}/documents/{document_id}/proof",
    )  # fmt: skip
    found = await document_proof(pool, device_id, document_id)
    return DocumentProofPublic(
        document=_public(found.document),
        log_id=found.log.log_id,
        origin=found.log.origin,
        leaf_index=found.leaf_index,
        tree_size=found.tree_size,
        leaf_hash=b64_encode(leaf_hash(found.document.entry)),
        proof=[b64_encode(node) for node in found.proof],
        checkpoint=found.checkpoint,
    )
