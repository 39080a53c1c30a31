"""The admin calls that tools (kafka-topics, kafka-configs, UIs, Terraform providers) make, through
each client's own admin API: growing a topic (CreatePartitions), changing topic and broker
configs (IncrementalAlterConfigs, AlterConfigs) and reading them back with their sources
(DescribeConfigs), DescribeCluster, DescribeLogDirs, ElectLeaders and ListPartitionReassignments.
Every change is checked in its effect (records land in the new partitions, a lowered
max.message.bytes refuses a message) and after a restart."""

from __future__ import annotations

import pytest

from kclients import OP_TIMEOUT, ClientError, Confluent, KafkaPython, Msg, kafkajs


def _confluent_admin(bs):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bs})


def _confluent_configs(bs, resource):
    admin = _confluent_admin(bs)
    (future,) = admin.describe_configs([resource], request_timeout=OP_TIMEOUT).values()
    return future.result(timeout=OP_TIMEOUT)


def _produce_one(bs, topic, partition, value: bytes):
    """Produces one message with confluent-kafka; returns (error or None, offset)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bs, "message.max.bytes": 10_000_000, "acks": "all",
                  "enable.idempotence": False, "retries": 0})
    out = {}
    # A key: the topic becomes compacted below, and compacted topics refuse keyless records.
    p.produce(topic, key=b"k", value=value, partition=partition,
              on_delivery=lambda err, msg: out.update(err=err, offset=msg.offset()))
    p.flush(OP_TIMEOUT)
    assert out, "no delivery report"
    return out["err"], out["offset"]


def test_confluent_create_partitions_and_configs_survive_restarts(broker, unique):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                       NewPartitions)

    topic = f"{unique}-t"
    bs = broker.bootstrap
    Confluent.create_topics(bs, {topic: 1})
    admin = _confluent_admin(bs)

    # Grow to 3 partitions; the new ones take records at once.
    for f in admin.create_partitions([NewPartitions(topic, 3)], request_timeout=OP_TIMEOUT).values():
        f.result(timeout=OP_TIMEOUT)
    Confluent.wait_for_topics(bs, {topic: 3})
    err, offset = _produce_one(bs, topic, 2, b"into a new partition")
    assert (err, offset) == (None, 0)
    # Shrinking is refused with INVALID_PARTITIONS and Kafka's message.
    with pytest.raises(KafkaException) as refused:
        for f in admin.create_partitions([NewPartitions(topic, 2)], request_timeout=OP_TIMEOUT).values():
            f.result(timeout=OP_TIMEOUT)
    error = refused.value.args[0]
    assert error.name() == "INVALID_PARTITIONS", error
    assert "currently has 3 partition(s); 2 would not be an increase" in error.str()

    # Topic configs: SET and APPEND, then read back with their source.
    resource = ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    ])
    for f in admin.incremental_alter_configs([resource], request_timeout=OP_TIMEOUT).values():
        f.result(timeout=OP_TIMEOUT)
    configs = _confluent_configs(bs, ConfigResource("topic", topic))
    assert configs["max.message.bytes"].value == "2000"
    assert configs["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    # Live: the next message over 2000 bytes is refused.
    err, _ = _produce_one(bs, topic, 0, b"x" * 3000)
    assert err is not None and err.name() == "MSG_SIZE_TOO_LARGE", err
    assert _produce_one(bs, topic, 0, b"small") == (None, 0)

    # Broker dynamic keys (this node's): they apply to topics without an override.
    broker_resource = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("log.retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([broker_resource], request_timeout=OP_TIMEOUT).values():
        f.result(timeout=OP_TIMEOUT)
    configs = _confluent_configs(bs, ConfigResource("topic", topic))
    assert configs["retention.ms"].value == "7200000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    # A static key cannot be changed at run time.
    bad = ConfigResource("broker", "1", incremental_configs=[
        ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        for f in admin.incremental_alter_configs([bad], request_timeout=OP_TIMEOUT).values():
            f.result(timeout=OP_TIMEOUT)
    assert refused.value.args[0].name() == "INVALID_CONFIG"

    cluster = admin.describe_cluster(request_timeout=OP_TIMEOUT).result(timeout=OP_TIMEOUT)
    assert [n.id for n in cluster.nodes] == [1]
    assert cluster.controller.id == 1
    assert cluster.cluster_id

    for how in ("sigkill", "sigterm"):
        broker.restart(how)
        Confluent.wait_for_topics(bs, {topic: 3})
        configs = _confluent_configs(bs, ConfigResource("topic", topic))
        assert configs["max.message.bytes"].value == "2000", how
        assert configs["retention.ms"].value == "7200000", how
        err, _ = _produce_one(bs, topic, 0, b"x" * 3000)
        assert err is not None and err.name() == "MSG_SIZE_TOO_LARGE", (how, err)
    assert _produce_one(bs, topic, 2, b"again") == (None, 1)


def test_kafka_python_admin_calls(broker, unique):
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = f"{unique}-kp"
    bs = broker.bootstrap
    KafkaPython.create_topics(bs, {topic: 1})
    admin = KafkaPython._admin(bs)
    try:
        admin.create_partitions({topic: 4})
        Confluent.wait_for_topics(bs, {topic: 4})
        Confluent.produce(bs, [Msg(topic, b"k", b"v" * 100, (), partition=3)])

        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "60000"})])
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        text = repr(described)
        assert "segment.ms" in text and "60000" in text, text

        dirs = admin.describe_log_dirs()
        text = repr(dirs)
        assert topic in text, text
        # The partition that holds the record reports its size on disk.
        size = (broker.log_dir / f"{topic}-3" / "00000000000000000000.log").stat().st_size
        assert size > 100 and str(size) in text, (size, text)

        elected = admin.elect_leaders(0, {topic: [0, 9]}, raise_errors=False)
        codes = {p.partition_id: p.error_code
                 for r in elected.replica_election_results for p in r.partition_result}
        assert codes == {0: 84, 9: 3}, codes  # ELECTION_NOT_NEEDED, UNKNOWN_TOPIC_OR_PARTITION
        assert admin.list_partition_reassignments() == {}
        cluster = admin.describe_cluster()
        assert cluster["controller_id"] == 1, cluster
    finally:
        admin.close()


def test_kafkajs_admin_calls(broker, unique):
    topic = f"{unique}-js"
    bs = broker.bootstrap
    Confluent.create_topics(bs, {topic: 1})
    kafkajs("createPartitions", {"brokers": [bs], "topicPartitions": [{"topic": topic, "count": 2}]})
    Confluent.wait_for_topics(bs, {topic: 2})
    kafkajs("alterTopicConfigs", {"brokers": [bs], "topic": topic,
                                  "configEntries": [{"name": "retention.ms", "value": "123456"}]})
    r = kafkajs("describeTopicConfigs", {"brokers": [bs], "topic": topic, "configNames": ["retention.ms"]})
    assert [(e["configName"], e["configValue"]) for e in r["entries"]] == [("retention.ms", "123456")]
    cluster = kafkajs("describeCluster", {"brokers": [bs]})
    assert cluster["controller"] == 1 and [b["nodeId"] for b in cluster["brokers"]] == [1], cluster
    with pytest.raises(ClientError, match="(?i)invalid.?partitions|would not be an increase"):
        kafkajs("createPartitions", {"brokers": [bs], "topicPartitions": [{"topic": topic, "count": 1}]})
