"""Verification steps on a certificate's messages, one at a time, and on the stated summary.

:class:`MessageChecker` checks each message as it is read (so a file is verified in bounded
memory) and recomputes the summary alongside; :meth:`MessageChecker.finish` then compares it
with the stated one. The order of all steps is in :mod:`chain.certificate_verify`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Generic, TypeVar

from chain.certificate_checks import (
    chain_anomaly,
    effective_keys,
    revocation_anomaly,
    revocation_leaves,
    signing_key,
)
from chain.certificate_parts import CertifiedMessage
from chain.certificate_signers import KnownSigners
from chain.certificate_stream import CertificateHead
from chain.checkpoint import Checkpoint
from chain.device_keys import DeviceKey
from chain.errors import CertificateError, ChainError, TelemetryError
from chain.hashing import leaf_hash
from chain.jws import CompactJws
from chain.merkle_batch import InclusionChecker
from chain.mileage import Anomaly, Gap, MileageSummary, SummaryBuilder
from chain.telemetry import DeviceKind, TelemetryMessage

__all__ = ["MessageChecker"]

_T = TypeVar("_T", bound=Gap | Anomaly)


class _Tally(Generic[_T]):
    """Compares recomputed gaps or anomalies with the stated ones as they are found."""

    def __init__(self, stated: tuple[_T, ...]) -> None:
        self.stated = stated
        self.count = 0
        self.first_difference: tuple[int, _T] | None = None

    def append(self, item: _T) -> None:
        if self.first_difference is None and (
            self.count >= len(self.stated) or self.stated[self.count] != item
        ):
            self.first_difference = (self.count, item)
        self.count += 1

    def difference(self) -> str | None:
        """None if equal; else what the first difference is."""
        stated, count = self.stated, self.count
        if self.first_difference is None:
            if count == len(stated):
                return None
            return (
                f"stated {len(stated)}, recomputed {count}: "
                f"[{count}] {_render(stated[count])} is not in the messages"
            )
        i, item = self.first_difference
        if i < len(stated):
            return f"[{i}] stated {_render(stated[i])}, recomputed {_render(item)}"
        return f"stated {len(stated)}, recomputed {count}: {_render(item)} is missing"


class MessageChecker:
    """Checks messages one at a time, keeping only what the next check needs."""

    def __init__(
        self,
        head: CertificateHead,
        cp: Checkpoint,
        records: Sequence[DeviceKey],
        known: KnownSigners | None = None,
        parsed: Sequence[TelemetryMessage] = (),
    ) -> None:
        self.head = head
        self.inclusion = InclusionChecker(cp.size, cp.root_hash)
        self.keys = effective_keys(records)
        # answers for other keys, or keys in another order, could differ from signing_key's
        order = tuple(key.public_key.raw for key in self.keys)
        self.known = known.signers if known is not None and known.keys == order else {}
        self.parsed = parsed
        self.revoked_at_leaf = revocation_leaves(
            zip(records, (k.leaf_index for k in head.device_keys), strict=True)
        )
        self.stated_anomalies = set(head.summary.anomalies)
        self.gaps = _Tally(head.summary.gaps)
        self.anomalies = _Tally(head.summary.anomalies)
        self.summary = SummaryBuilder(self.gaps, self.anomalies)
        self.previous: TelemetryMessage | None = None
        self.chain_failure: CertificateError | None = None
        self.first_ts = 2**63
        self.last_ts = -1

    def add(self, i: int, item: CertifiedMessage) -> TelemetryMessage:
        name, head, raw = f"messages[{i}]", self.head, item.raw
        # parse(raw) as done before, by the same functions: used only for these very bytes
        parsed = self.parsed[i] if i < len(self.parsed) else None
        if parsed is not None and parsed.raw != raw:
            parsed = None
        try:
            jws = CompactJws.from_bytes(raw) if parsed is None else parsed.jws
        except TelemetryError as exc:
            raise CertificateError(name, str(exc)) from None
        if jws.header.kid != head.device_id:
            raise CertificateError(
                name,
                f"bad_header: kid {jws.header.kid!r:.66} is not the certificate's device "
                f"{head.device_id!r}",
            )
        known = self.known.get(raw, -1)
        key = (
            signing_key(jws, self.keys)
            if known == -1
            else (None if known is None else self.keys[known])
        )
        if key is None:
            raise CertificateError(
                name,
                f"bad_signature: the signature verifies under none of the {len(self.keys)} "
                f"certified keys of {head.device_id}",
            )
        try:
            message = TelemetryMessage.from_jws(jws) if parsed is None else parsed
        except TelemetryError as exc:
            raise CertificateError(name, str(exc)) from None
        seq, ts = message.telemetry.seq, message.telemetry.ts
        if message.telemetry.kind is not DeviceKind.VEHICLE:
            raise CertificateError(name, f"seq {seq}: schema: an RSU message has no odometer")
        try:
            key.check_valid_at(ts)
        except TelemetryError as exc:
            raise CertificateError(name, f"seq {seq}: {exc}") from None
        if not head.from_ms <= ts < head.to_ms:
            raise CertificateError(
                name,
                f"seq {seq}: ts {ts} is outside the certificate's range "
                f"[{head.from_ms}, {head.to_ms})",
            )
        try:
            self.inclusion.verify(item.leaf_index, leaf_hash(raw), item.inclusion_proof)
        except ChainError as exc:
            raise CertificateError(
                name, f"seq {seq}: inclusion proof of leaf {item.leaf_index}: {exc}"
            ) from None
        extra: list[Anomaly] = []
        previous = self.previous
        if previous is not None:
            before = previous.telemetry.seq
            if seq == before:
                raise CertificateError(name, f"seq {seq} repeats messages[{i - 1}]")
            if seq < before:
                raise CertificateError(
                    name, f"seq {seq} follows seq {before}: messages must be sorted by seq"
                )
            broken = chain_anomaly(previous, message)
            if broken is not None:
                if broken not in self.stated_anomalies and self.chain_failure is None:
                    # Reported after every message is checked, as a broken link always was.
                    self.chain_failure = CertificateError(
                        f"chain[seq {before}->{seq}]", broken.detail
                    )
                extra.append(broken)
        late = revocation_anomaly(
            message, item.leaf_index, key, self.revoked_at_leaf.get(key.public_key.raw)
        )
        if late is not None:
            extra.append(late)
        self.summary.add(message.telemetry, extra)
        self.previous = message
        self.first_ts = min(self.first_ts, ts)
        self.last_ts = max(self.last_ts, ts)
        return message

    def finish(self) -> None:
        """The deferred chain failure, then the summary, field by field in declaration order."""
        if self.chain_failure is not None:
            raise self.chain_failure
        if self.previous is None:
            raise CertificateError("messages", "expected at least one element")
        recomputed = self.summary.scalars()
        stated = self.head.summary
        for field in fields(MileageSummary):
            if field.name == "gaps":
                detail = self.gaps.difference()
            elif field.name == "anomalies":
                detail = self.anomalies.difference()
            else:
                mine, theirs = getattr(stated, field.name), recomputed[field.name]
                detail = None if mine == theirs else f"stated {mine}, recomputed {theirs}"
            if detail is not None:
                raise CertificateError(f"summary.{field.name}", detail)


def _render(value: Gap | Anomaly) -> str:
    if isinstance(value, Gap):
        return json.dumps({"after_seq": value.after_seq, "before_seq": value.before_seq})
    return json.dumps({"seq": value.seq, "kind": str(value.kind), "detail": value.detail})
