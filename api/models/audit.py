"""The audit log: its entries, an entry's inclusion proof, and its stored checkpoints."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["AuditCheckpointPublic", "AuditEntryPublic", "AuditProofPublic"]


class AuditEntryPublic(BaseModel):
    """One audit entry: its leaf index, the verbatim leaf (canonical JSON) and its fields."""

    index: int = Field(examples=[41])
    leaf_hash: str = Field(description="RFC 9162 leaf hash, hex", examples=["3f1c..."])
    entry: str = Field(
        description="The leaf's bytes (canonical JSON); its leaf hash is SHA-256(0x00 || entry)",
        examples=['{"action":"GET /v1/vehicles/{device_id}/track","actor":"m_8c1f",...}'],
    )
    event: str = Field(examples=["data_access"])
    at_ms: int = Field(examples=[1_780_000_000_000])
    actor: str = Field(
        description="Member id, API key id, or the hash of an unknown username (failed login)"
    )
    actor_org: str | None = Field(default=None, examples=["insurer-acme"])
    via: str | None = Field(default=None, examples=["api_key"])
    owner_org: str | None = Field(default=None, examples=["fleet-a"])
    device_id: str | None = Field(default=None, examples=["veh-0001"])
    scope: str | None = Field(default=None, examples=["mileage"])
    grant_id: str | None = Field(
        default=None, description="What allowed a read ('owner' or a grant id), or the grant"
    )
    target: str | None = Field(default=None, description="The session, key or grantee acted on")
    action: str | None = Field(default=None, examples=["GET /v1/vehicles/{device_id}/track"])
    outcome: str = Field(examples=["ok"])


class AuditCheckpointPublic(BaseModel):
    """A stored checkpoint of the audit log: a C2SP signed note by the log key, with the
    witnesses' cosignatures."""

    log_id: int = Field(
        description="The audit log's id in the ledger routes (/v1/ledger/logs/{log_id}/...)"
    )
    origin: str = Field(examples=["roadledger.local/audit"])
    tree_size: int = Field(examples=[1024])
    root_hash: str = Field(description="hex", examples=["9a0b..."])
    checkpoint: str = Field(
        description="The signed note text (tlog-checkpoint), with every witness cosignature "
        "collected (tlog-cosignature lines)"
    )
    vkey: str = Field(description="The C2SP verifier key of the log key for this origin")


class AuditProofPublic(BaseModel):
    """An entry and its RFC 9162 inclusion proof in the tree the checkpoint signs."""

    entry: AuditEntryPublic
    tree_size: int
    inclusion_path: list[str] = Field(description="Sibling hashes, leaf to root, hex")
    checkpoint: AuditCheckpointPublic
