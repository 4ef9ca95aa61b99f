"""Run :func:`ingest.classify.classify_chunk` on both cores: a pool of worker processes.

Signature verification (~80-100 us per Ed25519 verify) and parsing (~65 us) are pure CPU work
held by the GIL, so the verifier sends them to ``workers`` processes in chunks of
``chunk_size`` records (the raw bytes, record key and receive time, plus the key records of
the devices in the chunk) and awaits the verdicts. One task per chunk, not per message, keeps
the pickling and IPC overhead to a few microseconds per message. ``workers=0`` classifies in
the event-loop thread. The CPU per message is about the same either way (``bench/verify.py``:
~270 us on the real services), so workers add throughput only while a core has time to spare
(1.5-1.7x with 2 workers on an otherwise quiet 2-core machine) and cost little when none has.

Workers are spawned (not forked from a process running an event loop and sockets), ignore
SIGINT (a Ctrl-C stops the verifier, which then shuts the pool down in order) and die with the
verifier when it is killed (``PR_SET_PDEATHSIG`` on Linux), so a SIGKILLed verifier leaves no
orphan processes behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType

from chain.device_keys import DeviceKey
from ingest.classify import ClassifyInput, Limits, Verdict, classify_chunk, device_id_of

__all__ = ["DEFAULT_CHUNK_SIZE", "ClassifierPool"]

DEFAULT_CHUNK_SIZE = 256


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_UNPACKED_LIMIT = 200_000
_unpacked: dict[bytes, tuple[DeviceKey, ...]] = {}  # in each worker: pickled keys -> keys


def _die_with(parent_pid: int) -> None:
    """Exit when the verifier process does, even when it is SIGKILLed (no orphan workers)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:  # pragma: no cover - elsewhere, notice the reparenting within a second

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent_pid)


def _worker_pid() -> int:
    return os.getpid()


def _unpack(packed: bytes) -> tuple[DeviceKey, ...]:
    keys = _unpacked.get(packed)
    if keys is None:
        if len(_unpacked) >= _UNPACKED_LIMIT:
            _unpacked.clear()
        keys = _unpacked[packed] = pickle.loads(packed)  # noqa: S301 - our own parent's bytes
    return keys


def _classify_packed(
    items: list[ClassifyInput], packed_keys: dict[str, bytes], limits: Limits
) -> list[Verdict]:
    """Runs in a worker: :func:`classify_chunk` with keys as pickled bytes (see below)."""
    keys = {device_id: _unpack(packed) for device_id, packed in packed_keys.items()}
    return classify_chunk(items, keys, limits)


class ClassifierPool:
    """Classifies records in ``workers`` processes (0: in the calling thread).

    Use as ``async with ClassifierPool(n) as pool:``; :meth:`classify` keeps input order.
    """

    def __init__(self, workers: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if workers < 0 or chunk_size < 1:
            raise ValueError(f"workers {workers} must be >= 0 and chunk_size {chunk_size} >= 1")
        self.workers = workers
        self.chunk_size = chunk_size
        self._executor: ProcessPoolExecutor | None = None
        # Unpickling a DeviceKey costs ~15 us, more than the rest of a message's transfer;
        # so each device's keys are pickled once (until they change) and the workers keep
        # the unpickled keys by their bytes: the same device's next chunk costs a dict lookup.
        self._packed: dict[str, tuple[Sequence[DeviceKey], bytes]] = {}

    async def start(self) -> None:
        """Start the worker processes and wait until each has imported the checks."""
        if self.workers == 0 or self._executor is not None:
            return
        self._executor = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, _worker_pid) for _ in range(self.workers))
        )

    async def close(self) -> None:
        """Stop the worker processes (after the chunks under way)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def __aenter__(self) -> ClassifierPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def classify(
        self,
        items: Sequence[ClassifyInput],
        keys: Mapping[str, Sequence[DeviceKey]],
        limits: Limits,
    ) -> list[Verdict]:
        """The verdict for each item, in order. ``keys``: device id -> every key it had."""
        if self._executor is None:
            if self.workers:
                raise RuntimeError("ClassifierPool.classify before start()")
            return classify_chunk(items, keys, limits)
        loop = asyncio.get_running_loop()
        tasks = []
        for start in range(0, len(items), self.chunk_size):
            chunk = list(items[start : start + self.chunk_size])
            ids = {device_id_of(item.key) for item in chunk}
            packed = {d: self._pack(d, keys[d]) for d in ids if d is not None and d in keys}
            tasks.append(
                loop.run_in_executor(self._executor, _classify_packed, chunk, packed, limits)
            )
        if len(self._packed) > _UNPACKED_LIMIT:
            self._packed.clear()
        verdicts: list[Verdict] = []
        for chunk_verdicts in await asyncio.gather(*tasks):
            verdicts.extend(chunk_verdicts)
        return verdicts

    def _pack(self, device_id: str, keys: Sequence[DeviceKey]) -> bytes:
        cached = self._packed.get(device_id)
        if cached is not None and (cached[0] is keys or cached[0] == keys):
            return cached[1]
        packed = pickle.dumps(tuple(keys), protocol=pickle.HIGHEST_PROTOCOL)
        self._packed[device_id] = (keys, packed)
        return packed
