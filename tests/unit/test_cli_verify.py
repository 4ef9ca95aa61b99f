"""``roadledger verify``: the insurer's command, through the real entry point."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from app import cli
from app.commands.verify import _one_line
from tests.unit.chain.test_certificate_scenario import (
    DEVICE,
    ORIGIN,
    WITNESS_NAMES,
    Scenario,
    edit,
    make_scenario,
)


@pytest.fixture(autouse=True)
def only_verify_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"verify": "app.commands.verify"})


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


class Files:
    def __init__(self, scenario: Scenario, tmp_path: Path) -> None:
        self.scenario = scenario
        self.dir = tmp_path
        self.cert = self.write("cert.json", scenario.text)
        self.log_vkey = scenario.log_verifier.to_vkey()
        self.log_key_file = self.write("log.vkey", self.log_vkey + "\n")
        self.witness_vkeys = [w.to_vkey() for w in scenario.witnesses]

    def write(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(text, encoding="utf-8")
        return path

    def argv(self, cert: Path | str | None = None, *extra: str) -> list[str]:
        return [
            "verify", str(cert or self.cert), "--log-key", f"@{self.log_key_file}",
            *(arg for vkey in self.witness_vkeys for arg in ("--witness-key", vkey)),
            *extra,
        ]  # fmt: skip


@pytest.fixture
def files(scenario: Scenario, tmp_path: Path) -> Files:
    return Files(scenario, tmp_path)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- success ----------------------------------------------------------------------------------


def test_valid_certificate(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(files.argv(), capsys)
    assert (code, err) == (0, "")
    size = files.scenario.log.size
    assert out.splitlines() == [
        f"OK mileage certificate for {DEVICE}",
        "  vehicle:     VIN WVWZZZ1JZXW000001, class M1, owner fleet-berlin",
        "  range:       2026-01-01T00:00:00Z .. 2026-01-01T01:00:00Z (end excluded)",
        "  messages:    20, seq 1..21, 2026-01-01T00:00:05Z .. 2026-01-01T00:03:25Z",
        "  uncovered:   5 s at the start, 56 min 35 s at the end of the range",
        "  distance:    2.420 km by odometer (48211350 m -> 48213770 m), 2.397 km by GNSS",
        "  gaps:        1, 1 message missing",
        "    seq 9",
        "  anomalies:   none",
        f"  checkpoint:  {ORIGIN} size {size}, signed by log key {ORIGIN}",
        f"  witnesses:   3 of 3 cosigned ({', '.join(WITNESS_NAMES)}), 3 required",
    ]


def test_keys_as_text_or_files_and_k_of_n(
    files: Files, scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    def drop_w3(obj: dict[str, Any]) -> None:
        lines = obj["checkpoint"].split("\n")
        obj["checkpoint"] = "\n".join(x for x in lines if WITNESS_NAMES[2] not in x)

    cert = files.write("two.json", edit(scenario.text, drop_w3))
    w2 = files.write("w2.vkey", files.witness_vkeys[1])
    argv = [
        "verify", str(cert), "--log-key", files.log_vkey,
        "--witness-key", files.witness_vkeys[0], "--witness-key", f"@{w2}",
        "--witness-key", files.witness_vkeys[2], "--min-witnesses", "2",
    ]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert out.splitlines()[-1] == (
        f"  witnesses:   2 of 3 cosigned ({WITNESS_NAMES[0]}, {WITNESS_NAMES[1]}), 2 required"
    )
    code, _, err = run(argv[:-2], capsys)
    assert code == 1
    assert err.startswith("roadledger verify: cosignatures: checkpoint ")
    assert err.endswith(f"2 of the required 3 witnesses cosigned (cosigned: {WITNESS_NAMES[0]}, "
                        f"{WITNESS_NAMES[1]}; missing: {WITNESS_NAMES[2]})\n")  # fmt: skip


def test_no_witnesses_is_said_plainly(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["verify", str(files.cert), "--log-key", files.log_vkey], capsys)
    assert code == 0
    assert out.splitlines()[-1] == (
        "  witnesses:   none given: only the log's signature vouches for the log"
    )


def test_gaps_and_anomalies_are_listed(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    rolled = make_scenario(odometer=lambda seq, odo: odo - 5000 if seq >= 14 else odo)
    code, out, _ = run(files.argv(files.write("rolled.json", rolled.text)), capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[5].startswith("  distance:    -2.580 km by odometer")
    assert lines[6:10] == [
        "  gaps:        1, 1 message missing",
        "    seq 9",
        "  anomalies:   1",
        "    seq 14 odometer_rollback: odometer 48212812 m at seq 13, 48207953 m at seq 14",
    ]


def test_certificate_from_stdin(
    files: Files, scenario: Scenario, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(scenario.text.encode())))
    code, out, _ = run(files.argv("-"), capsys)
    assert code == 0
    assert out.startswith("OK ")


# --- verification failures: exit 1, exactly one line -----------------------------------------


def _tampered_summary(obj: dict[str, Any]) -> None:
    obj["summary"]["distance_m"] += 1


def test_tampered_summary(
    files: Files, scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    cert = files.write("bad.json", edit(scenario.text, _tampered_summary))
    code, out, err = run(files.argv(cert), capsys)
    assert (code, out) == (1, "")
    assert err == "roadledger verify: summary.distance_m: stated 2421, recomputed 2420\n"


def test_broken_hash_chain(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    forged = make_scenario(bad_prev_seq=5)

    def hide(obj: dict[str, Any]) -> None:  # as a builder that did not mark it would write
        anomalies = obj["summary"]["anomalies"]
        obj["summary"]["anomalies"] = [a for a in anomalies if a["kind"] != "chain_broken"]

    cert = files.write("forged.json", edit(forged.text, hide))
    code, out, err = run(files.argv(cert), capsys)
    assert (code, out) == (1, "")
    assert err.startswith("roadledger verify: chain[seq 4->5]: prev of seq 5 is '")
    assert err.count("\n") == 1
    # As the builder writes it, the break is stated: the certificate verifies and says so.
    code, out, err = run(files.argv(files.write("marked.json", forged.text)), capsys)
    assert (code, err) == (0, "")
    assert "    seq 5 chain_broken: prev of seq 5 is '" in out


def test_wrong_log_key(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    from chain.note_signers import Ed25519Signer

    impostor = Ed25519Signer(ORIGIN, b"\x05" * 32).to_vkey()
    argv = files.argv()
    argv[argv.index("--log-key") + 1] = impostor
    code, _, err = run(argv, capsys)
    assert code == 1
    assert err.startswith(f"roadledger verify: checkpoint: not signed by the log key {ORIGIN} (")


def test_not_a_certificate(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    cert = files.write("notes.txt", "hello\n")
    code, _, err = run(files.argv(cert), capsys)
    assert code == 1
    assert err.startswith("roadledger verify: format: certificate: not JSON: ")


def test_control_characters_never_reach_the_terminal() -> None:
    assert _one_line("a\nb\x1b[2Jc\u2014d") == "a\\nb\\x1b[2Jc\u2014d"


# --- unusable input: exit 2 -------------------------------------------------------------------


def test_missing_certificate_file(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    missing = files.dir / "nope.json"
    code, out, err = run(files.argv(missing), capsys)
    assert (code, out) == (2, "")
    assert (
        err == f"roadledger verify: cannot read certificate {missing}: No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not-a-key", "--log-key VKEY: vkey: expected <name>+<hex key ID>+<base64 key>"),
        ("@/nonexistent/log.vkey", "--log-key @/nonexistent/log.vkey: cannot read "
         "/nonexistent/log.vkey: No such file or directory"),
    ],
)  # fmt: skip
def test_bad_log_key(
    files: Files, key: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = files.argv()
    argv[argv.index("--log-key") + 1] = key
    code, _, err = run(argv, capsys)
    assert (code, err) == (2, f"roadledger verify: {message}\n")


def test_witness_key_given_as_log_key(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    argv = files.argv()
    argv[argv.index("--log-key") + 1] = files.witness_vkeys[0]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert err == (
        f"roadledger verify: --log-key VKEY: vkey {WITNESS_NAMES[0]}: signature type 0x04, "
        "expected 0x01\n"
    )


def test_bad_witness_key_and_policy(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([*files.argv(), "--witness-key", files.log_vkey], capsys)
    assert code == 2
    assert err.startswith("roadledger verify: --witness-key VKEY: vkey ")
    code, _, err = run([*files.argv(), "--min-witnesses", "4"], capsys)
    assert (code, err) == (
        2,
        "roadledger verify: --min-witnesses 4 but only 3 --witness-key given\n",
    )
    code, _, err = run([*files.argv(), "--witness-key", files.witness_vkeys[0]], capsys)
    assert (code, err) == (
        2,
        f"roadledger verify: --witness-key: witness {WITNESS_NAMES[0]} given twice\n",
    )


def test_bad_min_witnesses_is_a_usage_error(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([*files.argv(), "--min-witnesses", "-1"])
    assert info.value.code == 2
    assert "is not a non-negative decimal integer" in capsys.readouterr().err


def test_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["verify", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: roadledger verify [-h] --log-key VKEY")
    for text in ("Example:", "--min-witnesses 2", "@FILE", "Exit status: 0", "name+keyid+base64"):
        assert text in out
