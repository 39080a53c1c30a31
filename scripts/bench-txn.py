#!/usr/bin/env python3
"""Transactions' cost: a confluent-kafka transactional producer (1 KiB records, 1,000 per
transaction) against the same producer idempotent only, and a read_committed consumer against a
read_uncommitted one over the transactional topic. Prints Markdown table rows for
docs/benchmarks.md.

Usage: .venv/bin/python scripts/bench-txn.py [RECORDS]   (default 200000)
Needs target/release/sprat (cargo build --release). Nothing here asserts anything."""

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "sprat"
PER_TXN = 1000
VALUE = b"x" * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir: Path, port: int) -> subprocess.Popen:
    config = workdir / "server.properties"
    config.write_text(f"listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={workdir / 'logs'}\n")
    proc = subprocess.Popen([str(BINARY), str(config)], stderr=(workdir / "broker.log").open("w"),
                            stdout=subprocess.DEVNULL, env={"RUST_LOG": "warn"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    raise SystemExit("sprat did not start")


def produce(bs: str, topic: str, records: int, transactional: bool) -> float:
    config = {"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 5,
              "batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000}
    if transactional:
        config["transactional.id"] = f"bench-{topic}"
    p = Producer(config)
    if transactional:
        p.init_transactions(30)
    start = time.perf_counter()
    for i in range(records):
        if transactional and i % PER_TXN == 0:
            if i:
                p.commit_transaction(60)
            p.begin_transaction()
        while True:
            try:
                p.produce(topic, value=VALUE)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    if transactional:
        p.commit_transaction(60)
    p.flush(60)
    return records / (time.perf_counter() - start)


def consume(bs: str, topic: str, records: int, isolation: str) -> float:
    c = Consumer({"bootstrap.servers": bs, "group.id": f"bench-{isolation}", "isolation.level": isolation,
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    start = time.perf_counter()
    deadline = time.monotonic() + 300
    while got < records and time.monotonic() < deadline:
        for m in c.consume(10000, 1.0):
            if not m.error():
                got += 1
    elapsed = time.perf_counter() - start
    c.close()
    return got / elapsed


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory(prefix="sprat-bench-txn-") as tmp:
        port = free_port()
        proc = start(Path(tmp), port)
        bs = f"127.0.0.1:{port}"
        try:
            admin = AdminClient({"bootstrap.servers": bs})
            for f in admin.create_topics([NewTopic(t, 1, 1) for t in ("warm", "idem", "txn")]).values():
                f.result(30)
            # A first producer pays for connections and the page cache: not measured.
            produce(bs, "warm", min(records, 20_000), False)
            idem = produce(bs, "idem", records, False)
            txn = produce(bs, "txn", records, True)
            uncommitted = consume(bs, "txn", records, "read_uncommitted")
            committed = consume(bs, "txn", records, "read_committed")
        finally:
            proc.terminate()
            proc.wait(30)
    mib = len(VALUE) / (1 << 20)
    print(f"| produce, idempotent | {records} | {idem:,.0f} | {idem * mib:.1f} | 100% |")
    print(f"| produce, transactional ({PER_TXN}/txn) | {records} | {txn:,.0f} | {txn * mib:.1f} | {txn / idem:.0%} |")
    print(f"| fetch, read_uncommitted | {records} | {uncommitted:,.0f} | {uncommitted * mib:.1f} | 100% |")
    print(f"| fetch, read_committed | {records} | {committed:,.0f} | {committed * mib:.1f} | {committed / uncommitted:.0%} |")


if __name__ == "__main__":
    main()
