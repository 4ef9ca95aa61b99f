"""``build_certificate(checked=False)``: what the API issues before its one verification.

It must state exactly the certificate the checked builder states (the summary's anomalies
included, where the signer of a message matters), and what it no longer checks must be
caught by ``verify_certificate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from chain.certificate import MileageCertificate
from chain.certificate_build import build_certificate
from chain.errors import CertificateError
from chain.telemetry import TelemetryMessage
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    FROM_MS,
    TO_MS,
    Scenario,
    make_scenario,
)


def _rebuild(
    scenario: Scenario,
    *,
    checked: bool,
    messages: Sequence[tuple[bytes, int]] | None = None,
    proof_source: Any = None,
    parsed_out: list[TelemetryMessage] | None = None,
) -> MileageCertificate:
    certificate = scenario.certificate
    return build_certificate(
        DEVICE,
        FROM_MS,
        TO_MS,
        messages=[(scenario.raw_messages[s], leaf) for s, leaf in scenario.leaf_of.items()]
        if messages is None
        else messages,
        key_entries=[(k.entry, k.leaf_index) for k in certificate.device_keys],
        proof_source=proof_source or scenario.log.inclusion_proof,
        signed_checkpoint_text=scenario.signed_checkpoint_text,
        checked=checked,
        parsed_out=parsed_out,
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"revoke_at_seq": 22}, {"rotate_at_seq": 15}, {"bad_prev_seq": 11}],
    ids=["plain", "sequenced-after-revocation", "rotation", "chain-broken"],
)
def test_unchecked_states_what_checked_states(options: dict[str, Any]) -> None:
    scenario = make_scenario(**options)
    unchecked = _rebuild(scenario, checked=False)
    assert unchecked == _rebuild(scenario, checked=True)
    assert unchecked.to_json() == scenario.certificate.to_json()
    scenario.verify(unchecked)


def test_the_signer_is_still_found_where_the_summary_needs_it() -> None:
    # Revocation recorded halfway: the flags need the signer of each later message.
    late = make_scenario(revoke_at_seq=22)
    kinds = {a.kind for a in _rebuild(late, checked=False).summary.anomalies}
    assert kinds == {"sequenced_after_revocation"}


def test_a_forged_signature_is_left_to_the_verifier() -> None:
    scenario = make_scenario()
    seq = next(iter(scenario.leaf_of))
    raw = scenario.raw_messages[seq]
    forged = raw[:-2] + (b"AA" if raw[-2:] != b"AA" else b"BA")
    messages = [(forged if s == seq else scenario.raw_messages[s], i) for s, i in
                scenario.leaf_of.items()]  # fmt: skip
    with pytest.raises(CertificateError):
        _rebuild(scenario, checked=True, messages=messages)
    unchecked = _rebuild(scenario, checked=False, messages=messages)
    with pytest.raises(CertificateError) as info:
        scenario.verify(unchecked)
    assert info.value.item == f"messages[{scenario.index_of(seq)}]"
    assert "bad_signature" in info.value.detail


def test_a_wrong_inclusion_proof_is_left_to_the_verifier() -> None:
    scenario = make_scenario()

    def wrong(index: int, size: int) -> list[bytes]:
        proof = scenario.log.inclusion_proof(index, size)
        return [bytes(32), *proof[1:]] if index == scenario.leaf_of[5] else proof

    with pytest.raises(CertificateError):
        _rebuild(scenario, checked=True, proof_source=wrong)
    with pytest.raises(CertificateError) as info:
        scenario.verify(_rebuild(scenario, checked=False, proof_source=wrong))
    assert info.value.item == f"messages[{scenario.index_of(5)}]"
    assert "inclusion proof" in info.value.detail


def test_the_builders_parse_is_used_for_the_same_bytes_only() -> None:
    scenario = make_scenario(revoke_at_seq=22, bad_prev_seq=11)
    parsed: list[TelemetryMessage] = []
    certificate = _rebuild(scenario, checked=False, parsed_out=parsed)
    assert [m.raw for m in parsed] == [m.raw for m in certificate.messages]
    assert scenario.verify(certificate, parsed_messages=parsed).summary == certificate.summary
    first = certificate.messages[0]
    forged = dataclasses.replace(first, jws=first.jws[:-3] + "AAA")
    changed = dataclasses.replace(certificate, messages=(forged, *certificate.messages[1:]))
    with pytest.raises(CertificateError) as info:
        scenario.verify(changed, parsed_messages=parsed)  # parsed[0] is not forged's parse
    assert (info.value.item, info.value.detail.split(":")[0]) == ("messages[0]", "bad_signature")
