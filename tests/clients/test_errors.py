"""Error paths every client must see as errors, promptly: metadata for an unknown topic (with
auto-creation off on the client side), a produce to a partition that does not exist, and topics
deleted through the admin API."""

import re
import time

import pytest

from kclients import CLIENTS, OP_TIMEOUT, ClientError, Confluent, KafkaPython, Msg, kafkajs, kcat

ALL = ["confluent-kafka", "kafka-python", "aiokafka", "kafkajs", "kcat"]
ADMINS = ["confluent-kafka", "kafka-python", "aiokafka", "kafkajs"]
UNKNOWN = re.compile(r"unknown.?topic.?or.?part|\bcode 3\b|error_code 3\b|does not host this topic-partition", re.I)


@pytest.mark.parametrize("client", ALL)
def test_unknown_topic_metadata(broker, unique, client):
    topic = f"{unique}-missing"
    Confluent.create_topics(broker.bootstrap, {f"{unique}-present": 1})
    start = time.monotonic()
    error = CLIENTS[client].unknown_topic_error(broker.bootstrap, topic)
    assert UNKNOWN.search(error), f"{client}: metadata for an unknown topic gave: {error}"
    assert time.monotonic() - start < OP_TIMEOUT
    topics = Confluent.list_topics(broker.bootstrap)
    assert topic not in topics, f"{client}: the metadata request created {topic}: {sorted(topics)}"


def _produce_bad_partition(client: str, bs: str, topic: str) -> str:
    """Produces one message to partition 5 of a 1-partition topic; returns the error text."""
    m = Msg(topic, b"k", b"to a partition that does not exist", (), partition=5)
    if client == "kcat":
        proc = kcat(["-P", "-t", topic, "-p", "5", "-K", "\t"], bs, stdin=b"k\tv\n", timeout=OP_TIMEOUT)
        out = proc.stderr.decode(errors="replace").strip()
        if proc.returncode == 0 and "ERROR" not in out:
            raise AssertionError(f"kcat: produce to partition 5 succeeded (exit 0): {out!r}")
        return f"exit {proc.returncode}: {out}"
    try:
        if client == "kafkajs":
            r = kafkajs("produce", {"brokers": [bs], "messages": [
                {"topic": topic, "key": "aw==", "value": "dg==", "headers": [], "partition": 5}]}, timeout=OP_TIMEOUT)
            if r["results"] == []:
                # kafkajs 2.2.4 drops messages for partitions its metadata lacks
                # (Cluster.findLeaderForPartitions skips them): send() resolves with no record
                # metadata instead of failing. That is the client's own behaviour; what matters
                # here is that nothing hangs and nothing is stored.
                return "kafkajs: send() resolved with no record metadata (message dropped by the client)"
        else:
            CLIENTS[client].produce(bs, [m])
    except Exception as e:  # noqa: BLE001 - any error is the right answer; the text is reported
        return f"{type(e).__name__}: {e}"
    raise AssertionError(f"{client}: produce to partition 5 of a 1-partition topic succeeded")


@pytest.mark.parametrize("client", ALL)
def test_produce_to_missing_partition(broker, unique, client):
    topic = f"{unique}-t"
    Confluent.create_topics(broker.bootstrap, {topic: 1})
    start = time.monotonic()
    error = _produce_bad_partition(client, broker.bootstrap, topic)
    took = time.monotonic() - start
    print(f"{client}: {error}")
    assert "timed out" not in error and "did not" not in error, f"{client} hung instead of failing: {error}"
    assert took < OP_TIMEOUT, f"{client} took {took:.1f}s to fail: {error}"
    # Nothing was stored anywhere, and the topic still has its one partition.
    assert Confluent.consume(broker.bootstrap, {topic: 1}, 0, timeout=2) == []
    Confluent.wait_for_topics(broker.bootstrap, {topic: 1})


