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

Each row also keeps the message's ``prev`` link, signing key and ``ts`` (NULL in rows written
before schema version 6), for the hash-chain check and for claims of revoked keys
(:mod:`ingest.chain_links`): a claim whose key the registry now says was not valid at its
``ts`` is *void*, and :meth:`DeviceMessageStore.supersede` hands its (device, seq) to a valid
message (compare-and-swap on the old hash, so concurrent verifiers agree on one winner).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol

import asyncpg

from contracts.topics import Source

__all__ = [
    "ClaimError",
    "Claimed",
    "DeviceMessageStore",
    "InMemoryDeviceMessages",
    "MessageClaim",
    "Outcome",
    "PostgresDeviceMessages",
    "StoredMessage",
    "describe",
    "first_claims",
    "resolve",
]


class ClaimError(Exception):
    """The store could neither insert nor read back some claims (it broke its contract)."""


@dataclass(frozen=True, slots=True)
class MessageClaim:
    """An accepted message asking to be the one stored for its (device, seq).

    ``prev``: the 32-byte hash it names as its predecessor (empty for seq 1); ``key_id``: the
    key that signed it; ``ts``: its device time. None: not known (the chain and the
    revoked-key rule then skip it).
    """

    device_id: str
    seq: int
    message_hash: bytes
    source: Source
    prev: bytes | None = None
    key_id: str | None = None
    ts: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.device_id, self.seq)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """The ``device_messages`` row of a (device, seq); ``new``: stored by this very claim.

    ``prev``, ``key_id``, ``ts`` as in :class:`MessageClaim` (None in rows older than them).
    """

    message_hash: bytes
    source: Source
    new: bool
    prev: bytes | None = None
    key_id: str | None = None
    ts: int | None = None

    @classmethod
    def of(cls, claim: MessageClaim, *, new: bool) -> StoredMessage:
        """The row ``claim`` stores."""
        return cls(claim.message_hash, claim.source, new, claim.prev, claim.key_id, claim.ts)


class Claimed(NamedTuple):
    """What :meth:`DeviceMessageStore.claim_linked` returns: the row now stored for each
    claimed (device, seq), and the stored rows of their neighbours (seq - 1 and seq + 1) that
    are not themselves claimed in the batch."""

    rows: dict[tuple[str, int], StoredMessage]
    neighbours: dict[tuple[str, int], StoredMessage]


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

    ``claim_linked`` MUST, for every distinct (device, seq) among ``claims``: store the first
    claim of it (in sequence order) if none is stored, atomically (of concurrent claimers
    exactly one wins), and return the row now stored, ``new`` telling whether this call
    stored it; plus the stored rows of seq - 1 and seq + 1 of each claim that were committed
    when it read them. The rows MUST be durable when it returns: the verifier forwards on
    their strength.

    ``supersede`` MUST replace the row of each claim's (device, seq) by the claim only if the
    row still has the given old hash (compare and swap: of concurrent supersessions exactly
    one wins), durably, and return the row now stored for each (``new`` True where this call
    replaced it).
    """

    async def claim_linked(self, claims: Sequence[MessageClaim]) -> Claimed: ...

    async def supersede(
        self, replacements: Sequence[tuple[MessageClaim, bytes]]
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


def _neighbour_keys(claims: Sequence[MessageClaim]) -> set[tuple[str, int]]:
    claimed = {c.key for c in claims}
    near = {(c.device_id, c.seq + d) for c in claims for d in (-1, 1)}
    return {key for key in near if key not in claimed and key[1] >= 1}


class InMemoryDeviceMessages:
    """:class:`DeviceMessageStore` over a dict (tests, benchmarks); not durable.

    ``rows`` maps (device, seq) to (hash, source) as stored; ``stored`` has the whole rows.
    """

    def __init__(self) -> None:
        self.stored: dict[tuple[str, int], StoredMessage] = {}

    @property
    def rows(self) -> dict[tuple[str, int], tuple[bytes, Source]]:
        return {key: (row.message_hash, row.source) for key, row in self.stored.items()}

    async def claim(self, claims: Sequence[MessageClaim]) -> dict[tuple[str, int], StoredMessage]:
        return (await self.claim_linked(claims)).rows

    async def claim_linked(self, claims: Sequence[MessageClaim]) -> Claimed:
        result: dict[tuple[str, int], StoredMessage] = {}
        for claim in first_claims(claims):
            row = self.stored.get(claim.key)
            if row is None:
                self.stored[claim.key] = StoredMessage.of(claim, new=False)
                result[claim.key] = StoredMessage.of(claim, new=True)
            else:
                result[claim.key] = row
        near = {k: self.stored[k] for k in _neighbour_keys(claims) if k in self.stored}
        return Claimed(result, near)

    async def supersede(
        self, replacements: Sequence[tuple[MessageClaim, bytes]]
    ) -> dict[tuple[str, int], StoredMessage]:
        result: dict[tuple[str, int], StoredMessage] = {}
        for claim, old_hash in replacements:
            row = self.stored[claim.key]
            if row.message_hash == old_hash:
                self.stored[claim.key] = StoredMessage.of(claim, new=False)
                result[claim.key] = StoredMessage.of(claim, new=True)
            else:
                result[claim.key] = row
        return result


# One statement: insert what is new, return those rows, read the rows that were already
# there, and the stored neighbours (seq - 1, seq + 1) for the hash-chain check. The outer
# SELECTs run on the statement's snapshot, which does not include the rows the INSERT adds, so
# the first two halves never overlap. A row committed by a concurrent claimer after our
# snapshot is in neither half; claim() asks again for those (rare: one partition, so one
# device, has one verifier except during a rebalance).
_COLUMNS: Final = (
    "device_id, seq, message_hash, source_partition, source_offset, prev, key_id, signed_ts"
)
_CLAIM_SQL: Final = f"""
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::integer[], $5::bigint[],
                         $6::bytea[], $7::text[], $8::bigint[])
        AS t ({_COLUMNS})
), inserted AS (
    INSERT INTO device_messages ({_COLUMNS})
    SELECT {_COLUMNS} FROM input
    ON CONFLICT (device_id, seq) DO NOTHING
    RETURNING {_COLUMNS}
)
SELECT {_COLUMNS}, 'new' AS found FROM inserted
UNION ALL
SELECT {", ".join("m." + c for c in _COLUMNS.split(", "))}, 'old'
FROM device_messages AS m JOIN input AS i USING (device_id, seq)
UNION ALL
SELECT {", ".join("m." + c for c in _COLUMNS.split(", "))}, 'near'
FROM device_messages AS m
JOIN unnest($9::text[], $10::bigint[]) AS n (device_id, seq) USING (device_id, seq)
"""  # noqa: S608 - constants only

# Compare and swap: the row is replaced only if it still holds the void claim's hash.
_SUPERSEDE_SQL: Final = f"""
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::integer[], $5::bigint[],
                         $6::bytea[], $7::text[], $8::bigint[], $9::bytea[])
        AS t ({_COLUMNS}, old_hash)
)
UPDATE device_messages AS m
   SET message_hash = i.message_hash, source_partition = i.source_partition,
       source_offset = i.source_offset, prev = i.prev, key_id = i.key_id,
       signed_ts = i.signed_ts, seen_at = now()
  FROM input AS i
 WHERE m.device_id = i.device_id AND m.seq = i.seq AND m.message_hash = i.old_hash
