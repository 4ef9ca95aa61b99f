"""`roadledger devices` end to end, against a scratch schema of the real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.cli import main
from roadledger.mqtt_auth import PasswordFile
from roadledger.settings import Settings
from tests.support.scratch_schema import scratch_schema_pool

pytestmark = pytest.mark.postgres


@pytest.fixture
async def scratch_url(
    postgres: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[str]:
    # Device MQTT credentials go to a private password file; no broker here to reload.
    monkeypatch.setenv("ROADLEDGER_DATA_DIR", str(tmp_path / "data"))
    async with scratch_schema_pool(postgres) as pool:
        schema = await pool.fetchval("SELECT current_schema()")
        url = f"{postgres.database_url}?search_path={schema}"
        monkeypatch.setenv("ROADLEDGER_DATABASE_URL", url)
        yield url


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_register_rotate_revoke_show(
    scratch_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, public_key, _ = await _cli(capsys, "devices", "keygen", "--out", str(tmp_path / "k1"))
    assert code == 0
    assert (tmp_path / "k1").stat().st_mode & 0o777 == 0o600
    assert public_key.strip() not in (tmp_path / "k1").read_text(), "the file holds the seed"
    code, out, _ = await _cli(
        capsys, "devices", "register", "veh-1", "--owner", "fleet-a", "--kind", "vehicle",
        "--key-file", str(tmp_path / "k1"), "--valid-from", "1764000000000",
    )  # fmt: skip
    assert code == 0
    assert out.startswith("veh-1: registered, key ")
    issued = out.splitlines()[1].split()
    assert issued[:4] == ["veh-1:", "MQTT", "username", "veh-1"], out
    passwd = PasswordFile(tmp_path / "data" / "mosquitto" / "passwd")
    assert passwd.check("veh-1", issued[-1]), "the broker's file holds its hash"
    assert issued[-1] not in passwd.path.read_text(), "and only its hash"
    code, out, _ = await _cli(
        capsys, "devices", "register", "veh-1", "--owner", "fleet-a", "--kind", "vehicle",
        # '=': a base64url key starting with '-' would read as an option (1 key in 64).
        f"--public-key={public_key.strip()}", "--valid-from", "1764000000000",
    )  # fmt: skip
    assert "already registered (unchanged)" in out
    await _cli(capsys, "devices", "keygen", "--out", str(tmp_path / "k2"))
    code, out, _ = await _cli(
        capsys, "devices", "rotate", "veh-1", "--key-file", str(tmp_path / "k2"),
        "--at", "1764000100000",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[0].endswith("valid from 1764000100000")
    rotated = out.splitlines()[1].split()[-1]
    assert passwd.check("veh-1", rotated)
    assert not passwd.check("veh-1", issued[-1])
    code, out, _ = await _cli(capsys, "devices", "revoke", "veh-1", "--at", "1764000200000")
    assert "revoked at 1764000200000" in out
    assert "veh-1: MQTT credential removed" in out
    assert not passwd.has("veh-1")
    code, out, _ = await _cli(capsys, "devices", "show", "veh-1")
    lines = out.splitlines()
    assert lines[0] == "veh-1: vehicle of fleet-a"
    assert lines[1].endswith("from 1764000000000 until 1764000100000")
    assert lines[2].endswith("from 1764000100000 until 1764000200000")
    code, out, _ = await _cli(capsys, "devices", "list", "--owner", "fleet-a")
    assert out == "veh-1\tvehicle\tfleet-a\n"


async def test_refusals_name_the_cause(
    scratch_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await _cli(
        capsys, "devices", "register", "veh-1", "--owner", "fleet-a", "--kind", "vehicle",
        "--public-key", "not-a-key",
    )  # fmt: skip
    assert code == 2
    assert err.startswith("roadledger devices: --public-key/--key-file: ")
    code, _, err = await _cli(capsys, "devices", "show", "veh-404")
    assert code == 1
    assert err.strip() == "roadledger devices: device veh-404 is not registered"
    code, _, err = await _cli(capsys, "devices", "revoke", "veh-404")
    assert err.strip() == "roadledger devices: device veh-404 is not registered"
    (tmp_path / "exists").write_text("x")
    code, _, err = await _cli(capsys, "devices", "keygen", "--out", str(tmp_path / "exists"))
    assert code == 2
    assert "refusing to overwrite a key" in err
