"""Crash test: SIGKILL the broker at random moments under produce load, and check after every
restart, with a real client and on disk, that nothing acknowledged was lost.

A cycle runs confluent-kafka producers (acks=all; idempotence off and on in alternate cycles)
from two threads and a consumer that commits group offsets synchronously, kills the broker with
SIGKILL after a random delay, waits until every producer has settled each of its messages one way
or the other, closes the clients and restarts the broker on the same log directory and port. The
broker alternates, two cycles each, between the default (an acknowledged batch has reached the
page cache) and `sprat.log.flush.on.ack=true` (it has been fsynced). A process kill keeps the page
cache, so neither mode may lose an acknowledged record.

After every restart:
  * each partition is read from its log start offset up to the high watermark with
    check.crcs=true: offsets are contiguous, every acknowledged record is at exactly the offset its
    delivery report gave, with its value, and no value is stored twice unless its producer was not
    idempotent (a retry may then store it again). Stored records that were never acknowledged
    (in flight at the kill) are allowed and counted;
  * the group's committed offsets are the last ones whose commit succeeded, or ones whose commit
    was in flight at the kill (the client cannot know whether those landed);
  * every batch of every `.log` file under the log directory is whole and has a valid CRC-32C,
    and the test topic's batches follow each other without a gap: recovery left no torn or
    corrupt batch behind.

scripts/crash-test runs many cycles; tests/clients/test_crash.py runs a few.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import crc32c
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from conftest import Broker
from kclients import Confluent

TOPIC = "crash-test"
GROUP = "crash-test-group"
# confluent-kafka's "no committed offset" (OFFSET_INVALID).
NO_OFFSET = -1001
# The v2 record batch header: base offset (8), batch length (4), partition leader epoch (4),
# magic (1), CRC (4), then attributes, where the CRC-32C's coverage starts, up to the batch's end.
BATCH_LENGTH_OFFSET = 8
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
LOG_OVERHEAD = 12  # base offset and batch length, which the batch length does not count
RECORD_BATCH_OVERHEAD = 61  # a batch header without records
VALUE = re.compile(rb"^c(\d+)\.t(\d+)\.s(\d+)\.x*$")
# Bounds on waits that a healthy broker meets with a wide margin.
JOIN_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 120.0
CLIENT_TIMEOUT_S = 15.0


class CrashTestFailure(AssertionError):
    """An acknowledged record or commit was lost or altered, or the log on disk is damaged."""

    def __init__(self, message: str, lost: int = 0):
        super().__init__(message)
        self.lost = lost  # acknowledged records missing from the log


@dataclass
class Settings:
    cycles: int = 50
    seed: int = 0
    partitions: int = 3
    producer_threads: int = 2
    # Each producer thread paces itself to this many messages a second, so that a cycle stores a
    # few thousand records and re-reading the whole log after every restart stays quick.
    rate_per_thread: int = 2500
    kill_after_s: tuple[float, float] = (0.2, 1.5)
    # Short, so that messages caught by the kill fail fast instead of waiting for the restart.
    message_timeout_ms: int = 2500
    # Small segments, so that kills also land around segment rolls.
    segment_bytes: int = 256 * 1024


def cycle_modes(cycle: int) -> tuple[bool, bool]:
    """(idempotent producers, sprat.log.flush.on.ack) for a cycle: all four pairs, in turn."""
    return cycle % 2 == 1, (cycle // 2) % 2 == 1


def make_value(cycle: int, thread: int, seq: int) -> bytes:
    """A value unique over the whole run, of a varying length, that names where it came from."""
    return b"c%03d.t%d.s%07d." % (cycle, thread, seq) + b"x" * (seq * 37 % 150)


# ---------------------------------------------------------------------------------------------
# What the clients were told


class Ledger:
    """Everything acknowledged to the clients over all cycles: what each restart is checked
    against. Only the main thread touches it, between cycles, except for the commit record,
    which the committer thread updates under the lock."""

    def __init__(self, partitions: int):
        self.partitions = partitions
        self.acked: dict[int, dict[int, bytes]] = {p: {} for p in range(partitions)}
        self.acked_values: set[bytes] = set()
        self.idempotent_cycles: set[int] = set()
        self.errors: list[str] = []
        self.lock = threading.Lock()
        # Per partition: the offset of the last commit that succeeded, and the offsets of later
        # commits whose outcome is unknown (they failed at the kill, yet may have been stored).
        self.committed: dict[int, int] = {}
        self.uncertain: dict[int, set[int]] = {p: set() for p in range(partitions)}
        self.commits_ok = 0
        self.commits_failed = 0

    def add_deliveries(self, deliveries: list[tuple[int, int, bytes]]) -> None:
        for p, offset, value in deliveries:
            earlier = self.acked[p].get(offset)
            if earlier is not None:
                self.errors.append(f"partition {p} offset {offset} was acknowledged twice: {earlier!r} and {value!r}")
            self.acked[p][offset] = value
            self.acked_values.add(value)

    def commit_started(self, offsets: dict[int, int]) -> None:
        with self.lock:
            for p, o in offsets.items():
                self.uncertain[p].add(o)

    def commit_finished(self, offsets: dict[int, int], ok_partitions: set[int]) -> None:
        with self.lock:
            for p, o in offsets.items():
                if p in ok_partitions:
                    self.committed[p] = o
                    self.uncertain[p].clear()
            if ok_partitions == set(offsets):
                self.commits_ok += 1
            else:
                self.commits_failed += 1


class CycleLoad:
    """The delivery reports of one cycle's producers, shared with its committer thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first_ack = threading.Event()
        self.killed = threading.Event()
        self.delivered: list[tuple[int, int, bytes]] = []
        self.failures: Counter[str] = Counter()
        self.failures_before_kill: list[str] = []
        self.next_offsets: dict[int, int] = {}
        self.sent = 0
        self.unsettled = 0
        self.client_errors: list[str] = []

    def on_delivery(self, err, msg) -> None:
        with self.lock:
            if err is None:
                p, offset = msg.partition(), msg.offset()
                self.delivered.append((p, offset, msg.value()))
                self.next_offsets[p] = max(self.next_offsets.get(p, 0), offset + 1)
                self.first_ack.set()
            else:
                self.failures[err.name()] += 1
                if not self.killed.is_set():
                    self.failures_before_kill.append(f"{err.name()}: {err.str()}")

    def marks(self) -> dict[int, int]:
        with self.lock:
            return dict(self.next_offsets)


