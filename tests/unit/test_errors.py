"""The domain error taxonomy (``contracts.errors``): every class a package raises is of its
package's root and of exactly one kind, so ``api/`` can map kinds to status codes without
reading messages; and no package raises its bare root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contracts.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from contracts.rules.errors import (
    RulesConflict,
    RulesError,
    RulesForbidden,
    RulesInvalid,
    RulesNotFound,
    StoredRulesCorrupt,
)
from roadledger.registry import (
    DeviceConflict,
    DeviceNotFound,
    OrganisationNotFound,
    RegistryError,
    ReservedDeviceId,
)
from tests.conftest import PROJECT_ROOT

KINDS = (NotFound, Conflict, Invalid, Forbidden, Unavailable)


@pytest.mark.parametrize(
    ("raised", "root", "kind"),
    [
        (OrganisationNotFound, RegistryError, NotFound),
        (DeviceNotFound, RegistryError, NotFound),
        (DeviceConflict, RegistryError, Conflict),
        (ReservedDeviceId, RegistryError, Forbidden),
        (RulesInvalid, RulesError, Invalid),
        (RulesNotFound, RulesError, NotFound),
        (RulesConflict, RulesError, Conflict),
        (RulesForbidden, RulesError, Forbidden),
        (StoredRulesCorrupt, RulesError, None),  # the server's fault: no kind, a 500
    ],
)
def test_each_raised_class_is_of_its_root_and_of_one_kind(
    raised: type[DomainError], root: type[DomainError], kind: type[DomainError] | None
) -> None:
    assert issubclass(raised, root)
    assert issubclass(root, DomainError)
    assert [k for k in KINDS if issubclass(raised, k)] == ([kind] if kind else [])


def test_kinds_are_distinct_domain_errors() -> None:
    for kind in KINDS:
        assert issubclass(kind, DomainError)
        assert [other for other in KINDS if issubclass(kind, other)] == [kind]


def test_rules_errors_are_still_value_errors_with_their_path() -> None:
    error = RulesConflict("version", "must be greater than 2, the latest of 'city'")
    assert isinstance(error, ValueError), "callers that catch ValueError keep working"
    assert (error.path, error.reason) == ("version", "must be greater than 2, the latest of 'city'")
    assert str(error) == "version: must be greater than 2, the latest of 'city'"
    assert str(RulesInvalid("", "too big")) == "too big"


ROOTS = {"DomainError", "RegistryError", "RulesError"}


def _bare_root_raises(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in ROOTS:
                found.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}: {name}")
    return found


def test_no_package_raises_its_bare_root() -> None:
    """A bare root has no kind: ``api/`` could not tell which status it means."""
    sources = [
        path
        for package in ("analytics", "api", "chain", "device_sim", "ingest", "roadledger")
        for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
    ]
    assert sources
    assert [hit for path in sources for hit in _bare_root_raises(path)] == []
