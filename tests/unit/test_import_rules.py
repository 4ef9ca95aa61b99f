"""The import rules of docs/architecture.md, kept by a test that reads every module's imports.

The layers, lowest first: ``chain`` <- ``contracts`` <- ``roadledger`` (the kernel) <-
``runtime`` and the components (``ingest``, ``analytics``, ``device_sim``, ``api``) <- ``app``.
Each rule says what a package *may* import of the project, so a package added later is
forbidden until a rule allows it. Every ``import`` and ``from ... import`` is checked, also
those inside functions (the command line imports lazily) and under ``TYPE_CHECKING``. A rule
that fails names the file, the line and the import. The checker is tested on a tree made for
the purpose, so a rule cannot pass by reading nothing.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = (
    "chain",
    "contracts",
    "roadledger",
    "runtime",
    "ingest",
    "analytics",
    "device_sim",
    "api",
    "app",
    "tests",
    "bench",
)
SHIPPED = PROJECT[:9]
BELOW_COMPONENTS = ("chain", "contracts", "roadledger")
# What api/ may read of the components: their read-side stores, nothing that runs a stage.
READ_SIDE_STORES = ("analytics.warnings.store", "analytics.forecast.store")


@dataclass(frozen=True)
class Rule:
    """Modules under ``packages`` may import, of the project, only modules under ``allowed``
    (and their own package)."""

    name: str
    packages: tuple[str, ...]
    allowed: tuple[str, ...]


RULES = (
    Rule("chain/ is pure: an insurer's verifier imports only it", ("chain",), ()),
    Rule("contracts/ builds on chain/ alone", ("contracts",), ("chain",)),
    Rule(
        "the kernel (roadledger/) builds on chain and the contracts",
        ("roadledger",),
        ("chain", "contracts"),
    ),
    Rule(
        "runtime/ runs services for the kernel, never a component", ("runtime",), BELOW_COMPONENTS
    ),
    Rule(
        "ingest/ imports no other component, the runtime or the app", ("ingest",), BELOW_COMPONENTS
    ),
    Rule(
        "analytics/ imports no other component, the runtime or the app",
        ("analytics",),
        BELOW_COMPONENTS,
    ),
    Rule(
        "device_sim/ imports no other component (its ground truth never asks a detector)",
        ("device_sim",),
        BELOW_COMPONENTS,
    ),
    Rule(
        "api/ reads through chain, contracts, the kernel and read-side stores; it runs no stage",
        ("api",),
        (*BELOW_COMPONENTS, *READ_SIDE_STORES),
    ),
    Rule("the app shell ships without the tests or the benchmarks", ("app",), SHIPPED),
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


def _project_imports(root: Path, package: str) -> list[Violation]:
    """Every import of a project module by a module under ``root/package``."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for line, module in imported_modules(path.read_text()):
            if _under(module, PROJECT):
                found.append(Violation(str(path.relative_to(root)), line, module))
    return found


def violations(root: Path, rule: Rule) -> list[Violation]:
    """Every import in ``rule.packages`` (under ``root``) that the rule does not allow."""
    found = []
    for package in rule.packages:
        allowed = (package, *rule.allowed)
        found += [v for v in _project_imports(root, package) if not _under(v.imported, allowed)]
    return sorted(set(found), key=lambda v: (v.path, v.line, v.imported))


