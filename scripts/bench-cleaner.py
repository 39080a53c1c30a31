#!/usr/bin/env python3
"""Log cleaner throughput and memory: writes a compacted topic of keyed 1 KiB records with the
cleaner off, restarts the broker with it on, and reports the first cleaning's figures from the
broker's own log line (bytes read, bytes kept, MB/s of dirty log) and the broker's RSS before and
after (VmRSS / VmHWM). Prints a Markdown table row for docs/benchmarks.md.

Usage: .venv/bin/python scripts/bench-cleaner.py [MiB] [KEYS]   (defaults: 256 MiB, 10000 keys)
Needs target/release/sprat (cargo build --release). Nothing here asserts anything."""

import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "sprat"
TOPIC = "cleaner-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir: Path, port: int, cleaner: bool) -> tuple[subprocess.Popen, Path]:
    config = workdir / "server.properties"
    config.write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={workdir / 'logs'}\n"
        f"log.cleaner.enable={'true' if cleaner else 'false'}\nlog.cleaner.backoff.ms=100\n")
    log = workdir / f"broker-{int(cleaner)}.log"
    proc = subprocess.Popen([str(BINARY), str(config)], stderr=log.open("w"), stdout=subprocess.DEVNULL,
                            env={"RUST_LOG": "info"})
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.05)
    return proc, log


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        bs = f"127.0.0.1:{port}"
        proc, _ = start(workdir, port, cleaner=False)
        admin = AdminClient({"bootstrap.servers": bs})
        admin.create_topics([NewTopic(TOPIC, 1, 1, config={
            "cleanup.policy": "compact", "segment.bytes": str(8 << 20)})])[TOPIC].result(30)
        p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "batch.size": 1 << 20})
        value = b"v" * 1024
        for i in range(mib * 1024):
            while True:
                try:
                    p.produce(TOPIC, key=f"key-{i % keys}".encode(), value=value)
                    break
                except BufferError:
                    p.poll(0.1)
        assert p.flush(120) == 0
        proc.terminate()
        proc.wait(60)
        proc, log = start(workdir, port, cleaner=True)
        rss_before = rss_kib(proc.pid, "VmRSS")
        pattern = re.compile(r"cleaned (\d+) segment\(s\), swapped (\d+): (\d+) -> (\d+) bytes.* ([\d.]+) MB/s")
        deadline = time.monotonic() + 600
        while not (m := pattern.search(log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        hwm = rss_kib(proc.pid, "VmHWM")
        proc.terminate()
        proc.wait(60)
        segments, _, read, kept, mbps = m.groups()
        print("| dirty log | keys | segments | kept | cleaner MB/s | broker RSS before | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {int(read) / 2**20:.0f} MiB | {keys} | {segments} | {int(kept) / 2**20:.1f} MiB | {float(mbps):.0f} "
              f"| {rss_before / 1024:.0f} MiB | {hwm / 1024:.0f} MiB |")


if __name__ == "__main__":
    main()
