"""10,000 partitions and thousands of connections under an open-file limit of 16,384, with
confluent-kafka: every partition gets a record and gives it back after kill -9 and after a clean
restart, each restart serves at once, and 4,000 further connections are each answered."""

import resource
import socket
import struct
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, _finish_broker

TOPICS = 100
PARTITIONS = 100
NOFILE = 16384
EXTRA_CONNECTIONS = 4000


def topic(t: int) -> str:
    return f"scale-{t}"


def value(t: int, p: int) -> bytes:
    return f"topic {t} partition {p}".encode()


def create_all(bs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bs})
    # Kafka takes at most 10,000 metadata records per request (a topic is one, plus one per
    # partition): 50 topics of 100 partitions at a time.
    for start in range(0, TOPICS, 50):
        futures = admin.create_topics(
            [NewTopic(topic(t), PARTITIONS, 1) for t in range(start, start + 50)],
            operation_timeout=60,
        )
        for f in futures.values():
            f.result(timeout=120)


def produce_all(bs: str) -> float:
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    p = Producer({"bootstrap.servers": bs, "linger.ms": 5})
    started = time.monotonic()
    for t in range(TOPICS):
        for i in range(PARTITIONS):
            p.produce(topic(t), value=value(t, i), partition=i, on_delivery=on_delivery)
    left = p.flush(60)
    elapsed = time.monotonic() - started
    assert left == 0 and not errors, f"{left} undelivered, errors {errors[:5]}"
    return elapsed


def consume_all(bs: str) -> None:
    c = Consumer({
        "bootstrap.servers": bs,
        "group.id": "scale-check",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    try:
        c.assign([TopicPartition(topic(t), i, 0) for t in range(TOPICS) for i in range(PARTITIONS)])
        got = {}
        deadline = time.monotonic() + 60
        while len(got) < TOPICS * PARTITIONS and time.monotonic() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            got[(m.topic(), m.partition())] = (m.offset(), m.value())
        assert len(got) == TOPICS * PARTITIONS, f"read {len(got)} partitions"
        for t in range(TOPICS):
            for i in range(PARTITIONS):
                assert got[(topic(t), i)] == (0, value(t, i)), (t, i)
    finally:
        c.close()


def api_versions_request(correlation_id: int) -> bytes:
    client_id = b"scale"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def answered(sock: socket.socket, correlation_id: int) -> bool:
    header = b""
    while len(header) < 8:
        chunk = sock.recv(8 - len(header))
        if not chunk:
            return False
        header += chunk
    size, cid = struct.unpack(">ii", header)
    left = size - 4
    while left > 0:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            return False
        left -= len(chunk)
    return cid == correlation_id


def test_ten_thousand_partitions_survive_restarts_and_connections_pile_up(request, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= EXTRA_CONNECTIONS + 1000, (
        f"this test holds {EXTRA_CONNECTIONS} sockets; the open file limit's hard value is {hard}"
    )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = Broker(tmp_path, nofile=NOFILE)
    b.start()
    try:
        create_all(b.bootstrap)
        elapsed = produce_all(b.bootstrap)
        print(f"one record to each of {TOPICS * PARTITIONS} partitions in {elapsed:.2f} s")

        started = time.monotonic()
        b.restart("sigkill")
        print(f"restarted after kill -9 in {time.monotonic() - started:.2f} s")
        consume_all(b.bootstrap)

        started = time.monotonic()
        b.restart("sigterm")
        print(f"clean restart in {time.monotonic() - started:.2f} s")
        consume_all(b.bootstrap)
        # Loading after a clean shutdown is quiet: no line per partition, no warning.
        start_up = b.log_text().split("----- start #3 -----")[1].split("listening on")[0]
        warnings = [l for l in start_up.splitlines() if " WARN " in l or " ERROR " in l]
        assert not warnings, warnings[:10]
        assert len(start_up.splitlines()) < 20, start_up[:2000]

        socks = []
        try:
            for i in range(EXTRA_CONNECTIONS):
                s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
                s.sendall(api_versions_request(i))
                socks.append(s)
                # Read answers as we go, so the listen backlog never fills.
                if i % 100 == 99:
                    for j in range(i - 99, i + 1):
                        assert answered(socks[j], j), f"connection {j} was not answered"
            assert len(socks) == EXTRA_CONNECTIONS
        finally:
            for s in socks:
                s.close()
    finally:
        _finish_broker(request, b)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
