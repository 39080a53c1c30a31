"""Drivers for the real Kafka clients the suite uses, behind one small interface, plus the message
generator and the checker that compares what was produced with what was read back.

Clients: confluent-kafka (librdkafka 2.16), kafka-python, aiokafka, kafkajs (a node script,
node/driver.js) and kcat (librdkafka 2.0.2, as a subprocess). Every call is bounded in time, and
every failure raises ClientError with the error text the client itself reported.

Each driver is built with client defaults: only bootstrap servers, group ids and what a scenario
needs are passed (as **config keyword arguments, in the client's own spelling).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import struct
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_DIR = HERE / "node"

# Generous bounds for a loaded 2-core machine; a healthy broker needs a fraction of them.
OP_TIMEOUT = 30.0  # one admin call, flush, or a produce of a few thousand messages
CONSUME_TIMEOUT = 45.0  # reading back everything that was produced
GROUP_FIRST_MESSAGE_TIMEOUT = 30.0  # joining a group and getting the first message


class ClientError(AssertionError):
    """A client reported an error (its own text is in the message) or did not finish in time."""


# ---------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True)
class Msg:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    partition: int | None = None  # None: the client's partitioner picks it


@dataclass(frozen=True)
class Got:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def make_messages(
    topics: list[str],
    count: int,
    tag: str,
    *,
    per_message_headers: bool = True,
    binary: bool = False,
    keys: int = 61,
    sizes: tuple[int, int] = (10, 400),
    partitions: dict[str, int] | None = None,
) -> list[Msg]:
    """`count` keyed messages spread over `topics`, deterministic for a tag.

    Values are unique (they carry the topic and a sequence number). Keys repeat (`keys` distinct
    ones per topic) so that key-to-partition stickiness and per-key order can be checked.
    `per_message_headers=False` gives every message of a topic the same headers (kcat's -H).
    `binary` puts arbitrary bytes into values and header values (not for kcat or kafkajs' JSON).
    `partitions`: {topic: n} to pick partitions explicitly (round-robin), else the partitioner.
    """
    rnd = random.Random(tag)
    out: list[Msg] = []
    for i in range(count):
        topic = topics[i % len(topics)]
        key = f"{tag}-k{rnd.randrange(keys)}".encode()
        size = rnd.randint(*sizes)
        if binary:
            filler = bytes(rnd.getrandbits(8) for _ in range(size))
        else:
            filler = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789 .,:;-_=+") for _ in range(size)).encode()
        value = f"{tag}|{topic}|{i:07d}|".encode() + filler
        if per_message_headers:
            headers = (
                ("seq", str(i).encode()),
                ("client", tag.encode()),
                ("bin", bytes([i % 256, 255 - i % 256]) if binary else b"h-%d" % (i % 7)),
            )
        else:
            headers = (("client", tag.encode()), ("topic", topic.encode()))
        part = None
        if partitions is not None:
            part = (i // len(topics)) % partitions[topic]
        out.append(Msg(topic, key, value, headers, part))
    return out


def _short(x) -> str:
    s = repr(x)
    return s if len(s) <= 200 else s[:200] + "..."


def verify(produced: list[Msg], got: list[Got], what: str = "", *, contiguous: bool = True,
           deliveries: list[tuple[str, int, int, bytes | None]] | None = None) -> None:
    """Checks that `got` is exactly `produced`: same content (key, value, headers), no loss, no
    duplicates, per-partition order = produce order, offsets increasing (and, if `contiguous`,
    without gaps), each key in one partition, and delivery reports matching what was read."""
    errors: list[str] = []
    index = {(m.topic, m.value): i for i, m in enumerate(produced)}
    seen: set = set()
    by_tp: dict[tuple[str, int], list[Got]] = defaultdict(list)
    key_parts: dict[tuple[str, bytes | None], set[int]] = defaultdict(set)
    for g in got:
        by_tp[(g.topic, g.partition)].append(g)
        k = (g.topic, g.value)
        if k not in index:
            errors.append(f"unexpected message {_short(g)}")
            continue
        if k in seen:
            errors.append(f"duplicate message {_short(g)}")
            continue
        seen.add(k)
        m = produced[index[k]]
        if m.key != g.key:
            errors.append(f"key differs: produced {m.key!r}, read {g.key!r} at {g.topic}-{g.partition}@{g.offset}")
        if tuple(m.headers) != tuple(g.headers):
            errors.append(f"headers differ: produced {m.headers!r}, read {g.headers!r} at {g.topic}-{g.partition}@{g.offset}")
        if m.partition is not None and m.partition != g.partition:
            errors.append(f"produced to partition {m.partition}, read from {g.partition}: {_short(g)}")
        if m.partition is None:
            key_parts[(g.topic, g.key)].add(g.partition)
    missing = [m for m in produced if (m.topic, m.value) not in seen]
    if missing:
        errors.append(f"{len(missing)} of {len(produced)} produced messages were not read back; first: {_short(missing[0])}")
    for (t, p), msgs in sorted(by_tp.items()):
        offsets = [g.offset for g in msgs]
        if any(b <= a for a, b in zip(offsets, offsets[1:])):
            errors.append(f"{t}-{p}: offsets not strictly increasing: {_short(offsets[:50])}")
        elif contiguous and offsets and offsets != list(range(offsets[0], offsets[0] + len(offsets))):
            errors.append(f"{t}-{p}: gaps in offsets {offsets[0]}..{offsets[-1]} for {len(offsets)} messages")
        seqs = [index[(t, g.value)] for g in msgs if (t, g.value) in index]
        if any(b <= a for a, b in zip(seqs, seqs[1:])):
            bad = next(i for i, (a, b) in enumerate(zip(seqs, seqs[1:])) if b <= a)
            errors.append(f"{t}-{p}: order differs from produce order at offset {msgs[bad + 1].offset}")
    for (t, k), parts in key_parts.items():
        if len(parts) > 1:
            errors.append(f"key {k!r} of {t} landed in several partitions {sorted(parts)}")
    if deliveries is not None:
        read_at = {(g.topic, g.value): (g.partition, g.offset) for g in got}
        wrong = [(d, read_at.get((d[0], d[3]))) for d in deliveries if read_at.get((d[0], d[3])) not in (None, (d[1], d[2]))]
        if wrong:
            errors.append(f"{len(wrong)} delivery reports disagree with where the message was read; first: "
                          f"reported {wrong[0][0][:3]}, read at {wrong[0][1]}")
    if errors:
        more = f"\n... and {len(errors) - 15} more" if len(errors) > 15 else ""
        raise AssertionError(f"{what}: {len(errors)} problem(s):\n" + "\n".join(errors[:15]) + more)


def by_partition(got: list[Got]) -> dict[tuple[str, int], list[int]]:
    out: dict[tuple[str, int], list[int]] = defaultdict(list)
    for g in got:
        out[(g.topic, g.partition)].append(g.offset)
    return out


def _tally(got: list[Got]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for g in got:
        counts[f"{g.topic}-{g.partition}"] += 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing"


def _group_by_topic(msgs: list[Msg]) -> dict[str, list[Msg]]:
    out: dict[str, list[Msg]] = defaultdict(list)
    for m in msgs:
        out[m.topic].append(m)
    return out


@dataclass(frozen=True)
class StoredBatch:
    """A record batch header as the broker stored it in a partition's log segment."""
    partition: int
    base_offset: int
    records: int
    codec: str
    control: bool
    producer_id: int
    producer_epoch: int
    base_sequence: int


CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def stored_batches(log_dir: Path, topic: str) -> list[StoredBatch]:
    """Reads the batch headers of `topic`'s log segments (Kafka's on-disk format: the
    partition directories <topic>-<n> hold <base offset>.log files of magic-2 record batches)."""
    out: list[StoredBatch] = []
    dirs = [d for d in log_dir.glob(f"{topic}-*") if d.is_dir() and d.name[len(topic) + 1:].isdigit()]
    if not dirs:
        raise AssertionError(f"no partition directories for {topic} under {log_dir}: {sorted(p.name for p in log_dir.iterdir())}")
    for d in dirs:
        partition = int(d.name[len(topic) + 1:])
        for seg in sorted(d.glob("*.log")):
            data = seg.read_bytes()
            pos = 0
            while pos + 61 <= len(data):
                base, length = struct.unpack_from(">qi", data, pos)
                if length <= 0:
                    break  # preallocated or truncated tail
                if data[pos + 16] == 2:
                    (attributes,) = struct.unpack_from(">h", data, pos + 21)
                    (last_delta,) = struct.unpack_from(">i", data, pos + 23)
                    pid, epoch, seq = struct.unpack_from(">qhi", data, pos + 43)
                    out.append(StoredBatch(partition, base, last_delta + 1, CODEC_NAMES.get(attributes & 7, f"unknown-{attributes & 7}"),
                                           bool(attributes & 0x20), pid, epoch, seq))
                pos += 12 + length
    return sorted(out, key=lambda b: (b.partition, b.base_offset))


@dataclass
class GroupResult:
    got: list[Got]
    committed: dict[int, int]  # partition -> committed offset, as read back from the broker
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka 2.16)


class Confluent:
    name = "confluent-kafka"
    codecs = ("gzip", "snappy", "lz4", "zstd")

    @staticmethod
    def _admin(bs: str, **config):
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": bs, **config})

    @classmethod
    def create_topics(cls, bs: str, topics: dict[str, int], configs: dict[str, str] | None = None) -> None:
        from confluent_kafka.admin import NewTopic

        admin = cls._admin(bs)
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=n, replication_factor=1, config=dict(configs or {})) for t, n in topics.items()],
            request_timeout=OP_TIMEOUT,
        )
        for t, f in futures.items():
            try:
                f.result(timeout=OP_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                raise ClientError(f"confluent-kafka create_topics({t}): {e!r}") from e
        cls.wait_for_topics(bs, topics)

    @classmethod
    def wait_for_topics(cls, bs: str, topics: dict[str, int]) -> None:
        """Waits until metadata shows each topic with its partitions, each with a leader."""
        admin = cls._admin(bs)
        deadline = time.monotonic() + OP_TIMEOUT
        last = ""
        while True:
            md = admin.list_topics(timeout=10)
            ok = True
            for t, n in topics.items():
                tm = md.topics.get(t)
                if tm is None or tm.error is not None or len(tm.partitions) != n or any(
                    p.leader < 0 for p in tm.partitions.values()
                ):
                    ok = False
                    last = f"{t}: {tm.error if tm else 'absent'}, partitions {sorted(tm.partitions) if tm else None}"
            if ok:
                return
            if time.monotonic() > deadline:
                raise ClientError(f"confluent-kafka: topics not ready in metadata within {OP_TIMEOUT}s: {last}")
            time.sleep(0.2)

    @classmethod
    def list_topics(cls, bs: str) -> set[str]:
        md = cls._admin(bs).list_topics(timeout=OP_TIMEOUT)
        return {t for t in md.topics if not t.startswith("__")}

    @classmethod
    def delete_topics(cls, bs: str, names: list[str]) -> None:
        admin = cls._admin(bs)  # keep the handle alive until the futures resolve
        futures = admin.delete_topics(names, request_timeout=OP_TIMEOUT)
        for t, f in futures.items():
            try:
                f.result(timeout=OP_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                raise ClientError(f"confluent-kafka delete_topics({t}): {e!r}") from e

    @classmethod
    def unknown_topic_error(cls, bs: str, topic: str) -> str:
        md = cls._admin(bs, **{"allow.auto.create.topics": False}).list_topics(topic=topic, timeout=OP_TIMEOUT)
        tm = md.topics.get(topic)
        if tm is None:
            raise ClientError(f"confluent-kafka: metadata response has no entry for {topic}")
        return f"{tm.error!r}" if tm.error else f"no error, {len(tm.partitions)} partitions"

    @classmethod
    def describe_topic_config(cls, bs: str, topic: str) -> dict[str, str]:
        from confluent_kafka.admin import ConfigResource, ResourceType

        admin = cls._admin(bs)
        res = ConfigResource(ResourceType.TOPIC, topic)
        try:
            entries = admin.describe_configs([res], request_timeout=OP_TIMEOUT)[res].result(timeout=OP_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"confluent-kafka describe_configs({topic}): {e!r}") from e
        return {k: v.value for k, v in entries.items()}

    @classmethod
    def produce(cls, bs: str, msgs: list[Msg], **config) -> list[tuple[str, int, int, bytes | None]]:
        return cls.produce_with(cls.producer(bs, **config), msgs)

    @staticmethod
    def producer(bs: str, **config):
        """A long-lived producer (for scenarios that produce around a broker restart)."""
        from confluent_kafka import Producer

        return Producer({"bootstrap.servers": bs, **config})

    @staticmethod
    def produce_with(p, msgs: list[Msg]) -> list[tuple[str, int, int, bytes | None]]:
        deliveries, errors = [], []

        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"{msg.topic()}[{msg.partition()}]: {err!r}")
            else:
                deliveries.append((msg.topic(), msg.partition(), msg.offset(), msg.value()))

        deadline = time.monotonic() + OP_TIMEOUT
        for m in msgs:
            kw = dict(topic=m.topic, key=m.key, value=m.value, headers=list(m.headers), on_delivery=on_delivery)
            if m.partition is not None:
                kw["partition"] = m.partition
            while True:
                try:
                    p.produce(**kw)
                    break
                except BufferError:
                    if time.monotonic() > deadline:
                        raise ClientError("confluent-kafka: the local queue stayed full") from None
                    p.poll(0.05)
            p.poll(0)
        remaining = p.flush(max(1.0, deadline - time.monotonic()))
        if errors:
            raise ClientError(f"confluent-kafka: {len(errors)} of {len(msgs)} deliveries failed; first: {errors[0]}")
        if remaining:
            raise ClientError(f"confluent-kafka: {remaining} of {len(msgs)} messages not delivered within {OP_TIMEOUT}s")
        return deliveries

    @staticmethod
    def consume(bs: str, topics: dict[str, int], expected: int, timeout: float = CONSUME_TIMEOUT, **config) -> list[Got]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        # confluent-kafka requires a group.id even for assign(); nothing is committed.
        c = Consumer({"bootstrap.servers": bs, "group.id": f"assign-{uuid.uuid4()}", "enable.auto.commit": False, **config})
        got: list[Got] = []
        errors: list[str] = []
        try:
            c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, n in topics.items() for p in range(n)])
            deadline = time.monotonic() + timeout
            drain_until = None
            while time.monotonic() < (drain_until or deadline):
                for msg in c.consume(num_messages=1000, timeout=0.2):
                    if msg.error():
                        errors.append(repr(msg.error()))
                        continue
                    got.append(Got(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), tuple(msg.headers() or ())))
                if len(got) >= expected and drain_until is None:
                    drain_until = time.monotonic() + 0.3
        finally:
            c.close()
        if len(got) < expected:
            raise ClientError(f"confluent-kafka consumer read {len(got)} of {expected} messages within {timeout}s "
                              f"({_tally(got)}); consumer errors: {errors[:5] or 'none'}")
        return got

    @staticmethod
    def group_consume(bs: str, group: str, topic: str, partitions: int, limit: int, commit: bool = True) -> GroupResult:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        got: list[Got] = []
        errors: list[str] = []
        try:
            c.subscribe([topic])
            start = time.monotonic()
            while len(got) < limit:
                now = time.monotonic()
                if (not got and now - start > GROUP_FIRST_MESSAGE_TIMEOUT) or now - start > CONSUME_TIMEOUT:
                    raise ClientError(f"confluent-kafka group consumer read {len(got)} of {limit} messages within "
                                      f"{now - start:.0f}s ({_tally(got)}); consumer errors: {errors[:5] or 'none'}")
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    errors.append(repr(msg.error()))
                    continue
                got.append(Got(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), tuple(msg.headers() or ())))
            if commit:
                nxt: dict[int, int] = {}
                for g in got:
                    nxt[g.partition] = g.offset + 1
                try:
                    res = c.commit(offsets=[TopicPartition(topic, p, o) for p, o in nxt.items()], asynchronous=False)
                except Exception as e:  # noqa: BLE001
                    raise ClientError(f"confluent-kafka commit: {e!r}") from e
                bad = [tp for tp in res or [] if tp.error]
                if bad:
                    raise ClientError(f"confluent-kafka commit: {[(tp.partition, repr(tp.error)) for tp in bad]}")
            try:
                committed = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=OP_TIMEOUT)
            except Exception as e:  # noqa: BLE001
                raise ClientError(f"confluent-kafka committed(): {e!r}") from e
            offsets = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
        finally:
            c.close()
        return GroupResult(got, offsets)