def produce_load(bootstrap: str, settings: Settings, cycle: int, thread: int, idempotent: bool,
                 stop: threading.Event, load: CycleLoad) -> None:
    """Produces paced, unique values until `stop`, then waits until every message is settled
    (delivered, failed or purged) and closes the producer, so that nothing is delivered later."""
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": f"crash-test-{cycle}-{thread}",
        "acks": "all",
        "enable.idempotence": idempotent,
        "message.timeout.ms": settings.message_timeout_ms,
        # The kill makes librdkafka log every refused reconnect; delivery reports say enough.
        "log_level": 0,
    })
    seq = 0
    start = time.monotonic()
    try:
        while not stop.is_set():
            value = make_value(cycle, thread, seq)
            try:
                producer.produce(TOPIC, key=b"k%d" % (seq % 101), value=value, on_delivery=load.on_delivery)
            except BufferError:
                producer.poll(0.05)
                continue
            seq += 1
            producer.poll(0)
            ahead_s = seq / settings.rate_per_thread - (time.monotonic() - start)
            if ahead_s > 0.005:
                stop.wait(ahead_s)
    except KafkaException as e:
        load.client_errors.append(f"producer {thread}: {e}")
    # Messages caught by the kill fail after message.timeout.ms; the extra time is a margin.
    remaining = producer.flush(settings.message_timeout_ms / 1000 + 10)
    if remaining:
        producer.purge()
        remaining = producer.flush(5)
    producer.close()
    with load.lock:
        load.sent += seq
        load.unsettled += remaining


