"""read_committed with real consumers, on a partition written by hand in Kafka's format:
transactional batches, a COMMIT and an ABORT marker (control batches), and a transaction left
open. confluent-kafka and kafka-python must skip the aborted records and the markers using the
broker's aborted_transactions list, and stop at the last stable offset; read_uncommitted sees
every data record."""

import struct

import pytest

from kafka.record.util import calc_crc32c
from kclients import Confluent, KafkaPython

TOPIC = "txn-handmade"
TIMESTAMP = 1726045973899


def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varbytes(b: bytes | None) -> bytes:
    return varint(-1) if b is None else varint(len(b)) + b


def batch(base_offset: int, records: list[tuple[bytes | None, bytes]], *, attributes: int,
          producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
    """A v2 record batch, as Kafka's DefaultRecordBatch lays it out."""
    body = b""
    for delta, (key, value) in enumerate(records):
        r = b"\x00" + varint(0) + varint(delta) + varbytes(key) + varbytes(value) + varint(0)
        body += varint(len(r)) + r
    after_crc = struct.pack(">hiqqqhii", attributes, len(records) - 1, TIMESTAMP, TIMESTAMP,
                            producer_id, producer_epoch, base_sequence, len(records)) + body
    crc = calc_crc32c(after_crc)
    rest = struct.pack(">ibI", 0, 2, crc) + after_crc  # partition leader epoch, magic, crc
    return struct.pack(">qi", base_offset, len(rest)) + rest


def txn(base_offset, producer_id, epoch, sequence, values):
    return batch(base_offset, [(None, v) for v in values], attributes=0x10,
                 producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def plain(base_offset, value):
    return batch(base_offset, [(None, value)], attributes=0, producer_id=-1, producer_epoch=-1,
                 base_sequence=-1)


def marker(base_offset, producer_id, epoch, commit):
    key = struct.pack(">hh", 0, 1 if commit else 0)
    value = struct.pack(">hi", 0, 5)  # version 0, coordinator epoch 5
    return batch(base_offset, [(key, value)], attributes=0x30, producer_id=producer_id,
                 producer_epoch=epoch, base_sequence=-1)


# A (1000) commits at 4, B (2000) aborts at 6, C (3000) stays open from 7; plain records at 3, 8.
LOG = [
    txn(0, 1000, 0, 0, [b"a1", b"a2"]),
    txn(2, 2000, 1, 0, [b"b1"]),
    plain(3, b"p1"),
    marker(4, 1000, 0, True),
    txn(5, 2000, 1, 1, [b"b2"]),
    marker(6, 2000, 1, False),
    txn(7, 3000, 0, 0, [b"c1"]),
    plain(8, b"p2"),
]


@pytest.fixture
def handmade(broker):
    """The broker, with the topic's only partition replaced by the hand-written log."""
    Confluent.create_topics(broker.bootstrap, {TOPIC: 1})
    broker.stop("sigterm")
    part = broker.log_dir / f"{TOPIC}-0"
    for f in part.iterdir():
        if f.suffix in (".log", ".index", ".timeindex", ".snapshot", ".txnindex"):
            f.unlink()
    (part / "00000000000000000000.log").write_bytes(b"".join(LOG))
    broker.start()
    return broker


def isolation(client, level: str) -> dict[str, str]:
    return {"isolation_level": level} if client is KafkaPython else {"isolation.level": level}


@pytest.mark.parametrize("client", [Confluent, KafkaPython], ids=["confluent-kafka", "kafka-python"])
def test_read_committed_skips_aborted_records_and_stops_at_the_lso(handmade, client):
    bs = handmade.bootstrap
    got = client.consume(bs, {TOPIC: 1}, expected=3, **isolation(client, "read_committed"))
    assert [(g.offset, g.value) for g in got] == [(0, b"a1"), (1, b"a2"), (3, b"p1")]
    every = client.consume(bs, {TOPIC: 1}, expected=7, **isolation(client, "read_uncommitted"))
    assert [(g.offset, g.value) for g in every] == [
        (0, b"a1"), (1, b"a2"), (2, b"b1"), (3, b"p1"), (5, b"b2"), (7, b"c1"), (8, b"p2")]
    # The index the broker rebuilt for the ABORT: Kafka's 34 bytes, B from 2 to 6, LSO 7.
    index = (handmade.log_dir / f"{TOPIC}-0" / "00000000000000000000.txnindex").read_bytes()
    assert index == struct.pack(">hqqqq", 0, 2000, 2, 6, 7)
