"""What every local service offers the ``services`` command."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Service", "ServiceStatus"]


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``roadledger services status``."""

    name: str
    state: Literal["running", "stopped", "external", "unreachable"]
    detail: str

    @classmethod
    def remote(cls, name: str, reachable: bool, where: str) -> ServiceStatus:
        """Status of a service configured off this machine: probed, never managed."""
        return cls(name, "external" if reachable else "unreachable", f"{where} (not managed here)")

    def __str__(self) -> str:
        return f"{self.name:<10} {self.state:<11} {self.detail}"


class Service(Protocol):
    """A server the project starts on loopback, or uses as configured when it is remote."""

    name: str

    @property
    def managed(self) -> bool:
        """True when the configured endpoint is on loopback, so ``up`` starts it here."""
        ...

    def up(self) -> ServiceStatus: ...

    def down(self) -> ServiceStatus: ...

    def status(self) -> ServiceStatus: ...
