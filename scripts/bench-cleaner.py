#!/usr/bin/env python3
"""Log cleaner throughput and memory, and what the cleaner costs the produce path.

Writes a compacted topic of keyed 1 KiB records (with `--codec` as the producer's
compression.type; values are random hex text, which compresses about 2:1) with the cleaner off,
restarts the broker with it on, and reports the cleanings' figures from the broker's own log
lines (bytes read, bytes kept, MB/s of dirty log: the compressed bytes on disk) and the broker's
RSS before and after (VmRSS / VmHWM). Prints a Markdown table row for docs/benchmarks.md.

With `--load`, it also measures produce throughput on other partitions: the same
`sprat-perf produce` run (to a new, uncompacted topic) once right after a restart with the
cleaner off, and once right after the restart with the cleaner on, while it cleans. It reports
both, their ratio, and for how much of the second run the cleaner was busy (from the cleaning
log lines' timestamps), since a ratio from a run the cleaner was idle through would mean little.
`--repeat N` does that N times (the dirty log restored from a copy each time, the two kinds of
run alternating) and reports medians, as one run on a shared machine says little.

Usage: .venv/bin/python scripts/bench-cleaner.py [MiB] [KEYS] [--codec C] [--partitions N]
           [--load] [--load-records N] [--repeat N]
(defaults: 256 MiB, 10000 keys, no codec, 1 partition). Needs target/release/sprat and
target/release/sprat-perf (cargo build --release). Nothing here asserts anything."""

import argparse
import datetime
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "sprat"
PERF = ROOT / "target" / "release" / "sprat-perf"
TOPIC = "cleaner-bench"
CLEANED = re.compile(
    r"^\[(\S+) INFO +sprat::cleaner\] " + TOPIC
    + r"-\d+: cleaned (\d+) segment\(s\), swapped (\d+): (\d+) -> (\d+) bytes.* ([\d.]+) MB/s", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(workdir: Path, port: int, cleaner: bool, run: int) -> tuple[subprocess.Popen, Path]:
    config = workdir / "server.properties"
    config.write_text(
        f"listeners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={workdir / 'logs'}\n"
        f"log.cleaner.enable={'true' if cleaner else 'false'}\nlog.cleaner.backoff.ms=100\n")
    log = workdir / f"broker-{run}.log"
    proc = subprocess.Popen([str(BINARY), str(config)], stderr=log.open("w"), stdout=subprocess.DEVNULL,
                            env={"RUST_LOG": "info"})
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.05)
    return proc, log


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(60)


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def write_dirty_log(bs: str, mib: int, keys: int, codec: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bs})
    admin.create_topics([NewTopic(TOPIC, partitions, 1, config={
        "cleanup.policy": "compact", "segment.bytes": str(8 << 20)})])[TOPIC].result(30)
    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, "batch.size": 1 << 20,
                  "compression.type": codec})
    # Random hex: about 2:1 for every codec, unlike a repeated byte.
    pool = [os.urandom(512).hex().encode() for _ in range(256)]
    for i in range(mib * 1024):
        while True:
            try:
                p.produce(TOPIC, key=f"key-{i % keys}".encode(), value=pool[i % 251])
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(120) == 0


def produce_load(bs: str, topic: str, records: int) -> tuple[float, float, float]:
    """Runs sprat-perf produce; returns (start time, seconds, MB/s)."""
    started = time.time()
    out = subprocess.run([str(PERF), "--bootstrap", bs, "produce", "--topic", topic, "--partitions", "4",
                          "--record-size", "1000", "--batch-records", "100", "--records", str(records),
                          "--connections", "2", "--in-flight", "2"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"([\d.]+) MB/s +\(([\d.]+) s\)", out)
    assert m, out
    return started, float(m.group(2)), float(m.group(1))


def log_time(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def busy_share(cleanings, start: float, seconds: float) -> float:
    """The share of [start, start + seconds] during which some cleaning ran."""
    busy = 0.0
    for stamp, _, _, read, _, mbps in cleanings:
        end = log_time(stamp)
        begin = end - int(read) / 1e6 / max(float(mbps), 1e-6)
        busy += max(0.0, min(end, start + seconds) - max(begin, start))
    return min(1.0, busy / seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mib", nargs="?", type=int, default=256)
    ap.add_argument("keys", nargs="?", type=int, default=10000)
    ap.add_argument("--codec", default="none")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--load", action="store_true")
    ap.add_argument("--load-records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        bs = f"127.0.0.1:{port}"
        proc, _ = start(workdir, port, cleaner=False, run=0)
        write_dirty_log(bs, args.mib, args.keys, args.codec, args.partitions)
        stop(proc)
        shutil.copytree(workdir / "logs", workdir / "pristine")
        results = []
        for run in range(args.repeat):
            shutil.rmtree(workdir / "logs")
            shutil.copytree(workdir / "pristine", workdir / "logs")
            results.append(clean_once(workdir, port, bs, args, run))
        cleanings, rss_before, hwm, base, during = results[0]
        segments = sum(int(c[1]) for c in cleanings)
        read = sum(int(c[3]) for c in cleanings)
        kept = sum(int(c[4]) for c in cleanings)
        mbps = statistics.median(cleaner_mbps(r[0]) for r in results)
        print("| codec | dirty log | keys | segments | kept | cleaner MB/s | broker RSS before | peak RSS |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {args.codec} | {read / 2**20:.0f} MiB | {args.keys} | {segments} | {kept / 2**20:.1f} MiB "
              f"| {mbps:.0f} | {rss_before / 1024:.0f} MiB | {max(r[2] for r in results) / 1024:.0f} MiB |")
        if args.load:
            base_mbps = statistics.median(r[3][2] for r in results)
            during_mbps = statistics.median(r[4][2] for r in results)
            share = statistics.median(busy_share(r[0], r[4][0], r[4][1]) for r in results)
            runs = f" (median of {args.repeat})" if args.repeat > 1 else ""
            print()
            print(f"| produce without cleaner{runs} | produce while cleaning{runs} | ratio | cleaner busy during the run |")
            print("|---|---|---|---|")
            print(f"| {base_mbps:.0f} MB/s | {during_mbps:.0f} MB/s | {100 * during_mbps / base_mbps:.0f}% "
                  f"| {100 * share:.0f}% |")


def cleaner_mbps(cleanings) -> float:
    read = sum(int(c[3]) for c in cleanings)
    seconds = sum(int(c[3]) / 1e6 / max(float(c[5]), 1e-6) for c in cleanings)
    return read / 1e6 / max(seconds, 1e-6)


def clean_once(workdir: Path, port: int, bs: str, args, run: int):
    """One cleaning of the dirty log (after a produce run without the cleaner, with `--load`);
    returns (cleaning log lines, RSS before, peak RSS, produce without, produce during)."""
    base = None
    if args.load:
        proc, _ = start(workdir, port, cleaner=False, run=2 * run + 1)
        base = produce_load(bs, f"load-without-cleaner-{run}", args.load_records)
        stop(proc)
    proc, log = start(workdir, port, cleaner=True, run=2 * run + 2)
    rss_before = rss_kib(proc.pid, "VmRSS")
    during = produce_load(bs, f"load-while-cleaning-{run}", args.load_records) if args.load else None
    deadline = time.monotonic() + 600
    while len(cleanings := CLEANED.findall(log.read_text())) < args.partitions:
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.1)
    hwm = rss_kib(proc.pid, "VmHWM")
    stop(proc)
    return cleanings, rss_before, hwm, base, during

if __name__ == "__main__":
    main()