RETURNING m.device_id, m.seq
"""  # noqa: S608 - constants only

_READ_SQL: Final = f"""
SELECT {", ".join("m." + c for c in _COLUMNS.split(", "))}
FROM device_messages AS m
JOIN unnest($1::text[], $2::bigint[]) AS k (device_id, seq) USING (device_id, seq)
"""  # noqa: S608 - constants only


def _row(record: asyncpg.Record, *, new: bool) -> StoredMessage:
    prev = record[5]
    return StoredMessage(
        bytes(record[2]),
        Source(record[3], record[4]),
        new,
        bytes(prev) if prev is not None else None,
        record[6],
        record[7],
    )


def _arrays(claims: Sequence[MessageClaim]) -> list[list[Any]]:
    return [
        [c.device_id for c in claims],
        [c.seq for c in claims],
        [c.message_hash for c in claims],
        [c.source.partition for c in claims],
        [c.source.offset for c in claims],
        [c.prev for c in claims],
        [c.key_id for c in claims],
        [c.ts for c in claims],
    ]


_MAX_ATTEMPTS: Final = 5


class PostgresDeviceMessages:
    """:class:`DeviceMessageStore` on the ``device_messages`` table: one round trip per batch."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, claims: Sequence[MessageClaim]) -> dict[tuple[str, int], StoredMessage]:
        return (await self.claim_linked(claims)).rows

    async def claim_linked(self, claims: Sequence[MessageClaim]) -> Claimed:
        pending = first_claims(claims)
        result: dict[tuple[str, int], StoredMessage] = {}
        near: dict[tuple[str, int], StoredMessage] = {}
        # Only the neighbours outside the batch are read: a device's run of consecutive seqs
        # in one batch needs two lookups, not two per message.
        wanted_near = sorted(_neighbour_keys(pending))
        near_arrays = [[k[0] for k in wanted_near], [k[1] for k in wanted_near]]
        for _ in range(_MAX_ATTEMPTS):
            if not pending:
                return Claimed(result, near)
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(_CLAIM_SQL, *_arrays(pending), *near_arrays)
                near_arrays = [[], []]  # read once; a retry is for the claims alone
            for row in rows:
                key = (row[0], row[1])
                if row[8] == "near":
                    near[key] = _row(row, new=False)
                else:
                    result[key] = _row(row, new=row[8] == "new")
            pending = [c for c in pending if c.key not in result]
        raise ClaimError(
            f"device_messages: {len(pending)} claims neither inserted nor found after "
            f"{_MAX_ATTEMPTS} attempts (first: {pending[0].device_id} seq {pending[0].seq})"
        )

    async def supersede(
        self, replacements: Sequence[tuple[MessageClaim, bytes]]
    ) -> dict[tuple[str, int], StoredMessage]:
        if not replacements:
            return {}
        claims = [claim for claim, _ in replacements]
        async with self.pool.acquire() as conn:
            replaced = await conn.fetch(
                _SUPERSEDE_SQL, *_arrays(claims), [old for _, old in replacements]
            )
            won = {(r[0], r[1]) for r in replaced}
            lost = [c for c in claims if c.key not in won]
            current = (
                await conn.fetch(_READ_SQL, [c.device_id for c in lost], [c.seq for c in lost])
                if lost
                else []
            )
        result = {c.key: StoredMessage.of(c, new=True) for c in claims if c.key in won}
        result |= {(r[0], r[1]): _row(r, new=False) for r in current}
        return result
