"""The stream between the pipeline's stages: Apache Kafka, or an in-process stand-in.

Components talk to :class:`Stream` only, so the same bridge, verifier, store writer and
sequencer run on a real Kafka broker (``roadledger.stream.kafka``) and inside one process for
the embedded demo (``roadledger.stream.memory``). See ``roadledger/stream/base.py`` for the
contract.
"""

from roadledger.stream.base import (
    Consumer,
    OutgoingRecord,
    PartitionsListener,
    Producer,
    Stream,
    StreamRecord,
    TopicPartition,
    next_offsets,
    send_one_by_one,
)
from roadledger.stream.errors import StreamError

__all__ = [
    "Consumer",
    "OutgoingRecord",
    "PartitionsListener",
    "Producer",
    "Stream",
    "StreamError",
    "StreamRecord",
    "TopicPartition",
    "next_offsets",
    "send_one_by_one",
]
