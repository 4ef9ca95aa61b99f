"""No module of the project reaches 450 lines (issue 10's floor): a longer one wants splitting
by job. Counted over the shipped packages, the tests and the benchmarks."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chain", "contracts", "roadledger", "runtime", "ingest", "analytics", "device_sim",
            "api", "app", "tests", "bench")  # fmt: skip
LIMIT = 450


def long_modules(root: Path, limit: int = LIMIT) -> list[str]:
    """``path: lines`` of every module under ``root``'s packages with ``limit`` lines or more."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines >= limit:
                found.append(f"{path.relative_to(root)}: {lines}")
    return found


def test_no_module_reaches_the_limit() -> None:
    assert sum(1 for p in PACKAGES for _ in (ROOT / p).rglob("*.py")) > 300
    assert long_modules(ROOT) == []


def test_a_long_module_is_named(tmp_path: Path) -> None:
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "short.py").write_text("x = 1\n" * (LIMIT - 1))
    (tmp_path / "ingest" / "long.py").write_text("x = 1\n" * LIMIT)
    assert long_modules(tmp_path) == [f"ingest/long.py: {LIMIT}"]