def commit_offsets(bootstrap: str, ledger: Ledger, stop: threading.Event, load: CycleLoad) -> None:
    """Commits, synchronously and about ten times a second, the offsets following the last
    acknowledged record of each partition, recording each commit's outcome in the ledger.
    A commit in flight at the kill waits for the restarted broker (see CycleRun)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": GROUP,
        "enable.auto.commit": False,
        "log_level": 0,
    })
    last: dict[int, int] = {}
    try:
        while not stop.is_set():
            offsets = load.marks()
            if offsets and offsets != last:
                ledger.commit_started(offsets)
                ok: set[int] = set()
                try:
                    result = consumer.commit(
                        offsets=[TopicPartition(TOPIC, p, o) for p, o in sorted(offsets.items())],
                        asynchronous=False,
                    )
                    ok = {tp.partition for tp in result or [] if tp.error is None}
                except KafkaException:
                    pass  # The commit may or may not have landed: it stays uncertain.
                ledger.commit_finished(offsets, ok)
                last = offsets
            stop.wait(0.1)
    finally:
        consumer.close()


# ---------------------------------------------------------------------------------------------
# Checks after a restart


@dataclass
class LogCheck:
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (low, high)
    verified: int = 0
    unacked_present: int = 0
    retried_duplicates: int = 0
    errors: list[str] = field(default_factory=list)


def read_partitions(bootstrap: str, partitions: int) -> tuple[dict[int, tuple[int, int, list[bytes]]], list[str]]:
    """Reads every partition from its log start offset to its high watermark, with CRC checks.
    Returns partition -> (low, high, values by offset - low), and the errors found on the way."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "crash-test-reader",
        "enable.auto.commit": False,
        "check.crcs": True,
    })
    errors: list[str] = []
    out: dict[int, tuple[int, int, list[bytes]]] = {}
    try:
        bounds = {}
        for p in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=CLIENT_TIMEOUT_S, cached=False)
            bounds[p] = (low, high)
            out[p] = (low, high, [])
        next_offset = {p: low for p, (low, high) in bounds.items() if high > low}
        consumer.assign([TopicPartition(TOPIC, p, o) for p, o in next_offset.items()])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(next_offset[p] < bounds[p][1] for p in next_offset):
            if time.monotonic() > deadline:
                left = {p: f"{next_offset[p]} of {bounds[p][1]}" for p in next_offset}
                errors.append(f"reading did not reach the high watermarks within {READ_TIMEOUT_S}s: {left}")
                break
            for msg in consumer.consume(num_messages=10000, timeout=0.5):
                if msg.error():
                    errors.append(f"consumer error: {msg.error()!r}")
                    continue
                p, offset = msg.partition(), msg.offset()
                if offset >= bounds[p][1]:
                    continue
                if offset != next_offset[p]:
                    errors.append(f"partition {p}: offset {offset} follows {next_offset[p] - 1} (a hole or a repeat)")
                    if offset < next_offset[p]:
                        continue
                    out[p][2].extend([None] * (offset - next_offset[p]))
                out[p][2].append(msg.value())
                next_offset[p] = offset + 1
            if len(errors) > 20:
                break
    finally:
        consumer.close()
    return out, errors


def check_log(bootstrap: str, ledger: Ledger) -> LogCheck:
    """Compares what the partitions hold with what was acknowledged."""
    check = LogCheck()
    stored, check.errors = read_partitions(bootstrap, ledger.partitions)
    counts: Counter[bytes] = Counter()
    for p, (low, high, values) in stored.items():
        check.ranges[p] = (low, high)
        if low != 0:
            check.errors.append(f"partition {p}: log start offset {low}, expected 0 (nothing was deleted)")
        for offset, value in sorted(ledger.acked[p].items()):
            index = offset - low
            if offset >= high or index < 0 or index >= len(values):
                check.errors.append(f"LOST partition {p} offset {offset} {value[:24]!r}...: the log holds {low}..{high}")
            elif values[index] != value:
                check.errors.append(f"MISMATCH partition {p} offset {offset}: acknowledged {value[:24]!r}..., stored {values[index]!r:.40}")
            else:
                check.verified += 1
        counts.update(v for v in values if v is not None)
    for value, n in counts.items():
        m = VALUE.match(value)
        if m is None:
            check.errors.append(f"a stored value that no producer of this test sent: {value!r:.60}")
            continue
        if value not in ledger.acked_values:
            check.unacked_present += 1
        if n > 1:
            if int(m.group(1)) in ledger.idempotent_cycles:
                check.errors.append(f"DUPLICATE {value[:24]!r}... is stored {n} times, from an idempotent producer")
            else:
                check.retried_duplicates += n - 1
    return check


