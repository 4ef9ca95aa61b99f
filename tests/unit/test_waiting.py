"""The tests' one polling helper: it returns only once the condition held, and otherwise
fails loudly, naming what it waited for, for how long and the last state it saw."""

from __future__ import annotations

import pytest

from tests.support.pipeline import wait_until, wait_until_sync


class Counter:
    def __init__(self, reaches: int) -> None:
        self.calls, self.reaches = 0, reaches

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.reaches


async def test_returns_once_the_condition_holds() -> None:
    counter = Counter(3)
    await wait_until(counter, "three calls", 5, every_s=0.001)
    assert counter.calls == 3


async def test_an_async_condition_is_awaited() -> None:
    counter = Counter(2)

    async def holds() -> bool:
        return counter()

    await wait_until(holds, "two calls", 5, every_s=0.001)
    assert counter.calls == 2


async def test_it_fails_loudly_naming_what_how_long_and_the_last_state() -> None:
    state = {"committed": 1}
    with pytest.raises(AssertionError) as failed:
        await wait_until(lambda: False, "two commits", 0.05, every_s=0.01, observed=lambda: state)
    assert str(failed.value) == (
        "timed out after 0.05 s waiting for two commits; last observed: {'committed': 1}"
    )


async def test_what_the_condition_raises_propagates() -> None:
    def died() -> bool:
        raise AssertionError("the writer exited")

    with pytest.raises(AssertionError, match="the writer exited"):
        await wait_until(died, "the writer", 5)


def test_the_sync_variant_returns_or_fails_the_same_way() -> None:
    counter = Counter(2)
    wait_until_sync(counter, "two calls", 5, every_s=0.001)
    assert counter.calls == 2
    with pytest.raises(AssertionError, match=r"^timed out after 0.05 s waiting for never$"):
        wait_until_sync(lambda: False, "never", 0.05, every_s=0.01)
