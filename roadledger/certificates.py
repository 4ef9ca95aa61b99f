"""Mileage certificates from the live ledger: what ``POST /v1/vehicles/{id}/certificates`` hands
out (format and verification: ``docs/mileage-certificate.md``).

The vehicle's stored messages in the period (``telemetry``, by device and time) are found in
its log by leaf hash; its key records are the device-key entries the registry wrote to
``ledger_outbox`` that the same log holds; the predecessor is the message of the seq before
the first. Everything is proven against one checkpoint of that log: the one covering every
leaf that the most witnesses cosigned (the newest of those), else the log's latest. Then
:func:`chain.certificate_build.build_certificate` assembles it and
:func:`chain.certificate_verify.verify_certificate` checks it. Messages stored but not yet
sequenced are not in the certificate (the gap or the uncovered end shows it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

import asyncpg

from chain.certificate import MileageCertificate
from chain.certificate_build import build_certificate
from chain.certificate_signers import KnownSigners, key_order
from chain.certificate_verify import verify_certificate
from chain.cosignature import CosignatureVerifier
from chain.entries import DEVICE_KEY_ENTRY_PREFIX
from chain.errors import CertificateError
from chain.hashing import leaf_hash
from chain.note_signers import NoteVerifier
from chain.telemetry import TelemetryMessage
from contracts.errors import Conflict, Invalid, NotFound
from roadledger.db.ledger_reads import (
    LedgerLog,
    best_checkpoint_size,
    checkpoint_note,
    inclusion_proofs,
    log_by_id,
)
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.signer_pool import SignerPool
from roadledger.witnesses import list_witness_keys

__all__ = ["MAX_CERTIFIED_MESSAGES", "CertificateRefused", "IssuedCertificate", "issue_certificate"]

# A certificate file must stay far below the verifier's 500,000 messages and 512 MiB.
MAX_CERTIFIED_MESSAGES = 200_000

_MESSAGES = """
    SELECT e.log_id, e.leaf_index, e.entry, t.seq
      FROM telemetry t
      JOIN ledger_entries e ON e.leaf_hash = t.leaf_hash
     WHERE t.device_id = $1 AND t.ts >= $2 AND t.ts < $3
"""
_PREDECESSOR = """
    SELECT e.leaf_index, e.entry
      FROM telemetry t
      JOIN ledger_entries e ON e.leaf_hash = t.leaf_hash AND e.log_id = $3
     WHERE t.device_id = $1 AND t.seq = $2
"""
# The checkpoint covering every leaf that most witnesses cosigned, newest first.
_BEST_COSIGNED = """
    SELECT tree_size FROM ledger_cosignatures
     WHERE log_id = $1 AND tree_size > $2
     GROUP BY tree_size ORDER BY count(*) DESC, tree_size DESC LIMIT 1
"""


class NothingToCertify(NotFound):
    """The vehicle has no sequenced message in the period."""


class CertificateRefused(Conflict):
    """The ledger's data does not make a certificate (the detail says what)."""


class TooManyMessages(Invalid):
    """The period holds more messages than one certificate may."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A built certificate and where it is proven."""

    certificate: MileageCertificate
    log: LedgerLog
    tree_size: int


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def _key_entries(pool: asyncpg.Pool, log: LedgerLog, device_id: str) -> dict[bytes, int]:
    """Every device-key record of ``device_id`` the log holds: entry -> leaf index."""
    rows = await pool.fetch(
        "SELECT entry FROM ledger_outbox WHERE device_id = $1 AND position($2 in entry) = 1",
        device_id,
        DEVICE_KEY_ENTRY_PREFIX,
    )
    entries = {leaf_hash(bytes(row["entry"])): bytes(row["entry"]) for row in rows}
    found = await PostgresLedgerStore(pool).find_leaves(log.origin, list(entries))
    return {entries[digest]: index for digest, index in found.items()}


