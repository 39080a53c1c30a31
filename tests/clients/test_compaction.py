"""Log compaction with real clients: a topic created with cleanup.policy=compact and small
segments, written by confluent-kafka or kafka-python with many values per key and some
tombstones, then read back from the beginning by the other client. After the cleaner has run,
superseded records are gone, every surviving record keeps the offset it was written at, each
key's latest value is there, and the partition directory holds fewer bytes than were written.
The same holds for every compression.type: the cleaner decompresses, filters and recompresses
each batch with its codec (snappy from librdkafka is raw, from kafka-python xerial-framed; the
cleaner writes xerial, as Kafka does), and the other client reads the cleaned batches."""

import random
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from kclients import stored_batches

KEYS = 20
ROUNDS = 50
TOMBSTONED = {"key-3", "key-7"}
CLEANER = {"log.cleaner.backoff.ms": "50"}


def create_compacted(bs: str, topic: str, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bs})
    fs = admin.create_topics([NewTopic(topic, 1, 1, config=configs)])
    fs[topic].result(30)


def produce_confluent(bs: str, topic: str, records, **config) -> list[int]:
    offsets: list[int] = []
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, **config})

    def done(err, msg):
        assert err is None, err
        offsets.append(msg.offset())

    for i, (key, value) in enumerate(records):
        p.produce(topic, key=key.encode(), value=value, on_delivery=done)
        if i % KEYS == KEYS - 1:
            # One batch per round, so that segments roll between batches.
            assert p.flush(30) == 0
    assert p.flush(30) == 0
    return offsets


def produce_kafka_python(bs: str, topic: str, records, **config) -> list[int]:
    p = KafkaProducer(bootstrap_servers=bs, linger_ms=5, **config)
    futures = []
    for i, (k, v) in enumerate(records):
        futures.append(p.send(topic, key=k.encode(), value=v))
        if i % KEYS == KEYS - 1:
            p.flush(30)
    p.flush(30)
    offsets = [f.get(30).offset for f in futures]
    p.close()
    return offsets


