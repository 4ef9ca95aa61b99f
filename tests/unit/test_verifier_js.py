"""The in-browser certificate verifier (``dashboard/static/verifier``) run under Node.

Node's WebCrypto has the Ed25519 and SHA-256 the browser has, so the same ES modules run here
over the whole certificate corpus (``tests/support/certificate_corpus.py``): for every case
the JavaScript verdict must be the Python one, the same first failing item with the same
detail. The JS primitives are also checked against the shared known-answer vectors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT
from tests.support.certificate_corpus import Case, all_cases, python_verdict, write_corpus
from tests.support.shared_material import missing_material_fails

JS = PROJECT_ROOT / "tests" / "js"


def run_node(script: str, *args: str) -> list[dict[str, Any]]:
    """Run ``tests/js/<script>`` with Node (the .js modules are ES modules); parse its lines."""
    node = shutil.which("node")
    if node is None:
        message = "node not found: the JS verifier cannot run (install Node.js 20)"
        if missing_material_fails(os.environ):
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [node, "--experimental-default-type=module", str(JS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def corpus() -> list[Case]:
    return list(all_cases())


def js_verdict(line: dict[str, Any]) -> tuple[str, str] | str | None:
    if "error" in line:
        return f"error: {line['error']}"
    return None if line["verified"] else (line["item"], line["detail"])


def test_corpus_covers_every_item(corpus: list[Case]) -> None:
    items = {c.breaks.split("[")[0] if c.breaks else None for c in corpus}
    assert items >= {
        None,
        "format",
        "device_id",
        "checkpoint",
        "cosignatures",
        "device_keys",
        "vin",
        "messages",
        "chain",
        "summary.anomalies",
        "summary.gaps",
        "summary.distance_m",
    }
    assert len({c.name for c in corpus}) == len(corpus)
    for case in corpus:  # each case fails where it was made to fail, or verifies
        verdict = python_verdict(case)
        assert (verdict[0] if verdict else None) == case.breaks, (case.name, verdict)


def test_both_verifiers_agree_on_every_certificate(corpus: list[Case], tmp_path: Path) -> None:
    lines = run_node("verify_corpus.mjs", str(write_corpus(corpus, tmp_path)))
    by_name = {line["name"]: js_verdict(line) for line in lines}
    disagreements = [
        f"{case.name}:\n  python: {python_verdict(case)}\n  js:     {by_name.get(case.name)}"
        for case in corpus
        if by_name.get(case.name, "missing") != python_verdict(case)
    ]
    assert not disagreements, "\n".join(disagreements)
    assert sum(v is None for v in by_name.values()) >= 10, "valid certificates verify"


def test_js_primitives_against_known_answers(vectors_dir: Path) -> None:
    checks = run_node("known_answers.mjs", str(vectors_dir))
    failed = [c for c in checks if not c["ok"]]
    assert not failed, failed
    names = {c["check"] for c in checks}
    assert {"jws-signature-verifies", "jws-flipped-signature-fails", "leaf-hash-0"} <= names
    assert sum(n.startswith("inclusion-") for n in names) >= 10
    assert sum(n.startswith("negative-") for n in names) >= 5


def test_a_trust_error_is_not_a_verdict(corpus: list[Case], tmp_path: Path) -> None:
    """Unusable keys or policy are refused before the certificate is read, as the CLI's exit 2."""
    valid = corpus[0]
    bad = [
        (
            "garbage-log-key",
            {"logKeys": ["not a key"], "witnessKeys": []},
            "--log-key VKEY: vkey: expected <name>+<hex key ID>+<base64 key>",
        ),
        (
            "k-too-large",
            {"logKeys": valid.log_keys, "witnessKeys": valid.witness_keys, "minWitnesses": 4},
            "--min-witnesses 4 but only 3 --witness-key given",
        ),
        (
            "witness-twice",
            {"logKeys": valid.log_keys, "witnessKeys": valid.witness_keys[:1] * 2},
            f"--witness-key: witness {valid.witness_keys[0].split('+')[0]} given twice",
        ),
        (
            "log-key-as-witness",
            {"logKeys": valid.log_keys, "witnessKeys": valid.log_keys},
            "is not an Ed25519 cosignature/v1 key (0x04)",
        ),
    ]
    cert = tmp_path / "valid.json"
    cert.write_bytes(valid.data)
    manifest = tmp_path / "manifest.json"
    entries = [{"name": n, "file": str(cert), "trust": t} for n, t, _ in bad]
    manifest.write_text(json.dumps(entries))
    lines = run_node("verify_corpus.mjs", str(manifest))
    for (name, _, expected), line in zip(bad, lines, strict=True):
        assert line["name"] == name
        assert line.get("error", "").startswith("TrustError: "), line
        assert expected in line["error"], line
