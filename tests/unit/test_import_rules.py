"""The import rules of docs/architecture.md, kept by a test that reads every module's imports.

Each rule names the packages it governs and the module prefixes they must not import; every
``import`` and ``from ... import`` is checked, also those inside functions (the command line
imports lazily). A rule that fails names the file, the line and the import. The checker is
tested on a tree made for the purpose, so a rule cannot pass by reading nothing.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("chain", "ingest", "analytics", "device_sim", "api", "roadledger", "tests", "bench")
APP_SHELL = (
    "roadledger.cli",
    "roadledger.commands",
    "roadledger.demo",
    "tests.support.pipeline",  # test harness, still shipped: issue 10 moves it out
    "tests.support.scratch_schema",
)


@dataclass(frozen=True)
class Rule:
    """Modules under ``packages`` must not import a module under ``forbidden``."""

    name: str
    packages: tuple[str, ...]
    forbidden: tuple[str, ...]


RULES = (
    Rule(
        "chain/ is pure: an insurer's verifier imports only it",
        ("chain",),
        tuple(p for p in PROJECT if p != "chain"),
    ),
    Rule("no shipped code imports the tests or the benchmarks", PROJECT[:6], ("tests", "bench")),
    Rule(
        "components never import the application shell",
        ("chain", "ingest", "analytics", "device_sim", "api"),
        APP_SHELL,
    ),
    Rule(
        "ingest judges what arrives without the analytics or the simulator",
        ("ingest",),
        ("analytics", "device_sim"),
    ),
    Rule(
        "analytics reads records by the contracts (roadledger.topics), not the verifier",
        ("analytics",),
        ("ingest.verifier",),
    ),
    Rule(
        "api/ reads through chain, the kernel and the stores; it never runs a pipeline stage",
        ("api",),
        ("ingest", "device_sim", *APP_SHELL),
    ),
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}"


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``; relative imports are left
    out (they stay inside their package)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def violations(root: Path, rule: Rule) -> list[Violation]:
    """Every import in ``rule.packages`` (under ``root``) that the rule forbids."""
    found = []
    for package in rule.packages:
        for path in sorted((root / package).rglob("*.py")):
            for line, module in imported_modules(path.read_text()):
                if _under(module, rule.forbidden):
                    found.append(Violation(str(path.relative_to(root)), line, module))
    return sorted(set(found), key=lambda v: (v.path, v.line, v.imported))


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_the_project_keeps_the_rule(rule: Rule) -> None:
    assert all((ROOT / package).is_dir() for package in rule.packages)
    found = violations(ROOT, rule)
    assert not found, f"{rule.name}:\n" + "\n".join(map(str, found))


def test_the_checker_reads_every_kind_of_import() -> None:
    source = (
        "import chain.merkle\n"
        "from roadledger.settings import Settings\n"
        "from . import sibling\n"
        "def later():\n"
        "    from roadledger.commands import demo\n"
        "    import analytics.warnings as w\n"
    )
    assert imported_modules(source) == [
        (1, "chain.merkle"),
        (2, "roadledger.settings"),
        (2, "roadledger.settings.Settings"),
        (5, "roadledger.commands"),
        (5, "roadledger.commands.demo"),
        (6, "analytics.warnings"),
    ]


def test_a_forbidden_import_fails_its_rule(tmp_path: Path) -> None:
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "merkle.py").write_text("import hashlib\n")
    (tmp_path / "ingest" / "deep").mkdir(parents=True)
    (tmp_path / "ingest" / "deep" / "stage.py").write_text(
        "from chain.merkle import root\n"
        "def run():\n"
        "    from roadledger.commands.demo import DEMO\n"
        "    import analytics\n"
    )
    by_name = {rule.name: rule for rule in RULES}
    shell = by_name["components never import the application shell"]
    shell = Rule(shell.name, ("chain", "ingest"), shell.forbidden)
    assert [str(v) for v in violations(tmp_path, shell)] == [
        "ingest/deep/stage.py:3 imports roadledger.commands.demo",
        "ingest/deep/stage.py:3 imports roadledger.commands.demo.DEMO",
    ]
    lonely = by_name["ingest judges what arrives without the analytics or the simulator"]
    assert [str(v) for v in violations(tmp_path, lonely)] == [
        "ingest/deep/stage.py:4 imports analytics"
    ]
    (tmp_path / "chain" / "merkle.py").write_text("from roadledger import settings\n")
    pure = by_name["chain/ is pure: an insurer's verifier imports only it"]
    assert [str(v) for v in violations(tmp_path, pure)] == [
        "chain/merkle.py:1 imports roadledger",
        "chain/merkle.py:1 imports roadledger.settings",
    ]
