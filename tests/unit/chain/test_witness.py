"""The witness: cosign consistent growth, refuse forks and rollbacks, keep state durably."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.cosignature import Cosignature, CosignatureSigner, verify_cosignatures
from chain.errors import (
    ConsistencyError,
    EncodingError,
    ProofError,
    SignatureError,
    StorageError,
)
from chain.hashing import EMPTY_ROOT
from chain.log import InMemoryMerkleLog
from chain.note_signers import Ed25519Signer
from chain.witness import (
    MAX_PROOF_HASHES,
    AddCheckpointRequest,
    FileWitnessStateStore,
    MemoryWitnessStateStore,
    OldSizeMismatchError,
    StaleStateError,
    UnknownLogError,
    Witness,
    WitnessStateStore,
    format_proof_lines,
    parse_proof_lines,
)

ORIGIN = "roadledger.example/log-0"
NOW = 1_700_000_000


class Log:
    """A log for tests: an in-memory Merkle tree and the key that signs its checkpoints."""

    def __init__(self, prefix: bytes = b"entry", key_label: str = "log key") -> None:
        self.tree = InMemoryMerkleLog()
        self.prefix = prefix
        self.signer = Ed25519Signer(ORIGIN, hashlib.sha256(key_label.encode()).digest())

    def grow_to(self, size: int) -> None:
        while self.tree.size < size:
            self.tree.append(self.prefix + b"-%d" % self.tree.size)

    def checkpoint(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        cp = Checkpoint(ORIGIN, size, self.tree.root_at(size))
        return sign_checkpoint(cp, self.signer).to_text()

    def proof(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new) if old else []


def make_witness(store: WitnessStateStore | None = None, now: int = NOW) -> Witness:
    signer = CosignatureSigner(
        "witness.example/w1", hashlib.sha256(b"w1").digest(), clock=lambda: now
    )
    return Witness(signer, store or MemoryWitnessStateStore())


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness() -> Witness:
    return make_witness()


def cosign_sizes(witness: Witness, log: Log, *sizes: int) -> list[str]:
    lines = []
    old = 0
    for size in sizes:
        log.grow_to(size)
        lines.append(
            witness.add_checkpoint(
                log.checkpoint(size), old, log.proof(old, size), log.signer.verifier()
            )
        )
        old = size
    return lines


# --- acceptance -------------------------------------------------------------------------------


def test_first_checkpoint_is_cosigned(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    line = witness.add_checkpoint(log.checkpoint(), 0, [], log.signer.verifier())
    cosig = Cosignature.from_line(line)
    assert line.endswith("\n")
    assert line.startswith("— witness.example/w1 ")
    assert cosig.timestamp == NOW
    note = SignedCheckpoint.from_text(log.checkpoint()).with_signature_lines(line).to_text()
    result = verify_cosignatures(note, log.signer.verifier(), [witness.verifier()], 1)
    assert result.witnesses == ("witness.example/w1",)


def test_state_holds_log_signature_and_cosignature(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    text = log.checkpoint()
    # A stranger's line in the submission is not kept.
    stranger = SignedCheckpoint.from_text(text).with_signature_lines(
        "— stranger.example AAAAAQAAAAAAAAAAAAAAAA==\n"
    )
    line = witness.add_checkpoint(stranger.to_text(), 0, [], log.signer.verifier())
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.to_text() == text + line
    assert witness.latest("other.example/log") is None


def test_consistent_growth_is_cosigned(witness: Witness, log: Log) -> None:
    lines = cosign_sizes(witness, log, 3, 7, 8, 16, 17)
    assert len(lines) == 5
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 17


def test_same_checkpoint_twice_is_idempotent(witness: Witness, log: Log) -> None:
    first = cosign_sizes(witness, log, 5)[0]
    before = witness.latest(ORIGIN)
    again = witness.add_checkpoint(log.checkpoint(5), 5, [], log.signer.verifier())
    assert again == first  # same clock, deterministic Ed25519: the very same line
    assert witness.latest(ORIGIN) == before


def test_cosignature_time_never_goes_back(log: Log) -> None:
    store = MemoryWitnessStateStore()
    cosign_sizes(make_witness(store, now=NOW), log, 3)
    later = make_witness(store, now=NOW - 3600)  # the clock stepped back an hour
    log.grow_to(5)
    line = later.add_checkpoint(log.checkpoint(), 3, log.proof(3, 5), log.signer.verifier())
    assert Cosignature.from_line(line).timestamp == NOW
    later_still = make_witness(store, now=NOW + 10)
    log.grow_to(6)
    line = later_still.add_checkpoint(log.checkpoint(), 5, log.proof(5, 6), log.signer.verifier())
    assert Cosignature.from_line(line).timestamp == NOW + 10


def test_empty_tree_checkpoint(witness: Witness, log: Log) -> None:
    witness.add_checkpoint(log.checkpoint(0), 0, [], log.signer.verifier())
    log.grow_to(4)
    witness.add_checkpoint(log.checkpoint(), 0, [], log.signer.verifier())
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 4


# --- refusals ---------------------------------------------------------------------------------


def test_rollback_is_refused_with_evidence(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3, 7)
    before = witness.latest(ORIGIN)
    with pytest.raises(ConsistencyError, match="rollback") as info:
        witness.add_checkpoint(log.checkpoint(3), 7, [], log.signer.verifier())
    err = info.value
    assert isinstance(err.old, SignedCheckpoint)
    assert err.old.checkpoint.size == 7
    assert isinstance(err.new, SignedCheckpoint)
    assert err.new.checkpoint.size == 3
    assert err.proof == ()
    assert witness.latest(ORIGIN) == before


def test_fork_at_same_size_is_refused_with_evidence(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 5)
    fork = Log(prefix=b"forked")  # same key, other history
    fork.grow_to(5)
    with pytest.raises(ConsistencyError, match="fork") as info:
        witness.add_checkpoint(fork.checkpoint(), 5, [], fork.signer.verifier())
    err = info.value
    assert isinstance(err.old, SignedCheckpoint)
    assert isinstance(err.new, SignedCheckpoint)
    assert err.old.checkpoint.size == err.new.checkpoint.size == 5
    assert err.old.checkpoint.root_hash == log.tree.root_at(5)
    assert err.new.checkpoint.root_hash == fork.tree.root_at(5)
    # Both are signed by the log: the evidence stands on its own.
    SignedCheckpoint.open(err.old.to_text(), log.signer.verifier())
    SignedCheckpoint.open(err.new.to_text(), log.signer.verifier())


def test_fork_is_refused_even_with_a_wrong_old_size(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 5)
    fork = Log(prefix=b"forked")
    fork.grow_to(5)
    with pytest.raises(ConsistencyError, match="fork"):
        witness.add_checkpoint(fork.checkpoint(), 0, [], fork.signer.verifier())


def test_inconsistent_growth_is_refused_with_evidence(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    fork = Log(prefix=b"forked")
    fork.grow_to(8)
    proof = fork.proof(3, 8)
    with pytest.raises(ConsistencyError, match="not proven consistent") as info:
        witness.add_checkpoint(fork.checkpoint(), 3, proof, fork.signer.verifier())
    err = info.value
    assert isinstance(err.old, SignedCheckpoint)
    assert err.old.checkpoint.size == 3
    assert isinstance(err.new, SignedCheckpoint)
    assert err.new.checkpoint.size == 8
    assert err.proof == tuple(proof)
    assert isinstance(err.__cause__, ProofError)
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.checkpoint.size == 3


def test_corrupted_proof_is_refused(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    log.grow_to(8)
    proof = log.proof(3, 8)
    proof[-1] = bytes([proof[-1][0] ^ 1]) + proof[-1][1:]
    with pytest.raises(ConsistencyError):
        witness.add_checkpoint(log.checkpoint(), 3, proof, log.signer.verifier())
    with pytest.raises(ConsistencyError):
        witness.add_checkpoint(log.checkpoint(), 3, log.proof(3, 8)[:-1], log.signer.verifier())


def test_old_size_mismatch_carries_the_known_size(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    log.grow_to(8)
    with pytest.raises(OldSizeMismatchError) as info:
        witness.add_checkpoint(log.checkpoint(), 5, log.proof(5, 8), log.signer.verifier())
    assert info.value.known_size == 3
    assert info.value.old_size == 5
    assert not isinstance(info.value, ConsistencyError)  # a stale client, not misbehaviour


def test_old_size_mismatch_on_a_fresh_witness(witness: Witness, log: Log) -> None:
    log.grow_to(8)
    with pytest.raises(OldSizeMismatchError) as info:
        witness.add_checkpoint(log.checkpoint(), 3, log.proof(3, 8), log.signer.verifier())
    assert info.value.known_size == 0
    assert witness.latest(ORIGIN) is None


def test_bad_log_signature_is_refused(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    other_key = Log(key_label="other key")
    with pytest.raises(SignatureError, match="not signed by the log key"):
        witness.add_checkpoint(log.checkpoint(), 0, [], other_key.signer.verifier())
    tampered = log.checkpoint().replace("\n3\n", "\n4\n")
    with pytest.raises(SignatureError):
        witness.add_checkpoint(tampered, 0, [], log.signer.verifier())
    assert witness.latest(ORIGIN) is None


def test_origin_must_be_the_log_key_name(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    elsewhere = Ed25519Signer("elsewhere.example/log", hashlib.sha256(b"log key").digest())
    with pytest.raises(UnknownLogError):
        witness.add_checkpoint(log.checkpoint(), 0, [], elsewhere.verifier())


def test_old_size_larger_than_size_is_a_bad_request(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    with pytest.raises(EncodingError, match="larger than"):
        witness.add_checkpoint(log.checkpoint(), 4, [], log.signer.verifier())


def test_proof_from_size_zero_must_be_empty(witness: Witness, log: Log) -> None:
    log.grow_to(3)
    with pytest.raises(ProofError):
        witness.add_checkpoint(log.checkpoint(), 0, [b"\x00" * 32], log.signer.verifier())


def test_same_size_with_a_proof_is_refused(witness: Witness, log: Log) -> None:
    cosign_sizes(witness, log, 3)
    with pytest.raises(ProofError):
        witness.add_checkpoint(log.checkpoint(3), 3, [b"\x00" * 32], log.signer.verifier())


def test_empty_tree_must_have_the_empty_root(witness: Witness, log: Log) -> None:
    bad = sign_checkpoint(Checkpoint(ORIGIN, 0, b"\x01" * 32), log.signer).to_text()
    with pytest.raises(ProofError, match="empty-tree root"):
        witness.add_checkpoint(bad, 0, [], log.signer.verifier())
    good = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), log.signer).to_text()
    witness.add_checkpoint(good, 0, [], log.signer.verifier())


@pytest.mark.parametrize(
    ("old_size", "proof"),
    [(-1, []), (True, []), (3, [b"\x00" * 31]), (3, [b"\x00" * 32] * (MAX_PROOF_HASHES + 1))],
)
def test_malformed_arguments(witness: Witness, log: Log, old_size: int, proof: list[bytes]) -> None:
    log.grow_to(8)
    with pytest.raises(EncodingError):
        witness.add_checkpoint(log.checkpoint(), old_size, proof, log.signer.verifier())


def test_malformed_checkpoint_note(witness: Witness, log: Log) -> None:
    with pytest.raises(EncodingError):
        witness.add_checkpoint("not a note", 0, [], log.signer.verifier())


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


# --- wire helpers -----------------------------------------------------------------------------

SPEC_REQUEST = """\
old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
"""  # noqa: E501 - verbatim from c2sp.org/tlog-witness


def test_spec_add_checkpoint_request_round_trips() -> None:
    request = AddCheckpointRequest.from_text(SPEC_REQUEST)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert SignedCheckpoint.from_text(request.checkpoint).checkpoint.size == 20852163
    assert request.to_text() == SPEC_REQUEST
    assert AddCheckpointRequest.from_text(request.to_text()) == request


def test_request_with_empty_proof_round_trips(log: Log) -> None:
    log.grow_to(2)
    request = AddCheckpointRequest(0, (), log.checkpoint())
    assert request.to_text().startswith("old 0\n\n")
    assert AddCheckpointRequest.from_text(request.to_text()) == request


@pytest.mark.parametrize(
    "body",
    ["old 01\n\nx", "old -1\n\nx", "new 1\n\nx", "old 1\n", "old 1\nnot base64\n\nx"],
)
def test_malformed_requests(body: str) -> None:
    with pytest.raises(EncodingError):
        AddCheckpointRequest.from_text(body)


def test_proof_lines_round_trip(log: Log) -> None:
    log.grow_to(20)
    proof = log.proof(7, 20)
    text = format_proof_lines(proof)
    assert parse_proof_lines(text) == tuple(proof)
    assert format_proof_lines(parse_proof_lines(text)) == text
    assert parse_proof_lines("") == ()


@pytest.mark.parametrize(
    "text",
    [
        "AAAA\n",  # not 32 bytes
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",  # no final newline
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\n",  # empty line
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" * (MAX_PROOF_HASHES + 1),
    ],
)
def test_malformed_proof_lines(text: str) -> None:
    with pytest.raises(EncodingError):
        parse_proof_lines(text)