# ---------------------------------------------------------------------------------------------
# kafka-python

def subscribe_kafka_python(consumer, topic: str) -> None:
    """Subscribes a kafka-python consumer once it knows the topic's partitions.

    kafka-python 3.0.12 can lose a rebalance: when poll() times out while a JoinGroup/SyncGroup
    round is in flight, the round's completion is dropped, so the consumer keeps its assignment
    but never re-enables heartbeats or fetches, and the broker expires it after the session
    timeout (seen against sprat about once in 50 runs; the client's debug log shows the SyncGroup
    answer arriving and nothing after it). The usual trigger is the consumer's own second
    rebalance: subscribed before its metadata has the topic, its first assignment is empty and it
    rejoins at once. Learning the partitions first (and polling with a longer timeout) avoids it.
    """
    deadline = time.monotonic() + 30
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise ClientError(f"kafka-python never saw the partitions of {topic}")
        time.sleep(0.05)
    consumer.subscribe([topic])



class KafkaPython:
    name = "kafka-python"
    codecs = ("gzip", "snappy", "lz4", "zstd")

    @staticmethod
    def _admin(bs: str):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=int(OP_TIMEOUT * 1000))

    @classmethod
    def create_topics(cls, bs: str, topics: dict[str, int], configs: dict[str, str] | None = None) -> None:
        admin = cls._admin(bs)
        try:
            admin.create_topics(
                {t: {"num_partitions": n, "replication_factor": 1, "configs": dict(configs or {})} for t, n in topics.items()},
                wait_for_metadata=True,
            )
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"kafka-python create_topics: {e!r}") from e
        finally:
            admin.close()

    @classmethod
    def list_topics(cls, bs: str) -> set[str]:
        admin = cls._admin(bs)
        try:
            return {t for t in admin.list_topics() if not t.startswith("__")}
        finally:
            admin.close()

    @classmethod
    def delete_topics(cls, bs: str, names: list[str]) -> None:
        admin = cls._admin(bs)
        try:
            admin.delete_topics(names)
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"kafka-python delete_topics: {e!r}") from e
        finally:
            admin.close()

    @classmethod
    def unknown_topic_error(cls, bs: str, topic: str) -> str:
        # KafkaAdminClient's metadata requests set allow_auto_topic_creation=false.
        import kafka.errors as Errors

        admin = cls._admin(bs)
        try:
            topics = admin.describe_topics([topic])
        finally:
            admin.close()
        entry = next((t for t in topics if t.get("name") == topic), None)
        if entry is None:
            raise ClientError(f"kafka-python: metadata response has no entry for {topic}: {topics!r}")
        code = entry.get("error_code", 0)
        return f"{Errors.for_code(code).__name__} (error_code {code})" if code else f"no error: {entry!r}"

    @staticmethod
    def producer(bs: str, **config):
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=bs, **config)

    @classmethod
    def produce(cls, bs: str, msgs: list[Msg], **config) -> list[tuple[str, int, int, bytes | None]]:
        p = cls.producer(bs, **config)
        try:
            return cls.produce_with(p, msgs)
        finally:
            p.close(timeout=10)

    @staticmethod
    def produce_with(p, msgs: list[Msg]) -> list[tuple[str, int, int, bytes | None]]:
        futures = []
        try:
            for m in msgs:
                futures.append((m, p.send(m.topic, key=m.key, value=m.value, headers=list(m.headers), partition=m.partition)))
            p.flush(timeout=OP_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"kafka-python send/flush: {e!r}") from e
        deliveries, errors = [], []
        for m, f in futures:
            try:
                md = f.get(timeout=1)
                deliveries.append((md.topic, md.partition, md.offset, m.value))
            except Exception as e:  # noqa: BLE001
                errors.append(f"{m.topic}: {e!r}")
        if errors:
            raise ClientError(f"kafka-python: {len(errors)} of {len(msgs)} sends failed; first: {errors[0]}")
        return deliveries

    @staticmethod
    def consume(bs: str, topics: dict[str, int], expected: int, timeout: float = CONSUME_TIMEOUT, **config) -> list[Got]:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bs, **config)
        got: list[Got] = []
        try:
            c.assign([TopicPartition(t, p) for t, n in topics.items() for p in range(n)])
            c.seek_to_beginning()
            deadline = time.monotonic() + timeout
            drain_until = None
            while time.monotonic() < (drain_until or deadline):
                for tp, records in c.poll(timeout_ms=200).items():
                    for r in records:
                        got.append(Got(r.topic, r.partition, r.offset, r.key, r.value, tuple(tuple(h) for h in (r.headers or ()))))
                if len(got) >= expected and drain_until is None:
                    drain_until = time.monotonic() + 0.3
        except ClientError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"kafka-python consumer: {e!r} after {len(got)} of {expected} messages") from e
        finally:
            c.close(autocommit=False)
        if len(got) < expected:
            raise ClientError(f"kafka-python consumer read {len(got)} of {expected} messages within {timeout}s ({_tally(got)})")
        return got

    @staticmethod
    def group_consume(bs: str, group: str, topic: str, partitions: int, limit: int, commit: bool = True) -> GroupResult:
        from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

        c = KafkaConsumer(bootstrap_servers=bs, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
        got: list[Got] = []
        try:
            subscribe_kafka_python(c, topic)
            start = time.monotonic()
            while len(got) < limit:
                now = time.monotonic()
                if (not got and now - start > GROUP_FIRST_MESSAGE_TIMEOUT) or now - start > CONSUME_TIMEOUT:
                    raise ClientError(f"kafka-python group consumer read {len(got)} of {limit} messages within "
                                      f"{now - start:.0f}s ({_tally(got)})")
                for tp, records in c.poll(timeout_ms=1000, max_records=limit - len(got)).items():
                    for r in records:
                        got.append(Got(r.topic, r.partition, r.offset, r.key, r.value, tuple(tuple(h) for h in (r.headers or ()))))
            if commit:
                nxt: dict[int, int] = {}
                for g in got:
                    nxt[g.partition] = g.offset + 1
                c.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in nxt.items()})
            committed = {}
            for p in range(partitions):
                o = c.committed(TopicPartition(topic, p))
                if o is not None and o >= 0:
                    committed[p] = o
        except ClientError:
            raise
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"kafka-python group consumer: {e!r} after {len(got)} of {limit} messages") from e
        finally:
            c.close(autocommit=False)
        return GroupResult(got, committed)


