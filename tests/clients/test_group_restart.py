"""Groups that survive a broker kill -9: a confluent-kafka classic consumer and a
`group.protocol=consumer` (KIP-848) consumer stay in their group across the restart without a
rebalance and carry on from their committed offsets; kafka-python's admin describes the classic
group right after the restart with its generation's member."""

from __future__ import annotations

import time

from kclients import OP_TIMEOUT, Confluent, Msg, subscribe_kafka_python

PARTITIONS = 3

KIP848_PROPS = {
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
}


def _produce(bs: str, topic: str, tag: str, per_partition: int) -> None:
    Confluent.produce(bs, [Msg(topic, b"k", f"{tag}{i}".encode(), (), partition=i % PARTITIONS)
                           for i in range(per_partition * PARTITIONS)])


def _poll(consumer, want: int, what: str, timeout: float = 60.0) -> list:
    got, errors = [], []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {len(got)} of {want} messages within {timeout}s; "
                                 f"errors {errors[:5]}")
        m = consumer.poll(0.2)
        if m is None:
            continue
        if m.error():
            errors.append(repr(m.error()))
            continue
        got.append(m)
    return got


def _consumer_survives_restart(broker, unique: str, extra: dict[str, str]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    bs = broker.bootstrap
    topic, group = f"{unique}-t", f"{unique}-g"
    Confluent.create_topics(bs, {topic: PARTITIONS})
    _produce(bs, topic, "a", 10)
    rebalances: list[str] = []
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **extra})
    try:
        c.subscribe([topic],
                    on_assign=lambda _c, ps: rebalances.append(f"assign {[p.partition for p in ps]}"),
                    on_revoke=lambda _c, ps: rebalances.append(f"revoke {[p.partition for p in ps]}"))
        first = _poll(c, 30, "before the restart")
        assert sorted(m.value() for m in first) == sorted(f"a{i}".encode() for i in range(30))
        c.commit(asynchronous=False)
        before = list(rebalances)
        assert before, "the consumer was assigned its partitions"

        broker.restart("sigkill")
        _produce(bs, topic, "b", 5)
        second = _poll(c, 15, "after the restart")
        # Nothing is read twice: the consumer kept its position, and its group.
        assert sorted(m.value() for m in second) == sorted(f"b{i}".encode() for i in range(15))
        c.commit(asynchronous=False)
        assert rebalances == before, f"a rebalance after the restart: {rebalances[len(before):]}"
        committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=OP_TIMEOUT)
        assert {tp.partition: tp.offset for tp in committed} == {p: 15 for p in range(PARTITIONS)}
    finally:
        c.close()


def test_confluent_classic_consumer_survives_kill_9(broker, unique):
    _consumer_survives_restart(broker, unique, {"session.timeout.ms": "30000"})


def test_confluent_kip848_consumer_survives_kill_9(broker_factory, unique):
    broker = broker_factory(KIP848_PROPS)
    _consumer_survives_restart(broker, unique, {"group.protocol": "consumer"})


def _describe(bs: str, group: str) -> dict:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bs)
    try:
        return admin.describe_groups([group])[group]
    finally:
        admin.close()


def test_kafka_python_describes_the_classic_group_after_restart(broker, unique):
    from kafka import KafkaAdminClient, KafkaConsumer

    bs = broker.bootstrap
    topic, group = f"{unique}-t", f"{unique}-g"
    Confluent.create_topics(bs, {topic: PARTITIONS})
    _produce(bs, topic, "a", 2)
    c = KafkaConsumer(bootstrap_servers=bs, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=30000)
    try:
        subscribe_kafka_python(c, topic)
        got = 0
        deadline = time.monotonic() + 60
        while got < 6 and time.monotonic() < deadline:
            got += sum(len(v) for v in c.poll(timeout_ms=1000).values())
        assert got == 6
        c.commit()
        before = _describe(bs, group)
        assert before["group_state"] == "Stable", before

        broker.restart("sigkill")
        after = _describe(bs, group)
        assert after["group_state"] == "Stable", after
        assert after["protocol_type"] == "consumer"
        assert after["protocol_data"] == before["protocol_data"]
        assert [m["member_id"] for m in after["members"]] == [m["member_id"] for m in before["members"]]
        admin = KafkaAdminClient(bootstrap_servers=bs)
        try:
            offsets = admin.list_group_offsets({group: None})[group]
        finally:
            admin.close()
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {p: 2 for p in range(PARTITIONS)}
    finally:
        c.close()
