"""Which MQTT messages the bridge may acknowledge now, and in what order.

MQTT 3.1.1 (section 4.6) requires PUBACKs in the order the PUBLISHes arrived, and the bridge may
acknowledge a message only once Kafka has it durably. Kafka acknowledges in its own order
(per partition, batch by batch), so the bridge keeps an :class:`AckWindow`: the messages in
arrival order, each with its Kafka delivery future, and releases the longest prefix that needs
nothing more.

A message belongs to the MQTT connection (``session`` number) it arrived on. When that
connection is gone its packet id means nothing to the next one, and the broker will deliver the
message again on the persistent session; such an entry is released without a PUBACK, whether
its delivery succeeded (a harmless duplicate in Kafka) or failed (nothing to retry).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AckWindow", "Pending", "Released"]


@dataclass(slots=True, eq=False)
class Pending:
    """One MQTT message between its PUBLISH and its PUBACK."""

    session: int  # the MQTT connection it arrived on
    mid: int  # its packet id on that connection
    qos: int
    topic: str
    payload: bytes
    recv_ms: int
    delivery: asyncio.Future[Any] | None = None  # one record's, or its whole batch's


@dataclass(slots=True)
class Released:
    """What :meth:`AckWindow.release` took off the window."""

    to_ack: list[Pending] = field(default_factory=list)  # in Kafka; PUBACK these, in order
    dropped: list[Pending] = field(default_factory=list)  # from a lost connection
    delivered: int = 0  # how many of both Kafka acknowledged

    def __len__(self) -> int:
        return len(self.to_ack) + len(self.dropped)


def _failed(delivery: asyncio.Future[Any]) -> bool:
    return delivery.cancelled() or delivery.exception() is not None


class AckWindow:
    """In-flight messages in arrival order (see the module docstring)."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: deque[Pending] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: Pending) -> None:
        """Add the next message in arrival order; its ``delivery`` must be set."""
        if entry.delivery is None:
            raise ValueError(f"message {entry.mid} joins the window without a delivery future")
        self._entries.append(entry)

    def head(self) -> Pending | None:
        """The oldest message still in the window."""
        return self._entries[0] if self._entries else None

    def release(self, session: int) -> Released:
        """Pop the longest prefix that needs nothing more, given the current ``session``.

        It stops at the first entry whose delivery is still pending, or that failed on the
        current connection (it must be sent again, and nothing after it acknowledged before).
        """
        released = Released()
        entries = self._entries
        while entries:
            entry = entries[0]
            delivery = entry.delivery
            assert delivery is not None
            if not delivery.done():
                break
            failed = _failed(delivery)
            if entry.session == session:
                if failed:
                    break
                released.to_ack.append(entry)
            else:
                released.dropped.append(entry)
            if not failed:
                released.delivered += 1
            entries.popleft()
        return released

    def failed(self, session: int) -> list[Pending]:
        """Entries of the current ``session`` whose delivery failed: to be sent again."""
        return [
            e
            for e in self._entries
            if e.session == session
            and e.delivery is not None
            and e.delivery.done()
            and _failed(e.delivery)
        ]
