"""Where each record of a verified batch goes: its :class:`Decision` and its headers.

The verifier's loop (:mod:`ingest.verifier`) classifies a batch and claims its accepted
records; this module turns the verdicts and the claims' outcomes into one :class:`Decision`
per record (``telemetry.verified`` or ``telemetry.quarantine``, with the reason), builds the
headers of the copy produced, and counts what went where (:class:`VerifierStats`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from chain.errors import RejectReason
from chain.jws import MAX_JWS_BYTES
from contracts.topics import (
    HEADER_CHAIN_BROKEN,
    HEADER_DETAIL,
    HEADER_OVERSIZE,
    HEADER_PAYLOAD_SHA256,
    HEADER_REASON,
    HEADER_RECV_MS,
    HEADER_SRC,
    Source,
    recv_ms_of,
)
from ingest.chain_links import ChainBreak, Settled, header_value
from ingest.classify import Accepted, Rejected, Verdict, one_line
from ingest.dedupe import MessageClaim, Outcome, describe
from roadledger.metrics import Sample, counters
from roadledger.stream import StreamRecord

__all__ = [
    "Decision",
    "VerifierStats",
    "bridge_dropped",
    "claims_of",
    "decisions_of",
]

log = logging.getLogger(__name__)


def bridge_dropped(record: StreamRecord) -> Rejected | None:
    """``oversize`` for a payload the bridge did not put on the stream (too large for a Kafka
    record: empty value, its length and SHA-256 in headers); None for every other record."""
    size = record.header(HEADER_OVERSIZE)
    if size is None:
        return None
    digest = record.header(HEADER_PAYLOAD_SHA256) or b"unknown"
    return Rejected(
        RejectReason.OVERSIZE,
        one_line(
            f"{size.decode('ascii', 'replace')} bytes, limit is {MAX_JWS_BYTES}; the bridge "
            f"kept only its sha256 {digest.decode('ascii', 'replace')}"
        ),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one raw record goes: ``reason`` None -> ``telemetry.verified``."""

    record: StreamRecord
    recv_ms: int
    reason: RejectReason | None
    detail: str = ""
    replay: bool = False
    chain_breaks: tuple[ChainBreak, ...] = ()

    @property
    def source(self) -> Source:
        return Source(self.record.partition, self.record.offset)

    def headers(self) -> list[tuple[str, bytes]]:
        """The headers of the forwarded or quarantined copy."""
        common = [
            (HEADER_RECV_MS, str(self.recv_ms).encode()),
            (HEADER_SRC, str(self.source).encode()),
        ]
        if self.reason is None:
            if self.chain_breaks:
                links, detail = header_value(self.chain_breaks)
                return [
                    (HEADER_CHAIN_BROKEN, links.encode()),
                    (HEADER_DETAIL, one_line(detail, 600).encode("utf-8", "backslashreplace")),
                    *common,
                ]
            return common
        return [
            (HEADER_REASON, self.reason.value.encode()),
            (HEADER_DETAIL, self.detail.encode("utf-8", "backslashreplace")),
            *common,
        ]


@dataclass
class VerifierStats:
    """Counters since start: records read, forwarded (own replays included), per reason."""

    received: int = 0
    forwarded: int = 0
    replayed: int = 0
    chain_broken: int = 0
    batches: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def count(self, decisions: Sequence[Decision]) -> None:
        self.batches += 1
        self.received += len(decisions)
        for decision in decisions:
            if decision.reason is None:
                self.forwarded += 1
                self.replayed += decision.replay
                self.chain_broken += len(decision.chain_breaks)
            else:
                self.rejected[decision.reason.value] += 1

    def samples(self) -> list[Sample]:
        """Prometheus samples: the counters, and quarantined records by reason code."""
        counted = {
            "received": self.received,
            "forwarded": self.forwarded,
            "replayed": self.replayed,
            "chain_broken": self.chain_broken,
            "batches": self.batches,
        }
        return [
            *counters("roadledger_verifier", counted),
            *(
                Sample("roadledger_quarantined_total", n, (("reason", reason),))
                for reason, n in sorted(self.rejected.items())
            ),
        ]

    def snapshot(self) -> dict[str, int]:
        """Flat counters for a log line or a metrics endpoint."""
        counts = {
            "received": self.received,
            "forwarded": self.forwarded,
            "replayed": self.replayed,
            "chain_broken": self.chain_broken,
            "quarantined": sum(self.rejected.values()),
            "batches": self.batches,
        }
        return counts | {f"rejected.{reason}": n for reason, n in sorted(self.rejected.items())}


def claims_of(records: Sequence[StreamRecord], verdicts: Sequence[Verdict]) -> list[MessageClaim]:
    """The ``device_messages`` claim of every accepted record, in batch order."""
    claims: list[MessageClaim] = []
    for record, verdict in zip(records, verdicts, strict=True):
        if isinstance(verdict, Accepted):
            claims.append(
                MessageClaim(
                    verdict.device_id,
                    verdict.seq,
                    verdict.message_hash,
                    Source(record.partition, record.offset),
                    verdict.prev,
                    verdict.key_id,
                    verdict.ts,
                )
            )
    return claims


def decisions_of(
    records: Sequence[StreamRecord],
    verdicts: Sequence[Verdict],
    settled: Iterator[Settled],
) -> list[Decision]:
    """One decision per record: a rejection keeps its verdict; an accepted record (whose
    claim outcome is the next of ``settled``) is forwarded, or quarantined as a duplicate or
    a conflict."""
    decisions = []
    for record, verdict in zip(records, verdicts, strict=True):
        recv_ms = recv_ms_of(record)
        if isinstance(verdict, Rejected):
            if verdict.internal:
                log.error(
                    "raw:%d:%d quarantined after an internal error: %s",
                    record.partition,
                    record.offset,
                    verdict.detail,
                )
            decisions.append(Decision(record, recv_ms, verdict.reason, verdict.detail))
            continue
        claim = next(settled)
        outcome = claim.outcome
        if outcome.forwards:
            replay = outcome is Outcome.REPLAY
            links = claim.chain_breaks
            decisions.append(Decision(record, recv_ms, None, replay=replay, chain_breaks=links))
        else:
            reason = (
                RejectReason.CONFLICT if outcome is Outcome.CONFLICT else RejectReason.DUPLICATE
            )
            detail = one_line(describe(claim.claim, claim.row, outcome))
            decisions.append(Decision(record, recv_ms, reason, detail))
    return decisions
