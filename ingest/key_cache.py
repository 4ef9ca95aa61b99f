"""Device keys for the verifier: a cache in front of the registry, refreshed on miss and often.

A device's first message looks its keys up (one query per batch for all devices the cache has
not seen). Every ``refresh_interval_s`` the keys of every cached device are read again, so a
revocation or rotation is applied within that interval. Unknown devices are not cached: a
device registered a moment ago is found by its first message, and junk device ids cannot fill
memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from chain.device_keys import DeviceKey

__all__ = ["KeyCache", "KeyLookup", "StaticKeys"]


class KeyLookup(Protocol):
    """Where keys come from (:class:`roadledger.registry.DeviceRegistry` has this method).

    ``keys_for`` returns every key each device ever had, revoked ones included, with their
    validity windows; devices without keys are absent (or map to an empty list).
    """

    async def keys_for(self, device_ids: Iterable[str]) -> Mapping[str, Sequence[DeviceKey]]: ...


class StaticKeys:
    """A :class:`KeyLookup` over a dict, for tests and benchmarks; ``lookups`` counts calls."""

    def __init__(self, records: Iterable[DeviceKey] = ()) -> None:
        self.keys: dict[str, list[DeviceKey]] = {}
        self.lookups = 0
        for record in records:
            self.add(record)

    def add(self, record: DeviceKey) -> None:
        """Register ``record`` (a new device, or another key of a known one)."""
        self.keys.setdefault(record.device_id, []).append(record)

    def replace(self, old: DeviceKey, new: DeviceKey) -> None:
        """Swap a record for its updated version (e.g. ``old.revoke(at_ms)``)."""
        records = self.keys[old.device_id]
        records[records.index(old)] = new

    async def keys_for(self, device_ids: Iterable[str]) -> dict[str, list[DeviceKey]]:
        self.lookups += 1
        return {d: list(self.keys[d]) for d in set(device_ids) if self.keys.get(d)}


class KeyCache:
    """Caches :meth:`KeyLookup.keys_for`; see the module docstring for when it asks again."""

    def __init__(
        self,
        lookup: KeyLookup,
        *,
        refresh_interval_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.refresh_interval_s = refresh_interval_s
        self._clock = clock
        self._keys: dict[str, tuple[DeviceKey, ...]] = {}
        self._refreshed_at = clock()

    def __len__(self) -> int:
        return len(self._keys)

    async def keys_for(self, device_ids: Iterable[str]) -> dict[str, tuple[DeviceKey, ...]]:
        """The keys of each known device among ``device_ids`` (unknown ones are absent)."""
        wanted = set(device_ids)
        if self._clock() - self._refreshed_at >= self.refresh_interval_s:
            await self.refresh(extra=wanted)
        else:
            missing = wanted - self._keys.keys()
            if missing:
                await self._load(missing)
        return {d: self._keys[d] for d in wanted if d in self._keys}

    async def refresh(self, extra: Iterable[str] = ()) -> None:
        """Read the keys of every cached device (and of ``extra``) again."""
        self._refreshed_at = self._clock()
        await self._load(self._keys.keys() | set(extra), replace_all=True)

    async def _load(self, device_ids: set[str], *, replace_all: bool = False) -> None:
        if not device_ids:
            return
        found = await self.lookup.keys_for(sorted(device_ids))
        fresh = {d: tuple(keys) for d, keys in found.items() if keys}
        if replace_all:
            self._keys = fresh
        else:
            self._keys.update(fresh)
