"""The fault harness's accounting: a loss, a second leaf, a wrong verdict at any stage shows.

``count_stages`` is what every fault test and ``bench/faults.py`` trust to say "0 lost, 0
duplicated"; here it is fed stages that are complete, then each one damaged in one way.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from chain.hashing import leaf_hash
from device_sim.truth import MessageTruth, TruthFile
from tests.integration.fault_counting import Tally, count_stages

Stages = tuple[
    dict[str, bytes],
    Counter[str],
    dict[str, Counter[str]],
    list[tuple[str, int, bytes]],
    Counter[str],
]


def _sha(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _truth() -> TruthFile:
    """Three stored messages, one forged (quarantined), one re-sent copy (a duplicate)."""
    expected = ["stored", "stored", "stored", "quarantine:bad_signature", "duplicate"]
    values = [b"m1", b"m2", b"m3", b"forged", b"m1"]
    messages = [
        MessageTruth(i, "veh-1", i + 1, 0, _sha(value), 0, None, outcome)
        for i, (value, outcome) in enumerate(zip(values, expected, strict=True))
    ]
    return TruthFile({}, messages, [], {"complete": True})


def _complete() -> Stages:
    raw = {_sha(v): v for v in (b"m1", b"m2", b"m3", b"forged")}
    copies = Counter({_sha(b"m1"): 2, _sha(b"m2"): 1, _sha(b"m3"): 1, _sha(b"forged"): 1})
    quarantine = {
        _sha(b"forged"): Counter({"bad_signature": 1}),
        _sha(b"m1"): Counter({"duplicate": 1}),
    }
    rows = [("veh-1", seq, leaf_hash(v)) for seq, v in ((1, b"m1"), (2, b"m2"), (3, b"m3"))]
    leaves = Counter({_sha(b"m1"): 1, _sha(b"m2"): 1, _sha(b"m3"): 1})
    return raw, copies, quarantine, rows, leaves


def _count(stages: Stages) -> Tally:
    tally = Tally(published=5)
    count_stages(tally, _truth(), *stages)
    return tally


def test_complete_stages_count_clean() -> None:
    tally = _count(_complete())
    assert tally.ok, str(tally)
    assert (tally.raw, tally.stored, tally.ledger, tally.quarantined) == (5, 3, 3, 2)


def _no_row_2(s: Stages) -> None:
    s[3].pop(1)


def _no_leaf_3(s: Stages) -> None:
    s[4][_sha(b"m3")] = 0


def _no_resent_copy(s: Stages) -> None:
    s[1][_sha(b"m1")] = 1


def _no_quarantine(s: Stages) -> None:
    s[2].pop(_sha(b"forged"))


@pytest.mark.parametrize("damage", [_no_row_2, _no_leaf_3, _no_resent_copy, _no_quarantine])
def test_a_message_missing_from_one_stage_is_lost(damage: object) -> None:
    stages = _complete()
    assert callable(damage)
    damage(stages)
    tally = _count(stages)
    assert tally.lost == 1, str(tally)
    assert not tally.ok


def test_a_second_leaf_or_row_is_a_duplicate() -> None:
    stages = _complete()
    stages[4][_sha(b"m2")] = 2
    stages[3].append(("veh-1", 3, leaf_hash(b"m3")))  # same (device, seq), another ts
    tally = _count(stages)
    assert tally.duplicated == 2, str(tally)
    assert tally.lost == 0


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda s: s[2].update({_sha(b"m2"): Counter(conflict=1)}), "quarantined as ['conflict']"),
        (lambda s: s[3].append(("veh-1", 9, b"x" * 32)), "telemetry rows not expected"),
        (lambda s: s[4].update({_sha(b"forged"): 1}), "rejected messages are ledger leaves"),
        (lambda s: s[3].__setitem__(0, ("veh-1", 1, b"y" * 32)), "leaf hash is not that"),
    ],
)
def test_a_wrong_verdict_is_a_problem(damage: object, problem: str) -> None:
    stages = _complete()
    assert callable(damage)
    damage(stages)
    tally = _count(stages)
    assert any(problem in p for p in tally.problems), tally.problems
