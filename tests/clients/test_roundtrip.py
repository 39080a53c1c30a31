"""Each client creates topics with its admin API, produces a few thousand keyed messages with
headers to several topics and partitions, and reads them back: same content, nothing lost or
duplicated, per-partition order kept, offsets without gaps."""

import pytest

from kclients import CLIENTS, Confluent, KafkaJs, Kcat, make_messages, verify

COUNT = 3000
PARTITIONS = (3, 2, 1)


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka"])
def test_python_client_roundtrip(broker, unique, client):
    c = CLIENTS[client]
    topics = {f"{unique}-{i}": n for i, n in enumerate(PARTITIONS)}
    c.create_topics(broker.bootstrap, topics)
    assert set(topics) <= c.list_topics(broker.bootstrap)
    msgs = make_messages(list(topics), COUNT, client, binary=True)
    deliveries = c.produce(broker.bootstrap, msgs)
    got = c.consume(broker.bootstrap, topics, len(msgs))
    verify(msgs, got, f"{client} produce -> {client} consume", deliveries=deliveries)


def test_kafkajs_roundtrip(broker, unique):
    topics = {f"{unique}-{i}": n for i, n in enumerate(PARTITIONS)}
    KafkaJs.create_topics(broker.bootstrap, topics)
    assert set(topics) <= KafkaJs.list_topics(broker.bootstrap)
    msgs = make_messages(list(topics), COUNT, "kafkajs")
    KafkaJs.produce(broker.bootstrap, msgs)
    # The high watermark is the next offset: the per-topic sum is the number of messages.
    for t, n in topics.items():
        offsets = KafkaJs.fetch_topic_offsets(broker.bootstrap, t)
        assert sorted(offsets) == list(range(n)), f"{t}: partitions {sorted(offsets)}"
        assert all(low == 0 for low, _ in offsets.values()), f"{t}: low watermarks {offsets}"
        want = sum(1 for m in msgs if m.topic == t)
        assert sum(high for _, high in offsets.values()) == want, f"{t}: high watermarks {offsets}, {want} messages produced"
    # First check what was stored with a reader that needs no consumer group...
    verify(msgs, Confluent.consume(broker.bootstrap, topics, len(msgs)), "kafkajs produce -> confluent-kafka consume")
    # ...then read it with kafkajs itself (always through a consumer group).
    verify(msgs, KafkaJs.consume(broker.bootstrap, topics, len(msgs)), "kafkajs produce -> kafkajs consume")


def test_kcat_roundtrip(broker, unique):
    # kcat has no admin API: two topics made by confluent-kafka's admin, one auto-created by the
    # produce (the broker's default num.partitions=1).
    created = {f"{unique}-0": 3, f"{unique}-1": 2}
    auto = f"{unique}-auto"
    Confluent.create_topics(broker.bootstrap, created)
    topics = {**created, auto: 1}
    msgs = make_messages(list(topics), COUNT, "kcat", per_message_headers=False)
    Kcat.produce(broker.bootstrap, msgs)
    Confluent.wait_for_topics(broker.bootstrap, {auto: 1})
    got = Kcat.consume(broker.bootstrap, topics, len(msgs))
    verify(msgs, got, "kcat -P -> kcat -C")