def check_group_offsets(bootstrap: str, ledger: Ledger) -> list[str]:
    """Compares the group's committed offsets with the commits that succeeded (or may have).
    A commit whose outcome was unknown becomes known here, and the ledger is updated."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(TOPIC, p) for p in range(ledger.partitions)], timeout=CLIENT_TIMEOUT_S)
    except KafkaException as e:
        return [f"reading the committed offsets failed: {e}"]
    finally:
        consumer.close()
    errors = []
    with ledger.lock:
        for tp in committed:
            p, got = tp.partition, tp.offset
            if tp.error is not None:
                errors.append(f"committed offset of partition {p}: {tp.error!r}")
                continue
            last_ok = ledger.committed.get(p, NO_OFFSET)
            if got == last_ok:
                ledger.uncertain[p].clear()
            elif got in ledger.uncertain[p]:
                ledger.committed[p] = got
                ledger.uncertain[p].clear()
            else:
                errors.append(f"GROUP OFFSET partition {p}: committed {got}, expected {last_ok}"
                              f" (or one of the uncertain {sorted(ledger.uncertain[p])})")
    return errors


@dataclass
class DiskCheck:
    files: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)


def scan_log_dir(log_dir: Path, topic: str) -> DiskCheck:
    """Checks every batch of every segment file under `log_dir`: whole, magic 2, CRC-32C over
    attributes to the end. In `topic`'s partitions, also checks that the offsets run on without
    a gap from 0, batch after batch and segment after segment (each file named by its first)."""
    check = DiskCheck()
    for part in sorted(d for d in log_dir.iterdir() if d.is_dir()):
        ours = part.name.rsplit("-", 1)[0] == topic
        next_offset = 0
        # Segment names are base offsets zero-padded to 20 digits, so they sort in offset order.
        for segment in sorted(part.glob("*.log")):
            check.files += 1
            where = segment.relative_to(log_dir)
            if ours and int(segment.stem) != next_offset:
                check.errors.append(f"{where}: the segment starts at {int(segment.stem)}, the one before ends at {next_offset}")
            next_offset = scan_segment(segment.read_bytes(), str(where), next_offset if ours else None, check)
            if len(check.errors) > 20:
                return check
    return check


def scan_segment(data: bytes, where: str, expected_base: int | None, check: DiskCheck) -> int | None:
    """Checks the batches of one segment file; returns the offset after its last batch."""
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        at = f"{where} at position {pos}"
        if len(data) - pos < RECORD_BATCH_OVERHEAD:
            check.errors.append(f"{at}: {len(data) - pos} trailing bytes are not a whole batch")
            break
        base, length = struct.unpack_from(">qi", data, pos)
        end = pos + LOG_OVERHEAD + length
        if length < RECORD_BATCH_OVERHEAD - LOG_OVERHEAD or end > len(data):
            check.errors.append(f"{at}: batch length {length} does not fit the {len(data)}-byte file (a torn batch)")
            break
        if data[pos + MAGIC_OFFSET] != 2:
            check.errors.append(f"{at}: magic {data[pos + MAGIC_OFFSET]}, expected 2")
            break
        (stored_crc,) = struct.unpack_from(">I", data, pos + CRC_OFFSET)
        actual_crc = crc32c.crc32c(view[pos + ATTRIBUTES_OFFSET:end])
        if stored_crc != actual_crc:
            check.errors.append(f"{at}: CRC-32C {actual_crc:#010x}, stored {stored_crc:#010x} (base offset {base})")
        (last_delta,) = struct.unpack_from(">i", data, pos + LAST_OFFSET_DELTA_OFFSET)
        if expected_base is not None:
            if base != expected_base:
                check.errors.append(f"{at}: base offset {base}, expected {expected_base}")
            expected_base = base + last_delta + 1
        check.batches += 1
        pos = end
    return expected_base


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class Summary:
    cycles: int = 0
    sent: int = 0
    acked: int = 0
    verified: int = 0  # acknowledged records found in place after the last restart
    verifications: int = 0  # the same, summed over all restarts
    lost: int = 0
    unacked_present: int = 0
    retried_duplicates: int = 0
    commits_ok: int = 0
    commits_uncertain: int = 0
    commits_resumed: int = 0  # commits in flight at a kill that finished after the restart
    truncations: int = 0
    batches_checked: int = 0
    failures_before_kill: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (f"cycles {self.cycles}, sent {self.sent}, acked {self.acked}, verified {self.verified} "
                f"(over all restarts {self.verifications}), lost {self.lost}, unacknowledged but stored "
                f"{self.unacked_present}, retried duplicates {self.retried_duplicates}, commits "
                f"{self.commits_ok} ok and {self.commits_uncertain} failed (outcome unknown), {self.commits_resumed} "
                f"of them in flight at a kill and finished after the restart, torn tails truncated by recovery "
                f"{self.truncations}, batches CRC-checked on disk {self.batches_checked}, produce errors before "
                f"a kill {self.failures_before_kill}, {self.seconds:.0f}s")


@dataclass
class CycleRun:
    load: CycleLoad
    kill_after_s: float
    # The committer, if a commit was in flight at the kill: librdkafka keeps a synchronous commit
    # waiting for the coordinator, so it finishes (one way or the other) once the broker is back.
    committer: threading.Thread | None


def run_cycle(broker: Broker, ledger: Ledger, settings: Settings, cycle: int, rng: random.Random) -> CycleRun:
    """Load, kill, settle: SIGKILL comes a random delay after the first acknowledgement (an
    idempotent librdkafka producer only starts sending half a second after it connects)."""
    idempotent, _ = cycle_modes(cycle)
    load = CycleLoad()
    stop = threading.Event()
    producers = [
        threading.Thread(target=produce_load, name=f"producer-{t}", daemon=True,
                         args=(broker.bootstrap, settings, cycle, t, idempotent, stop, load))
        for t in range(settings.producer_threads)
    ]
    committer = threading.Thread(target=commit_offsets, name="committer", daemon=True,
                                 args=(broker.bootstrap, ledger, stop, load))
    kill_after_s = rng.uniform(*settings.kill_after_s)
    for t in producers + [committer]:
        t.start()
    try:
        if not load.first_ack.wait(CLIENT_TIMEOUT_S):
            raise CrashTestFailure(f"cycle {cycle}: no produce was acknowledged within {CLIENT_TIMEOUT_S}s")
        time.sleep(kill_after_s)
    finally:
        load.killed.set()
        broker.stop("sigkill")
        stop.set()
    if broker.running():
        raise CrashTestFailure(f"cycle {cycle}: the broker survived SIGKILL")
    for t in producers:
        t.join(JOIN_TIMEOUT_S)
        if t.is_alive():
            raise CrashTestFailure(f"cycle {cycle}: {t.name} did not finish within {JOIN_TIMEOUT_S}s of the kill")
    committer.join(1.0)
    return CycleRun(load, kill_after_s, committer if committer.is_alive() else None)


def restart(broker: Broker, settings: Settings, next_cycle: int) -> tuple[float, list[str]]:
    """Starts the broker again with the next cycle's flush mode. Returns the start-up time and
    the log lines in which recovery truncated a segment (a SIGKILL can interrupt a write of
    several pages in the middle, so a torn batch at the end of a log is expected now and then)."""
    _, flush_on_ack = cycle_modes(next_cycle)
    broker.properties["sprat.log.flush.on.ack"] = "true" if flush_on_ack else "false"
    started = time.monotonic()
    broker.start()
    Confluent.wait_for_topics(broker.bootstrap, {TOPIC: settings.partitions})
    seconds = time.monotonic() - started
    log = broker.log_text().rsplit("----- start #", 1)[-1]
    return seconds, [line for line in log.splitlines() if "truncat" in line]


def verify(broker: Broker, ledger: Ledger, what: str) -> tuple[LogCheck, list[str], DiskCheck]:
    log = check_log(broker.bootstrap, ledger)
    group_errors = check_group_offsets(broker.bootstrap, ledger)
    disk = scan_log_dir(broker.log_dir, TOPIC)
    errors = ledger.errors + log.errors + group_errors + disk.errors + broker.problems()
    if errors:
        shown = "\n  ".join(errors[:30])
        more = f"\n  ... and {len(errors) - 30} more" if len(errors) > 30 else ""
        lost = sum(1 for e in errors if e.startswith("LOST"))
        raise CrashTestFailure(f"{what}: {len(errors)} problem(s):\n  {shown}{more}", lost)
    return log, group_errors, disk


def run(workdir: Path, settings: Settings, out=print) -> Summary:
    """Runs the crash test in `workdir` (which holds the broker's config, log dir and output).
    Raises CrashTestFailure, with the broker's log tail, on any loss or damage."""
    rng = random.Random(settings.seed)
    summary = Summary()
    ledger = Ledger(settings.partitions)
    began = time.monotonic()
    _, flush_on_ack = cycle_modes(0)
    broker = Broker(workdir, {"sprat.log.flush.on.ack": "true" if flush_on_ack else "false"})
    out(f"crash-test: seed {settings.seed}, {settings.cycles} cycles, log dir {broker.log_dir}")
    try:
        broker.start()
        Confluent.create_topics(broker.bootstrap, {TOPIC: settings.partitions}, {"segment.bytes": str(settings.segment_bytes)})
        for cycle in range(settings.cycles):
            idempotent, flush_on_ack = cycle_modes(cycle)
            ran = run_cycle(broker, ledger, settings, cycle, rng)
            load = ran.load
            if idempotent:
                ledger.idempotent_cycles.add(cycle)
            ledger.add_deliveries(load.delivered)
            start_s, truncations = restart(broker, settings, cycle + 1)
            if ran.committer is not None:
                summary.commits_resumed += 1
                ran.committer.join(JOIN_TIMEOUT_S)
                if ran.committer.is_alive():
                    raise CrashTestFailure(f"cycle {cycle}: a commit in flight at the kill did not finish within "
                                           f"{JOIN_TIMEOUT_S}s of the restart")
            log, _, disk = verify(broker, ledger, f"after the kill of cycle {cycle}")
            summary.cycles += 1
            summary.sent += load.sent
            summary.acked += len(load.delivered)
            summary.verified = log.verified
            summary.verifications += log.verified
            summary.unacked_present = log.unacked_present
            summary.retried_duplicates = log.retried_duplicates
            summary.truncations += len(truncations)
            summary.batches_checked += disk.batches
            summary.failures_before_kill += len(load.failures_before_kill)
            summary.commits_ok, summary.commits_uncertain = ledger.commits_ok, ledger.commits_failed
            summary.seconds = time.monotonic() - began
            failures = ", ".join(f"{n} {name}" for name, n in load.failures.most_common()) or "none"
            end = sum(high for _, high in log.ranges.values())
            out(f"cycle {cycle + 1:3}/{settings.cycles}  idempotence={'on ' if idempotent else 'off'}  "
                f"flush.on.ack={'on ' if flush_on_ack else 'off'}  kill {ran.kill_after_s:.2f}s after the first ack: "
                f"sent {load.sent}, acked {len(load.delivered)}, failed {failures}"
                f"{', UNSETTLED ' + str(load.unsettled) if load.unsettled else ''}; "
                f"restart {start_s:.2f}s, {len(truncations)} torn tail(s) truncated; "
                f"{end} records stored, {log.verified} acked verified, {log.unacked_present} unacked present, "
                f"{log.retried_duplicates} retried dups; group offsets ok; {disk.batches} batches in {disk.files} files CRC ok")
            for text in load.failures_before_kill[:3] + load.client_errors[:3] + truncations:
                out(f"    note: {text}")
        # A clean shutdown and start at the end: the same checks hold after the graceful path.
        broker.restart("sigterm")
        log, _, _ = verify(broker, ledger, "after a clean restart")
        summary.verified = log.verified
        summary.seconds = time.monotonic() - began
        out(f"crash-test passed: {summary.line()}")
        return summary
    except AssertionError as e:
        # CrashTestFailure, and the suite's BrokerError and ClientError (a restart or a client
        # call that failed or did not finish in time): all end the run with the broker's log.
        summary.lost = getattr(e, "lost", 0)
        raise CrashTestFailure(f"{e}\n\nsummary so far: {summary.line()}\n\nsprat log (tail):\n{broker.tail(40)}",
                               summary.lost) from None
    finally:
        broker._kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/crash-test",
        description="kill -9 sprat at random moments under produce load and check that no "
                    "acknowledged record or committed offset is lost",
    )
    parser.add_argument("--cycles", type=int, default=50, help="kill/restart cycles (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill timing (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep the log dir (it is always kept on failure)")
    parser.add_argument("--rate", type=int, default=Settings.rate_per_thread,
                        help=f"messages per second per producer thread (default {Settings.rate_per_thread})")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    settings = Settings(cycles=args.cycles, seed=seed, rate_per_thread=args.rate)
    workdir = Path(tempfile.mkdtemp(prefix="sprat-crash-test-"))
    try:
        run(workdir, settings, out=lambda line: print(line, flush=True))
    except CrashTestFailure as e:
        print(f"\ncrash-test FAILED (seed {seed}; rerun with --seed {seed}):\n{e}", file=sys.stderr)
        print(f"the log dir is kept at {workdir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; the log dir is kept at {workdir}", file=sys.stderr)
        return 130
    if args.keep:
        print(f"the log dir is kept at {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
