"""What the certificate builder and verifier both compute from the ledger's view of a device.

Both must agree to the byte (the verifier recomputes the summary the builder stated), so the
rules live here once:

* **key validity** (:func:`effective_keys`): records in log order; per public key the latest
  record decides ``valid_from_ms`` and the earliest revocation ever recorded is final;
* **who signed** (:func:`signing_key`): the first effective key whose signature verifies;
* **revocation by log order** (:func:`revocation_leaves`, :func:`revocation_anomaly`): a
  message whose leaf comes after the first record revoking its key was sequenced when the log
  already knew the key was revoked. Its ``ts`` (the device's clock, which a thief sets) says
  nothing about that, so the leaf order is what counts; the message is flagged
  ``sequenced_after_revocation``;
* **the hash chain** (:func:`chain_anomaly`): ``b = a + 1`` whose ``prev`` is not the hash of
  ``a`` is flagged ``chain_broken``;
* **inclusion** (:func:`check_inclusion`): an entry is the leaf it claims to be of the tree
  the checkpoint commits to.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chain.checkpoint import Checkpoint
from chain.device_keys import DeviceKey
from chain.hashing import leaf_hash
from chain.jws import CompactJws
from chain.merkle import verify_inclusion
from chain.mileage import Anomaly, AnomalyKind
from chain.telemetry import TelemetryMessage, chain_hash

__all__ = [
    "chain_anomaly",
    "check_inclusion",
    "effective_keys",
    "revocation_anomaly",
    "revocation_leaves",
    "signing_key",
]


def effective_keys(records: Iterable[DeviceKey]) -> list[DeviceKey]:
    """One record per public key: the latest, with the earliest revocation ever recorded."""
    by_key: dict[bytes, DeviceKey] = {}
    for record in records:
        previous = by_key.get(record.public_key.raw)
        if previous is not None and previous.revoked_at_ms is not None:
            record = record.revoke(previous.revoked_at_ms)
        by_key[record.public_key.raw] = record
    return list(by_key.values())


def revocation_leaves(records: Iterable[tuple[DeviceKey, int]]) -> dict[bytes, int]:
    """Raw public key -> leaf index of the first record (in log order) that revokes it."""
    first: dict[bytes, int] = {}
    for record, leaf_index in sorted(records, key=lambda pair: pair[1]):
        if record.revoked_at_ms is not None:
            first.setdefault(record.public_key.raw, leaf_index)
    return first


def signing_key(jws: CompactJws, keys: Sequence[DeviceKey]) -> DeviceKey | None:
    """The first of ``keys`` under which ``jws``'s signature verifies, or None."""
    return next(
        (k for k in keys if k.public_key.is_valid_signature(jws.signature, jws.signing_input)),
        None,
    )


def chain_anomaly(previous: TelemetryMessage, current: TelemetryMessage) -> Anomaly | None:
    """``chain_broken`` at ``current`` if it directly follows ``previous`` but does not link."""
    a, b = previous.telemetry.seq, current.telemetry.seq
    if b != a + 1:
        return None  # a gap: there is no link to check
    expected = chain_hash(previous.raw)
    if current.telemetry.prev == expected:
        return None
    return Anomaly(
        b,
        AnomalyKind.CHAIN_BROKEN.value,
        f"prev of seq {b} is {current.telemetry.prev!r}, but the hash of seq {a} is {expected!r}",
    )


def revocation_anomaly(
    message: TelemetryMessage, leaf_index: int, key: DeviceKey, revocation_leaf: int | None
) -> Anomaly | None:
    """``sequenced_after_revocation`` if ``leaf_index`` comes after ``revocation_leaf``."""
    if revocation_leaf is None or leaf_index < revocation_leaf:
        return None
    t = message.telemetry
    return Anomaly(
        t.seq,
        AnomalyKind.SEQUENCED_AFTER_REVOCATION.value,
        f"seq {t.seq} (ts {t.ts}) is at leaf {leaf_index}, after leaf {revocation_leaf} that "
        f"revoked key {key.key_id} at {key.revoked_at_ms}",
    )


def check_inclusion(entry: bytes, leaf_index: int, proof: Sequence[bytes], cp: Checkpoint) -> None:
    """Check that ``entry`` is leaf ``leaf_index`` of the tree ``cp`` commits to.

    Raises :class:`chain.errors.ProofError` (or its ``RootMismatchError``) when it is not.
    """
    verify_inclusion(leaf_index, cp.size, leaf_hash(entry), cp.root_hash, proof)
