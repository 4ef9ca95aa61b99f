"""Whether absent known-answer material skips a test or fails it.

A developer's bare checkout has no ``../shared``: its conformance tests skip. Under CI they
must not: a CI run that skipped the RFC 9162 / RFC 8037 vectors would pass without checking
conformance, so there the absence is a failure.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["missing_material_fails", "running_in_ci"]

_TRUE = frozenset({"1", "true", "yes", "on"})


def running_in_ci(environ: Mapping[str, str]) -> bool:
    """True when ``CI`` is set to a true value (``true``, ``1``, ``yes``, ``on``, any case),
    as CI systems and ``.ci/run`` set it; unset, empty or ``false``/``0`` is not CI."""
    return environ.get("CI", "").strip().lower() in _TRUE


def missing_material_fails(environ: Mapping[str, str]) -> bool:
    """Absent known-answer material fails the test under CI and skips it otherwise."""
    return running_in_ci(environ)
