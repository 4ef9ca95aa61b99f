"""Sequencing: integrate batches of entries into a log, cut a block and sign a checkpoint each.

A log has exactly one sequencer at a time. :meth:`LedgerStore.acquire` hands out a new
*fencing epoch* for the log; every later write carries it, and the store refuses a write whose
epoch is no longer the newest (:class:`~chain.errors.FencingError`). So when a Kafka partition
moves to another consumer, the old owner's next append fails instead of forking the log.

Because it is the only writer, the sequencer keeps the tree's *frontier* in memory (the
hashes of the perfect subtrees at the set bits of the tree size, :func:`chain.merkle.root_plan`
order). An append therefore reads nothing but the dedupe lookup: it hashes the new leaves and
the nodes they complete (O(k + log n)), derives the new root from the frontier, and hands the
whole batch to the store to write atomically.

Storage is a narrow async interface (:class:`LedgerStore`): :class:`InMemoryLedgerStore` here
for tests, a PostgreSQL implementation outside ``chain/``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chain.blocks import BLOCK_VERSION, GENESIS_PREV_HASH, BlockHeader
from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.errors import FencingError, StorageError
from chain.hashing import EMPTY_ROOT, fold_right, leaf_hashes
from chain.merkle import (
    CompletedNodes,
    NodeRef,
    consistency_plan,
    inclusion_plan,
    nodes_completed_by_append,
    root_plan,
)
from chain.note_signers import NoteSigner

__all__ = [
    "AppendResult",
    "InMemoryLedgerStore",
    "Integration",
    "LedgerStore",
    "LogHead",
    "Sequencer",
    "subtree_root",
]


@dataclass(frozen=True)
class LogHead:
    """What a sequencer must know of its log: epoch, size, frontier and the last block."""

    origin: str
    epoch: int
    size: int
    frontier: tuple[bytes, ...]  # hashes of root_plan(size).nodes, in that order
    last_block: BlockHeader | None

    @property
    def root(self) -> bytes:
        return fold_right(self.frontier) if self.frontier else EMPTY_ROOT


@dataclass(frozen=True)
class Integration:
    """One batch as the store must write it, all or nothing, if ``epoch`` still owns the log."""

    origin: str
    epoch: int
    old_size: int
    entries: Sequence[bytes]  # the new entries, in leaf order (duplicates already removed)
    nodes: CompletedNodes  # level 0 = their leaf hashes; higher levels = completed subtrees
    block: BlockHeader
    checkpoint: SignedCheckpoint

    @property
    def leaf_hashes(self) -> list[bytes]:
        return self.nodes.levels[0]


class LedgerStore(Protocol):
    """Storage of logs for the sequencer and for proof readers.

    Contract:
    - ``acquire`` makes the caller the log's only sequencer: it increments the log's epoch
      (creating the log, empty, if unknown) and returns the head with the new epoch.
    - ``integrate`` writes entries, leaf hashes, completed nodes, the block and the checkpoint
      atomically, and only if ``epoch`` is still the log's epoch and ``old_size`` its size;
      otherwise it raises :class:`~chain.errors.FencingError` and writes nothing.
    - ``read_nodes`` returns the hash of each perfect subtree asked for, in order; every node
      of a tree of size n exists once the log holds n leaves. It MUST NOT be used to learn the
      tree size: that is the checkpoint's job.
    - ``find_leaves`` maps those of the given leaf hashes that the log holds to their index.
    """

    async def acquire(self, origin: str) -> LogHead: ...

    async def integrate(self, work: Integration) -> None: ...

    async def read_nodes(self, origin: str, refs: Sequence[NodeRef]) -> list[bytes]: ...

    async def find_leaves(self, origin: str, hashes: Sequence[bytes]) -> dict[bytes, int]: ...


@dataclass(frozen=True)
class AppendResult:
    """Where each appended entry is, and the block and checkpoint that the batch made."""

    leaf_indices: tuple[int, ...]  # one per input entry; an old index for a duplicate
    block: BlockHeader | None  # None when every entry was already in the log
    checkpoint: SignedCheckpoint | None


def subtree_root(nodes: CompletedNodes, count: int) -> bytes:
    """Root of the ``count`` leaves hashed from an empty tree into ``nodes`` (old_size 0)."""
    if nodes.old_size != 0:
        raise ValueError("subtree_root needs nodes hashed from an empty tree")
    return fold_right([nodes.levels[level][index] for level, index in root_plan(count).nodes])


def _new_frontier(old_hashes: dict[NodeRef, bytes], nodes: CompletedNodes) -> tuple[bytes, ...]:
    frontier = []
    for ref in root_plan(nodes.new_size).nodes:
        level, index = ref
        first = nodes.first_index(level)
        if index >= first:
            frontier.append(nodes.levels[level][index - first])
        else:
            frontier.append(old_hashes[ref])
    return tuple(frontier)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class _Pending:
    """A submitted batch whose leaves the store may not show yet."""

    number: int
    index_of: dict[bytes, int]


@dataclass
class Sequencer:
    """The only writer of one log (see module docstring). Create with :meth:`open`.

    :meth:`append` integrates one batch and returns once it is durable. :meth:`submit` is
    the pipelined form: it prepares the batch at once (hashes, dedupe, block, checkpoint)
    and returns a future for its write, which runs after the writes submitted before it, so
    the caller can prepare the next batch while the store writes this one. ``head`` always
    includes every submitted batch; a result is durable only when its future is done.
    """

    store: LedgerStore
    signer: NoteSigner
    head: LogHead
    clock: Callable[[], int] = field(default=_now_ms)
    _stopped: str | None = field(default=None, init=False)
    _tail: asyncio.Future[AppendResult] | None = field(default=None, init=False)
    _submitted: int = field(default=0, init=False)
    _written: int = field(default=0, init=False)
    _pending: deque[_Pending] = field(default_factory=deque, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    @classmethod
    async def open(
        cls,
        store: LedgerStore,
        origin: str,
        signer: NoteSigner,
        clock: Callable[[], int] = _now_ms,
    ) -> Sequencer:
        """Take ownership of ``origin`` (a new fencing epoch) and load its head."""
        return cls(store, signer, await store.acquire(origin), clock)

    @property
    def origin(self) -> str:
        return self.head.origin

    @property
    def size(self) -> int:
        return self.head.size

    async def append(self, entries: Sequence[bytes]) -> AppendResult:
        """Integrate ``entries`` (verbatim bytes) as one block; duplicates keep their index.

        Returns once the batch is durable. After a failed write the store's state is unknown
        (the commit may have landed before the connection broke), so the sequencer refuses
        further work until it is reopened.

        Raises:
            FencingError: another sequencer acquired the log, or an earlier write failed;
                reopen with :meth:`open` (which reloads the head from the store).
        """
        return await (await self.submit(entries))

    async def submit(self, entries: Sequence[bytes]) -> asyncio.Future[AppendResult]:
        """Prepare ``entries`` as the next block now; return a future for its durable write.

        Futures resolve in submission order. A duplicate of a leaf still in flight gets that
        leaf's index, and its result resolves only after that leaf is durable.
        """
        async with self._lock:
            if self._stopped is not None:
                raise FencingError(f"log {self.origin}: {self._stopped}; reopen the sequencer")
            hashes = leaf_hashes(entries)
            written_before = self._written
            known = await self.store.find_leaves(self.origin, hashes) if hashes else {}
            # Batches written before the lookup was issued are in its answer; later ones
            # may not be, so their leaves are taken from memory.
            while self._pending and self._pending[0].number <= written_before:
                self._pending.popleft()
            for pending in self._pending:
                for digest in hashes:
                    index = pending.index_of.get(digest)
                    if index is not None:
                        known[digest] = index
            indices, fresh, fresh_hashes = self._assign(entries, hashes, known)
            if not fresh:
                return self._after_tail(AppendResult(tuple(indices), None, None))
            work = self._prepare(fresh, fresh_hashes)
            self._submitted += 1
            self._pending.append(
                _Pending(
                    self._submitted,
                    dict(zip(fresh_hashes, range(work.old_size, work.nodes.new_size), strict=True)),
                )
            )
            result = AppendResult(tuple(indices), work.block, work.checkpoint)
            self._tail = asyncio.ensure_future(self._write(work, result, self._tail))
            return self._tail

    def _assign(
        self, entries: Sequence[bytes], hashes: list[bytes], known: dict[bytes, int]
    ) -> tuple[list[int], list[bytes], list[bytes]]:
        indices: list[int] = []
        fresh: list[bytes] = []
        fresh_hashes: list[bytes] = []
        next_index = self.head.size
        for entry, digest in zip(entries, hashes, strict=True):
            index = known.get(digest)
            if index is None:
                index = known[digest] = next_index
                next_index += 1
                fresh.append(entry)
                fresh_hashes.append(digest)
            indices.append(index)
        return indices, fresh, fresh_hashes

    def _prepare(self, fresh: list[bytes], fresh_hashes: list[bytes]) -> Integration:
        """Hash the nodes, cut the block, sign the checkpoint; advance ``head``."""
        old = self.head
        frontier = dict(zip(root_plan(old.size).nodes, old.frontier, strict=True))
        nodes = nodes_completed_by_append(old.size, fresh_hashes, frontier)
        new_frontier = _new_frontier(frontier, nodes)
        tree_root = fold_right(new_frontier)
        block_nodes = nodes if old.size == 0 else nodes_completed_by_append(0, fresh_hashes, ())
        block = BlockHeader(
            version=BLOCK_VERSION,
            origin=self.origin,
            height=old.last_block.height + 1 if old.last_block else 0,
            prev_block_hash=old.last_block.block_hash if old.last_block else GENESIS_PREV_HASH,
            first_leaf_index=old.size,
            leaf_count=len(fresh),
            entries_root=subtree_root(block_nodes, len(fresh)),
            tree_size=nodes.new_size,
            tree_root=tree_root,
            # Block time never goes backwards along the chain, whatever the wall clock does.
            timestamp_ms=max(self.clock(), old.last_block.timestamp_ms if old.last_block else 0),
        )
        checkpoint = sign_checkpoint(
            Checkpoint(self.origin, nodes.new_size, tree_root), self.signer
        )
        self.head = LogHead(self.origin, old.epoch, nodes.new_size, new_frontier, block)
        return Integration(self.origin, old.epoch, old.size, fresh, nodes, block, checkpoint)

    async def _write(
        self,
        work: Integration,
        result: AppendResult,
        previous: asyncio.Future[AppendResult] | None,
    ) -> AppendResult:
        if previous is not None:
            try:
                await previous
            except BaseException:
                raise FencingError(
                    f"log {self.origin}: an earlier write failed; reopen the sequencer"
                ) from None
        try:
            await self.store.integrate(work)
        except FencingError:
            self._stopped = "this sequencer was fenced off"
            raise
        except BaseException as exc:
            self._stopped = f"a write failed ({type(exc).__name__})"
            raise
        self._written += 1
        return result

    def _after_tail(self, result: AppendResult) -> asyncio.Future[AppendResult]:
        """A future for ``result`` that resolves once every earlier write is durable."""
        tail = self._tail

        async def wait() -> AppendResult:
            if tail is not None:
                await tail
            return result

        return asyncio.ensure_future(wait())

    async def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` (default: now)."""
        plan = inclusion_plan(index, self.head.size if size is None else size)
        return plan.assemble(await self.store.read_nodes(self.origin, plan.nodes))

    async def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from ``size1`` to ``size2`` (default: now)."""
        plan = consistency_plan(size1, self.head.size if size2 is None else size2)
        return plan.assemble(await self.store.read_nodes(self.origin, plan.nodes))


@dataclass
class _MemoryLog:
    epoch: int = 0
    levels: list[list[bytes]] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)
    index_of: dict[bytes, int] = field(default_factory=dict)
    blocks: list[BlockHeader] = field(default_factory=list)
    checkpoints: list[SignedCheckpoint] = field(default_factory=list)


class InMemoryLedgerStore:
    """A :class:`LedgerStore` in dictionaries: the reference the PostgreSQL store must match."""

    def __init__(self) -> None:
        self.logs: dict[str, _MemoryLog] = {}

    async def acquire(self, origin: str) -> LogHead:
        log = self.logs.setdefault(origin, _MemoryLog())
        log.epoch += 1
        size = len(log.entries)
        frontier = tuple(await self.read_nodes(origin, root_plan(size).nodes))
        return LogHead(origin, log.epoch, size, frontier, log.blocks[-1] if log.blocks else None)

    async def integrate(self, work: Integration) -> None:
        log = self.logs[work.origin]
        if work.epoch != log.epoch:
            raise FencingError(
                f"log {work.origin}: epoch {work.epoch} is stale, epoch {log.epoch} owns it"
            )
        if work.old_size != len(log.entries):
            raise FencingError(
                f"log {work.origin}: write expected size {work.old_size}, log has "
                f"{len(log.entries)}"
            )
        for level, hashes in enumerate(work.nodes.levels):
            if len(log.levels) <= level:
                log.levels.append([])
            if len(log.levels[level]) != work.nodes.first_index(level):
                raise StorageError(f"log {work.origin}: level {level} out of step")
            log.levels[level].extend(hashes)
        for offset, (entry, digest) in enumerate(zip(work.entries, work.leaf_hashes, strict=True)):
            log.index_of[digest] = work.old_size + offset
            log.entries.append(entry)
        log.blocks.append(work.block)
        log.checkpoints.append(work.checkpoint)

    async def read_nodes(self, origin: str, refs: Sequence[NodeRef]) -> list[bytes]:
        log = self.logs.get(origin, _MemoryLog())
        try:
            return [log.levels[level][index] for level, index in refs]
        except IndexError:
            raise StorageError(f"log {origin}: a requested node does not exist") from None

    async def find_leaves(self, origin: str, hashes: Sequence[bytes]) -> dict[bytes, int]:
        index_of = self.logs.get(origin, _MemoryLog()).index_of
        return {digest: index_of[digest] for digest in hashes if digest in index_of}
