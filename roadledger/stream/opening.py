"""Opening the stream: the one place a command chooses and reaches its :class:`Stream`.

Every command gets its stream from :func:`open_stream`: Kafka at ``settings.kafka_bootstrap``,
or the in-process stand-in of the embedded demo. Opening does not connect: a long-running stage
waits out an unreachable broker itself (``RetryPolicy``, one log line), while a command that runs
once calls :func:`require_broker` first and gets :class:`StreamUnavailable`, one line naming the
broker and the cause, which the command line prints as it prints ``DatabaseUnavailable``.
"""

from __future__ import annotations

import asyncio

from contracts.errors import Unavailable
from roadledger.settings import Settings
from roadledger.stream.base import Stream
from roadledger.stream.errors import StreamError
from roadledger.tcp_probe import connect_tcp

__all__ = ["StreamUnavailable", "open_stream", "require_broker"]


class StreamUnavailable(StreamError, Unavailable):
    """No Kafka broker of ``kafka_bootstrap`` answers; the message says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


def open_stream(settings: Settings, *, in_memory: bool = False) -> Stream:
    """The stream a command runs on (see the module docstring); ``in_memory`` for the
    embedded demo, whose stages all run in this process."""
    if in_memory:
        from roadledger.stream.memory import MemoryStream

        return MemoryStream(partitions=settings.kafka_partitions, trim_committed=True)
    from roadledger.stream.kafka import KafkaStream

    return KafkaStream(settings)


async def require_broker(settings: Settings, *, timeout_s: float = 5.0) -> None:
    """Return once one bootstrap server accepts a TCP connection; else raise
    :class:`StreamUnavailable` naming each server and why it did not answer."""
    reasons = []
    for server in settings.kafka:
        try:
            sock = await asyncio.to_thread(connect_tcp, server.host, server.port, timeout_s)
        except TimeoutError:
            reasons.append(f"{server!r}: no answer in {timeout_s:g} s")
            continue
        except OSError as exc:
            reasons.append(f"{server!r}: {exc.strerror or exc}")
            continue
        sock.close()
        return
    raise StreamUnavailable(
        f"cannot reach Kafka at {settings.kafka_bootstrap}: {'; '.join(reasons)}"
    )
