"""The ledger: logs, blocks, proofs, keys, witnesses' cosignatures, certificates.

Hashes are standard padded base64 (as in checkpoints and certificates).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.models.common import EpochMs

__all__ = [
    "BlockPublic",
    "CertificateCreate",
    "ConsistencyProofPublic",
    "CosignatureCreate",
    "CosignaturePublic",
    "EntryPublic",
    "InclusionProofPublic",
    "LedgerKeysPublic",
    "LogKeyPublic",
    "LogPublic",
    "WitnessKeyCreate",
    "WitnessKeyPublic",
]

_B64_HASH = ["BNj/fce0Yq0KhJbXst/K5Uw7o90QRAk6zcLagdDZvRE="]


class LogPublic(BaseModel):
    """One log: its origin, size, root and latest signed checkpoint (without cosignatures;
    ``GET .../checkpoint`` has them)."""

    log_id: int = Field(description="The id the other ledger routes take as {log_id}")
    origin: str = Field(examples=["roadledger.local/telemetry/0"])
    tree_size: int
    root_hash: str | None = Field(examples=_B64_HASH)
    checkpoint: str | None


class BlockPublic(BaseModel):
    """A block header in its JSON form (docs/ledger-formats.md, "Blocks")."""

    version: int
    origin: str
    height: int
    prev_block_hash: str
    first_leaf_index: int
    leaf_count: int
    entries_root: str
    tree_size: int
    tree_root: str
    timestamp_ms: int
    block_hash: str


class InclusionProofPublic(BaseModel):
    """An RFC 9162 inclusion proof of one leaf in the tree of ``tree_size`` leaves."""

    log_id: int
    leaf_index: int
    tree_size: int
    leaf_hash: str = Field(examples=_B64_HASH)
    root_hash: str = Field(description="The root of the tree of tree_size", examples=_B64_HASH)
    proof: list[str]


class ConsistencyProofPublic(BaseModel):
    """An RFC 9162 consistency proof from the tree of ``first`` leaves to that of ``second``."""

    log_id: int
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


class EntryPublic(BaseModel):
    """One leaf of a log: its kind and verbatim bytes (base64)."""

    log_id: int
    leaf_index: int
    kind: str = Field(examples=["telemetry", "device-key", "rules"])
    device_id: str | None
    leaf_hash: str
    entry: str


class LogKeyPublic(BaseModel):
    """A log's checkpoint verifier key (C2SP vkey, type 0x01)."""

    origin: str
    vkey: str


class WitnessKeyCreate(BaseModel):
    """A witness's cosignature/v1 verifier key (C2SP vkey, type 0x04)."""

    vkey: str = Field(
        min_length=10,
        max_length=500,
        examples=["witness.example.org/w1+6b66290d+BKSKu3a8rTmsvuMtVD14kWKWb5SZtEfVkXJ8LVfK3poF"],
    )
    org_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="The witness organisation (an operator admin only; default: the caller's)",
    )

    model_config = ConfigDict(extra="forbid")


class WitnessKeyPublic(BaseModel):
    """A registered witness key."""

    name: str
    org_id: str
    key_id: str = Field(examples=["6b66290d"])
    vkey: str
    created_at_ms: int
    revoked: bool


class LedgerKeysPublic(BaseModel):
    """What a verifier trusts: the logs' keys and the witnesses' keys."""

    logs: list[LogKeyPublic]
    witnesses: list[WitnessKeyPublic]


class CosignatureCreate(BaseModel):
    """A witness's C2SP cosignature/v1 line for the log's checkpoint of ``tree_size``."""

    tree_size: int = Field(ge=0, examples=[8])
    cosignature: str = Field(
        min_length=10,
        max_length=1000,
        examples=[
            "— witness.example.org/w1 a2YpDQAAAABpVbkCn2gQrG4jL3WFZTgx/UM8w4hJSXDTY+RK1sbcgCV+"
            "ERuAO/2gkkqVDnQ8vcpwxkGyzPGefqW4U5h/5TP8MFbADw=="
        ],
    )

    model_config = ConfigDict(extra="forbid")


class CosignaturePublic(BaseModel):
    """A cosignature as kept."""

    log_id: int
    tree_size: int
    witness_name: str
    cosigned_at: int = Field(description="When the witness cosigned, POSIX seconds")


class CertificateCreate(BaseModel):
    """The period of a mileage certificate: ``from_ms <= ts < to_ms``."""

    from_ms: EpochMs = Field(examples=[1_767_225_600_000])
    to_ms: EpochMs = Field(examples=[1_769_904_000_000])

    model_config = ConfigDict(extra="forbid")
