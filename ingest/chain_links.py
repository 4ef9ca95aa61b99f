"""The per-device hash chain at ingest, and claims of revoked keys: what a batch's claims settle.

:func:`settle_claims` claims a batch's accepted messages (:mod:`ingest.dedupe`) and then:

1. **Void claims give way.** A stored claim is *void* when the registry now says its key was
   not valid at the claim's ``ts`` (the key was revoked at or before it: a revocation dated
   back to when the key was stolen). A conflicting message that passed every check takes the
   void claim's (device, seq) over (:meth:`~ingest.dedupe.DeviceMessageStore.supersede`,
   compare and swap) and is forwarded. So a thief who squatted seqs with a stolen key before
   anyone knew cannot block the device's next key, once the key is revoked from the theft on;
   claims signed before the revocation time stay binding (they are the device's history).
2. **Links are checked.** For each forwarded message, its ``prev`` against the stored hash of
   seq - 1, and the stored ``prev`` of seq + 1 against its own hash (the successor came
   first: out-of-order arrival is normal, and the link is judged when its second end
   arrives). A mismatch is a :class:`ChainBreak`: the message is still forwarded, carrying
   the break (the verifier's ``chain_broken`` header), and analytics raises a
   ``chain_broken`` warning. Links to void claims are not judged (the thief's message is not
   part of the chain; the genuine one that supersedes it is judged when it arrives), nor
   links to rows that predate the stored ``prev`` (schema version 6).

Why flag and not quarantine: a link has two ends and only the one arriving now can be
refused. When the successor came first, refusing the arriving predecessor would let anyone
who once got a message in ahead (a conflict, a squatted seq) block the genuine device; and a
refused link-breaker would leave the messages chained after it unchecked (their predecessor
would be unknown). Forwarded with the flag, a re-flashed device that continues at seq 11
with a made-up ``prev`` and a lower odometer is in the ledger *as a break*: the verifier's
header, a critical ``chain_broken`` warning (beside ``odometer_rollback``), and the
certificate's ``chain_broken`` anomaly all show it; nothing makes it look continuous.

Deterministic on a re-read (the verifier's crash-safety argument): the outcome comes from the
stored rows after the claim and the supersession, which a re-read of the same batch finds
again (a superseding claim finds its own row: a replay), and which record carries a break
depends only on the batch: the link's later end if it is in the batch, else its earlier end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chain.device_keys import DeviceKey
from chain.encoding import b64url_encode
from contracts.topics import chain_link
from ingest.dedupe import (
    DeviceMessageStore,
    MessageClaim,
    Outcome,
    StoredMessage,
    resolve,
)

__all__ = [
    "ChainBreak",
    "Settled",
    "header_value",
    "is_void",
    "settle_claims",
]

Key = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The link ``from_seq`` -> ``from_seq + 1`` of ``device_id`` does not hold."""

    device_id: str
    from_seq: int
    detail: str

    @property
    def link(self) -> str:
        """``"<from_seq>-><to_seq>"``, as in the verifier's ``chain_broken`` header."""
        return chain_link(self.from_seq)


def header_value(breaks: Sequence[ChainBreak]) -> tuple[str, str]:
    """The ``chain_broken`` and ``detail`` header values of a record carrying ``breaks``:
    the links comma-separated (``"9->10,10->11"``), the explanations joined by ``"; "``."""
    return ",".join(b.link for b in breaks), "; ".join(b.detail for b in breaks)


@dataclass(frozen=True, slots=True)
class Settled:
    """One claim's fate: its outcome, the row stored for its (device, seq), the links it
    carries as broken (forwarded claims only: the one before it, the one after it, or
    both), and the void row it superseded (if any)."""

    claim: MessageClaim
    outcome: Outcome
    row: StoredMessage
    chain_breaks: tuple[ChainBreak, ...] = ()
    superseded: StoredMessage | None = None


