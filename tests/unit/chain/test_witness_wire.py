"""The witness's wire helpers: the tlog-witness add-checkpoint request and proof lines."""

from __future__ import annotations

import pytest

from chain.checkpoint import SignedCheckpoint
from chain.errors import EncodingError
from chain.witness import (
    MAX_PROOF_HASHES,
    AddCheckpointRequest,
    format_proof_lines,
    parse_proof_lines,
)
from tests.unit.chain.test_witness import Log


@pytest.fixture
def log() -> Log:
    return Log()


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
