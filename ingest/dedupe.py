"""Deduplication on (device, seq): which bytes were accepted first, and from which raw record.

``device_messages`` remembers, for each (device, seq), the hash of the first message accepted
for it and its source: the partition and offset of the ``telemetry.raw`` record it came in.
A newly accepted message is one of:

- **new**: no row yet; the claim stores it. Forward.
- **replay**: the row has the same hash *and the same source*: this very raw record was
  accepted before, and we are reading it again because the verifier stopped before committing
  its offset. Forward again (the earlier forward may not have happened).
- **duplicate**: same hash, another source: the same bytes arrived twice (MQTT redelivery, a
  replay attack). Not forwarded.
- **conflict**: other bytes for the same (device, seq). Not forwarded, ever: only the first
  bytes claimed for a (device, seq) are ever forwarded.

:func:`resolve` is pure; the storage is a :class:`DeviceMessageStore` parameter, PostgreSQL in
production (:class:`PostgresDeviceMessages`, one round trip per batch) and a dict in tests
(:class:`InMemoryDeviceMessages`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

import asyncpg

__all__ = [
    "ClaimError",
    "DeviceMessageStore",
    "InMemoryDeviceMessages",
    "MessageClaim",
    "Outcome",
    "PostgresDeviceMessages",
    "Source",
    "StoredMessage",
    "describe",
    "first_claims",
    "resolve",
]


class ClaimError(Exception):
    """The store could neither insert nor read back some claims (it broke its contract)."""


class Source(NamedTuple):
    """Where a message came in: its ``telemetry.raw`` partition and offset."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"raw:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class MessageClaim:
    """An accepted message asking to be the one stored for its (device, seq)."""

    device_id: str
    seq: int
    message_hash: bytes
    source: Source

    @property
    def key(self) -> tuple[str, int]:
        return (self.device_id, self.seq)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """The ``device_messages`` row of a (device, seq); ``new``: stored by this very claim."""

    message_hash: bytes
    source: Source
    new: bool


class Outcome(enum.Enum):
    """What deduplication decided for one accepted message."""

    NEW = "new"
    REPLAY = "replay"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"

    @property
    def forwards(self) -> bool:
        """True if the message goes to ``telemetry.verified``."""
        return self in (Outcome.NEW, Outcome.REPLAY)


class DeviceMessageStore(Protocol):
    """Storage of the first accepted message per (device, seq).

    ``claim`` MUST, for every distinct (device, seq) among ``claims``: store the first claim
    of it (in sequence order) if none is stored, atomically (of concurrent claimers exactly
    one wins), and return the row now stored, ``new`` telling whether this call stored it.
    The row MUST be durable when ``claim`` returns: the verifier forwards on its strength.
    """

    async def claim(
        self, claims: Sequence[MessageClaim]
    ) -> dict[tuple[str, int], StoredMessage]: ...


def first_claims(claims: Sequence[MessageClaim]) -> list[MessageClaim]:
    """The first claim of each (device, seq), in order: what a batch asks the store to keep."""
    seen: dict[tuple[str, int], MessageClaim] = {}
    for claim in claims:
        seen.setdefault(claim.key, claim)
    return list(seen.values())


def resolve(
    claims: Sequence[MessageClaim], stored: dict[tuple[str, int], StoredMessage]
) -> list[Outcome]:
    """The outcome of each claim given the rows ``claim`` returned (pure).

    A second copy of a (device, seq) in the same batch has another source than the first, so
    it is a ``duplicate`` (same bytes) or a ``conflict`` (other bytes), as it would be in a
    later batch.
    """
    outcomes = []
    for claim in claims:
        row = stored[claim.key]
        if row.message_hash != claim.message_hash:
            outcomes.append(Outcome.CONFLICT)
        elif row.source != claim.source:
            outcomes.append(Outcome.DUPLICATE)
        else:
            outcomes.append(Outcome.NEW if row.new else Outcome.REPLAY)
    return outcomes


def describe(claim: MessageClaim, row: StoredMessage, outcome: Outcome) -> str:
    """One line for the quarantine ``detail`` header (hashes and positions, nothing secret)."""
    where = f"{claim.device_id} seq {claim.seq}"
    if outcome is Outcome.CONFLICT:
        return (
            f"{where}: other bytes were accepted first (sha256 {row.message_hash.hex()[:16]}... "
            f"from {row.source}; these are {claim.message_hash.hex()[:16]}...)"
        )
    return f"{where}: the same bytes were accepted first from {row.source}"


class InMemoryDeviceMessages:
    """:class:`DeviceMessageStore` over a dict (tests, benchmarks); not durable."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], tuple[bytes, Source]] = {}

    async def claim(self, claims: Sequence[MessageClaim]) -> dict[tuple[str, int], StoredMessage]:
        result: dict[tuple[str, int], StoredMessage] = {}
        for claim in first_claims(claims):
            row = self.rows.get(claim.key)
            if row is None:
                self.rows[claim.key] = (claim.message_hash, claim.source)
                result[claim.key] = StoredMessage(claim.message_hash, claim.source, new=True)
            else:
                result[claim.key] = StoredMessage(row[0], row[1], new=False)
        return result


# One statement: insert what is new, return those rows, and read the rows that were already
# there. The outer SELECT runs on the statement's snapshot, which does not include the rows
# the INSERT adds, so the two halves never overlap. A row committed by a concurrent claimer
# after our snapshot is in neither half; claim() asks again for those (rare: one partition,
# so one device, has one verifier except during a rebalance).
_CLAIM_SQL: Final = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::integer[], $5::bigint[])
        AS t (device_id, seq, message_hash, source_partition, source_offset)
), inserted AS (
    INSERT INTO device_messages (device_id, seq, message_hash, source_partition, source_offset)
    SELECT device_id, seq, message_hash, source_partition, source_offset FROM input
    ON CONFLICT (device_id, seq) DO NOTHING
    RETURNING device_id, seq, message_hash, source_partition, source_offset
)
SELECT device_id, seq, message_hash, source_partition, source_offset, true AS new
FROM inserted
UNION ALL
SELECT m.device_id, m.seq, m.message_hash, m.source_partition, m.source_offset, false
FROM device_messages AS m JOIN input AS i USING (device_id, seq)
"""

_MAX_ATTEMPTS: Final = 5


class PostgresDeviceMessages:
    """:class:`DeviceMessageStore` on the ``device_messages`` table: one round trip per batch."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, claims: Sequence[MessageClaim]) -> dict[tuple[str, int], StoredMessage]:
        pending = first_claims(claims)
        result: dict[tuple[str, int], StoredMessage] = {}
        for _ in range(_MAX_ATTEMPTS):
            if not pending:
                return result
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(
                    _CLAIM_SQL,
                    [c.device_id for c in pending],
                    [c.seq for c in pending],
                    [c.message_hash for c in pending],
                    [c.source.partition for c in pending],
                    [c.source.offset for c in pending],
                )
            for row in rows:
                key = (row[0], row[1])
                result[key] = StoredMessage(bytes(row[2]), Source(row[3], row[4]), new=row[5])
            pending = [c for c in pending if c.key not in result]
        raise ClaimError(
            f"device_messages: {len(pending)} claims neither inserted nor found after "
            f"{_MAX_ATTEMPTS} attempts (first: {pending[0].device_id} seq {pending[0].seq})"
        )