def is_void(row: StoredMessage, keys: Sequence[DeviceKey]) -> bool:
    """Whether the registry now says ``row``'s key was revoked at or before ``row.ts``."""
    if row.key_id is None or row.ts is None:
        return False
    for key in keys:
        if key.key_id == row.key_id:
            return key.revoked_at_ms is not None and row.ts >= key.revoked_at_ms
    return False


def _short(digest: bytes | None) -> str:
    return "(unknown)" if digest is None else b64url_encode(digest)[:12] + "..."


def _find_breaks(
    claims: Sequence[MessageClaim],
    outcomes: Sequence[Outcome],
    rows: Mapping[Key, StoredMessage],
    keys: Mapping[str, Sequence[DeviceKey]],
) -> dict[int, list[ChainBreak]]:
    """Index of the claim that carries broken links -> the breaks (see the docstring).

    A link's later end (the message whose ``prev`` names the other) carries it when it is
    forwarded in this batch; otherwise the earlier end, arriving after its successor.
    """
    forwarded = {
        c.key for c, o in zip(claims, outcomes, strict=True) if o.forwards and c.prev is not None
    }
    breaks: dict[int, list[ChainBreak]] = {}
    for index, (claim, outcome) in enumerate(zip(claims, outcomes, strict=True)):
        if not outcome.forwards or claim.prev is None:
            continue
        device, seq = claim.key
        device_keys = keys.get(device, ())
        before = rows.get((device, seq - 1)) if seq > 1 else None
        if (
            before is not None
            and before.message_hash != claim.prev
            and not is_void(before, device_keys)
        ):
            breaks.setdefault(index, []).append(
                ChainBreak(
                    device,
                    seq - 1,
                    f"{device} seq {seq - 1} -> {seq}: prev {_short(claim.prev)} is not the hash "
                    f"of the seq {seq - 1} accepted from {before.source} "
                    f"({_short(before.message_hash)})",
                )
            )
        after = rows.get((device, seq + 1))
        if (
            after is not None
            and (device, seq + 1) not in forwarded
            and after.prev is not None
            and after.prev != claim.message_hash
            and not is_void(after, device_keys)
        ):
            breaks.setdefault(index, []).append(
                ChainBreak(
                    device,
                    seq,
                    f"{device} seq {seq} -> {seq + 1}: the seq {seq + 1} accepted earlier from "
                    f"{after.source} names prev {_short(after.prev)}, not this message "
                    f"({_short(claim.message_hash)})",
                )
            )
    return breaks


async def settle_claims(
    store: DeviceMessageStore,
    claims: Sequence[MessageClaim],
    keys: Mapping[str, Sequence[DeviceKey]],
) -> list[Settled]:
    """Claim ``claims`` in ``store``, let void claims give way, check the links (module
    docstring). ``keys``: every key of each claiming device, revoked ones included (what
    the verifier classified with). One round trip, two when a void claim is superseded."""
    if not claims:
        return []
    claimed = await store.claim_linked(claims)
    rows = dict(claimed.rows)
    outcomes = resolve(claims, rows)
    replacements: list[tuple[MessageClaim, bytes]] = []
    old: dict[Key, StoredMessage] = {}
    for claim, outcome in zip(claims, outcomes, strict=True):
        row = rows[claim.key]
        if (
            outcome is Outcome.CONFLICT
            and claim.key not in old
            and is_void(row, keys.get(claim.device_id, ()))
        ):
            old[claim.key] = row
            replacements.append((claim, row.message_hash))
    superseded: dict[Key, StoredMessage] = {}
    if replacements:
        now = await store.supersede(replacements)
        for key, row in now.items():
            rows[key] = row
            if row.new:
                superseded[key] = old[key]
        outcomes = resolve(claims, rows)
    everything = {**claimed.neighbours, **rows}
    breaks = _find_breaks(claims, outcomes, everything, keys)
    return [
        Settled(
            claim,
            outcome,
            rows[claim.key],
            tuple(breaks.get(index, ())),
            superseded.get(claim.key)
            if outcome is Outcome.NEW and rows[claim.key].source == claim.source
            else None,
        )
        for index, (claim, outcome) in enumerate(zip(claims, outcomes, strict=True))
    ]
