"""ingest.ack_order: PUBACKs only for what Kafka has, and only in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from ingest.ack_order import AckWindow, Pending
from roadledger.stream.errors import StreamError


def _entry(mid: int, session: int = 1) -> Pending:
    loop = asyncio.get_running_loop()
    return Pending(session, mid, 1, f"t/dev{mid}", b"p", 0, delivery=loop.create_future())


def _delivered(entry: Pending) -> None:
    assert entry.delivery is not None
    entry.delivery.set_result((0, entry.mid))


def _failed(entry: Pending) -> None:
    assert entry.delivery is not None
    entry.delivery.set_exception(StreamError("broker went away"))


def _window(*entries: Pending) -> AckWindow:
    window = AckWindow()
    for entry in entries:
        window.append(entry)
    return window


async def test_only_the_acknowledged_prefix_is_released_in_order() -> None:
    entries = [_entry(mid) for mid in range(1, 6)]
    window = _window(*entries)
    for entry in reversed(entries[1:]):  # Kafka acknowledges everything but the first
        _delivered(entry)
    released = window.release(session=1)
    assert released.to_ack == [], "message 1 is not in Kafka yet"
    assert len(window) == 5

    _delivered(entries[0])
    released = window.release(session=1)
    assert [e.mid for e in released.to_ack] == [1, 2, 3, 4, 5]
    assert released.delivered == 5
    assert len(window) == 0
    assert window.head() is None


async def test_a_pending_message_holds_back_everything_after_it() -> None:
    entries = [_entry(mid) for mid in range(1, 5)]
    window = _window(*entries)
    for entry in (entries[0], entries[1], entries[3]):
        _delivered(entry)
    assert [e.mid for e in window.release(session=1).to_ack] == [1, 2]
    assert window.head() is entries[2]
    _delivered(entries[2])
    assert [e.mid for e in window.release(session=1).to_ack] == [3, 4]


async def test_a_failed_delivery_is_never_released_and_is_listed_for_resending() -> None:
    entries = [_entry(mid) for mid in range(1, 4)]
    window = _window(*entries)
    _failed(entries[0])
    _delivered(entries[1])
    _failed(entries[2])
    assert len(window.release(session=1)) == 0
    assert window.failed(session=1) == [entries[0], entries[2]]

    for entry in (entries[0], entries[2]):  # sent again, and this time Kafka has them
        entry.delivery = asyncio.get_running_loop().create_future()
        _delivered(entry)
    assert [e.mid for e in window.release(session=1).to_ack] == [1, 2, 3]
    assert window.failed(session=1) == []


async def test_messages_of_a_lost_connection_are_dropped_without_puback() -> None:
    old_ok, old_failed, old_pending = _entry(1, session=1), _entry(2, session=1), _entry(3, 1)
    new = _entry(1, session=3)  # the broker redelivered on the new connection
    window = _window(old_ok, old_failed, old_pending, new)
    _delivered(old_ok)
    _failed(old_failed)
    _delivered(new)

    released = window.release(session=3)
    assert released.to_ack == []
    assert released.dropped == [old_ok, old_failed], "dropped, whether Kafka had them or not"
    assert released.delivered == 1
    assert window.failed(session=3) == [], "a lost connection's failure is not re-sent"

    _delivered(old_pending)  # a delivery still under way holds the window until it settles
    released = window.release(session=3)
    assert released.dropped == [old_pending]
    assert released.to_ack == [new]


async def test_cancelled_delivery_counts_as_failed() -> None:
    entry = _entry(1)
    window = _window(entry)
    assert entry.delivery is not None
    entry.delivery.cancel()
    assert len(window.release(session=1)) == 0
    assert window.failed(session=1) == [entry]


async def test_an_entry_needs_its_delivery_future() -> None:
    with pytest.raises(ValueError, match="without a delivery future"):
        AckWindow().append(Pending(1, 7, 1, "t/d", b"", 0))
