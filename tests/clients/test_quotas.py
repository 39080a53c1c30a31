"""Client quotas with a real producer: a `producer_byte_rate` quota set with AlterClientQuotas
(sent as raw bytes: the Python admin clients have no call for it) throttles a confluent-kafka
producer with that client.id, which librdkafka reports through its throttle callback with the
broker's throttle_time_ms; a producer with another client.id is never throttled."""

from __future__ import annotations

import socket
import struct

from kclients import OP_TIMEOUT, Confluent


def _string(s: str | None) -> bytes:
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def alter_client_quota(bs: str, client_id: str, key: str, value: float) -> int:
    """AlterClientQuotas v0 for one client-id entity; returns the entry's error code."""
    body = struct.pack(">i", 1)  # entries
    body += struct.pack(">i", 1) + _string("client-id") + _string(client_id)
    body += struct.pack(">i", 1) + _string(key) + struct.pack(">d?", value, False)
    body += struct.pack(">?", False)  # validate_only
    header = struct.pack(">hhi", 49, 0, 7) + _string("quota-test")
    frame = header + body
    host, port = bs.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=OP_TIMEOUT) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        response = s.recv(size, socket.MSG_WAITALL)
    correlation, _throttle, entries, error_code = struct.unpack(">iiih", response[:14])
    assert (correlation, entries) == (7, 1)
    return error_code


def _produce_counting_throttles(bs: str, topic: str, client_id: str, count: int, size: int) -> list[int]:
    from confluent_kafka import Producer

    throttles: list[int] = []
    p = Producer({
        "bootstrap.servers": bs, "client.id": client_id, "linger.ms": 5, "acks": "all",
        "throttle_cb": lambda event: throttles.append(int(event.throttle_time * 1000)),
    })
    errors = []
    for i in range(count):
        p.produce(topic, key=str(i).encode(), value=b"q" * size,
                  on_delivery=lambda err, msg: err and errors.append(err))
        p.poll(0)
    assert p.flush(60) == 0, "messages left unsent"
    p.poll(0.5)  # deliver the last throttle callbacks
    assert not errors, errors[:3]
    return throttles


def test_producer_byte_rate_throttles_a_confluent_producer(broker, unique):
    bs = broker.bootstrap
    topic = f"{unique}-q"
    Confluent.create_topics(bs, {topic: 1})
    assert alter_client_quota(bs, "throttled", "producer_byte_rate", 20000) == 0
    # 300 KB against 20 KB/s measured over at least 10 s: half of it over the quota.
    throttles = _produce_counting_throttles(bs, topic, "throttled", 150, 2000)
    assert throttles and max(throttles) > 0, f"no throttle reported: {throttles}"
    assert max(throttles) <= 11000, throttles
    free = _produce_counting_throttles(bs, topic, "free", 150, 2000)
    assert not any(free), f"a client without a quota was throttled: {free}"
    got = Confluent.consume(bs, {topic: 1}, expected=300)
    assert len(got) == 300
