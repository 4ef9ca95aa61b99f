"""``roadledger sim`` through the real entry point (registered here, as the lead will)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app import cli
from device_sim.truth import read_truth

from .conftest import START_MS

SMALL = ["--vehicles", "20", "--rsus", "2", "--rate", "220", "--duration", "3", "--streets", "6"]


@pytest.fixture(autouse=True)
def sim_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.COMMANDS, "sim", "app.commands.sim")


def test_help_explains_how_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["sim", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: roadledger sim")
    for text in (
        "Getting started",
        "--scenario",
        "--truth",
        "--presign",
        "odometer_rollback",
        "Exit status",
    ):
        assert text in out


def test_dry_run_writes_the_same_truth_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*SMALL, "--seed", "3", "--start-ms", str(START_MS), "--dry-run", "--quiet"]
    args += ["--scenario", "duplicate_delivery", "--scenario", "forged_signature:messages=2"]
    assert cli.main(["sim", *args, "--truth", str(tmp_path / "a.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "simulating 20 vehicles and 2 RSUs for 3 s: 220 msg/s (every 100 ms per device)" in out
    assert "quarantine:bad_signature 2" in out
    assert cli.main(["sim", *args, "--truth", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    truth = read_truth(tmp_path / "a.jsonl")
    assert truth.run["start_ms"] == START_MS
    assert truth.summary is not None
    assert truth.summary["published"] is None
    assert truth.expected_counts()["quarantine:bad_signature"] == 2
    assert truth.expected_counts()["duplicate"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--scenario", "levitation"],
            "roadledger sim: scenario: 'levitation' is not a valid ScenarioType",
        ),
        (["--rate", "100000"], "the minimum is 10 ms"),
        (["--scenario", "teleport:count=30"], "teleport: needs 30 vehicle(s)"),
        (["--scenarios", "/nonexistent/scenarios.json"], "No such file or directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = cli.main(["sim", *SMALL, "--dry-run", "--truth", str(tmp_path / "t.jsonl"), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "t.jsonl").exists()


def test_a_run_whose_truth_would_be_wrong_is_refused_before_publishing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_days_ago = time.time_ns() // 1_000_000 - 2 * 86_400_000
    code = cli.main(
        ["sim", *SMALL, "--start-ms", str(two_days_ago), "--scenario", "clock_skew:skew_ms=60000",
         "--truth", str(tmp_path / "t.jsonl")]
    )  # fmt: skip
    assert code == 2
    assert "clock_skew: skew_ms is too small" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()
