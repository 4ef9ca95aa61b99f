"""Verifying a certificate file in bounded memory, with limits that fail early and say which.

Issue 9, attack 5: a 1 GB certificate was read whole (4.5 GB RSS, 65 s before failing on
entry 1). :func:`verify_certificate_file` now holds one message at a time: its memory does
not grow with the number of messages, a file over the size limit fails before anything is
read, and one oversized element fails after at most twice the element limit was buffered.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

import chain.certificate_stream as stream_module
from chain.certificate_build import build_certificate
from chain.certificate_stream import MAX_ITEM_CHARS
from chain.certificate_verify import VerificationReport, verify_certificate_file
from chain.checkpoint import Checkpoint, sign_checkpoint
from chain.device_keys import DeviceKey
from chain.entries import device_key_entry
from chain.errors import CertificateError
from chain.log import InMemoryMerkleLog
from chain.telemetry import DeviceKind, Telemetry, chain_hash, sign_telemetry
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    ORIGIN,
    T0,
    Scenario,
    device_private_key,
    log_signer,
)


def _certificate(messages: int) -> bytes:
    """A valid certificate of ``messages`` chained messages (one key, no witnesses)."""
    key = device_private_key()
    record = DeviceKey(
        device_id=DEVICE, public_key=key.public_key, owner_org="fleet-berlin",
        kind=DeviceKind.VEHICLE, valid_from_ms=T0 - 1, vin="WVWZZZ1JZXW000001",
        vehicle_class="M1",
    )  # fmt: skip
    log = InMemoryMerkleLog()
    key_leaf = log.append(device_key_entry(record))
    pairs, prev = [], ""
    for seq in range(1, messages + 1):
        raw = sign_telemetry(
            key,
            Telemetry(
                dev=DEVICE, seq=seq, prev=prev, ts=T0 + seq * 1000, odo_m=1_000 + seq * 10,
                lat_e7=525_200_000, lon_e7=134_050_000 + seq * 15, spd_cms=1000, hdg_cdeg=9000,
            ),
        )  # fmt: skip
        prev = chain_hash(raw)
        pairs.append((raw, log.append(raw)))
    text = sign_checkpoint(Checkpoint(ORIGIN, log.size, log.root()), log_signer()).to_text()
    cert = build_certificate(
        DEVICE, T0, T0 + (messages + 1) * 1000, pairs, [(device_key_entry(record), key_leaf)],
        log.inclusion_proof, text,
    )  # fmt: skip
    return cert.to_json().encode()


def _verify(stream: IO[bytes]) -> VerificationReport:
    return verify_certificate_file(stream, log_signer().verifier(), [], 0)


def _peak(work: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_messages(tmp_path: Path) -> None:
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    small.write_bytes(_certificate(500))
    large.write_bytes(_certificate(4000))
    with small.open("rb") as f:
        assert _verify(f).summary.message_count == 500
    with small.open("rb") as f:
        small_peak = _peak(lambda: _verify(f))
    with large.open("rb") as f:
        large_peak = _peak(lambda: _verify(f))
    size = large.stat().st_size
    # 8x the messages, about the same memory; far less than the file (~7 MB).
    assert large_peak < small_peak * 1.5 + 256 * 1024, (small_peak, large_peak)
    assert large_peak < size / 4, (large_peak, size)


def test_a_file_over_the_size_limit_fails_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "MAX_CERTIFICATE_BYTES", 1024 * 1024)
    big = tmp_path / "big.json"
    with big.open("wb") as out:  # 8 MiB, sparse: nothing to parse is needed to refuse it
        out.truncate(8 * 1024 * 1024)
    errors: list[CertificateError] = []

    def run(f: IO[bytes]) -> None:
        with pytest.raises(CertificateError) as info:
            _verify(f)
        errors.append(info.value)

    with big.open("rb") as f:
        peak = _peak(lambda: run(f))
    assert (errors[0].item, errors[0].detail) == (
        "format",
        "certificate: 8388608 bytes, larger than the limit of 1048576 bytes",
    )
    assert peak < 256 * 1024


class _Unseekable(io.RawIOBase):
    """A stream that cannot tell its size: the limit is then counted while reading."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_an_unsized_stream_fails_when_the_limit_is_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_module, "MAX_CERTIFICATE_BYTES", 200_000)
    data = b'{"format": "roadledger/mileage-certificate/v1", "messages": [' + b" " * 400_000
    with pytest.raises(CertificateError) as info:
        stream_module.read_head(io.BufferedReader(_Unseekable(data)))
    assert info.value.detail == "certificate: larger than the limit of 200000 bytes"


def test_an_oversized_message_fails_naming_it_in_bounded_memory(scenario: Scenario) -> None:
    huge = "A" * (20 * 1024 * 1024)
    marker = '"jws": "'
    second = scenario.text.index(marker, scenario.text.index(marker) + 1) + len(marker)
    text = (scenario.text[:second] + huge + scenario.text[second:]).encode()  # messages[1]

    def run() -> None:
        with pytest.raises(CertificateError) as info:
            _verify(io.BytesIO(text))
        assert (info.value.item, info.value.detail) == (
            "format",
            f"messages[1]: larger than the limit of {MAX_ITEM_CHARS} characters",
        )

    peak = _peak(run)
    assert peak < 2 * 1024 * 1024, peak  # the 20 MiB element was never held


def test_too_many_messages_fail_at_the_first_one_over(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_module, "_ARRAYS", {**stream_module._ARRAYS, "messages": (5, None)})
    with pytest.raises(CertificateError) as info:
        _verify(io.BytesIO(scenario.text.encode()))
    assert info.value.detail == "messages: more than the limit of 5 elements"


def test_members_in_any_order(scenario: Scenario) -> None:
    import json

    obj = json.loads(scenario.text)
    reordered = {k: obj[k] for k in reversed(list(obj))}  # messages before the checkpoint
    report = _verify(io.BytesIO(json.dumps(reordered).encode()))
    assert report.summary == scenario.certificate.summary


def test_a_format_error_after_the_messages_is_reported_first(scenario: Scenario) -> None:
    import json

    obj = json.loads(scenario.text)
    obj["messages"][3]["jws"] = obj["messages"][3]["jws"][:-4] + "AAAA"  # a bad signature
    obj["summary"]["gaps"][0]["after_seq"] = "8"  # and, later in the file, a format error
    with pytest.raises(CertificateError) as info:
        _verify(io.BytesIO(json.dumps(obj).encode()))
    assert info.value.item == "format"
    assert info.value.detail.startswith("summary.gaps[0].after_seq: expected an integer")