# ---------------------------------------------------------------------------------------------
# aiokafka


def _run_async(coro, timeout: float, what: str):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    try:
        return asyncio.run(bounded())
    except (asyncio.TimeoutError, TimeoutError) as e:
        raise ClientError(f"{what}: did not finish within {timeout}s") from e


def _error_codes(obj, path="") -> list[tuple[str, int, str | None]]:
    """Every nonzero error_code in a decoded response, with its path and message."""
    out = []
    if isinstance(obj, dict):
        code = obj.get("error_code")
        if isinstance(code, int) and code != 0:
            out.append((path or "/", code, obj.get("error_message")))
        for k, v in obj.items():
            out += _error_codes(v, f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out += _error_codes(v, f"{path}[{i}]")
    return out


def _error_name(code: int) -> str:
    import kafka.errors as Errors

    return Errors.for_code(code).__name__


class AioKafka:
    name = "aiokafka"
    codecs = ("gzip", "snappy", "lz4", "zstd")

    @staticmethod
    async def _with_admin(bs: str, fn):
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bs)
        await admin.start()
        try:
            return await fn(admin)
        finally:
            await admin.close()

    @classmethod
    def create_topics(cls, bs: str, topics: dict[str, int], configs: dict[str, str] | None = None) -> None:
        from aiokafka.admin import NewTopic

        async def go(admin):
            resp = await admin.create_topics([NewTopic(t, n, 1, topic_configs=dict(configs or {})) for t, n in topics.items()])
            errors = _error_codes(resp.to_object())
            if errors:
                raise ClientError(f"aiokafka create_topics: " + "; ".join(f"{_error_name(c)} ({c}) {m or ''}" for _, c, m in errors))

        _run_async(cls._with_admin(bs, go), OP_TIMEOUT, "aiokafka create_topics")
        Confluent.wait_for_topics(bs, topics)

    @classmethod
    def list_topics(cls, bs: str) -> set[str]:
        async def go(admin):
            return await admin.list_topics()

        return {t for t in _run_async(cls._with_admin(bs, go), OP_TIMEOUT, "aiokafka list_topics") if not t.startswith("__")}

    @classmethod
    def delete_topics(cls, bs: str, names: list[str]) -> None:
        async def go(admin):
            resp = await admin.delete_topics(names)
            errors = _error_codes(resp.to_object())
            if errors:
                raise ClientError(f"aiokafka delete_topics: " + "; ".join(f"{_error_name(c)} ({c})" for _, c, _m in errors))

        _run_async(cls._with_admin(bs, go), OP_TIMEOUT, "aiokafka delete_topics")

    @classmethod
    def unknown_topic_error(cls, bs: str, topic: str) -> str:
        # aiokafka's admin describe_topics() asks for auto-creation; send the client's own
        # MetadataRequest with allow_auto_topic_creation=False instead.
        from aiokafka.client import AIOKafkaClient
        from aiokafka.protocol.metadata import MetadataRequest

        async def go():
            client = AIOKafkaClient(bootstrap_servers=bs)
            await client.bootstrap()
            try:
                node = client.get_random_node()
                resp = await client.send(node, MetadataRequest([topic], allow_auto_topic_creation=False))
                return resp.to_object()
            finally:
                await client.close()

        obj = _run_async(go(), OP_TIMEOUT, "aiokafka metadata")
        entry = next((t for t in obj["topics"] if t.get("topic") == topic), None)
        if entry is None:
            raise ClientError(f"aiokafka: metadata response has no entry for {topic}: {obj!r}")
        code = entry.get("error_code", 0)
        return f"{_error_name(code)} (error_code {code})" if code else f"no error: {entry!r}"

    @staticmethod
    def produce(bs: str, msgs: list[Msg], **config) -> list[tuple[str, int, int, bytes | None]]:
        from aiokafka import AIOKafkaProducer

        async def go():
            p = AIOKafkaProducer(bootstrap_servers=bs, **config)
            await p.start()
            try:
                futures = []
                for m in msgs:
                    futures.append(await p.send(m.topic, m.value, key=m.key, headers=list(m.headers), partition=m.partition))
                results = await asyncio.gather(*futures, return_exceptions=True)
            finally:
                await p.stop()
            errors = [f"{m.topic}: {r!r}" for m, r in zip(msgs, results) if isinstance(r, BaseException)]
            if errors:
                raise ClientError(f"aiokafka: {len(errors)} of {len(msgs)} sends failed; first: {errors[0]}")
            return [(r.topic, r.partition, r.offset, m.value) for m, r in zip(msgs, results)]

        return _run_async(go(), OP_TIMEOUT, "aiokafka produce")

    @staticmethod
    def consume(bs: str, topics: dict[str, int], expected: int, timeout: float = CONSUME_TIMEOUT, **config) -> list[Got]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        got: list[Got] = []

        async def go():
            c = AIOKafkaConsumer(bootstrap_servers=bs, **config)
            await c.start()
            try:
                tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
                c.assign(tps)
                await c.seek_to_beginning(*tps)
                drain_until = None
                loop = asyncio.get_running_loop()
                while drain_until is None or loop.time() < drain_until:
                    for tp, records in (await c.getmany(timeout_ms=200)).items():
                        for r in records:
                            got.append(Got(r.topic, r.partition, r.offset, r.key, r.value, tuple(tuple(h) for h in (r.headers or ()))))
                    if len(got) >= expected and drain_until is None:
                        drain_until = loop.time() + 0.3
            finally:
                await c.stop()

        try:
            _run_async(go(), timeout, "aiokafka consumer")
        except ClientError as e:
            raise ClientError(f"{e}: read {len(got)} of {expected} messages ({_tally(got)})") from e
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"aiokafka consumer: {e!r} after {len(got)} of {expected} messages") from e
        return got

    @staticmethod
    def group_consume(bs: str, group: str, topic: str, partitions: int, limit: int, commit: bool = True) -> GroupResult:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        got: list[Got] = []
        committed: dict[int, int] = {}

        async def go():
            c = AIOKafkaConsumer(topic, bootstrap_servers=bs, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
            await c.start()
            try:
                loop = asyncio.get_running_loop()
                start = loop.time()
                while len(got) < limit:
                    if not got and loop.time() - start > GROUP_FIRST_MESSAGE_TIMEOUT:
                        raise ClientError(f"aiokafka group consumer got no message within {GROUP_FIRST_MESSAGE_TIMEOUT}s")
                    for tp, records in (await c.getmany(timeout_ms=200, max_records=limit - len(got))).items():
                        for r in records:
                            got.append(Got(r.topic, r.partition, r.offset, r.key, r.value, tuple(tuple(h) for h in (r.headers or ()))))
                if commit:
                    nxt: dict[int, int] = {}
                    for g in got:
                        nxt[g.partition] = g.offset + 1
                    await c.commit({TopicPartition(topic, p): o for p, o in nxt.items()})
                for p in range(partitions):
                    o = await c.committed(TopicPartition(topic, p))
                    if o is not None and o >= 0:
                        committed[p] = o
            finally:
                await c.stop()

        try:
            _run_async(go(), CONSUME_TIMEOUT, "aiokafka group consumer")
        except ClientError as e:
            raise ClientError(f"{e}: read {len(got)} of {limit} messages ({_tally(got)})") from e
        except Exception as e:  # noqa: BLE001
            raise ClientError(f"aiokafka group consumer: {e!r} after {len(got)} of {limit} messages") from e
        return GroupResult(got, committed)


# ---------------------------------------------------------------------------------------------
# kafkajs (node/driver.js)


def _b64(b: bytes | None) -> str | None:
    return None if b is None else base64.b64encode(b).decode()


def _unb64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def kafkajs(command: str, spec: dict, timeout: float = 60.0) -> dict:
    """Runs one command of node/driver.js and returns its JSON result; raises ClientError with
    the kafkajs error (and its last log lines) if it failed."""
    with tempfile.TemporaryDirectory(prefix="kafkajs-") as d:
        inp, out = Path(d) / "in.json", Path(d) / "out.json"
        inp.write_text(json.dumps({**spec, "timeoutMs": int(timeout * 1000)}))
        env = dict(os.environ, KAFKAJS_NO_PARTITIONER_WARNING="1")
        try:
            proc = subprocess.run(
                ["node", str(NODE_DIR / "driver.js"), command, str(inp), str(out)],
                capture_output=True, text=True, timeout=timeout + 15, env=env,
            )
        except subprocess.TimeoutExpired as e:
            raise ClientError(f"kafkajs {command}: node did not exit within {timeout + 15}s") from e
        result = json.loads(out.read_text()) if out.exists() else None
        logs = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        if result is None:
            raise ClientError(f"kafkajs {command}: node exited with {proc.returncode} and no result:\n{logs}")
        if result.get("error"):
            raise ClientError(f"kafkajs {command}: {result['error']}\n--- kafkajs log (tail) ---\n{logs}")
        return result


def _got_from_js(m: dict) -> Got:
    return Got(m["topic"], m["partition"], int(m["offset"]), _unb64(m["key"]), _unb64(m["value"]),
               tuple((k, _unb64(v)) for k, v in m["headers"]))


class KafkaJs:
    name = "kafkajs"
    codecs = ("gzip",)  # kafkajs ships only gzip; the others need codec plugins

    @staticmethod
    def create_topics(bs: str, topics: dict[str, int], configs: dict[str, str] | None = None) -> None:
        kafkajs("createTopics", {"brokers": [bs], "topics": [
            {"topic": t, "numPartitions": n, "configEntries": [{"name": k, "value": v} for k, v in (configs or {}).items()]}
            for t, n in topics.items()]})

    @staticmethod
    def list_topics(bs: str) -> set[str]:
        return {t for t in kafkajs("listTopics", {"brokers": [bs]})["topics"] if not t.startswith("__")}

    @staticmethod
    def delete_topics(bs: str, names: list[str]) -> None:
        kafkajs("deleteTopics", {"brokers": [bs], "topics": names})

    @staticmethod
    def unknown_topic_error(bs: str, topic: str) -> str:
        # kafka.admin() sends Metadata with allowAutoTopicCreation=false.
        r = kafkajs("fetchTopicMetadata", {"brokers": [bs], "topics": [topic]}, timeout=30)
        return r.get("caught") or f"no error: {r!r}"

    @staticmethod
    def fetch_topic_offsets(bs: str, topic: str) -> dict[int, tuple[int, int]]:
        r = kafkajs("fetchTopicOffsets", {"brokers": [bs], "topic": topic})
        return {int(p["partition"]): (int(p["low"]), int(p["high"])) for p in r["offsets"]}

    @staticmethod
    def produce(bs: str, msgs: list[Msg], compression: str | None = None, **config) -> list[tuple[str, int, int, bytes | None]]:
        r = kafkajs("produce", {"brokers": [bs], "compression": compression, "producer": config, "messages": [
            {"topic": m.topic, "key": _b64(m.key), "value": _b64(m.value),
             "headers": [[k, _b64(v)] for k, v in m.headers], "partition": m.partition} for m in msgs]},
            timeout=OP_TIMEOUT + 30)
        # kafkajs reports one base offset per topic-partition and request, not per message.
        return []

    @staticmethod
    def consume(bs: str, topics: dict[str, int], expected: int, timeout: float = CONSUME_TIMEOUT, **config) -> list[Got]:
        # kafkajs has no assign-only consumer: reading always goes through a consumer group.
        r = kafkajs("consume", {"brokers": [bs], "groupId": f"kafkajs-read-{uuid.uuid4()}", "topics": list(topics),
                                "limit": expected, "commit": False, "consumer": config}, timeout=timeout)
        return [_got_from_js(m) for m in r["messages"]]

    @staticmethod
    def group_consume(bs: str, group: str, topic: str, partitions: int, limit: int, commit: bool = True) -> GroupResult:
        r = kafkajs("consume", {"brokers": [bs], "groupId": group, "topics": [topic], "limit": limit, "commit": commit,
                                "committedPartitions": partitions}, timeout=CONSUME_TIMEOUT)
        return GroupResult([_got_from_js(m) for m in r["messages"]],
                           {int(p): int(o) for p, o in r["committed"].items() if int(o) >= 0})


# ---------------------------------------------------------------------------------------------
# kcat (librdkafka 2.0.2)


def kcat(args: list[str], bs: str, stdin: bytes | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    cmd = ["kcat", "-b", bs, *args]
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ClientError(f"{' '.join(cmd)} did not exit within {timeout}s; stderr: {(e.stderr or b'').decode(errors='replace')[-1500:]}") from e


class Kcat:
    name = "kcat"
    codecs = ("gzip", "snappy", "lz4", "zstd")
    # kcat's producer reads one message per line: text only, and all messages of one run share
    # the -H headers.
    text_only = True
    # librdkafka's debug lines saying it sent a batch uncompressed despite -z (from produce()).
    compression_notes: list[str] = []

    @staticmethod
    def produce(bs: str, msgs: list[Msg], compression: str | None = None, extra: list[str] | None = None) -> list:
        groups: dict[tuple, list[Msg]] = defaultdict(list)
        for m in msgs:
            groups[(m.topic, m.partition, m.headers)].append(m)
        for (topic, partition, headers), ms in groups.items():
            args = ["-P", "-t", topic, "-K", "\t"]
            if partition is not None:
                args += ["-p", str(partition)]
            for k, v in headers:
                args += ["-H", f"{k}={v.decode()}"]
            if compression:
                # -d msg: librdkafka logs whether it really compressed each batch.
                args += ["-z", compression, "-d", "msg"]
            args += extra or []
            data = b"".join((m.key or b"") + b"\t" + (m.value or b"") + b"\n" for m in ms)
            for m in ms:
                assert b"\n" not in (m.value or b"") and b"\t" not in (m.key or b""), "kcat needs line-safe messages"
            proc = kcat(args, bs, stdin=data, timeout=OP_TIMEOUT + 30)
            lines = proc.stderr.decode(errors="replace").strip().splitlines()
            Kcat.compression_notes += [line for line in lines if "compress" in line and "not compressing" in line]
            err = "\n".join(line for line in lines if not line.startswith("%7|"))
            if proc.returncode != 0 or "ERROR" in err or "fail" in err.lower():
                raise ClientError(f"kcat -P -t {topic}: exit {proc.returncode}: {err[-2000:]}")
        return []

    @staticmethod
    def consume(bs: str, topics: dict[str, int], expected: int, timeout: float = CONSUME_TIMEOUT, extra: list[str] | None = None) -> list[Got]:
        got: list[Got] = []
        start = time.monotonic()
        for topic in topics:
            left = max(5.0, timeout - (time.monotonic() - start))
            proc = kcat(["-C", "-t", topic, "-o", "beginning", "-e", "-J", *(extra or [])], bs, timeout=left)
            err = proc.stderr.decode(errors="replace").strip()
            if proc.returncode != 0 or "ERROR" in err:
                raise ClientError(f"kcat -C -t {topic}: exit {proc.returncode}: {err[-2000:]}")
            for line in proc.stdout.decode().splitlines():
                j = json.loads(line)
                hs = j.get("headers") or []
                headers = tuple((hs[i], hs[i + 1].encode() if hs[i + 1] is not None else None) for i in range(0, len(hs), 2))
                key = j["key"].encode() if j.get("key") is not None else None
                value = j["payload"].encode() if j.get("payload") is not None else None
                got.append(Got(j["topic"], j["partition"], j["offset"], key, value, headers))
        if len(got) < expected:
            raise ClientError(f"kcat read {len(got)} of {expected} messages ({_tally(got)})")
        return got

    @staticmethod
    def unknown_topic_error(bs: str, topic: str) -> str:
        proc = kcat(["-L", "-t", topic, "-X", "allow.auto.create.topics=false"], bs, timeout=30)
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        line = next((line.strip() for line in out.splitlines() if f'"{topic}"' in line), None)
        if line is None:
            raise ClientError(f"kcat -L -t {topic}: exit {proc.returncode}; no line for the topic in:\n{out[-2000:]}")
        return line


CLIENTS = {c.name: c for c in (Confluent, KafkaPython, AioKafka, KafkaJs, Kcat)}
