"""``roadledger witness``: keygen, add-checkpoint and verify through the real entry point."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from app import cli
from chain.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from chain.cosignature import Cosignature, CosignatureVerifier
from chain.log import InMemoryMerkleLog
from chain.note_signers import Ed25519Signer
from chain.witness import format_proof_lines

ORIGIN = "roadledger.example/log-0"


@pytest.fixture(autouse=True)
def only_witness_command(monkeypatch: pytest.MonkeyPatch) -> None:
    # Build the parser with this command alone, so these tests do not depend on the others.
    monkeypatch.setattr(cli, "COMMANDS", {"witness": "app.commands.witness"})


class Log:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.tree = InMemoryMerkleLog()
        self.signer = Ed25519Signer(ORIGIN, hashlib.sha256(b"cli log").digest())
        self.vkey = self.signer.to_vkey()

    def checkpoint_file(self, size: int, name: str | None = None) -> Path:
        while self.tree.size < size:
            self.tree.append(b"entry-%d" % self.tree.size)
        cp = Checkpoint(ORIGIN, size, self.tree.root_at(size))
        path = self.dir / (name or f"checkpoint-{size}.txt")
        path.write_text(sign_checkpoint(cp, self.signer).to_text())
        return path

    def proof_file(self, old: int, new: int) -> Path:
        path = self.dir / f"proof-{old}-{new}.txt"
        path.write_text(format_proof_lines(self.tree.consistency_proof(old, new)))
        return path


def keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> tuple[Path, str]:
    key = tmp_path / f"{name.replace('/', '_')}.key"
    assert cli.main(["witness", "keygen", "--name", name, "--out", str(key)]) == 0
    out = capsys.readouterr()
    return key, out.out.strip()


def add(log: Log, key: Path, state: Path, checkpoint: Path, old: int, proof: Path | None) -> int:
    argv = [
        "witness", "add-checkpoint", "--key", str(key), "--state", str(state),
        "--log-key", log.vkey, "--checkpoint", str(checkpoint), "--old-size", str(old),
    ]  # fmt: skip
    if proof is not None:
        argv += ["--proof", str(proof)]
    return cli.main(argv)


def test_keygen_writes_a_private_file_and_prints_the_vkey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "w1.key"
    assert cli.main(["witness", "keygen", "--name", "w1.example/w", "--out", str(key)]) == 0
    out = capsys.readouterr()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = key.read_text()
    assert secret.startswith("PRIVATE+KEY+w1.example/w+")
    verifier = CosignatureVerifier.from_vkey(out.out.strip())
    assert verifier.name == "w1.example/w"
    material = secret.strip().split("+", 4)[4]  # PRIVATE+KEY+name+hash+key (base64 has "+")
    assert material not in out.out
    assert material not in out.err


def test_keygen_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "w1.key"
    key.write_text("precious")
    assert cli.main(["witness", "keygen", "--name", "w1", "--out", str(key)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert key.read_text() == "precious"


def test_keygen_refuses_a_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["witness", "keygen", "--name", "a+b", "--out", str(tmp_path / "k")]) == 2
    assert not (tmp_path / "k").exists()
    assert "invalid witness name" in capsys.readouterr().err


def test_add_checkpoint_happy_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = Log(tmp_path)
    key, vkey = keygen(tmp_path, capsys, "w1.example/w")
    state = tmp_path / "state"

    assert add(log, key, state, log.checkpoint_file(3), 0, None) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1
    assert line.startswith("— w1.example/w ")

    assert add(log, key, state, log.checkpoint_file(9), 3, log.proof_file(3, 9)) == 0
    line = capsys.readouterr().out
    cosig = Cosignature.from_line(line)
    assert cosig.name == "w1.example/w"
    note = SignedCheckpoint.from_text(log.checkpoint_file(9).read_text())
    cosigned = tmp_path / "cosigned.txt"
    cosigned.write_text(note.with_signature_lines(line).to_text())

    argv = ["witness", "verify", "--checkpoint", str(cosigned), "--log-key", log.vkey,
            "--witness-key", vkey, "--min-witnesses", "1"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {ORIGIN} size 9 root ")
    assert "cosigned by w1.example/w at " in out
    assert "policy: 1 of 1 witnesses, 1 required" in out


def test_add_checkpoint_refuses_rollback_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    key, _ = keygen(tmp_path, capsys, "w1")
    state = tmp_path / "state"
    assert add(log, key, state, log.checkpoint_file(3), 0, None) == 0
    assert add(log, key, state, log.checkpoint_file(9), 3, log.proof_file(3, 9)) == 0
    capsys.readouterr()

    evidence = tmp_path / "evidence.txt"
    argv = ["witness", "add-checkpoint", "--key", str(key), "--state", str(state),
            "--log-key", log.vkey, "--checkpoint", str(log.checkpoint_file(3)),
            "--old-size", "9", "--evidence", str(evidence)]  # fmt: skip
    assert cli.main(argv) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.count("\n") == 1
    assert out.err.startswith("roadledger witness: refused: ")
    assert "rollback" in out.err
    text = evidence.read_text()
    assert f"{ORIGIN}\n9\n" in text
    assert f"{ORIGIN}\n3\n" in text


def test_add_checkpoint_reports_the_known_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    key, _ = keygen(tmp_path, capsys, "w1")
    state = tmp_path / "state"
    assert add(log, key, state, log.checkpoint_file(3), 0, None) == 0
    capsys.readouterr()
    assert add(log, key, state, log.checkpoint_file(9), 5, log.proof_file(5, 9)) == 1
    err = capsys.readouterr().err
    assert "latest cosigned size 3" in err


def test_add_checkpoint_refuses_a_wrong_log_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    key, _ = keygen(tmp_path, capsys, "w1")
    checkpoint = log.checkpoint_file(3)
    log.vkey = Ed25519Signer(ORIGIN, hashlib.sha256(b"other").digest()).to_vkey()
    assert add(log, key, tmp_path / "state", checkpoint, 0, None) == 1
    assert "not signed by the log key" in capsys.readouterr().err


def test_add_checkpoint_refuses_a_readable_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    key, _ = keygen(tmp_path, capsys, "w1")
    key.chmod(0o644)
    assert add(log, key, tmp_path / "state", log.checkpoint_file(3), 0, None) == 2
    err = capsys.readouterr().err
    assert "chmod 600" in err
    assert key.read_text().strip().split("+", 4)[4] not in err


def test_add_checkpoint_refuses_a_malformed_proof_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    key, _ = keygen(tmp_path, capsys, "w1")
    proof = tmp_path / "proof.txt"
    proof.write_text("not base64\n")
    assert add(log, key, tmp_path / "state", log.checkpoint_file(3), 0, proof) == 2
    assert "--proof" in capsys.readouterr().err


def test_add_checkpoint_refuses_a_missing_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    key, _ = keygen(tmp_path, capsys, "w1")
    assert add(log, key, tmp_path / "state", tmp_path / "nope.txt", 0, None) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err


def test_verify_reports_the_shortfall(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = Log(tmp_path)
    key1, vkey1 = keygen(tmp_path, capsys, "w1")
    _, vkey2 = keygen(tmp_path, capsys, "w2")
    assert add(log, key1, tmp_path / "state", log.checkpoint_file(3), 0, None) == 0
    line = capsys.readouterr().out
    cosigned = tmp_path / "cosigned.txt"
    note = SignedCheckpoint.from_text(log.checkpoint_file(3).read_text())
    cosigned.write_text(note.with_signature_lines(line).to_text())

    argv = ["witness", "verify", "--checkpoint", str(cosigned), "--log-key", log.vkey,
            "--witness-key", vkey1, "--witness-key", vkey2]  # fmt: skip
    assert cli.main(argv) == 1  # default: all given witnesses
    err = capsys.readouterr().err
    assert err.startswith("roadledger witness: not verified: ")
    assert "1 of the required 2" in err
    assert "missing: w2" in err

    assert cli.main([*argv, "--min-witnesses", "1"]) == 0
    assert "no cosignature from w2" in capsys.readouterr().out


def test_verify_refuses_an_impossible_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    argv = ["witness", "verify", "--checkpoint", str(log.checkpoint_file(3)),
            "--log-key", log.vkey, "--min-witnesses", "1"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "only 0 --witness-key" in capsys.readouterr().err


def test_verify_refuses_a_note_vkey_as_witness_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = Log(tmp_path)
    argv = ["witness", "verify", "--checkpoint", str(log.checkpoint_file(3)),
            "--log-key", log.vkey, "--witness-key", log.vkey]  # fmt: skip
    assert cli.main(argv) == 2
    assert "--witness-key" in capsys.readouterr().err


@pytest.mark.parametrize("action", [[], ["keygen"], ["add-checkpoint"], ["verify"]])
def test_help_is_available(action: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["witness", *action, "--help"])
    assert info.value.code == 0
    assert "usage: roadledger witness" in capsys.readouterr().out


def test_bad_old_size_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["witness", "add-checkpoint", "--key", "k", "--state", "s", "--log-key", "v",
                  "--checkpoint", "c", "--old-size", "-1"])  # fmt: skip
    assert info.value.code == 2
    assert "non-negative decimal" in capsys.readouterr().err
