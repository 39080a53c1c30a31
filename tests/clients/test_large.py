"""A 1 MiB message from each client, read back by another. The broker's default message.max.bytes
(1048588) is just too small for a 1 MiB value plus batch overhead, so the topic is created with
max.message.bytes=2097152, and each producer's own request limit is raised."""

import random

import pytest

from kclients import CLIENTS, AioKafka, ClientError, Confluent, KafkaJs, KafkaPython, Kcat, Msg, verify

MIB = 1024 * 1024
TOPIC_LIMIT = 2 * MIB
CLIENT_LIMIT = 3 * MIB


def produce_large(client: str, bs: str, msgs):
    if client == "confluent-kafka":
        return Confluent.produce(bs, msgs, **{"message.max.bytes": CLIENT_LIMIT})
    if client == "kafka-python":
        return KafkaPython.produce(bs, msgs, max_request_size=CLIENT_LIMIT)
    if client == "aiokafka":
        return AioKafka.produce(bs, msgs, max_request_size=CLIENT_LIMIT)
    if client == "kafkajs":
        return KafkaJs.produce(bs, msgs)  # kafkajs has no client-side size limit
    if client == "kcat":
        return Kcat.produce(bs, msgs, extra=["-X", f"message.max.bytes={CLIENT_LIMIT}"])
    raise ValueError(client)


@pytest.mark.parametrize("producer,consumer", [
    ("confluent-kafka", "kafka-python"),
    ("kafka-python", "confluent-kafka"),
    ("aiokafka", "aiokafka"),
    ("kafkajs", "confluent-kafka"),
    ("kcat", "kcat"),
])
def test_one_mib_message(broker, unique, producer, consumer):
    topic = f"{unique}-t"
    Confluent.create_topics(broker.bootstrap, {topic: 1}, configs={"max.message.bytes": str(TOPIC_LIMIT)})
    rnd = random.Random(unique)
    big = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(MIB)).encode()
    headers = (("client", producer.encode()), ("topic", topic.encode()))
    # A small message before and after the big one: offsets and fetch positions around it.
    msgs = [Msg(topic, b"before", b"small-1", headers), Msg(topic, b"big", big, headers),
            Msg(topic, b"after", b"small-2", headers)]
    deliveries = []
    for m in msgs:  # one request each, so the big one is a batch of its own
        deliveries += produce_large(producer, broker.bootstrap, [m]) or []
    got = CLIENTS[consumer].consume(broker.bootstrap, {topic: 1}, len(msgs))
    verify(msgs, got, f"1 MiB message {producer} -> {consumer}", deliveries=deliveries or None)
    assert [g.offset for g in got] == [0, 1, 2]


def test_message_over_the_limit_is_rejected(broker, unique):
    """The broker's default limit (message.max.bytes=1048588) rejects a 1 MiB + 1 KiB batch with
    MSG_SIZE_TOO_LARGE instead of storing it or hanging."""
    topic = f"{unique}-t"
    Confluent.create_topics(broker.bootstrap, {topic: 1})
    value = b"x" * (MIB + 1024)
    with pytest.raises(ClientError) as e:
        Confluent.produce(broker.bootstrap, [Msg(topic, b"k", value)], **{"message.max.bytes": CLIENT_LIMIT})
    assert "MSG_SIZE_TOO_LARGE" in str(e.value), f"expected MSG_SIZE_TOO_LARGE, got: {e.value}"
    assert Confluent.consume(broker.bootstrap, {topic: 1}, 0, timeout=3) == []
