"""The mileage certificate format: JSON round trips, key record entries and the builder."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chain.certificate import FORMAT, MileageCertificate
from chain.certificate_build import build_certificate
from chain.certificate_parts import CertifiedKeyRecord, CertifiedMessage
from chain.device_keys import DeviceKey
from chain.entries import DEVICE_KEY_ENTRY_PREFIX, device_key_entry, parse_device_key_entry
from chain.errors import CertificateError, EncodingError
from chain.mileage import Anomaly, Gap
from chain.telemetry import Observation, Telemetry, sign_telemetry
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    FROM_MS,
    TO_MS,
    Scenario,
    device_private_key,
    make_scenario,
    ts_of,
)

# --- JSON round trips -------------------------------------------------------------------------


def test_object_to_text_to_object(scenario: Scenario) -> None:
    cert = scenario.certificate
    assert MileageCertificate.from_json(cert.to_json()) == cert
    assert MileageCertificate.from_json(cert.to_json().encode("utf-8")) == cert


def test_text_to_object_to_text(scenario: Scenario) -> None:
    text = scenario.text
    assert MileageCertificate.from_json(text).to_json() == text


def test_round_trip_with_anomalies_and_several_gaps() -> None:
    cert = make_scenario().certificate
    summary = dataclasses.replace(
        cert.summary,
        gaps=(Gap(3, 5), Gap(8, 10)),
        anomalies=(Anomaly(4, "odometer_rollback", "odometer 10 m at seq 3, 9 m at seq 4"),),
    )
    changed = dataclasses.replace(cert, summary=summary)
    text = changed.to_json()
    assert MileageCertificate.from_json(text) == changed
    assert MileageCertificate.from_json(text).to_json() == text


def test_text_form_is_pinned(scenario: Scenario) -> None:
    text = scenario.text
    obj = json.loads(text)
    assert list(obj) == [
        "format", "device_id", "from_ms", "to_ms", "checkpoint", "device_keys", "messages",
        "summary",
    ]  # fmt: skip
    assert obj["format"] == FORMAT == "roadledger/mileage-certificate/v1"
    assert list(obj["messages"][0]) == ["jws", "leaf_index", "inclusion_proof"]
    assert list(obj["device_keys"][0]) == ["entry", "leaf_index", "inclusion_proof"]
    assert list(obj["summary"]) == [
        "first_seq", "last_seq", "message_count", "odometer_start_m", "odometer_end_m",
        "distance_m", "gnss_distance_m", "gaps", "anomalies",
    ]  # fmt: skip
    assert obj["summary"]["gaps"] == [{"after_seq": 8, "before_seq": 10}]
    assert text.endswith("}\n")
    assert "\u2014 roadledger.example/log-0 " in text  # UTF-8, not \\u escapes


def _reference_text(cert: MileageCertificate) -> str:
    """The text v1 was defined with: json.dumps of the object, indented by two."""
    return json.dumps(cert.to_dict(), indent=2, ensure_ascii=False) + "\n"


def test_text_is_json_dumps_of_the_object(scenario: Scenario) -> None:
    cert = scenario.certificate
    assert cert.to_json() == _reference_text(cert)
    # The messages are written without json.dumps: strings that need escaping, an empty
    # proof (a tree of one leaf), one of one hash, anomalies and gaps.
    odd = dataclasses.replace(cert.messages[0], jws='a"b\\c\n\u00fc\u2028\x01', inclusion_proof=())
    one = dataclasses.replace(
        cert.messages[1], inclusion_proof=cert.messages[1].inclusion_proof[:1]
    )
    summary = dataclasses.replace(
        cert.summary, gaps=(Gap(3, 5),), anomalies=(Anomaly(4, "clock_rollback", 'a "b"'),)
    )
    changed = dataclasses.replace(cert, messages=(odd, one, *cert.messages[2:]), summary=summary)
    assert changed.to_json() == _reference_text(changed)
    assert MileageCertificate.from_json(changed.to_json()) == changed


def test_compact_or_reordered_json_reads_the_same(scenario: Scenario) -> None:
    obj = json.loads(scenario.text)
    reordered = dict(reversed(list(obj.items())))
    compact = json.dumps(reordered, separators=(",", ":"), ensure_ascii=True)
    parsed = MileageCertificate.from_json(compact)
    assert parsed == scenario.certificate
    assert parsed.to_json() == scenario.text


def test_message_raw_is_the_jws_bytes(scenario: Scenario) -> None:
    message = scenario.certificate.messages[0]
    assert message.raw == message.jws.encode("ascii") == scenario.raw_messages[1]


# --- construction validates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"device_id": ""}, "device_id: expected an id"),
        ({"from_ms": -1}, "from_ms: -1 outside"),
        ({"to_ms": FROM_MS}, f"to_ms: {FROM_MS} is not after from_ms {FROM_MS}"),
        ({"messages": ()}, "messages: expected at least one element"),
        ({"messages": [object()]}, "messages: expected a tuple, got list"),
        ({"device_keys": (object(),)}, "device_keys[0]: expected a CertifiedKeyRecord"),
        (
            {"device_keys": (CertifiedKeyRecord("entry", 0, ()),)},  # type: ignore[arg-type]
            "device_keys[0].entry: expected bytes",
        ),
        (
            {"messages": (CertifiedMessage("x", 0, (b"short",)),)},
            "messages[0].inclusion_proof[0]: expected a 32-byte hash",
        ),
        (
            {"messages": (CertifiedMessage("x", 0, [b"\x00" * 32]),)},  # type: ignore[arg-type]
            "messages[0].inclusion_proof: expected a tuple of at most 64 hashes",
        ),
        (
            {"messages": (CertifiedMessage("x", 2**64 - 1, ()),)},
            "messages[0].leaf_index: 18446744073709551615 outside",
        ),
    ],
)
def test_construction_checks_types_and_ranges(
    scenario: Scenario, changes: dict[str, Any], detail: str
) -> None:
    with pytest.raises(CertificateError) as info:
        dataclasses.replace(scenario.certificate, **changes)
    assert info.value.item == "format"
    assert info.value.detail.startswith(detail)


def test_summary_values_are_checked(scenario: Scenario) -> None:
    summary = dataclasses.replace(scenario.certificate.summary, gaps=(Gap(0, 2),))
    with pytest.raises(CertificateError, match=r"summary\.gaps\[0\]\.after_seq: 0 outside"):
        dataclasses.replace(scenario.certificate, summary=summary)
    summary = dataclasses.replace(scenario.certificate.summary, anomalies=[])  # type: ignore[arg-type]
    with pytest.raises(CertificateError, match=r"summary\.anomalies: expected a tuple"):
        dataclasses.replace(scenario.certificate, summary=summary)


# --- device key entries -----------------------------------------------------------------------


def _record(**changes: Any) -> DeviceKey:
    return dataclasses.replace(make_scenario().records[0], **changes)


def test_key_entry_is_prefix_and_canonical_json() -> None:
    record = _record()
    entry = device_key_entry(record)
    assert entry == b"roadledger/device-key/v1\n" + record.to_json().encode()
    assert entry.startswith(DEVICE_KEY_ENTRY_PREFIX)
    assert parse_device_key_entry(entry) == record
    assert device_key_entry(parse_device_key_entry(entry)) == entry


def test_key_entry_never_looks_like_a_jws(scenario: Scenario) -> None:
    entry = device_key_entry(_record())
    assert b"/" in entry
    assert all(b"/" not in raw for raw in scenario.raw_messages.values())


@pytest.mark.parametrize(
    ("entry", "detail"),
    [
        (b"", "not a device key entry"),
        (b"roadledger/device-key/v2\n{}", "not a device key entry"),
        (DEVICE_KEY_ENTRY_PREFIX + b"{", "device key record: "),
        (DEVICE_KEY_ENTRY_PREFIX + b"{}", "device key record: missing"),
        (DEVICE_KEY_ENTRY_PREFIX + b"\xff", "device key record: "),
    ],
)
def test_bad_key_entries(entry: bytes, detail: str) -> None:
    with pytest.raises(EncodingError) as info:
        parse_device_key_entry(entry)
    assert str(info.value).startswith(detail)


def test_non_canonical_key_entries_are_refused() -> None:
    canonical = device_key_entry(_record())
    for variant in (
        canonical + b"\n",
        canonical.replace(b":", b": "),
        DEVICE_KEY_ENTRY_PREFIX + json.dumps(json.loads(canonical[25:]), indent=1).encode(),
    ):
        with pytest.raises(EncodingError, match="not in canonical form"):
            parse_device_key_entry(variant)


# --- the builder ------------------------------------------------------------------------------


def _build(scenario: Scenario, **changes: Any) -> MileageCertificate:
    args: dict[str, Any] = {
        "device_id": DEVICE,
        "from_ms": FROM_MS,
        "to_ms": TO_MS,
        "messages": [(scenario.raw_messages[s], leaf) for s, leaf in scenario.leaf_of.items()],
        "key_entries": [(device_key_entry(scenario.records[0]), _key_leaf(scenario))],
        "proof_source": scenario.log.inclusion_proof,
        "signed_checkpoint_text": scenario.signed_checkpoint_text,
    }
    args.update(changes)
    return build_certificate(**args)


def _key_leaf(scenario: Scenario) -> int:
    return scenario.certificate.device_keys[0].leaf_index


def _builder_error(scenario: Scenario, **changes: Any) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        _build(scenario, **changes)
    return info.value


def test_builder_sorts_by_seq_whatever_the_input_order(scenario: Scenario) -> None:
    pairs = [(scenario.raw_messages[s], leaf) for s, leaf in scenario.leaf_of.items()]
    assert _build(scenario, messages=list(reversed(pairs))) == scenario.certificate
    assert _build(scenario, messages=sorted(pairs, key=lambda p: p[1])) == scenario.certificate


def test_builder_sorts_key_entries_by_leaf() -> None:
    rotated = make_scenario(rotate_at_seq=12)
    leaves = [k.leaf_index for k in rotated.certificate.device_keys]
    entries = [(k.entry, k.leaf_index) for k in rotated.certificate.device_keys]
    rebuilt = _build(rotated, key_entries=list(reversed(entries)))
    assert [k.leaf_index for k in rebuilt.device_keys] == leaves


def test_builder_uses_the_checkpoint_text_verbatim(scenario: Scenario) -> None:
    assert scenario.certificate.checkpoint == scenario.signed_checkpoint_text


@pytest.mark.parametrize(
    ("changes", "item", "detail"),
    [
        ({"messages": []}, "messages", "no messages to certify"),
        ({"key_entries": []}, "device_keys", "no device key entries"),
        ({"signed_checkpoint_text": "nope"}, "checkpoint", "malformed: "),
        ({"device_id": "veh-0043"}, "messages", "input message 0 (leaf "),
        ({"to_ms": ts_of(21)}, "messages", "input message 19 ("),
        ({"messages": [(b"not a jws", 3)]}, "messages", "input message 0 (leaf 3): malformed"),
    ],
)
def test_builder_refuses(
    scenario: Scenario, changes: dict[str, Any], item: str, detail: str
) -> None:
    error = _builder_error(scenario, **changes)
    assert (error.item, error.detail[: len(detail)]) == (item, detail)


def test_builder_refuses_a_repeated_seq(scenario: Scenario) -> None:
    pairs = [(scenario.raw_messages[1], 7), (scenario.raw_messages[1], 9)]
    error = _builder_error(scenario, messages=pairs)
    assert error.detail == "seq 1 given twice (leaves 7 and 9)"


def test_builder_refuses_an_rsu_message(scenario: Scenario) -> None:
    rsu = Telemetry(
        dev=DEVICE, seq=1, prev="", ts=ts_of(1), lat_e7=0, lon_e7=0,
        obs=(Observation("veh-1", ts_of(1), 0, 0),),
    )  # fmt: skip
    error = _builder_error(scenario, messages=[(sign_telemetry(device_private_key(), rsu), 4)])
    assert error.detail == "input message 0 (leaf 4): not a vehicle message"


def test_builder_refuses_another_devices_key_record(scenario: Scenario) -> None:
    other = device_key_entry(_record(device_id="veh-0043"))
    error = _builder_error(scenario, key_entries=[(other, 5)])
    assert error.item == "device_keys"
    assert error.detail == "leaf 5: a record of veh-0043, not veh-0042"


def test_builder_refuses_a_malformed_key_entry(scenario: Scenario) -> None:
    error = _builder_error(scenario, key_entries=[(b"junk", 5)])
    assert error.detail.startswith("leaf 5: not a device key entry")


def test_builder_checks_every_proof_against_the_checkpoint(scenario: Scenario) -> None:
    size = scenario.log.size

    def stale(index: int, tree_size: int) -> list[bytes]:
        return scenario.log.inclusion_proof(index, size - 1)

    error = _builder_error(scenario, proof_source=stale)
    assert error.item == "messages[0]"
    assert error.detail.startswith(f"leaf {scenario.leaf_of[1]}: no valid inclusion proof: ")

    key_leaf = _key_leaf(scenario)
    wrong_leaf = [(device_key_entry(scenario.records[0]), key_leaf + 1)]
    error = _builder_error(scenario, key_entries=wrong_leaf)
    assert error.item == "device_keys[0]"
    assert "root of tree size" in error.detail


def test_builder_reports_proof_source_failures(scenario: Scenario) -> None:
    error = _builder_error(scenario, messages=[(scenario.raw_messages[1], 10_000)])
    assert error.item == "messages[0]"
    assert error.detail.endswith(f"leaf index 10000 is outside a tree of size {scenario.log.size}")
