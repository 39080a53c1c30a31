"""SASL with real clients: confluent-kafka (librdkafka) and kafka-python authenticate with PLAIN
(users from the JAAS configuration) and SCRAM-SHA-256/512 (users created with confluent-kafka's
AdminClient.alter_user_scram_credentials), a wrong password is refused, and SCRAM credentials
survive a restart."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conftest import free_port

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" '
    'user_admin="admin-secret" user_alice="alice-secret";'
)


def sasl_broker(broker_factory):
    sasl_port = free_port()
    b = broker_factory(
        {
            "listeners": f"PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        }
    )
    return b, f"127.0.0.1:{sasl_port}"


def sasl_conf(bootstrap: str, mechanism: str, user: str, password: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }


def round_trip(conf: dict, topic: str) -> None:
    """Produces one message and consumes it back over the authenticated listener."""
    producer = Producer({**conf, "message.timeout.ms": 15000})
    producer.produce(topic, b"secret payload")
    assert producer.flush(20) == 0
    consumer = Consumer(
        {**conf, "group.id": f"{topic}-g", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    try:
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                assert message.value() == b"secret payload"
                return
        pytest.fail("the message did not come back")
    finally:
        consumer.close()


def refused(conf: dict) -> bool:
    """Whether metadata cannot be fetched with these credentials."""
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=5)
    except KafkaException:
        return True
    return False


def create_scram_users(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(
                "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-pw"
            ),
            UserScramCredentialUpsertion(
                "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), b"dave-pw"
            ),
        ]
    )
    for future in futures.values():
        future.result(timeout=15)
    described = {
        user: future.result(timeout=15)
        for user, future in admin.describe_user_scram_credentials(["carol", "dave"]).items()
    }
    assert described["carol"].scram_credential_infos[0].iterations == 4096
    assert described["dave"].scram_credential_infos[0].mechanism == ScramMechanism.SCRAM_SHA_512


def test_confluent_kafka_plain(broker_factory, unique):
    b, sasl = sasl_broker(broker_factory)
    round_trip(sasl_conf(sasl, "PLAIN", "alice", "alice-secret"), unique)
    assert refused(sasl_conf(sasl, "PLAIN", "alice", "wrong"))
    assert refused(sasl_conf(sasl, "PLAIN", "mallory", "alice-secret"))
    assert "alice-secret" not in b.log_text()


def test_confluent_kafka_scram_and_restart(broker_factory, unique):
    b, sasl = sasl_broker(broker_factory)
    create_scram_users(b.bootstrap)
    round_trip(sasl_conf(sasl, "SCRAM-SHA-256", "carol", "carol-pw"), unique + "-256")
    round_trip(sasl_conf(sasl, "SCRAM-SHA-512", "dave", "dave-pw"), unique + "-512")
    assert refused(sasl_conf(sasl, "SCRAM-SHA-256", "carol", "wrong"))
    assert refused(sasl_conf(sasl, "SCRAM-SHA-512", "carol", "carol-pw"))
    b.restart("sigkill")
    round_trip(sasl_conf(sasl, "SCRAM-SHA-256", "carol", "carol-pw"), unique + "-after")
    assert "carol-pw" not in b.log_text()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python(broker_factory, unique, mechanism):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

    b, sasl = sasl_broker(broker_factory)
    if mechanism == "PLAIN":
        user, password = "alice", "alice-secret"
    else:
        create_scram_users(b.bootstrap)
        user, password = ("carol", "carol-pw") if mechanism.endswith("256") else ("dave", "dave-pw")
    conf = dict(
        bootstrap_servers=sasl,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
    )
    producer = KafkaProducer(**conf)
    producer.send(unique, b"from kafka-python").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(
        unique, auto_offset_reset="earliest", consumer_timeout_ms=10000, **conf
    )
    values = []
    for message in consumer:
        values.append(message.value)
        break
    consumer.close()
    assert values == [b"from kafka-python"]
    with pytest.raises(KafkaError):
        bad = dict(conf, sasl_plain_password="wrong")
        KafkaProducer(**bad, max_block_ms=5000).send(unique, b"x").get(timeout=10)