def consume_confluent(bs: str, topic: str, end: int) -> list[tuple[int, str, bytes | None]]:
    c = Consumer({"bootstrap.servers": bs, "group.id": f"{topic}-c", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([__import__("confluent_kafka").TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 30
    position = 0
    while position < end and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            # An emptied batch at the end of the log moves the position without a message.
            positions = c.position([__import__("confluent_kafka").TopicPartition(topic, 0)])
            position = max(position, positions[0].offset)
            continue
        got.append((m.offset(), m.key().decode(), m.value()))
        position = m.offset() + 1
    c.close()
    return got


def consume_kafka_python(bs: str, topic: str, end: int) -> list[tuple[int, str, bytes | None]]:
    tp = TopicPartition(topic, 0)
    c = KafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, consumer_timeout_ms=2000)
    c.assign([tp])
    c.seek(tp, 0)
    got = []
    deadline = time.monotonic() + 30
    while c.position(tp) < end and time.monotonic() < deadline:
        for batch in c.poll(timeout_ms=500).values():
            for m in batch:
                got.append((m.offset, m.key.decode(), m.value))
    c.close()
    return got


def first_dirty_offset(log_dir: Path, topic: str) -> int:
    path = log_dir / "cleaner-offset-checkpoint"
    if not path.exists():
        return 0
    for line in path.read_text().splitlines()[2:]:
        t, p, o = line.split()
        if t == topic and p == "0":
            return int(o)
    return 0


def log_bytes(log_dir: Path, topic: str) -> int:
    return sum(f.stat().st_size for f in (log_dir / f"{topic}-0").glob("*.log"))


def produce_and_check_cleaning(broker, topic: str, producer: str, consumer: str, codec: str | None = None):
    """Writes KEYS keys ROUNDS times, tombstones and fillers with `producer` (with `codec` as its
    compression.type), waits for the cleaner, and checks what `consumer` reads back."""
    create_compacted(broker.bootstrap, topic, {
        "cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"})
    records = [(f"key-{k}", f"value-{r}-{k}-".encode() + b"x" * 50) for r in range(ROUNDS) for k in range(KEYS)]
    records += [(k, None) for k in sorted(TOMBSTONED)]
    # Later writes roll segments, so that the tombstones land in a sealed, cleanable segment
    # (random bytes, which no codec shrinks below a few segments).
    records += [(f"filler-{i}", random.randbytes(100)) for i in range(200)]
    if producer == "confluent-kafka":
        offsets = produce_confluent(broker.bootstrap, topic, records,
                                    **({"compression.type": codec} if codec else {}))
    else:
        offsets = produce_kafka_python(broker.bootstrap, topic, records,
                                       **({"compression_type": codec} if codec else {}))
    assert sorted(offsets) == list(range(len(records)))
    # Both produce functions list offsets in the order of `records` (one partition).
    written = dict(zip(offsets, records))
    latest = {}
    for offset, (key, _) in written.items():
        latest[key] = offset
    payload_bytes = sum(len(k) + len(v or b"") for k, v in records)

    deadline = time.monotonic() + 60
    while first_dirty_offset(broker.log_dir, topic) < KEYS * ROUNDS + len(TOMBSTONED):
        assert time.monotonic() < deadline, broker.tail()
        time.sleep(0.05)
    first_dirty = first_dirty_offset(broker.log_dir, topic)

    consume = consume_kafka_python if consumer == "kafka-python" else consume_confluent
    got = consume(broker.bootstrap, topic, len(records))
    assert got, "nothing consumed"
    for offset, key, value in got:
        assert written[offset] == (key, value), f"offset {offset}"
        if offset < first_dirty:
            assert latest[key] == offset, f"superseded record at {offset} survived"
    offsets_read = {o for o, _, _ in got}
    for key, offset in latest.items():
        assert offset in offsets_read, f"latest record of {key} (offset {offset}) is gone"
    # Tombstones stay (delete.retention.ms is a day), as the latest records of their keys.
    for key in TOMBSTONED:
        assert written[latest[key]][1] is None
    assert len(got) < len(records) / 4
    if codec is None:
        assert log_bytes(broker.log_dir, topic) < payload_bytes / 2
    else:
        # Every cleaned batch of compressible values is still compressed with the producer's codec
        # (a client may send the random fillers uncompressed).
        codecs = {b.codec for b in stored_batches(broker.log_dir, topic) if b.base_offset < KEYS * ROUNDS}
        assert codecs == {codec}, codecs
        assert log_bytes(broker.log_dir, topic) < payload_bytes / 2


@pytest.mark.parametrize("producer,consumer", [("confluent-kafka", "kafka-python"),
                                               ("kafka-python", "confluent-kafka")])
def test_compacted_topic_keeps_latest_values_at_their_offsets(broker_factory, unique, producer, consumer):
    broker = broker_factory(CLEANER)
    produce_and_check_cleaning(broker, f"{unique}-t", producer, consumer)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@pytest.mark.parametrize("producer,consumer", [("confluent-kafka", "kafka-python"),
                                               ("kafka-python", "confluent-kafka")])
def test_compressed_compacted_topic_keeps_latest_values(broker_factory, unique, producer, consumer, codec):
    broker = broker_factory(CLEANER)
    produce_and_check_cleaning(broker, f"{unique}-t", producer, consumer, codec)


def test_kafkajs_reads_a_compacted_topic_across_its_gaps(broker_factory, unique):
    from kclients import KafkaJs

    broker = broker_factory(CLEANER)
    topic = f"{unique}-t"
    create_compacted(broker.bootstrap, topic, {
        "cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"})
    records = [(f"key-{k}", f"value-{r}-{k}-".encode() + b"x" * 50) for r in range(ROUNDS) for k in range(KEYS)]
    records += [(f"filler-{i}", b"y" * 50) for i in range(200)]
    offsets = produce_confluent(broker.bootstrap, topic, records)
    deadline = time.monotonic() + 60
    while first_dirty_offset(broker.log_dir, topic) < KEYS * ROUNDS:
        assert time.monotonic() < deadline, broker.tail()
        time.sleep(0.05)
    # Cleaning is done for now: the next round finds nothing dirty until more is written.
    expected = consume_confluent(broker.bootstrap, topic, len(records))
    assert len(expected) < len(records) / 4
    got = KafkaJs.consume(broker.bootstrap, {topic: 1}, expected=len(expected))
    written = dict(zip(offsets, records))
    assert sorted((g.offset, g.key.decode(), g.value) for g in got) == sorted(expected)
    for g in got:
        assert written[g.offset] == (g.key.decode(), g.value)
