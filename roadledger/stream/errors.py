"""The one error type of the stream layer.

Every stream implementation raises :class:`StreamError` for a failure of the broker or of the
caller's use of it (sending to a stopped producer, committing a partition the consumer does not
own, an unreachable Kafka); third-party exceptions (``aiokafka.errors.KafkaError``) are
converted at the edge and kept as ``__cause__``. A failed delivery future of
:meth:`Producer.send` holds a ``StreamError`` too.
"""

from __future__ import annotations

__all__ = ["StreamError"]


class StreamError(Exception):
    """A stream operation failed; the message names the operation, the topic and the cause.

    ``retriable`` is True when trying the same operation again may succeed (a broker that is
    restarting, a timeout); callers that must not lose data retry those and give up on the rest.
    """

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable
