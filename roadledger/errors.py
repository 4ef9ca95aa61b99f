"""Errors shared by the RoadLedger command line.

``CommandError`` is what a subcommand raises for a failure the user can act on; the entry point
prints its message on one line and exits with its code. Component packages keep their own error
roots (``chain.errors``) and commands translate them at the edge.
"""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A user-facing failure: one line that names the cause, and an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
