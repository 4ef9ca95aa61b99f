"""Every message of a fault run counted at every stage, and the ledger checked.

:func:`count_run` reads what each stage holds (``telemetry.raw``, ``telemetry.quarantine``, the
``telemetry`` rows, the ledger entries) and :func:`count_stages` counts the simulator's ground
truth against it into a :class:`Tally`: lost and duplicated messages, wrong verdicts.
:func:`ledger_problems` runs ``roadledger ledger check``'s queries, checks every checkpoint's
signature and consistency with the next one, and a sample of inclusion proofs. The fault runs
themselves: ``fault_harness.py``.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from chain.checkpoint import SignedCheckpoint
from chain.errors import ChainError
from chain.hashing import leaf_hash
from chain.merkle import verify_consistency, verify_inclusion
from chain.note_signers import Ed25519Verifier
from contracts.topics import QUARANTINE, RAW
from device_sim.truth import TruthFile, read_truth
from roadledger.db.ledger_check import check_ledger
from roadledger.db.ledger_store import PostgresLedgerStore
from roadledger.log_key import load_log_key
from roadledger.settings import Settings
from tests.support.pipeline import KafkaProbe, PipelineEnv

__all__ = ["Tally", "count_run", "count_stages", "ledger_problems"]


@dataclass
class Tally:
    """Every published message of a run, counted at each stage (see the module docstring)."""

    published: int = 0
    raw: int = 0  # published messages found in telemetry.raw (each publish once)
    raw_copies: int = 0  # records of published messages there (more: the bridge repeated)
    expected_stored: int = 0
    stored: int = 0  # telemetry rows of messages expected stored, right leaf hash
    expected_quarantined: int = 0  # (message, reason) pairs expected in quarantine
    quarantined: int = 0
    ledger: int = 0  # messages expected stored that are leaves
    lost: int = 0  # distinct messages missing from a stage they should have reached
    duplicated: int = 0  # extra telemetry rows and extra leaves of one message
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and not self.problems

    def __str__(self) -> str:
        text = (
            f"published {self.published}, raw {self.raw} ({self.raw_copies} records), "
            f"stored {self.stored}/{self.expected_stored}, quarantined "
            f"{self.quarantined}/{self.expected_quarantined}, ledger {self.ledger}/"
            f"{self.expected_stored}, lost {self.lost}, duplicated {self.duplicated}"
        )
        return text + "".join(f"\n  - {problem}" for problem in self.problems[:30])


async def count_run(
    pipeline: PipelineEnv, kafka: KafkaProbe, truth_path: Path, *, proofs: int, max_pairs: int
) -> Tally:
    """Count the ground truth in ``truth_path`` against every stage of ``pipeline`` and check
    its ledger (see the module docstring)."""
    truth = read_truth(truth_path)
    tally = Tally(published=len(truth.messages))
    if truth.summary is None or not truth.summary.get("complete"):
        tally.problems.append(f"roadledger sim: not every publish acknowledged: {truth.summary}")
    env = pipeline.settings
    raw_bytes: dict[str, bytes] = {}
    raw_copies: Counter[str] = Counter()
    for value, _ in await kafka.read(env.topic(RAW)):
        sha = hashlib.sha256(value).hexdigest()
        raw_bytes[sha] = value
        raw_copies[sha] += 1
    quarantine: dict[str, Counter[str]] = defaultdict(Counter)
    for value, headers in await kafka.read(env.topic(QUARANTINE)):
        quarantine[hashlib.sha256(value).hexdigest()][headers["reason"].decode()] += 1
    rows = [
        (row[0], row[1], bytes(row[2]))
        for row in await pipeline.pool.fetch("SELECT device_id, seq, leaf_hash FROM telemetry")
    ]
    leaves: Counter[str] = Counter()
    for record in await pipeline.pool.fetch("SELECT entry FROM ledger_entries"):
        leaves[hashlib.sha256(record["entry"]).hexdigest()] += 1
    count_stages(tally, truth, raw_bytes, raw_copies, quarantine, rows, leaves)
    tally.problems += await ledger_problems(pipeline.pool, env, proofs=proofs, max_pairs=max_pairs)
    return tally


async def ledger_problems(
    pool: asyncpg.Pool, settings: Settings, *, proofs: int, max_pairs: int
) -> list[str]:
    """``ledger check``, checkpoints signed by the log key and consistent with each other,
    ``proofs`` sampled inclusion proofs (at most ``max_pairs`` consistency proofs per log)."""
    problems: list[str] = []
    report = await check_ledger(pool)
    if report.missing:
        shown = ", ".join(f"{m.device_id}#{m.seq}" for m in report.missing[:5])
        problems.append(f"{len(report.missing)} stored rows without a leaf ({shown}, ...)")
    problems += [f"{log.origin}: {p}" for log in report.logs for p in log.problems]
    store = PostgresLedgerStore(pool)
    key = load_log_key(settings)
    latest: dict[str, SignedCheckpoint] = {}
    for log in await pool.fetch("SELECT log_id, origin FROM ledger_logs ORDER BY origin"):
        origin = log["origin"]
        verifier = Ed25519Verifier.from_vkey(key.vkey(origin))
        notes = await pool.fetch(
            "SELECT note FROM ledger_checkpoints WHERE log_id = $1 ORDER BY tree_size",
            log["log_id"],
        )
        checkpoints = []
        for note in notes:
            try:
                checkpoints.append(SignedCheckpoint.open(note["note"], verifier).checkpoint)
            except ChainError as exc:
                problems.append(f"{origin}: checkpoint not signed by the log key: {exc}")
        if not checkpoints:
            continue
        latest[origin] = SignedCheckpoint.from_text(notes[-1]["note"])
        pairs = list(itertools.pairwise(checkpoints))
        if len(pairs) > max_pairs:  # evenly spread, always the last one
            step = len(pairs) / max_pairs
            pairs = [pairs[int(i * step)] for i in range(max_pairs)] + [pairs[-1]]
        pairs.append((checkpoints[0], checkpoints[-1]))
        for old, new in pairs:
            try:
                proof = await store.consistency_proof(origin, old.size, new.size)
                verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
            except ChainError as exc:
                problems.append(f"{origin}: checkpoints {old.size} -> {new.size}: {exc}")
    entries = await pool.fetch(
        "SELECT l.origin, e.leaf_index, e.entry FROM ledger_entries e "
        "JOIN ledger_logs l USING (log_id)"
    )
    for entry in random.sample(entries, min(proofs, len(entries))):
        signed = latest.get(entry["origin"])
        if signed is None:
            problems.append(f"{entry['origin']}: entries but no checkpoint")
            continue
        checkpoint = signed.checkpoint
        if entry["leaf_index"] >= checkpoint.size:
            continue  # beyond the latest checkpoint: the size check above names it
        try:
            proof = await store.inclusion_proof(
                entry["origin"], entry["leaf_index"], checkpoint.size
            )
            verify_inclusion(
                entry["leaf_index"], checkpoint.size, leaf_hash(bytes(entry["entry"])),
                checkpoint.root_hash, proof,
            )  # fmt: skip
        except ChainError as exc:
            problems.append(f"{entry['origin']}: inclusion of leaf {entry['leaf_index']}: {exc}")
    return problems


def count_stages(
    tally: Tally,
    truth: TruthFile,
    raw_bytes: dict[str, bytes],
    raw_copies: Counter[str],
    quarantine: dict[str, Counter[str]],
    rows: list[tuple[str, int, bytes]],
    leaves: Counter[str],
) -> None:
    """Fill ``tally`` from what each stage holds, keyed by ``sha`` (hex SHA-256 of the
    published bytes): raw bytes and copies, quarantine reasons, telemetry rows (device, seq,
    leaf hash) and ledger entries."""
    published = {m.sha256 for m in truth.messages}
    stored = {
        (m.device, m.seq or 0): m.sha256 for m in truth.messages if m.expected == "stored"
    }  # a message expected stored has a seq
    wanted: dict[str, set[str]] = defaultdict(set)  # sha -> reasons it must be quarantined
    for m in truth.messages:
        if m.expected.startswith("quarantine:"):
            wanted[m.sha256].add(m.expected.split(":", 1)[1])
        elif m.expected == "duplicate":
            wanted[m.sha256].add("duplicate")
    lost: set[str] = set()

    copies_published = Counter(m.sha256 for m in truth.messages)  # duplicate_delivery: > 1
    tally.raw = sum(min(n, raw_copies[sha]) for sha, n in copies_published.items())
    tally.raw_copies = sum(raw_copies[sha] for sha in published)
    lost |= {sha for sha, n in copies_published.items() if raw_copies[sha] < n}

    found_rows: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    for device, seq, row_leaf in rows:
        found_rows[(device, seq)].append(row_leaf)
    tally.expected_stored = len(stored)
    for key, sha in stored.items():
        copies = found_rows.get(key, [])
        tally.duplicated += max(0, len(copies) - 1)
        if not copies:
            lost.add(sha)
        elif sha in raw_bytes and copies[0] == leaf_hash(raw_bytes[sha]):
            tally.stored += 1
        else:
            tally.problems.append(f"telemetry {key}: leaf hash is not that of the published bytes")
    unexpected = sorted(found_rows.keys() - stored.keys())
    if unexpected:
        tally.problems.append(f"{len(unexpected)} telemetry rows not expected: {unexpected[:5]}")

    for sha in stored.values():
        tally.duplicated += max(0, leaves[sha] - 1)
        if leaves[sha]:
            tally.ledger += 1
        else:
            lost.add(sha)
    rejected_leaves = [sha for sha in wanted if sha not in stored.values() and leaves[sha]]
    if rejected_leaves:
        tally.problems.append(f"{len(rejected_leaves)} rejected messages are ledger leaves")

    tally.expected_quarantined = sum(len(reasons) for reasons in wanted.values())
    stored_shas = set(stored.values())
    for sha, reasons in wanted.items():
        for reason in reasons:
            if quarantine.get(sha, Counter())[reason]:
                tally.quarantined += 1
            else:
                lost.add(sha)
    for sha in published:
        # A stored message's second copy (the bridge may forward one twice) is a duplicate.
        allowed = wanted[sha] | ({"duplicate"} if sha in stored_shas else set())
        wrong = set(quarantine.get(sha, {})) - allowed
        if wrong:
            tally.problems.append(f"message {sha[:12]} quarantined as {sorted(wrong)}")
    tally.lost = len(lost)
