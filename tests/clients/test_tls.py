"""TLS with real clients: confluent-kafka (librdkafka) produces and consumes over SSL (with
messages large enough to leave the zero-copy path), over SASL_SSL with SCRAM-SHA-512 (a user made
through AdminClient) and PLAIN, and with mutual TLS (ssl.client.auth=required: a client without a
certificate, or with one of another CA, is refused; the certificate's subject is the principal);
a client that trusts another CA refuses the broker; kafka-python over SSL and mTLS; kafkajs over
SSL, SASL_SSL, and SASL_PLAINTEXT with PLAIN and SCRAM; kcat over SASL_PLAINTEXT (PLAIN, SCRAM)
and SSL. Certificates are made per session by scripts/gen-test-certs."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from conftest import REPO, free_port
from kclients import _b64, _unb64, kafkajs, kcat

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" '
    'user_admin="admin-secret" user_alice="alice-secret";'
)


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    subprocess.run([str(REPO / "scripts" / "gen-test-certs"), str(d)], check=True)
    return d


def tls_broker(broker_factory, certs: Path, extra: dict[str, str] | None = None):
    """A broker with the suite's PLAINTEXT listener, an SSL one and a SASL_SSL one; returns it
    with the SSL and SASL_SSL addresses."""
    ssl_port, sasl_ssl_port = free_port(), free_port()
    b = broker_factory(
        {
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{{port}},SSL://127.0.0.1:{ssl_port},"
                f"SASL_SSL://127.0.0.1:{sasl_ssl_port}"
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(certs / "broker-encrypted.pem"),
            "ssl.key.password": "key-secret",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(certs / "ca.pem"),
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
            **(extra or {}),
        }
    )
    return b, f"127.0.0.1:{ssl_port}", f"127.0.0.1:{sasl_ssl_port}"


def ssl_conf(bootstrap: str, certs: Path, identity: str | None = None, ca: str = "ca.pem") -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": str(certs / ca),
    }
    if identity:
        conf["ssl.certificate.location"] = str(certs / f"{identity}-cert.pem")
        conf["ssl.key.location"] = str(certs / f"{identity}-key.pem")
    return conf


def round_trip(conf: dict, topic: str, values: list[bytes]) -> None:
    """Produces `values` and consumes them back, in order, over the secured listener."""
    producer = Producer({**conf, "message.timeout.ms": 20000, "message.max.bytes": 2 << 20})
    for v in values:
        producer.produce(topic, v)
    assert producer.flush(30) == 0
    consumer = Consumer({**conf, "group.id": f"{topic}-g", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(80):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message.value())
                if len(got) == len(values):
                    break
    finally:
        consumer.close()
    assert got == values


def refused(conf: dict) -> bool:
    """Whether metadata cannot be fetched with this configuration."""
    admin = AdminClient(conf)
    try:
        admin.list_topics(timeout=5)
    except KafkaException:
        return True
    return False


def create_scram_user(bootstrap: str, user: str, password: bytes) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(
                user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password
            )
        ]
    )
    for future in futures.values():
        future.result(timeout=15)


def test_confluent_kafka_ssl_round_trip_and_secrets_hidden(broker_factory, certs, unique):
    b, ssl, _ = tls_broker(broker_factory, certs)
    # 200 KiB values are sent from the segment file by sendfile on plaintext; over TLS they
    # take the copy path.
    values = [b"small"] + [bytes([i]) * (200 << 10) for i in range(3)]
    round_trip(ssl_conf(ssl, certs), unique, values)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    resource = ConfigResource(ResourceType.BROKER, "1")
    described = admin.describe_configs([resource])[resource].result(timeout=15)
    password = described["ssl.key.password"]
    assert password.is_sensitive and password.value is None
    assert described["ssl.keystore.location"].value == str(certs / "broker-encrypted.pem")
    assert "key-secret" not in b.log_text()


def test_confluent_kafka_mtls_required(broker_factory, certs, unique):
    b, ssl, _ = tls_broker(broker_factory, certs, {"listener.name.ssl.ssl.client.auth": "required"})
    round_trip(ssl_conf(ssl, certs, identity="client"), unique, [b"mutual"])
    assert "authenticated as User:CN=client,OU=eng,O=acme by its certificate" in b.log_text()
    assert refused(ssl_conf(ssl, certs))
    assert refused(ssl_conf(ssl, certs, identity="stranger"))


def test_a_client_trusting_another_ca_is_refused(broker_factory, certs):
    _, ssl, _ = tls_broker(broker_factory, certs)
    assert refused(ssl_conf(ssl, certs, ca="other-ca.pem"))
    assert not refused(ssl_conf(ssl, certs))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_confluent_kafka_sasl_ssl(broker_factory, certs, unique, mechanism):
    b, _, sasl_ssl = tls_broker(broker_factory, certs)
    if mechanism == "PLAIN":
        user, password = "alice", "alice-secret"
    else:
        user, password = "erin", "erin-pw"
        create_scram_user(b.bootstrap, user, password.encode())
    conf = {
        "bootstrap.servers": sasl_ssl,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(certs / "ca.pem"),
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    round_trip(conf, unique, [b"sasl over tls", bytes(100 << 10)])
    assert f"authenticated as User:{user} with {mechanism}" in b.log_text()
    assert refused({**conf, "sasl.password": "wrong"})
    assert password not in b.log_text()


def test_kafka_python_ssl_and_mtls(broker_factory, certs, unique):
    from kafka import KafkaConsumer, KafkaProducer

    _, ssl, _ = tls_broker(broker_factory, certs, {"ssl.client.auth": "requested"})
    conf = dict(
        bootstrap_servers=ssl,
        security_protocol="SSL",
        ssl_cafile=str(certs / "ca.pem"),
        ssl_certfile=str(certs / "client-cert.pem"),
        ssl_keyfile=str(certs / "client-key.pem"),
    )
    for i, extra in enumerate([{}, {"ssl_certfile": None, "ssl_keyfile": None}]):
        c = {**conf, **extra}
        topic = f"{unique}-{i}"
        producer = KafkaProducer(**c)
        producer.send(topic, b"from kafka-python").get(timeout=20)
        producer.close()
        consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000, **c)
        values = [m.value for m in consumer][:1]
        consumer.close()
        assert values == [b"from kafka-python"]


def kafkajs_round_trip(bootstrap: str, topic: str, security: dict) -> None:
    values = [b"from kafkajs", b"x" * (64 << 10)]
    kafkajs(
        "produce",
        {
            "brokers": [bootstrap],
            **security,
            "messages": [
                {"topic": topic, "key": None, "value": _b64(v), "headers": [], "partition": 0}
                for v in values
            ],
        },
    )
    got = kafkajs(
        "consume",
        {
            "brokers": [bootstrap],
            **security,
            "groupId": f"kafkajs-{uuid.uuid4()}",
            "topics": [topic],
            "limit": len(values),
            "commit": False,
        },
    )
    assert [_unb64(m["value"]) for m in got["messages"]] == values


def sasl_plaintext_broker(broker_factory):
    port = free_port()
    b = broker_factory(
        {
            "listeners": f"PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://127.0.0.1:{port}",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        }
    )
    return b, f"127.0.0.1:{port}"


def test_kafkajs_ssl_and_sasl(broker_factory, certs, unique):
    b, ssl, sasl_ssl = tls_broker(broker_factory, certs)
    ca = {"ca": str(certs / "ca.pem")}
    kafkajs_round_trip(ssl, f"{unique}-ssl", {"ssl": ca})
    plain = {"mechanism": "plain", "username": "alice", "password": "alice-secret"}
    kafkajs_round_trip(sasl_ssl, f"{unique}-sasl-ssl", {"ssl": ca, "sasl": plain})

    b2, sasl = sasl_plaintext_broker(broker_factory)
    kafkajs_round_trip(sasl, f"{unique}-plain", {"sasl": plain})
    create_scram_user(b2.bootstrap, "frank", b"frank-pw")
    scram = {"mechanism": "scram-sha-512", "username": "frank", "password": "frank-pw"}
    kafkajs_round_trip(sasl, f"{unique}-scram", {"sasl": scram})


def kcat_round_trip(bootstrap: str, topic: str, security: list[str]) -> None:
    produced = kcat([*security, "-P", "-t", topic], bootstrap, stdin=b"one\ntwo\n")
    assert produced.returncode == 0, produced.stderr
    consumed = kcat([*security, "-C", "-t", topic, "-o", "beginning", "-c", "2", "-e"], bootstrap)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.split() == [b"one", b"two"]


def test_kcat_sasl_plaintext_and_ssl(broker_factory, certs, unique):
    b, sasl = sasl_plaintext_broker(broker_factory)
    create_scram_user(b.bootstrap, "grace", b"grace-pw")
    for mechanism, user, password in [
        ("PLAIN", "alice", "alice-secret"),
        ("SCRAM-SHA-512", "grace", "grace-pw"),
    ]:
        security = [
            "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", f"sasl.mechanism={mechanism}",
            "-X", f"sasl.username={user}",
            "-X", f"sasl.password={password}",
        ]
        kcat_round_trip(sasl, f"{unique}-{mechanism.lower()}", security)
    _, ssl, _ = tls_broker(broker_factory, certs, {"ssl.client.auth": "required"})
    security = [
        "-X", "security.protocol=SSL",
        "-X", f"ssl.ca.location={certs / 'ca.pem'}",
        "-X", f"ssl.certificate.location={certs / 'client-cert.pem'}",
        "-X", f"ssl.key.location={certs / 'client-key.pem'}",
    ]
    kcat_round_trip(ssl, f"{unique}-ssl", security)