def test_raw_produce_to_missing_partition_gets_error_3(broker, unique):
    """Clients check partitions against their metadata before sending; this sends the Produce
    request anyway (aiokafka's protocol classes) so that the broker's own answer is checked:
    UNKNOWN_TOPIC_OR_PARTITION (3) for a missing partition and for a missing topic."""
    import asyncio

    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.produce import ProduceRequest
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    topic = f"{unique}-t"
    Confluent.create_topics(broker.bootstrap, {topic: 1})
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    builder.append(0, timestamp=None, key=b"k", value=b"v", headers=[])
    batch = bytes(builder.build())

    async def go():
        client = AIOKafkaClient(bootstrap_servers=broker.bootstrap)
        await client.bootstrap()
        try:
            node = client.get_random_node()
            req = ProduceRequest(None, -1, 10000, [(topic, [(5, batch)]), (f"{unique}-nope", [(0, batch)])])
            return (await client.send(node, req)).to_object()
        finally:
            await client.close()

    resp = asyncio.run(asyncio.wait_for(go(), OP_TIMEOUT))
    codes = {(t["topic"], p["partition"]): p["error_code"] for t in resp["topics"] for p in t["partitions"]}
    assert codes == {(topic, 5): 3, (f"{unique}-nope", 0): 3}, f"Produce response error codes: {codes} ({resp})"
    assert f"{unique}-nope" not in Confluent.list_topics(broker.bootstrap)


@pytest.mark.parametrize("client", ADMINS)
def test_delete_topic(broker, unique, client):
    c = CLIENTS[client]
    topic, other = f"{unique}-doomed", f"{unique}-kept"
    c.create_topics(broker.bootstrap, {topic: 2, other: 1})
    Confluent.produce(broker.bootstrap, [Msg(topic, b"k%d" % i, b"v%d" % i, (), i % 2) for i in range(20)])
    c.delete_topics(broker.bootstrap, [topic])
    deadline = time.monotonic() + OP_TIMEOUT
    while topic in (seen := c.list_topics(broker.bootstrap)):
        assert time.monotonic() < deadline, f"{client}: {topic} still listed {OP_TIMEOUT}s after DeleteTopics"
        time.sleep(0.2)
    assert other in seen, f"{client}: deleting {topic} also removed {other}: {sorted(seen)}"
    error = Confluent.unknown_topic_error(broker.bootstrap, topic)
    assert UNKNOWN.search(error), f"metadata for the deleted topic: {error}"
    # The name can be used again, for a new, empty topic.
    Confluent.create_topics(broker.bootstrap, {topic: 1})
    assert Confluent.consume(broker.bootstrap, {topic: 1}, 0, timeout=2) == [], "the re-created topic is not empty"


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_topic_configs_via_admin(broker, unique, client):
    """Configs given at CreateTopics come back from DescribeConfigs."""
    topic = f"{unique}-t"
    configs = {"max.message.bytes": "2097152", "retention.ms": "3600000", "cleanup.policy": "delete"}
    CLIENTS[client].create_topics(broker.bootstrap, {topic: 1}, configs=configs)
    if client == "confluent-kafka":
        described = Confluent.describe_topic_config(broker.bootstrap, topic)
    else:
        from kafka.admin import ConfigResource, ConfigResourceType

        admin = KafkaPython._admin(broker.bootstrap)
        try:
            resp = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"kafka-python describe_configs: {e!r}") from e
        finally:
            admin.close()
        described = _configs_from_kafka_python(resp)
    wrong = {k: (v, described.get(k)) for k, v in configs.items() if described.get(k) != v}
    assert not wrong, f"{client}: DescribeConfigs disagrees with CreateTopics (wanted, described): {wrong}"


def _configs_from_kafka_python(resp) -> dict[str, str]:
    """kafka-python 3 answers {"topic": {name: {config: {"value": ...}}}}."""
    topics = resp.get("topic", {}) if isinstance(resp, dict) else {}
    if len(topics) != 1:
        raise ClientError(f"kafka-python describe_configs: unexpected answer {resp!r}")
    (configs,) = topics.values()
    return {k: v.get("value") for k, v in configs.items()}
