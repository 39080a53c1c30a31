"""The log cleaner on a compacted, transactional partition written by hand in Kafka's format,
read back by real consumers: after cleaning (and after kill -9), read_committed still skips what
was aborted and stops at the last stable offset, read_uncommitted sees every record the cleaner
kept, and an open transaction's records are untouched."""

import struct
import time

import pytest

from kclients import Confluent, KafkaPython
from test_txn_log import batch, marker

TOPIC = "txn-compacted"


def keyed_txn(base_offset, producer_id, sequence, key, value):
    return batch(base_offset, [(key, value)], attributes=0x10, producer_id=producer_id,
                 producer_epoch=0, base_sequence=sequence)


def keyed_plain(base_offset, key, value):
    return batch(base_offset, [(key, value)], attributes=0, producer_id=-1, producer_epoch=-1,
                 base_sequence=-1)


def txn_marker(base_offset, producer_id, commit):
    return marker(base_offset, producer_id, 0, commit)


# Segment 0: A (1000) commits k1 at 0 (marker 3), B (2000) aborts k1 at 1 (marker 4), k2 at 2 is
# replaced at 5, B commits k3 at 6 (marker 7). Segment 8 (active): C (3000) opens a transaction
# with k1 at 8; k4 at 9. The LSO is 8.
SEGMENT_0 = [
    keyed_txn(0, 1000, 0, b"k1", b"a1"),
    keyed_txn(1, 2000, 0, b"k1", b"b1"),
    keyed_plain(2, b"k2", b"p1"),
    txn_marker(3, 1000, True),
    txn_marker(4, 2000, False),
    keyed_plain(5, b"k2", b"p2"),
    keyed_txn(6, 2000, 1, b"k3", b"b2"),
    txn_marker(7, 2000, True),
]
SEGMENT_8 = [keyed_txn(8, 3000, 0, b"k1", b"c1"), keyed_plain(9, b"k4", b"p3")]

CLEANER = {
    "log.cleanup.policy": "compact",
    "log.cleaner.backoff.ms": "20",
    "log.cleaner.min.cleanable.ratio": "0.01",
}


def first_dirty_offset(broker) -> int:
    path = broker.log_dir / "cleaner-offset-checkpoint"
    if not path.exists():
        return 0
    for line in path.read_text().splitlines()[2:]:
        topic, partition, offset = line.split()
        if topic == TOPIC and partition == "0":
            return int(offset)
    return 0


@pytest.fixture
def cleaned(broker_factory):
    """A broker whose partition holds the hand-written log, once the cleaner has cleaned it."""
    broker = broker_factory(CLEANER)
    Confluent.create_topics(broker.bootstrap, {TOPIC: 1})
    broker.stop("sigterm")
    part = broker.log_dir / f"{TOPIC}-0"
    for f in part.iterdir():
        if f.suffix in (".log", ".index", ".timeindex", ".snapshot", ".txnindex"):
            f.unlink()
    (part / "00000000000000000000.log").write_bytes(b"".join(SEGMENT_0))
    (part / "00000000000000000008.log").write_bytes(b"".join(SEGMENT_8))
    broker.start()
    deadline = time.monotonic() + 30
    while first_dirty_offset(broker) < 8:
        assert time.monotonic() < deadline, broker.tail()
        time.sleep(0.05)
    return broker


def isolation(client, level: str) -> dict[str, str]:
    return {"isolation_level": level} if client is KafkaPython else {"isolation.level": level}


def check_reads(broker, client):
    bs = broker.bootstrap
    got = client.consume(bs, {TOPIC: 1}, expected=3, **isolation(client, "read_committed"))
    assert [(g.offset, g.key, g.value) for g in got] == [
        (0, b"k1", b"a1"), (5, b"k2", b"p2"), (6, b"k3", b"b2")]
    every = client.consume(bs, {TOPIC: 1}, expected=5, **isolation(client, "read_uncommitted"))
    assert [(g.offset, g.value) for g in every] == [
        (0, b"a1"), (5, b"p2"), (6, b"b2"), (8, b"c1"), (9, b"p3")]


@pytest.mark.parametrize("client", [Confluent, KafkaPython], ids=["confluent-kafka", "kafka-python"])
def test_cleaned_transactional_log_reads_right_before_and_after_kill_9(cleaned, client):
    # The aborted k1 and the replaced k2 are gone from the file; the markers stay (data of their
    # transactions was there before the cleaning); segment 8, past the LSO, is as written.
    part = cleaned.log_dir / f"{TOPIC}-0"
    segment_0 = (part / "00000000000000000000.log").read_bytes()
    assert segment_0 == b"".join(SEGMENT_0[i] for i in (0, 3, 4, 5, 6, 7))
    assert (part / "00000000000000000008.log").read_bytes() == b"".join(SEGMENT_8)
    index = (part / "00000000000000000000.txnindex").read_bytes()
    assert index == struct.pack(">hqqqq", 0, 2000, 1, 4, 5)
    check_reads(cleaned, client)
    cleaned.restart("sigkill")
    check_reads(cleaned, client)