async def issue_certificate(
    pool: asyncpg.Pool,
    device_id: str,
    from_ms: int,
    to_ms: int,
    log_verifier: Callable[[str], NoteVerifier],
    signers: SignerPool | None = None,
) -> IssuedCertificate:
    """The mileage certificate of ``device_id`` for ``from_ms <= ts < to_ms``, verified as an
    insurer will before it is handed out: with ``log_verifier(origin)`` and every registered
    witness key (the builder does not check key validity windows; the verifier does).

    Every signature and inclusion proof is checked once, by that verification; ``signers``
    checks the signatures in its worker process while the proofs are read and the certificate
    is built (``docs/mileage-certificate.md``, "Issuing")."""
    if from_ms >= to_ms:
        raise Invalid("to_ms: must be after from_ms")
    rows = await pool.fetch(_MESSAGES, device_id, _time(from_ms), _time(to_ms))
    if not rows:
        raise NothingToCertify(
            f"device {device_id} has no sequenced message in [{from_ms}, {to_ms})"
        )
    if len(rows) > MAX_CERTIFIED_MESSAGES:
        raise TooManyMessages(
            f"to_ms: {len(rows)} messages in the period, at most {MAX_CERTIFIED_MESSAGES} "
            "per certificate: ask for a shorter one"
        )
    log_ids = {row["log_id"] for row in rows}
    if len(log_ids) != 1:
        raise CertificateRefused(
            f"device {device_id}'s messages in the period are in {len(log_ids)} logs; a "
            "certificate proves against one: ask for a period within one"
        )
    log = await log_by_id(pool, log_ids.pop())
    messages = [(bytes(row["entry"]), int(row["leaf_index"])) for row in rows]
    keys = await _key_entries(pool, log, device_id)
    if not keys:
        raise CertificateRefused(f"device {device_id}: no key record is in log {log.log_id} yet")
    raws = [raw for raw, _ in messages]
    finding = (
        None
        if signers is None
        else asyncio.create_task(signers.find(raws, key_order(keys.items())))
    )
    # the first *sequenced* message: one stored but not sequenced yet is not certified
    first_seq = min(int(row["seq"]) for row in rows)
    try:
        return await _issue(
            pool, (device_id, from_ms, to_ms), log_verifier, messages, first_seq, log, keys, finding
        )
    finally:
        if finding is not None:
            finding.cancel()  # when refused before its answer was needed


async def _issue(
    pool: asyncpg.Pool,
    period: tuple[str, int, int],
    log_verifier: Callable[[str], NoteVerifier],
    messages: list[tuple[bytes, int]],
    first_seq: int,
    log: LedgerLog,
    keys: dict[bytes, int],
    finding: asyncio.Task[KnownSigners | None] | None,
) -> IssuedCertificate:
    """:func:`issue_certificate` once the messages and key records are read."""
    device_id, from_ms, to_ms = period
    before = await pool.fetchrow(_PREDECESSOR, device_id, first_seq - 1, log.log_id)
    predecessor = (bytes(before["entry"]), int(before["leaf_index"])) if before else None
    leaves = [index for _, index in messages] + list(keys.values())
    if predecessor is not None:
        leaves.append(predecessor[1])
    size = await best_checkpoint_size(pool, log, max(leaves))
    note = await checkpoint_note(pool, log, size)
    proofs = await inclusion_proofs(pool, log, leaves, size)
    witnesses = [
        CosignatureVerifier.from_vkey(key.vkey)
        for key in await list_witness_keys(pool)
        if not key.revoked
    ]

    parsed: list[TelemetryMessage] = []
    try:
        built = await asyncio.to_thread(
            partial(build_certificate, checked=False, parsed_out=parsed),
            device_id, from_ms, to_ms, messages, list(keys.items()),
            lambda index, _size: proofs[index], note, predecessor,
        )  # fmt: skip
        known = None if finding is None else await finding
        # The one check of every signature (but those the worker checked) and every proof:
        # the offline verifier's, on what is served (docs/mileage-certificate.md, "Issuing").
        await asyncio.to_thread(
            partial(verify_certificate, known_signers=known, parsed_messages=parsed),
            built, log_verifier(log.origin), witnesses, 0,
        )  # fmt: skip
    except CertificateError as exc:
        raise CertificateRefused(f"the ledger's data makes no valid certificate: {exc}") from None
    return IssuedCertificate(built, log, size)
