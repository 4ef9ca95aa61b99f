"""The migration list's invariants, without a database (the runs: integration tests)."""

from __future__ import annotations

import pytest

from roadledger.db.migrations import Migration, SchemaTooNewError, check_order, statements
from roadledger.db.schema import MIGRATIONS, SCHEMA_VERSION


def test_the_project_migrations_are_ordered_and_end_at_the_schema_version() -> None:
    check_order(MIGRATIONS)
    assert [m.number for m in MIGRATIONS] == [5, 6, 7, 8, 9, 10, 11, 12]  # 5: the legacy baseline
    assert MIGRATIONS[-1].number == SCHEMA_VERSION


@pytest.mark.parametrize("numbers", [[0], [5, 5], [6, 5], [-1, 2]])
def test_numbers_must_be_positive_and_strictly_increasing(numbers: list[int]) -> None:
    migrations = [Migration(n, f"m{n}", statements()) for n in numbers]
    with pytest.raises(ValueError, match="strictly increasing"):
        check_order(migrations)


def test_a_newer_schema_is_refused_naming_both_numbers() -> None:
    error = SchemaTooNewError(9, 6)
    assert (error.recorded, error.supported) == (9, 6)
    assert "migration 9" in str(error)
    assert "up to 6" in str(error)
