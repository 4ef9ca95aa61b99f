"""Who may do what: organisation kinds, member roles and the scopes of a grant.

DESIGN.md "Organisations and access". The organisation that owns a device owns its data and
grants other organisations scopes on it; members act for their organisation within their
roles. The values are the wire spelling (API, CLI, database) and never change meaning.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DATA_ROLES", "OrgKind", "Role", "Scope"]


class OrgKind(StrEnum):
    """What an organisation is; an authority has a jurisdiction and may have district units."""

    AUTHORITY = "authority"
    INSURER = "insurer"
    FLEET_OWNER = "fleet_owner"
    WORKSHOP = "workshop"
    WITNESS = "witness"
    OPERATOR = "operator"  # runs this RoadLedger: creates organisations, sees operations


class Role(StrEnum):
    """What a member (or an API key) may do for its organisation."""

    ADMIN = "admin"  # the organisation's members, keys, devices and grants
    ANALYST = "analyst"  # reads the organisation's data and what it was granted
    AUDITOR = "auditor"  # reads the audit log and the ledger
    INSURER = "insurer"  # requests certificates it was granted
    OPERATOR = "operator"  # operations: metrics, health, the services
    WITNESS = "witness"  # submits cosignatures


class Scope(StrEnum):
    """What a grant opens on the vehicles it names."""

    TRACK = "track"  # positions over time (GeoJSON)
    MILEAGE = "mileage"  # odometer history
    CERTIFICATE = "certificate"  # mileage certificates with their proofs
    WARNINGS = "warnings"  # the vehicle's warnings and their evidence
    EXPORT = "export"  # the history as CSV or Parquet


# Roles that read vehicle data at all (the grant or the ownership then decides which).
DATA_ROLES = frozenset({Role.ADMIN, Role.ANALYST, Role.AUDITOR, Role.INSURER})
