"""``roadledger verify`` says whose certificate it is and checks it is the one expected.

Issue 9, attack 4: a certificate of another vehicle printed ``OK ... for veh-0099`` and
nothing else about the vehicle. Now the VIN, class and owner of the certified key records are
printed, ``--device`` / ``--vin`` fail (exit 1, the field named) for another vehicle, and the
time the messages leave uncovered at each end of the range is printed.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from app import cli
from app.commands.verify import _duration
from tests.unit.chain.test_certificate_scenario import DEVICE, T0, Scenario, make_scenario, ts_of

VIN = "WVWZZZ1JZXW000001"


@pytest.fixture(autouse=True)
def only_verify_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"verify": "app.commands.verify"})


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


def _run(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    cert = tmp_path / "cert.json"
    cert.write_text(scenario.text, encoding="utf-8")
    code = cli.main(["verify", str(cert), "--log-key", scenario.log_verifier.to_vkey(), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_output_names_the_vehicle_and_the_uncovered_time(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(scenario, tmp_path, capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == f"  vehicle:     VIN {VIN}, class M1, owner fleet-berlin"
    # messages 00:00:05 .. 00:03:25 in a range 00:00 .. 01:00
    assert lines[4] == "  uncovered:   5 s at the start, 56 min 35 s at the end of the range"


def test_expected_device_and_vin_pass(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(scenario, tmp_path, capsys, "--device", DEVICE, "--vin", VIN)
    assert (code, err) == (0, "")
    assert out.startswith(f"OK mileage certificate for {DEVICE}\n")


def test_another_device_fails_naming_the_field(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(scenario, tmp_path, capsys, "--device", "veh-0099")
    assert (code, out) == (1, "")
    assert err == (
        f"roadledger verify: device_id: the certificate is for device {DEVICE}, expected veh-0099\n"
    )


def test_another_vin_fails_naming_the_field(
    scenario: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(scenario, tmp_path, capsys, "--vin", "WVWZZZ1JZXW000002")
    assert (code, out) == (1, "")
    leaf = scenario.certificate.device_keys[0].leaf_index
    key_id = scenario.records[0].key_id
    assert err == (
        f"roadledger verify: vin: device_keys[0] (leaf {leaf}, key {key_id}) states VIN {VIN}, "
        "expected WVWZZZ1JZXW000002\n"
    )


def test_a_record_without_vin_fails_an_expected_vin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    base = make_scenario().records[0]
    no_vin = make_scenario(extra_records=[replace(base, vin=None)])
    code, _, err = _run(no_vin, tmp_path, capsys, "--vin", VIN)
    assert code == 1
    assert "roadledger verify: vin: device_keys[1] (leaf " in err
    assert err.endswith(f"states no VIN, expected {VIN}\n")
    # Without --vin it verifies, and shows that the records disagree.
    code, out, _ = _run(no_vin, tmp_path, capsys)
    assert code == 0
    assert "    the 2 key records state 2:" in out.splitlines()


def test_shortfall_in_days(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The requested range runs two days and a bit beyond the last message.
    wide = make_scenario(to_ms=ts_of(21) + 2 * 86_400_000 + 3_600_000)
    code, out, _ = _run(wide, tmp_path, capsys)
    assert code == 0
    assert "  uncovered:   5 s at the start, 2 d 1 h at the end of the range" in out.splitlines()
    assert wide.certificate.from_ms == T0


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "none"),
        (250, "250 ms"),
        (5_000, "5 s"),
        (3_395_000, "56 min 35 s"),
        (3_600_000, "1 h"),
        (2 * 86_400_000 + 3_600_000 + 61_000, "2 d 1 h"),
        (86_400_000 + 59_000, "1 d 59 s"),
    ],
)
def test_duration(ms: int, text: str) -> None:
    assert _duration(ms) == text


def test_stdin_over_the_size_limit_fails_early(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import chain.certificate_stream

    monkeypatch.setattr(chain.certificate_stream, "MAX_CERTIFICATE_BYTES", 1000)
    data = scenario.text.encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = cli.main(["verify", "-", "--log-key", scenario.log_verifier.to_vkey()])
    err = capsys.readouterr().err
    assert code == 1
    # stdin is copied to a file of at most the limit + 1 bytes, whose size then tells.
    assert err == (
        "roadledger verify: format: certificate: 1001 bytes, larger than the limit of 1000 bytes\n"
    )