def package_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level package -> the other top-level packages it imports."""
    graph: dict[str, set[str]] = defaultdict(set)
    for package in packages:
        for v in _project_imports(root, package):
            target = v.imported.split(".")[0]
            if target != package:
                graph[package].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle reachable in ``graph``, each as the path that closes it."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            found.append([*path[path.index(node) :], node])
            return
        if node in done:
            return
        for target in sorted(graph.get(node, ())):
            visit(target, [*path, node])
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return found


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_the_project_keeps_the_rule(rule: Rule) -> None:
    assert all((ROOT / package).is_dir() for package in rule.packages)
    assert any((ROOT / rule.packages[0]).rglob("*.py"))
    found = violations(ROOT, rule)
    assert not found, f"{rule.name}:\n" + "\n".join(map(str, found))


def test_every_shipped_package_has_a_rule() -> None:
    governed = {package for rule in RULES for package in rule.packages}
    assert governed == set(SHIPPED)
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert on_disk == set(SHIPPED), "a new top-level package needs its place in the layers"


def test_no_cycle_between_top_level_packages() -> None:
    graph = package_graph(ROOT, SHIPPED)
    assert graph["app"], "the checker read no import of the app shell"
    assert cycles(graph) == []


def test_the_checker_reads_every_kind_of_import() -> None:
    source = (
        "import chain.merkle\n"
        "from roadledger.settings import Settings\n"
        "from . import sibling\n"
        "def later():\n"
        "    from app.commands import demo\n"
        "    import analytics.warnings as w\n"
    )
    assert imported_modules(source) == [
        (1, "chain.merkle"),
        (2, "roadledger.settings"),
        (2, "roadledger.settings.Settings"),
        (5, "app.commands"),
        (5, "app.commands.demo"),
        (6, "analytics.warnings"),
    ]


def test_a_forbidden_import_fails_its_rule(tmp_path: Path) -> None:
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "merkle.py").write_text("import hashlib\nfrom chain import hashing\n")
    (tmp_path / "ingest" / "deep").mkdir(parents=True)
    (tmp_path / "ingest" / "deep" / "stage.py").write_text(
        "from chain.merkle import root\n"
        "from contracts.topics import RAW\n"
        "def run():\n"
        "    from app.commands.demo import DEMO\n"
        "    import analytics\n"
    )
    by_name = {rule.name: rule for rule in RULES}
    ingest = by_name["ingest/ imports no other component, the runtime or the app"]
    assert [str(v) for v in violations(tmp_path, ingest)] == [
        "ingest/deep/stage.py:4 imports app.commands.demo",
        "ingest/deep/stage.py:4 imports app.commands.demo.DEMO",
        "ingest/deep/stage.py:5 imports analytics",
    ]
    pure = by_name["chain/ is pure: an insurer's verifier imports only it"]
    assert violations(tmp_path, pure) == []
    (tmp_path / "chain" / "merkle.py").write_text("from roadledger import settings\n")
    assert [str(v) for v in violations(tmp_path, pure)] == [
        "chain/merkle.py:1 imports roadledger",
        "chain/merkle.py:1 imports roadledger.settings",
    ]


def test_a_simulator_asking_a_detector_fails(tmp_path: Path) -> None:
    (tmp_path / "device_sim").mkdir()
    (tmp_path / "device_sim" / "speeding.py").write_text(
        "from contracts.rules.thresholds import THRESHOLDS\n"
        "from analytics.warnings.speeding import is_over_limit\n"
    )
    rule = {r.name: r for r in RULES}[
        "device_sim/ imports no other component (its ground truth never asks a detector)"
    ]
    rule = Rule(rule.name, rule.packages, BELOW_COMPONENTS)
    assert [str(v) for v in violations(tmp_path, rule)] == [
        "device_sim/speeding.py:2 imports analytics.warnings.speeding",
        "device_sim/speeding.py:2 imports analytics.warnings.speeding.is_over_limit",
    ]


def test_the_api_may_read_stores_but_not_run_stages(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "routes.py").write_text(
        "from analytics.warnings.store import list_warnings\n"
        "from analytics.warnings.engine import run\n"
    )
    rule = {r.name: r for r in RULES}[
        "api/ reads through chain, contracts, the kernel and read-side stores; it runs no stage"
    ]
    assert [str(v) for v in violations(tmp_path, rule)] == [
        "api/routes.py:2 imports analytics.warnings.engine",
        "api/routes.py:2 imports analytics.warnings.engine.run",
    ]


def test_a_cycle_is_found(tmp_path: Path) -> None:
    for package, imports in {"ingest": "analytics", "analytics": "device_sim"}.items():
        (tmp_path / package).mkdir()
        (tmp_path / package / "a.py").write_text(f"import {imports}.x\n")
    (tmp_path / "device_sim").mkdir()
    (tmp_path / "device_sim" / "b.py").write_text("from ingest.a import y\n")
    graph = package_graph(tmp_path, ("ingest", "analytics", "device_sim"))
    assert cycles(graph) == [["analytics", "device_sim", "ingest", "analytics"]]


def private_imports(root: Path, packages: tuple[str, ...]) -> list[Violation]:
    """Imports of another package's ``_``-prefixed module (its internals)."""
    found = []
    for package in packages:
        for v in _project_imports(root, package):
            parts = v.imported.split(".")
            owner = parts[0]
            private = any(p.startswith("_") and not p.startswith("__") for p in parts[1:-1])
            if owner != package and private:
                found.append(v)
    return found


def test_no_package_imports_anothers_internals(tmp_path: Path) -> None:
    assert private_imports(ROOT, PROJECT) == []
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "a.py").write_text("from chain._hashing import leaf_hash\n")
    assert [str(v) for v in private_imports(tmp_path, ("ingest",))] == [
        "ingest/a.py:1 imports chain._hashing.leaf_hash"
    ]
