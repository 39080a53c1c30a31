"""Transactions with real clients (issue 10): confluent-kafka's and kafka-python's transactional
producers against sprat's transaction coordinator and the partitions' markers and LSO.

Each test reads back what it wrote with read_committed and read_uncommitted consumers and checks
offsets, so that the markers' places show: every transaction's control batch takes one offset on
each of its partitions.
"""
import os
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from kclients import Confluent

TIMEOUT = 30.0


def producer(bs: str, txn_id: str, **extra) -> Producer:
    config = {"bootstrap.servers": bs, "transactional.id": txn_id, "linger.ms": 5}
    config.update(extra)
    return Producer(config)


def read_all(bs: str, topic: str, isolation: str, partitions=(0,), expect: int | None = None,
             wait: float = 5.0) -> list[tuple[int, int, bytes]]:
    """Every record a consumer with `isolation` gets: (partition, offset, value)."""
    c = Consumer({
        "bootstrap.servers": bs,
        "group.id": f"reader-{uuid.uuid4().hex[:8]}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.assign([TopicPartition(topic, p, 0) for p in partitions])
    out = []
    deadline = time.time() + wait
    while time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            if expect is not None and len(out) >= expect:
                break
            continue
        if m.error():
            continue
        out.append((m.partition(), m.offset(), m.value()))
    c.close()
    return out


def end_offsets(bs: str, topic: str, isolation: str, partition: int = 0) -> int:
    c = Consumer({"bootstrap.servers": bs, "group.id": "wm", "isolation.level": isolation})
    _, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT, cached=False)
    c.close()
    return high


def test_commit_is_visible_to_read_committed(broker, unique):
    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    p = producer(bs, f"{unique}-tx")
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    for i in range(5):
        p.produce(unique, value=b"c%d" % i)
    p.commit_transaction(TIMEOUT)
    got = read_all(bs, unique, "read_committed", expect=5)
    assert [(o, v) for _, o, v in got] == [(i, b"c%d" % i) for i in range(5)]
    # The COMMIT marker took offset 5.
    assert end_offsets(bs, unique, "read_committed") == 6


def test_abort_is_hidden_from_read_committed_only(broker, unique):
    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    p = producer(bs, f"{unique}-tx")
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    for i in range(3):
        p.produce(unique, value=b"a%d" % i)
    p.flush(TIMEOUT)
    p.abort_transaction(TIMEOUT)
    p.begin_transaction()
    p.produce(unique, value=b"kept")
    p.commit_transaction(TIMEOUT)
    committed = read_all(bs, unique, "read_committed", expect=1)
    # Offsets 0-2 aborted, 3 the ABORT marker, 4 the committed record, 5 its COMMIT marker.
    assert [(o, v) for _, o, v in committed] == [(4, b"kept")]
    uncommitted = read_all(bs, unique, "read_uncommitted", expect=4)
    assert [(o, v) for _, o, v in uncommitted] == [(0, b"a0"), (1, b"a1"), (2, b"a2"), (4, b"kept")]


def test_open_transaction_holds_back_read_committed(broker, unique):
    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    p = producer(bs, f"{unique}-tx")
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    p.produce(unique, value=b"open")
    p.flush(TIMEOUT)
    plain = Producer({"bootstrap.servers": bs})
    plain.produce(unique, value=b"plain")
    plain.flush(TIMEOUT)
    assert read_all(bs, unique, "read_committed", wait=2.0) == []
    assert end_offsets(bs, unique, "read_committed") == 0
    assert len(read_all(bs, unique, "read_uncommitted", expect=2)) == 2
    p.commit_transaction(TIMEOUT)
    got = read_all(bs, unique, "read_committed", expect=2)
    assert [v for _, _, v in got] == [b"open", b"plain"]


def test_second_producer_fences_the_first(broker, unique):
    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    first = producer(bs, f"{unique}-tx")
    first.init_transactions(TIMEOUT)
    first.begin_transaction()
    first.produce(unique, value=b"zombie")
    first.flush(TIMEOUT)
    second = producer(bs, f"{unique}-tx")
    second.init_transactions(TIMEOUT)
    second.begin_transaction()
    second.produce(unique, value=b"live")
    second.commit_transaction(TIMEOUT)
    with pytest.raises(KafkaException) as e:
        first.produce(unique, value=b"late")
        first.commit_transaction(TIMEOUT)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower(), e.value
    got = read_all(bs, unique, "read_committed", expect=1)
    assert [v for _, _, v in got] == [b"live"]


@pytest.mark.parametrize("commit", [False, True])
def test_consume_transform_produce(broker, unique, commit):
    bs = broker.bootstrap
    src, dst, group = f"{unique}-in", f"{unique}-out", f"{unique}-g"
    Confluent.create_topics(bs, {src: 1, dst: 1})
    plain = Producer({"bootstrap.servers": bs})
    for i in range(4):
        plain.produce(src, value=b"in%d" % i)
    plain.flush(TIMEOUT)
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([src])
    msgs = []
    deadline = time.time() + TIMEOUT
    while len(msgs) < 4 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            msgs.append(m)
    assert len(msgs) == 4
    p = producer(bs, f"{unique}-tx")
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    for m in msgs:
        p.produce(dst, value=m.value().replace(b"in", b"out"))
    # Flushed, so that an abort has written records to hide (not only purged queued ones).
    p.flush(TIMEOUT)
    p.send_offsets_to_transaction([TopicPartition(src, 0, 4)], c.consumer_group_metadata(), TIMEOUT)
    if commit:
        p.commit_transaction(TIMEOUT)
    else:
        p.abort_transaction(TIMEOUT)
    c.close()
    check = Consumer({"bootstrap.servers": bs, "group.id": group})
    committed = check.committed([TopicPartition(src, 0)], timeout=TIMEOUT)
    check.close()
    out = read_all(bs, dst, "read_committed", expect=4 if commit else None, wait=5.0 if commit else 2.0)
    if commit:
        assert committed[0].offset == 4
        assert [v for _, _, v in out] == [b"out%d" % i for i in range(4)]
    else:
        assert committed[0].offset < 0, committed
        assert out == []


def test_abandoned_transaction_is_aborted_by_its_timeout(broker_factory, unique):
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    bs = b.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    p = producer(bs, f"{unique}-tx", **{"transaction.timeout.ms": 1000})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    p.produce(unique, value=b"abandoned")
    p.flush(TIMEOUT)
    # Nobody ends it: the coordinator aborts it, and read_committed readers move past it.
    deadline = time.time() + TIMEOUT
    while end_offsets(bs, unique, "read_committed") < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert end_offsets(bs, unique, "read_committed") == 2
    assert read_all(bs, unique, "read_committed", wait=1.0) == []
    assert [v for _, _, v in read_all(bs, unique, "read_uncommitted", expect=1)] == [b"abandoned"]


@pytest.mark.parametrize("point", ["txn-after-prepare", "txn-mid-markers"])
def test_kill_at_crash_points_then_commit_completes(broker, unique, monkeypatch, point):
    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 2})
    monkeypatch.setenv("SPRAT_TEST_CRASH_POINT", point)
    broker.restart()
    p = producer(bs, f"{unique}-tx", **{"message.timeout.ms": 5000})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    for i in range(4):
        p.produce(unique, partition=i % 2, value=b"v%d" % i)
    p.flush(TIMEOUT)
    with pytest.raises(KafkaException):
        p.commit_transaction(5.0)
    for _ in range(50):
        if not broker.running():
            break
        time.sleep(0.1)
    assert not broker.running(), "the crash point killed the broker"
    monkeypatch.delenv("SPRAT_TEST_CRASH_POINT")
    broker.proc = None
    broker.start()
    # The PrepareCommit is completed at start-up: both partitions' records become visible.
    got = read_all(bs, unique, "read_committed", partitions=(0, 1), expect=4, wait=10.0)
    assert sorted(v for _, _, v in got) == [b"v0", b"v1", b"v2", b"v3"]


