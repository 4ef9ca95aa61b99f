"""`roadledger proof check FILE`: the auditor's command, on the vectors and corrupted copies."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from app import cli


@pytest.fixture(autouse=True)
def only_proof_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the parser with the proof command alone.

    ``cli.build_parser`` imports every command module; this keeps these tests about ``proof``
    whatever state the other commands are in.
    """
    assert cli.COMMANDS["proof"] == "app.commands.proof"
    monkeypatch.setattr(cli, "COMMANDS", {"proof": "app.commands.proof"})


@pytest.fixture
def vectors(vectors_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((vectors_dir / "rfc9162-merkle.json").read_text())
    return data


def _case_count(data: dict[str, Any]) -> int:
    leaves = len(data["leaves_hex"]) if "leaf_hashes_hex" in data else 0
    roots = sum(1 for r in data["roots"] if r["size"] <= len(data["leaves_hex"]))
    return leaves + roots + sum(len(data[s]) for s in ("inclusion", "consistency", "negative"))


def _write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "proofs.json"
    path.write_text(json.dumps(data, indent=1))
    return str(path)


def test_vectors_all_pass(
    vectors_dir: Path, vectors: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["proof", "check", str(vectors_dir / "rfc9162-merkle.json")])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{_case_count(vectors)} passed, 0 failed"]
    assert _case_count(vectors) == 100  # 8 leaf hashes, 9 roots, 36 + 36 proofs, 11 negative


def test_verbose_lists_every_case(
    vectors_dir: Path, vectors: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["proof", "check", "-v", str(vectors_dir / "rfc9162-merkle.json")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == _case_count(vectors) + 1
    assert 'ok   negative[1] "wrong index" (inclusion, index 3, size 5): rejected: ' in lines[-11]


def test_corrupted_copy_fails_naming_each_case(
    tmp_path: Path, vectors: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    proof = vectors["inclusion"][5]["proof_hex"]
    proof[0] = ("1" if proof[0][0] != "1" else "2") + proof[0][1:]  # one hex digit
    short = next(i for i, c in enumerate(vectors["consistency"]) if len(c["proof_hex"]) > 1)
    vectors["consistency"][short]["proof_hex"].pop()
    wrong_index = vectors["negative"][1]
    wrong_index["proof_hex"] = vectors["negative"][0]["proof_hex"]  # flipped bit: still bad
    good = next(c for c in vectors["inclusion"] if (c["index"], c["size"]) == (2, 5))
    vectors["negative"][0]["proof_hex"] = good["proof_hex"]  # now valid: must be "rejected"

    code = cli.main(["proof", "check", _write(tmp_path, vectors)])
    lines = capsys.readouterr().out.splitlines()
    c5, cs = vectors["inclusion"][5], vectors["consistency"][short]
    assert code == 1
    assert len(lines) == 4
    assert lines[0].startswith(
        f"FAIL inclusion[5] (index {c5['index']}, size {c5['size']}): root of tree size "
        f"{c5['size']} mismatch: expected "
    )
    assert lines[1].startswith(
        f"FAIL consistency[{short}] (size {cs['size1']} to {cs['size2']}): consistency proof "
    )
    assert lines[2] == (
        'FAIL negative[0] "flipped bit in first proof hash" (inclusion, index 2, size 5): '
        "accepted, but must be rejected"
    )
    assert lines[3] == f"{_case_count(vectors) - 3} passed, 3 failed"


def test_malformed_file_is_one_line_naming_the_field(
    tmp_path: Path, vectors: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    vectors["consistency"][3]["size2"] = "7"
    path = _write(tmp_path, vectors)
    code = cli.main(["proof", "check", path])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err == (f"roadledger proof: {path}: consistency[3].size2: must be an integer, got '7'\n")


def test_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["proof", "check", str(tmp_path / "absent.json")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"roadledger proof: cannot read {tmp_path / 'absent.json'}: No such file or directory\n"
    )


def test_stdin(
    monkeypatch: pytest.MonkeyPatch, vectors: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(json.dumps(vectors).encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    assert cli.main(["proof", "check", "-"]) == 0
    assert capsys.readouterr().out.endswith(" passed, 0 failed\n")


def test_notes_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = {"roots": [{"size": 3, "root_hex": "00" * 32}], "consistency": []}
    data["inclusion"] = [{"index": 0, "size": 3, "leaf_hash_hex": "00" * 32, "proof_hex": []}]
    code = cli.main(["proof", "check", _write(tmp_path, data)])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == "note: roots[0] (size 3) is taken as given: the file has 0 leaves\n"
    assert out.splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.parametrize("argv", [["proof", "--help"], ["proof", "check", "--help"]])
def test_help_explains_the_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: roadledger {' '.join(argv[:-1])}")
    assert "consistency proof" in out or "N passed, M failed" in out


def test_an_action_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["proof"])
    assert info.value.code == 2
    assert "required: ACTION" in capsys.readouterr().err
