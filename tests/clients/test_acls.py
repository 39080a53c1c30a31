"""ACLs with real clients: confluent-kafka's AdminClient creates, describes and deletes ACLs as a
super user over SASL PLAIN (users from JAAS), and a plain user is held to them: without an ACL
nothing is allowed, a prefixed allow works, a literal deny beats it, a non-admin's admin calls
(create topic, alter configs, create ACLs) are refused, and the ACLs are kept after a restart.
kafka-python's ACL admin calls work too."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from conftest import free_port

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" '
    'user_admin="admin-secret" user_alice="alice-secret";'
)


def secured_broker(broker_factory):
    sasl_port = free_port()
    b = broker_factory(
        {
            "listeners": f"PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:admin",
        }
    )
    return b, f"127.0.0.1:{sasl_port}"


def conf(bootstrap: str, user: str) -> dict:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }


def error_code(future) -> int:
    """The Kafka error code a future failed with (0 if it succeeded)."""
    try:
        future.result(timeout=15)
    except KafkaException as e:
        return e.args[0].code()
    return 0


def produce_error(c: dict, topic: str):
    """Produces one message; returns the delivery error's code, or None when stored."""
    errors = []
    producer = Producer({**c, "message.timeout.ms": 8000, "enable.idempotence": False})
    producer.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(15)
    assert errors, "no delivery report"
    return None if errors[0] is None else errors[0].code()


def all_acls(admin: AdminClient) -> set[tuple]:
    any_filter = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    bindings = admin.describe_acls(any_filter, request_timeout=15).result(timeout=15)
    return {
        (b.restype, b.name, b.resource_pattern_type, b.principal, b.operation, b.permission_type)
        for b in bindings
    }


def test_confluent_acls_are_enforced_and_survive_a_restart(broker_factory, unique):
    b, bootstrap = secured_broker(broker_factory)
    admin = AdminClient(conf(bootstrap, "admin"))
    pay, payroll, other = f"pay-{unique}", f"payroll-{unique}", f"other-{unique}"
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in (pay, payroll, other)]).values():
        f.result(timeout=15)
    alice_conf = conf(bootstrap, "alice")
    alice = AdminClient(alice_conf)

    # No ACL: denied.
    assert produce_error(alice_conf, pay) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert set(alice.list_topics(timeout=10).topics) == set()
    # A non-admin's admin calls are refused.
    created = alice.create_topics([NewTopic(f"mine-{unique}", 1, 1)])
    assert error_code(created[f"mine-{unique}"]) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    retention = ConfigEntry(
        "retention.ms", "1000", incremental_operation=AlterConfigOpType.SET
    )
    altered = alice.incremental_alter_configs(
        [ConfigResource("TOPIC", pay, incremental_configs=[retention])]
    )
    assert [error_code(f) for f in altered.values()] == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    mine = AclBinding(
        ResourceType.TOPIC,
        "*",
        ResourcePatternType.LITERAL,
        "User:alice",
        "*",
        AclOperation.ALL,
        AclPermissionType.ALLOW,
    )
    refused = alice.create_acls([mine], request_timeout=15)
    assert error_code(refused[mine]) == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # A prefixed allow, and a literal deny that wins over it.
    allow = AclBinding(
        ResourceType.TOPIC,
        "pay",
        ResourcePatternType.PREFIXED,
        "User:alice",
        "*",
        AclOperation.ALL,
        AclPermissionType.ALLOW,
    )
    deny = AclBinding(
        ResourceType.TOPIC,
        payroll,
        ResourcePatternType.LITERAL,
        "User:alice",
        "*",
        AclOperation.WRITE,
        AclPermissionType.DENY,
    )
    for f in admin.create_acls([allow, deny], request_timeout=15).values():
        assert f.result(timeout=15) is None
    assert produce_error(alice_conf, pay) is None
    assert produce_error(alice_conf, payroll) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert set(alice.list_topics(timeout=10).topics) == {pay, payroll}
    # The super user may do everything.
    assert produce_error(conf(bootstrap, "admin"), other) is None
    expected = {
        (ResourceType.TOPIC, "pay", ResourcePatternType.PREFIXED, "User:alice",
         AclOperation.ALL, AclPermissionType.ALLOW),
        (ResourceType.TOPIC, payroll, ResourcePatternType.LITERAL, "User:alice",
         AclOperation.WRITE, AclPermissionType.DENY),
    }
    assert all_acls(admin) == expected

    b.restart()
    admin = AdminClient(conf(bootstrap, "admin"))
    assert all_acls(admin) == expected
    assert produce_error(alice_conf, payroll) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    deny_filter = AclBindingFilter(
        ResourceType.TOPIC,
        payroll,
        ResourcePatternType.LITERAL,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deleted = admin.delete_acls([deny_filter], request_timeout=15)[deny_filter].result(timeout=15)
    assert [d.name for d in deleted] == [payroll]
    assert produce_error(alice_conf, payroll) is None


def test_kafka_python_acl_admin_calls(broker_factory, unique):
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType as KResourceType,
    )

    _, bootstrap = secured_broker(broker_factory)
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="admin",
        sasl_plain_password="admin-secret",
    )
    try:
        acl = ACL(
            principal="User:alice",
            host="*",
            operation=ACLOperation.READ,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                KResourceType.GROUP, f"g-{unique}", ACLResourcePatternType.PREFIXED
            ),
        )
        result = admin.create_acls([acl])
        assert result["failed"] == [] and len(result["succeeded"]) == 1
        acl_filter = ACLFilter(
            principal=None,
            host=None,
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(
                KResourceType.GROUP, None, ACLResourcePatternType.ANY
            ),
        )
        acls, error = admin.describe_acls(acl_filter)
        assert error.errno == 0
        assert [(a.principal, a.resource_pattern.resource_name) for a in acls] == [
            ("User:alice", f"g-{unique}")
        ]
        deleted = admin.delete_acls([acl_filter])
        ((_, removed, error),) = deleted
        assert error.errno == 0
        assert [a.principal for a in removed] == ["User:alice"]
        acls, _ = admin.describe_acls(acl_filter)
        assert acls == []
    finally:
        admin.close()
