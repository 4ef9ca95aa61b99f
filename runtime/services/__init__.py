"""Local services on loopback: PostgreSQL, Mosquitto and Apache Kafka (KRaft).

``up`` is idempotent (a running service is reused), readiness is probed, ``down`` stops only
what ``up`` started. A service whose configured endpoint is not on loopback is treated as
external: it is probed, never started or stopped.
"""

from __future__ import annotations

from roadledger.settings import Settings
from runtime.services.base import Service, ServiceStatus
from runtime.services.kafka import KafkaService
from runtime.services.mosquitto import MosquittoService
from runtime.services.postgres import PostgresService

__all__ = ["Service", "ServiceStatus", "all_services"]


def all_services(settings: Settings) -> list[Service]:
    """Every service in start order (``down`` uses the reverse)."""
    return [PostgresService(settings), MosquittoService(settings), KafkaService(settings)]
