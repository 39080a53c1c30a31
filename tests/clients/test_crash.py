"""The crash test (crashcheck.py), short: a few cycles of SIGKILL under produce load, each followed
by a restart and the full check that nothing acknowledged was lost; scripts/crash-test runs fifty.
SPRAT_TEST_SEED repeats a run's kill timing. A second test shows that the checks do catch a lost,
altered or damaged record."""

import os
import random

import crashcheck
from kclients import Confluent, Msg


def test_kill_9_under_load_loses_no_acknowledged_record_or_commit(tmp_path):
    seed = int(os.environ.get("SPRAT_TEST_SEED", random.SystemRandom().randrange(1 << 32)))
    # Four cycles cover each pair of (idempotence, flush.on.ack) once; the fifth repeats the first.
    summary = crashcheck.run(tmp_path, crashcheck.Settings(cycles=5, seed=seed))
    assert summary.lost == 0
    assert summary.acked > 0
    assert summary.verified == summary.acked


def test_the_checks_catch_lost_altered_and_damaged_records(broker):
    topic = crashcheck.TOPIC
    Confluent.create_topics(broker.bootstrap, {topic: 3})
    msgs = [Msg(topic, None, crashcheck.make_value(0, 0, seq), partition=seq % 3) for seq in range(300)]
    ledger = crashcheck.Ledger(3)
    ledger.add_deliveries([(p, offset, value) for _, p, offset, value in Confluent.produce(broker.bootstrap, msgs)])
    clean = crashcheck.check_log(broker.bootstrap, ledger)
    assert (clean.errors, clean.verified) == ([], 300)
    assert crashcheck.check_group_offsets(broker.bootstrap, ledger) == []

    # An acknowledgement the log does not hold, and one whose value differs from the stored one.
    ledger.add_deliveries([(0, 100, crashcheck.make_value(0, 0, 1000))])
    first_offset, first_value = next(iter(ledger.acked[1].items()))
    ledger.acked[1][first_offset] = first_value + b"x"
    ledger.committed[2] = 7
    errors = crashcheck.check_log(broker.bootstrap, ledger).errors
    assert any(e.startswith("LOST partition 0 offset 100") for e in errors), errors
    assert any(e.startswith(f"MISMATCH partition 1 offset {first_offset}") for e in errors), errors
    assert [e for e in crashcheck.check_group_offsets(broker.bootstrap, ledger) if "partition 2" in e], ledger.committed

    # A flipped bit inside a batch of one partition, and a batch cut short in another.
    broker.stop("sigterm")
    assert crashcheck.scan_log_dir(broker.log_dir, topic).errors == []
    flipped = broker.log_dir / f"{topic}-0" / "00000000000000000000.log"
    data = bytearray(flipped.read_bytes())
    data[crashcheck.RECORD_BATCH_OVERHEAD + 5] ^= 0x10
    flipped.write_bytes(bytes(data))
    torn = broker.log_dir / f"{topic}-1" / "00000000000000000000.log"
    torn.write_bytes(torn.read_bytes()[:-3])
    errors = crashcheck.scan_log_dir(broker.log_dir, topic).errors
    assert any("CRC-32C" in e for e in errors), errors
    assert any("torn batch" in e for e in errors), errors
