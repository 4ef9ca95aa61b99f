"""The witness's state: it survives reopening, is swapped atomically, written durably, checked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from chain.errors import ConsistencyError, StorageError
from chain.witness import (
    FileWitnessStateStore,
    MemoryWitnessStateStore,
    StaleStateError,
    WitnessStateStore,
)
from tests.unit.chain.test_witness import ORIGIN, Log, cosign_sizes, make_witness


@pytest.fixture
def log() -> Log:
    return Log()


# --- state ------------------------------------------------------------------------------------


def test_file_state_survives_reopening(tmp_path: Path, log: Log) -> None:
    state = tmp_path / "state"
    first = make_witness(FileWitnessStateStore(state))
    cosign_sizes(first, log, 3, 7)
    reopened = make_witness(FileWitnessStateStore(state))
    latest = reopened.latest(ORIGIN)
    assert latest == first.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 7
    with pytest.raises(ConsistencyError, match="rollback"):
        reopened.add_checkpoint(log.checkpoint(3), 7, [], log.signer.verifier())
    log.grow_to(9)
    reopened.add_checkpoint(log.checkpoint(), 7, log.proof(7, 9), log.signer.verifier())
    files = sorted(p.name for p in state.iterdir())
    digest = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert files == [".lock", f"{digest}.checkpoint"]  # no temporary files left behind
    assert (state / f"{digest}.checkpoint").read_text().startswith(f"{ORIGIN}\n9\n")


def test_file_store_compare_and_swap(tmp_path: Path) -> None:
    store = FileWitnessStateStore(tmp_path)
    store.store("o", None, "one")
    assert store.load("o") == "one"
    with pytest.raises(StaleStateError):
        store.store("o", None, "two")
    with pytest.raises(StaleStateError):
        store.store("o", "not one", "two")
    store.store("o", "one", "two")
    assert store.load("o") == "two"


def test_memory_store_compare_and_swap() -> None:
    store = MemoryWitnessStateStore()
    store.store("o", None, "one")
    with pytest.raises(StaleStateError):
        store.store("o", None, "two")
    store.store("o", "one", "two")
    assert store.load("o") == "two"


def test_corrupt_state_is_a_storage_error(tmp_path: Path, log: Log) -> None:
    store = FileWitnessStateStore(tmp_path)
    store.path_for(ORIGIN).write_bytes(b"\xff\xfe garbage")
    with pytest.raises(StorageError):
        make_witness(store).latest(ORIGIN)
    store.path_for(ORIGIN).write_text("garbage\n")
    log.grow_to(3)
    with pytest.raises(StorageError, match="corrupt"):
        make_witness(store).add_checkpoint(log.checkpoint(), 0, [], log.signer.verifier())


def test_state_of_another_origin_under_this_name_is_refused(tmp_path: Path) -> None:
    store = FileWitnessStateStore(tmp_path)
    other = Log()
    other.grow_to(1)
    store.path_for("some.other/origin").write_text(other.checkpoint())
    with pytest.raises(StorageError, match="holds a checkpoint of"):
        make_witness(store).latest("some.other/origin")


def test_state_directory_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError):
        FileWitnessStateStore(tmp_path / "file")


class RacingStore:
    """A store where another request wins the race once, just before our write."""

    def __init__(self, inner: WitnessStateStore, winner: str) -> None:
        self.inner = inner
        self.winner = winner
        self.raced = False

    def load(self, origin: str) -> str | None:
        return self.inner.load(origin)

    def store(self, origin: str, expected: str | None, record: str) -> None:
        if not self.raced:
            self.raced = True
            self.inner.store(origin, expected, self.winner)
        self.inner.store(origin, expected, record)


def test_lost_race_is_judged_against_the_new_state(log: Log) -> None:
    # The spec's race: A (size 5) and B (size 8) both checked against size 3; B is stored
    # first. A must then be judged against 8 and refused, never roll the state back to 5.
    inner = MemoryWitnessStateStore()
    base = make_witness(inner)
    cosign_sizes(base, log, 3)
    log.grow_to(8)
    winner = make_witness(MemoryWitnessStateStore())
    cosign_sizes(winner, log, 8)
    winner_state = winner.latest(ORIGIN)
    assert winner_state is not None
    racing = make_witness(RacingStore(inner, winner_state.to_text()))
    with pytest.raises(ConsistencyError, match="rollback"):
        racing.add_checkpoint(log.checkpoint(5), 3, log.proof(3, 5), log.signer.verifier())
    latest = racing.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 8


def test_file_store_writes_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    FileWitnessStateStore(tmp_path).store("o", None, "record")
    assert len(synced) == 2  # the file, then the directory
