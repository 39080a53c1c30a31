"""A consumer group commits, closes, and a new member of the same group resumes exactly where
the commit left off, with and without a broker restart (SIGTERM, or kill -9) in between."""

import pytest

from kclients import CLIENTS, Confluent, make_messages, verify

PARTITIONS = 3
COUNT = 300  # 100 per partition
FIRST = 130  # consumed and committed by the first member


@pytest.mark.parametrize("restart", ["no-restart", "sigterm", "sigkill"])
@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "aiokafka", "kafkajs"])
def test_commit_close_resume(broker, unique, client, restart):
    c = CLIENTS[client]
    topic, group = f"{unique}-t", f"{unique}-g"
    Confluent.create_topics(broker.bootstrap, {topic: PARTITIONS})
    msgs = make_messages([topic], COUNT, unique, partitions={topic: PARTITIONS})
    Confluent.produce(broker.bootstrap, msgs)

    first = c.group_consume(broker.bootstrap, group, topic, PARTITIONS, limit=FIRST)
    assert len(first.got) == FIRST
    consumed_next = {}
    for g in first.got:
        consumed_next[g.partition] = g.offset + 1
    assert first.committed == consumed_next, (
        f"{client}: committed offsets read back from the broker {first.committed} "
        f"differ from what was committed {consumed_next}")

    if restart != "no-restart":
        broker.restart(restart)

    second = c.group_consume(broker.bootstrap, group, topic, PARTITIONS, limit=COUNT - FIRST)
    starts = {}
    for g in second.got:
        starts.setdefault(g.partition, g.offset)
    for p in range(PARTITIONS):
        want = consumed_next.get(p, 0)
        if want < COUNT // PARTITIONS:
            assert starts.get(p) == want, (
                f"{client}: after {restart}, partition {p} resumed at offset {starts.get(p)}, "
                f"but the group had committed {want} (resume points {starts}, commits {consumed_next})")
    verify(msgs, first.got + second.got, f"{client}: first member + resumed member")
    assert second.committed == {p: COUNT // PARTITIONS for p in range(PARTITIONS)}, (
        f"{client}: final committed offsets {second.committed}")
