"""PostgreSQL and the MQTT broker together, as the demo starts them."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

from roadledger.settings import Settings
from runtime.embedded.mqtt import EmbeddedBroker
from runtime.embedded.postgres import EmbeddedPostgres

__all__ = ["EmbeddedServices"]


class EmbeddedServices:
    """Starts the embedded services concurrently and yields settings pointing at them.

    ``postgres`` / ``mqtt`` False leave that URL of ``settings`` as it is (the caller decided
    to use a real service). ``start`` returns a copy of ``settings`` with ``database_url``
    and ``mqtt_url`` replaced; if one service fails to start, the other is stopped before
    the error propagates. ``start_seconds`` is how long the last start took.
    """

    def __init__(self, settings: Settings, *, postgres: bool = True, mqtt: bool = True) -> None:
        self.settings = settings
        self.postgres = EmbeddedPostgres.for_settings(settings) if postgres else None
        self.broker = EmbeddedBroker() if mqtt else None
        self.start_seconds: float | None = None

    async def __aenter__(self) -> Settings:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> Settings:
        began = time.monotonic()
        update: dict[str, str] = {}
        results = await asyncio.gather(
            self.postgres.start() if self.postgres else _none(),
            self.broker.start() if self.broker else _none(),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            await self.stop()
            raise failures[0]
        database_url, mqtt_url = results
        if isinstance(database_url, str):
            update["database_url"] = database_url
        if isinstance(mqtt_url, str):
            update["mqtt_url"] = mqtt_url
        self.start_seconds = time.monotonic() - began
        return self.settings.model_copy(update=update)

    async def stop(self) -> None:
        """Stop both (each stop is idempotent); the first failure propagates."""
        results = await asyncio.gather(
            self.broker.stop() if self.broker else _none(),
            self.postgres.stop() if self.postgres else _none(),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def _none() -> None:
    return None
