"""Vehicles' off-ledger documents: a hash in the ledger, the document with its owner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DocumentCreate", "DocumentProofPublic", "DocumentPublic"]


class DocumentCreate(BaseModel):
    """A document's SHA-256 (hex), what kind it is and, off the ledger, a description."""

    sha256: str = Field(
        pattern=r"^[0-9a-fA-F]{64}$",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    kind: str = Field(pattern=r"^[a-z0-9_-]{1,40}$", examples=["inspection"])
    description: str | None = Field(
        default=None, max_length=500, examples=["annual inspection, odometer photographed"]
    )

    model_config = ConfigDict(extra="forbid")


class DocumentPublic(BaseModel):
    """A registered document."""

    document_id: str
    device_id: str
    org_id: str
    sha256: str
    kind: str
    description: str | None
    created_by: str
    registered_at_ms: int
    entry: str = Field(description="The ledger entry (base64): its leaf hash is what is proven")


class DocumentProofPublic(BaseModel):
    """The document's entry in a log with its RFC 9162 inclusion proof to ``checkpoint``."""

    document: DocumentPublic
    log_id: int
    origin: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    proof: list[str]
    checkpoint: str = Field(description="The signed checkpoint note, cosignatures included")
