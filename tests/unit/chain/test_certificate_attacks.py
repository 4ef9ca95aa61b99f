"""Issue 9, attacks 1 and 2, on the certificate: a broken hash chain and backdating with a
stolen key are stated in the summary by the builder and recomputed by the verifier.

Attack 2: a key revoked at T (its revocation record at leaf R); a thief signs messages with
ts before T that reach the log after R. Their ts says nothing (the thief sets the clock), the
leaf order does: each is flagged ``sequenced_after_revocation``, and a certificate that leaves
the flag out fails. Attack 1: a re-flashed device continues the count with a made-up ``prev``;
the builder marks the break, also when the range starts right after it.
"""

from __future__ import annotations

from typing import Any

import pytest

from chain.certificate_build import build_certificate
from chain.entries import device_key_entry
from chain.errors import CertificateError
from chain.telemetry import chain_hash
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    TO_MS,
    Scenario,
    edit,
    make_scenario,
    ts_of,
)


def _revocation_leaf(scenario: Scenario) -> int:
    return scenario.certificate.device_keys[1].leaf_index


def test_messages_sequenced_after_the_revocation_record_are_flagged() -> None:
    # Revoked after every message's ts, but the record is logged halfway through delivery.
    late = make_scenario(revoke_at_seq=22)
    revocation_leaf = _revocation_leaf(late)
    after = sorted(s for s, leaf in late.leaf_of.items() if leaf > revocation_leaf)
    assert after, "the scenario logs some messages after the revocation record"
    result = late.verify()
    flagged = [a for a in result.summary.anomalies if a.kind == "sequenced_after_revocation"]
    assert [a.seq for a in flagged] == after
    key_id = late.records[0].key_id
    first = flagged[0]
    assert first.detail == (
        f"seq {first.seq} (ts {ts_of(first.seq)}) is at leaf {late.leaf_of[first.seq]}, after "
        f"leaf {revocation_leaf} that revoked key {key_id} at {ts_of(22)}"
    )


def test_a_certificate_hiding_the_flag_fails() -> None:
    late = make_scenario(revoke_at_seq=22)

    def hide(obj: dict[str, Any]) -> None:
        anomalies = obj["summary"]["anomalies"]
        obj["summary"]["anomalies"] = [
            a for a in anomalies if a["kind"] != "sequenced_after_revocation"
        ]

    with pytest.raises(CertificateError) as info:
        late.verify(edit(late.text, hide))
    assert info.value.item == "summary.anomalies"
    assert '"kind": "sequenced_after_revocation"' in info.value.detail
    assert info.value.detail.endswith("is missing")


def test_messages_before_the_revocation_record_are_not_flagged() -> None:
    # Revocation recorded before any message was logged? No: the scenario logs it after 11
    # deliveries, so the ones delivered first stay unflagged.
    late = make_scenario(revoke_at_seq=22)
    revocation_leaf = _revocation_leaf(late)
    before = {s for s, leaf in late.leaf_of.items() if leaf < revocation_leaf}
    flagged = {a.seq for a in late.verify().summary.anomalies}
    assert before
    assert not before & flagged


def _build_from(scenario: Scenario, first_seq: int, **extra: Any) -> Any:
    return build_certificate(
        DEVICE,
        ts_of(first_seq),
        TO_MS,
        messages=[
            (scenario.raw_messages[s], leaf)
            for s, leaf in scenario.leaf_of.items()
            if s >= first_seq
        ],
        key_entries=[(device_key_entry(scenario.records[0]), _key_leaf(scenario))],
        proof_source=scenario.log.inclusion_proof,
        signed_checkpoint_text=scenario.signed_checkpoint_text,
        **extra,
    )


def _key_leaf(scenario: Scenario) -> int:
    return scenario.certificate.device_keys[0].leaf_index


def test_a_break_just_before_the_range_is_included() -> None:
    reflashed = make_scenario(bad_prev_seq=11)  # the device went on at seq 11, made-up prev
    predecessor = (reflashed.raw_messages[10], reflashed.leaf_of[10])
    cert = _build_from(reflashed, 11, predecessor=predecessor)
    assert cert.from_ms == ts_of(10), "widened back to the predecessor"
    assert cert.summary.first_seq == 10
    assert [(a.seq, a.kind) for a in cert.summary.anomalies] == [(11, "chain_broken")]
    result = reflashed.verify(cert)
    assert result.summary.anomalies[0].detail == (
        f"prev of seq 11 is {chain_hash(b'not the previous message')!r}, but the hash of "
        f"seq 10 is {chain_hash(reflashed.raw_messages[10])!r}"
    )


def test_an_intact_link_to_the_predecessor_adds_nothing() -> None:
    honest = make_scenario()
    predecessor = (honest.raw_messages[10], honest.leaf_of[10])
    cert = _build_from(honest, 11, predecessor=predecessor)
    assert (cert.from_ms, cert.summary.first_seq, cert.summary.anomalies) == (ts_of(11), 11, ())


def test_a_predecessor_of_another_seq_is_refused() -> None:
    honest = make_scenario()
    with pytest.raises(CertificateError) as info:
        _build_from(honest, 11, predecessor=(honest.raw_messages[8], honest.leaf_of[8]))
    assert (info.value.item, info.value.detail) == (
        "messages",
        f"predecessor (leaf {honest.leaf_of[8]}) is seq 8, not 10",
    )


def test_a_message_no_key_record_signed_is_refused_by_the_builder() -> None:
    rotated = make_scenario(rotate_at_seq=1)  # seq 1 on signed with the second key
    first_record = rotated.certificate.device_keys[0]  # the first key's registration only
    with pytest.raises(CertificateError) as info:
        build_certificate(
            DEVICE,
            ts_of(1),
            TO_MS,
            messages=[(rotated.raw_messages[1], rotated.leaf_of[1])],
            key_entries=[(first_record.entry, first_record.leaf_index)],
            proof_source=rotated.log.inclusion_proof,
            signed_checkpoint_text=rotated.signed_checkpoint_text,
        )
    assert (info.value.item, info.value.detail) == (
        "messages[0]",
        f"seq 1 (leaf {rotated.leaf_of[1]}): bad_signature: the signature verifies under none "
        "of the 1 key records",
    )