def test_kafka_python_transactional_producer(broker, unique):
    from kafka import KafkaProducer

    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    p = KafkaProducer(bootstrap_servers=bs, transactional_id=f"{unique}-kp")
    try:
        p.init_transactions()
    except AttributeError:
        pytest.skip("this kafka-python has no transactional producer")
    p.begin_transaction()
    p.send(unique, b"kp-aborted")
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    p.send(unique, b"kp-committed")
    p.commit_transaction()
    p.close()
    got = read_all(bs, unique, "read_committed", expect=1)
    assert [(o, v) for _, o, v in got] == [(2, b"kp-committed")]


def test_kill_before_end_txn_aborts_on_timeout(broker_factory, unique):
    """kill -9 with a transaction open (records written, no EndTxn): after the restart the
    transaction is still open and holds back read_committed readers until its timeout aborts it;
    committed data written before it and a new transaction after it are intact."""
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    bs = b.bootstrap
    Confluent.create_topics(bs, {unique: 1})
    p = producer(bs, f"{unique}-tx", **{"transaction.timeout.ms": 3000})
    p.init_transactions(TIMEOUT)
    p.begin_transaction()
    p.produce(unique, value=b"committed")
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    p.produce(unique, value=b"open")
    p.flush(TIMEOUT)
    b.restart("sigkill")
    deadline = time.time() + TIMEOUT
    while end_offsets(bs, unique, "read_committed") < 4 and time.time() < deadline:
        time.sleep(0.2)
    # committed (0), COMMIT (1), open (2), ABORT (3).
    assert end_offsets(bs, unique, "read_committed") == 4
    got = read_all(bs, unique, "read_committed", expect=1)
    assert [(o, v) for _, o, v in got] == [(0, b"committed")]
    again = producer(bs, f"{unique}-tx")
    again.init_transactions(TIMEOUT)
    again.begin_transaction()
    again.produce(unique, value=b"after")
    again.commit_transaction(TIMEOUT)
    got = read_all(bs, unique, "read_committed", expect=2)
    assert [(o, v) for _, o, v in got] == [(0, b"committed"), (4, b"after")]


def test_aiokafka_transactional_producer_and_read_committed_consumer(broker, unique):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    bs = broker.bootstrap
    Confluent.create_topics(bs, {unique: 1})

    async def go():
        p = AIOKafkaProducer(bootstrap_servers=bs, transactional_id=f"{unique}-aio")
        await p.start()
        try:
            async with p.transaction():
                await p.send_and_wait(unique, b"aio-committed")
            await p.begin_transaction()
            await p.send_and_wait(unique, b"aio-aborted")
            await p.abort_transaction()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(unique, bootstrap_servers=bs, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            got = []
            deadline = time.time() + 5
            while time.time() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for msgs in batch.values():
                    got.extend((m.offset, m.value) for m in msgs)
            return got
        finally:
            await c.stop()

    got = asyncio.run(asyncio.wait_for(go(), 60))
    # The COMMIT marker is at 1, the aborted record at 2, its ABORT marker at 3.
    assert got == [(0, b"aio-committed")]
