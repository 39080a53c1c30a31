"""Idempotent producers: confluent-kafka with enable.idempotence=True, and kafka-python, whose
default producer is idempotent. Each produces, the broker restarts (or not), the same producer
produces again; everything must be stored exactly once, in order."""

import pytest

from kclients import Confluent, KafkaPython, make_messages, stored_batches, verify

PARTITIONS = 3
HALF = 1500


def check_stored_sequences(broker, topic: str, what: str) -> None:
    """The stored batches carry one producer id and epoch, with sequence numbers that continue
    from batch to batch in each partition (also across the restart: the broker rebuilt the
    producer's state from its log, so the producer never had to start over)."""
    batches = [b for b in stored_batches(broker.log_dir, topic) if not b.control]
    assert batches, f"{what}: no batches on disk"
    ids = sorted({(b.producer_id, b.producer_epoch) for b in batches})
    assert all(pid >= 0 for pid, _ in ids), f"{what}: batches stored without a producer id: {ids}"
    assert len(ids) == 1, f"{what}: several producer ids/epochs in the log (state lost?): {ids}"
    for p in range(PARTITIONS):
        seqs = [(b.base_sequence, b.records) for b in batches if b.partition == p]
        expect = 0
        for seq, n in seqs:
            assert seq == expect, f"{what}: partition {p} batch sequences {seqs}: expected base sequence {expect}, found {seq}"
            expect = seq + n


@pytest.mark.parametrize("restart", ["no-restart", "sigterm", "sigkill"])
def test_confluent_idempotent_producer(broker, unique, restart):
    topic = f"{unique}-t"
    Confluent.create_topics(broker.bootstrap, {topic: PARTITIONS})
    before = make_messages([topic], HALF, f"{unique}-a")
    after = make_messages([topic], HALF, f"{unique}-b")
    p = Confluent.producer(broker.bootstrap, **{"enable.idempotence": True})
    deliveries = Confluent.produce_with(p, before)
    if restart != "no-restart":
        broker.restart(restart)
    deliveries += Confluent.produce_with(p, after)
    del p
    got = KafkaPython.consume(broker.bootstrap, {topic: PARTITIONS}, 2 * HALF)
    verify(before + after, got, f"idempotent confluent-kafka producer, {restart}", deliveries=deliveries)
    check_stored_sequences(broker, topic, f"idempotent confluent-kafka producer, {restart}")


@pytest.mark.parametrize("restart", ["no-restart", "sigkill"])
def test_kafka_python_default_idempotent_producer(broker, unique, restart):
    topic = f"{unique}-t"
    KafkaPython.create_topics(broker.bootstrap, {topic: PARTITIONS})
    before = make_messages([topic], HALF, f"{unique}-a")
    after = make_messages([topic], HALF, f"{unique}-b")
    p = KafkaPython.producer(broker.bootstrap)
    try:
        assert p.config["enable_idempotence"] is True, "kafka-python's default producer should be idempotent"
        deliveries = KafkaPython.produce_with(p, before)
        if restart != "no-restart":
            broker.restart(restart)
        deliveries += KafkaPython.produce_with(p, after)
    finally:
        p.close(timeout=10)
    got = Confluent.consume(broker.bootstrap, {topic: PARTITIONS}, 2 * HALF)
    verify(before + after, got, f"kafka-python default (idempotent) producer, {restart}", deliveries=deliveries)
    check_stored_sequences(broker, topic, f"kafka-python default producer, {restart}")
