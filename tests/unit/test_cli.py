"""The `roadledger` entry point: one command, `--help` on every subcommand."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import COMMANDS

ENTRY_POINT = shutil.which("roadledger", path=str(Path(sys.executable).parent))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    assert ENTRY_POINT is not None, "the roadledger console script is not installed"
    return subprocess.run([ENTRY_POINT, *args], capture_output=True, text=True, check=False)


def test_top_level_help_lists_every_command() -> None:
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command: str) -> None:
    result = _run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: roadledger {command}")
    assert len(result.stdout.splitlines()) > 3, "help must say more than the usage line"


def test_unknown_command_is_refused() -> None:
    result = _run("launch-rockets")
    assert result.returncode == 2
    assert "invalid choice: 'launch-rockets'" in result.stderr


def test_unknown_service_is_named() -> None:
    result = _run("services", "status", "redis")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "roadledger services: unknown service 'redis'; choose from postgres, mosquitto, kafka"
    )


def test_a_malformed_warning_id_is_named_before_any_connection() -> None:
    result = _run("analytics", "show", "not-an-id")
    assert result.returncode == 2
    assert "warning_id: expected 32 lowercase hex digits, got 'not-an-id'" in result.stderr
