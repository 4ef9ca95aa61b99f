"""chain.certificate_signers: who signed each message, found ahead of the verification, is
what the verifier's own check finds; answers for other keys are not used."""

from __future__ import annotations

import dataclasses

import pytest

from chain.certificate_checks import effective_keys, signing_key
from chain.certificate_signers import KnownSigners, find_signers, key_order
from chain.entries import parse_device_key_entry
from chain.errors import CertificateError
from chain.jws import CompactJws
from tests.unit.chain.test_certificate_scenario import make_scenario


def test_the_signers_are_the_verifiers() -> None:
    rotated = make_scenario(rotate_at_seq=15)  # two keys: each signs some messages
    entries = [(k.entry, k.leaf_index) for k in rotated.certificate.device_keys]
    keys = effective_keys(parse_device_key_entry(entry) for entry, _ in entries)
    order = key_order(reversed(entries))  # sorted by leaf, as the verifier reads them
    assert order == tuple(k.public_key.raw for k in keys)
    raws = [m.raw for m in rotated.certificate.messages]
    found = find_signers([*raws, raws[0][:-3] + b"AAA", b"no.jws.!"], order)
    expected = [keys.index(signer) for raw in raws if (signer := signing_key(
        CompactJws.from_bytes(raw), keys)) is not None]  # fmt: skip
    assert found == [*expected, None, None]
    assert set(found) == {0, 1, None}
    known = KnownSigners(order, dict(zip(raws, found, strict=False)))
    assert rotated.verify(rotated.certificate, known_signers=known).summary == (
        rotated.certificate.summary
    )


def test_a_malformed_key_record_gives_no_order() -> None:
    assert key_order([(b"roadledger/device-key/v1\n{}", 3)]) == ()


def test_answers_for_other_keys_are_not_used() -> None:
    scenario = make_scenario()
    first = scenario.certificate.messages[0]
    forged = dataclasses.replace(first, jws=first.jws[:-3] + "AAA")
    certificate = dataclasses.replace(
        scenario.certificate, messages=(forged, *scenario.certificate.messages[1:])
    )
    order = key_order([(k.entry, k.leaf_index) for k in certificate.device_keys])
    for keys in ((bytes(32),), (*order, bytes(32))):  # another key, one more key
        lying = KnownSigners(keys, dict.fromkeys((m.raw for m in certificate.messages), 0))
        with pytest.raises(CertificateError) as info:
            scenario.verify(certificate, known_signers=lying)
        assert (info.value.item, info.value.detail.split(":")[0]) == (
            "messages[0]",
            "bad_signature",
        )
