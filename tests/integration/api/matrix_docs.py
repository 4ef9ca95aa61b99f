"""The authorisation matrix as ``docs/api.md`` shows it: the situations and the rules, as
markdown made from ``matrix_table`` (a test keeps the document equal to it). Run
``python -m tests.integration.api.matrix_docs`` to print it, ``--cells`` for every cell."""

from __future__ import annotations

import sys

from tests.integration.api import matrix_table as t


def _credentials(s: t.Situation) -> str:
    if s.ended:
        return "a revoked API key" if s.key else f"login `{s.user}`, logged out"
    if s.key is not None:
        return {"any": "API key", "scoped": "API key, the route's scope", "other": "API key, "
                "another scope"}[s.key]  # fmt: skip
    if s.body is not None:
        return f"{s.body} ones in the body"
    return f"login `{s.user}`" if s.user else "none"


def situations() -> str:
    """One row per situation: who it is and what decides its access."""
    lines = [
        "| situation | organisation (kind) | roles | credentials | fleet-a's vehicle "
        "| police's jurisdiction |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in t.SITUATIONS.items():
        org = f"{s.org} ({s.kind})" if s.org else "-"
        roles = ", ".join(sorted(s.roles)) or "-"
        vehicle = s.vehicle if s.authenticated else "-"
        lines.append(f"| `{name}` | {org} | {roles} | {_credentials(s)} | {vehicle} | {s.area} |")
    return "\n".join(lines)


def rules() -> str:
    """One row per rule: the routes following it (with their exceptions) and what it says."""
    lines = ["| rule | routes | decision |", "| --- | --- | --- |"]
    by_rule: dict[str, list[str]] = {}
    said: dict[str, str] = {}
    for route, row in t.TABLE.items():
        name = row.rule.__name__
        said[name] = " ".join((row.rule.__doc__ or "").split()).replace("``", "`")
        excepted = "; ".join(f"`{s}`: {e}" for s, e in row.exceptions.items())
        by_rule.setdefault(name, []).append(
            f"`{route}`" + (f" (except {excepted})" if excepted else "")
        )
    for name, routes in by_rule.items():
        lines.append(f"| `{name}` | {', '.join(routes)} | {said[name]} |")
    return "\n".join(lines)


def markdown() -> str:
    return f"{situations()}\n\n{rules()}\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--cells"]:
        for route, situation, expected in t.cells():
            print(f"{route} | {situation} -> {expected}")
    else:
        print(markdown(), end="")
