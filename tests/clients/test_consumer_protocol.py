"""KIP-848 consumer groups with real clients: confluent-kafka consumers with
`group.protocol=consumer` share the partitions of a topic (server-side assignment, each partition
to one member), rebalance when one leaves, and a new member resumes from the committed offsets; a
regex subscription (`^orders\\..*`) reads the matching topics and one created later."""

from __future__ import annotations

import time

from kclients import OP_TIMEOUT, Confluent, Msg

PROPS = {
    "group.consumer.heartbeat.interval.ms": "500",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.session.timeout.ms": "6000",
}


def _consumer(bs: str, group: str):
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": bs, "group.id": group, "group.protocol": "consumer",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})


def _poll_until(consumers, done, what: str, timeout: float = 30.0):
    """Polls every consumer until `done()`; returns the messages each got."""
    got = {id(c): [] for c in consumers}
    deadline = time.monotonic() + timeout
    while not done(got):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s: {[len(v) for v in got.values()]} messages, "
                                 f"assignments {[sorted(p.partition for p in c.assignment()) for c in consumers]}")
        for c in consumers:
            m = c.poll(0.1)
            if m is not None and m.error() is None:
                got[id(c)].append(m)
    return got


def test_consumer_protocol_members_share_partitions_and_rebalance(broker_factory, unique):
    broker = broker_factory(PROPS)
    bs = broker.bootstrap
    topic, group = f"{unique}-t", f"{unique}-g"
    Confluent.create_topics(bs, {topic: 4})
    Confluent.produce(bs, [Msg(topic, b"k", f"a{i}".encode(), (), partition=i % 4) for i in range(40)])

    c1, c2 = _consumer(bs, group), _consumer(bs, group)
    try:
        c1.subscribe([topic])
        c2.subscribe([topic])

        def split(_got):
            a1 = {p.partition for p in c1.assignment()}
            a2 = {p.partition for p in c2.assignment()}
            return len(a1) == 2 and len(a2) == 2 and not (a1 & a2)

        _poll_until([c1, c2], split, "two members did not split the 4 partitions 2/2")

        def at_end(_got):
            # Each member has read its partitions to their end (10 records each).
            positions = [tp for c in (c1, c2) for tp in c.position(c.assignment())]
            return len(positions) == 4 and all(tp.offset == 10 for tp in positions)

        _poll_until([c1, c2], at_end, "the two members did not read their partitions to the end")
        for c in (c1, c2):
            c.commit(asynchronous=False)
        owners = {}
        for c in (c1, c2):
            for tp in c.assignment():
                assert tp.partition not in owners, f"partition {tp.partition} owned twice"
                owners[tp.partition] = c
        assert sorted(owners) == [0, 1, 2, 3]
    finally:
        c2.close()

    # c2 left: c1 gets all four partitions.
    _poll_until([c1], lambda _g: len(c1.assignment()) == 4, "the remaining member did not get all partitions")
    c1.close()

    # A new member resumes from the committed offsets: only new records are read.
    Confluent.produce(bs, [Msg(topic, b"k", f"b{i}".encode(), (), partition=i % 4) for i in range(8)])
    c3 = _consumer(bs, group)
    try:
        c3.subscribe([topic])
        got = _poll_until([c3], lambda g: len(g[id(c3)]) >= 8, "the new member did not read the new records")
        values = sorted(m.value().decode() for m in got[id(c3)])
        assert values == sorted(f"b{i}" for i in range(8)), values
    finally:
        c3.close()

    # The group is described over ConsumerGroupDescribe.
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bs})
    (future,) = admin.describe_consumer_groups([group], request_timeout=OP_TIMEOUT).values()
    description = future.result(timeout=OP_TIMEOUT)
    assert description.group_id == group


def test_consumer_protocol_regex_subscription_follows_new_topics(broker_factory, unique):
    """librdkafka sends a subscription starting with `^` as SubscribedTopicRegex (KIP-848): the
    broker resolves it to the matching topics, and to a matching topic created later."""
    broker = broker_factory(PROPS)
    bs = broker.bootstrap
    group = f"{unique}-g"
    Confluent.create_topics(bs, {"orders.eu": 2, "orders.us": 1, "payments": 1})
    Confluent.produce(bs, [Msg("orders.eu", b"k", f"eu{i}".encode(), (), partition=i % 2) for i in range(4)]
                      + [Msg("orders.us", b"k", b"us0", ()), Msg("payments", b"k", b"pay0", ())])
    c = _consumer(bs, group)
    try:
        c.subscribe([r"^orders\..*"])
        got = _poll_until([c], lambda g: len(g[id(c)]) >= 5, "the regex member did not read both topics")
        assert sorted(m.value().decode() for m in got[id(c)]) == ["eu0", "eu1", "eu2", "eu3", "us0"]
        assert {(tp.topic, tp.partition) for tp in c.assignment()} == {
            ("orders.eu", 0), ("orders.eu", 1), ("orders.us", 0)}

        # A matching topic created later joins the assignment; a topic that does not match never does.
        Confluent.create_topics(bs, {"orders.asia": 1, "ordersXasia": 1})
        Confluent.produce(bs, [Msg("orders.asia", b"k", b"asia0", ()), Msg("ordersXasia", b"k", b"x0", ())])
        got = _poll_until([c], lambda g: any(m.topic() == "orders.asia" for m in g[id(c)]),
                          "the topic created later was not assigned", timeout=45.0)
        assert [m.value() for m in got[id(c)] if m.topic() == "orders.asia"] == [b"asia0"]
        topics = {tp.topic for tp in c.assignment()}
        assert topics == {"orders.eu", "orders.us", "orders.asia"}, topics
    finally:
        c.close()

    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bs})
    (future,) = admin.describe_consumer_groups([group], request_timeout=OP_TIMEOUT).values()
    assert future.result(timeout=OP_TIMEOUT).group_id == group
