"""Publisher pieces that need no broker: the token bucket, and failing loudly."""

from __future__ import annotations

import socket

import pytest

from device_sim.errors import PublishError
from device_sim.publisher import MqttPublisher, TokenBucket
from device_sim.simulation import Outgoing
from roadledger.settings import Endpoint


def test_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(1000.0, now=10.0)
    assert bucket.burst == 100.0
    assert bucket.available(10.0) == 1
    bucket.take(1)
    assert bucket.available(10.0) == 0
    assert bucket.wait_s() == pytest.approx(0.001)
    assert bucket.wait_s(bucket.batch) == pytest.approx(0.01)
    assert bucket.available(10.05) == 50
    bucket.take(50)
    assert bucket.available(20.0) == 100  # never more than the burst
    bucket.take(100)
    assert bucket.available(20.0) == 0


def test_unlimited_bucket_never_waits() -> None:
    bucket = TokenBucket(None, now=0.0)
    assert bucket.available(0.0) >= 1 << 20
    assert bucket.wait_s(100) == 0.0
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0, now=0.0)


def test_an_unreachable_broker_is_a_publish_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    publisher = MqttPublisher(Endpoint("127.0.0.1", port), timeout_s=0.3)
    with pytest.raises(PublishError, match=f"cannot connect to MQTT broker 127.0.0.1:{port}"):
        publisher.publish([Outgoing("roadledger/v1/telemetry/x", b"x", 0)])
