//! Unit tests of the partition log: rolls, index lookups, recovery, retention, DeleteRecords and
//! producer state across restarts.

use super::*;
use crate::storage::index::{OffsetIndex, OffsetPosition, TimeIndex, TimestampOffset};
use crate::storage::record_batch::{BatchHeader, Batches, Record, build_batch};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sprat-log-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn batch(n: usize, value: &[u8]) -> Vec<u8> {
    timed_batch(n, value, 0)
}

/// A batch of `n` records whose timestamps are `timestamp`, `timestamp + 1`, ...
fn timed_batch(n: usize, value: &[u8], timestamp: i64) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| Record {
            timestamp_delta: i as i64,
            value: Some(value.to_vec()),
            ..Record::default()
        })
        .collect();
    let header = BatchHeader {
        base_timestamp: timestamp,
        max_timestamp: timestamp + n as i64 - 1,
        ..BatchHeader::default()
    };
    build_batch(&header, &records)
}

fn idempotent_batch(producer_id: i64, sequence: i32, n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|_| Record {
            value: Some(b"p".to_vec()),
            ..Record::default()
        })
        .collect();
    let header = BatchHeader {
        producer_id,
        producer_epoch: 0,
        base_sequence: sequence,
        ..BatchHeader::default()
    };
    build_batch(&header, &records)
}

fn small_segments(segment_bytes: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        max_index_size: 4096,
        delete_enabled: true,
        ..LogConfig::default()
    }
}

const CLEAN: LoadOptions = LoadOptions {
    had_clean_shutdown: true,
    recovery_point: None,
    log_start_offset: None,
};

/// Appends `count` one-record batches of `value_len` bytes with timestamps 1000, 1010, ...
fn fill(log: &mut PartitionLog, count: usize, value_len: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut b = timed_batch(1, &vec![i as u8; value_len], 1000 + 10 * i as i64);
            log.append(&mut b).unwrap();
            b
        })
        .collect()
}

fn read_one(log: &PartitionLog, offset: i64) -> Vec<u8> {
    log.partition
        .read(offset, 1, true)
        .unwrap()
        .unwrap()
        .records
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = temp_dir("append");
    let mut log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
    let mut b1 = batch(3, b"a");
    let mut b2 = batch(2, b"b");
    assert_eq!(
        log.append(&mut b1).unwrap(),
        AppendInfo {
            first_offset: 0,
            last_offset: 2
        }
    );
    assert_eq!(
        log.append(&mut b2).unwrap(),
        AppendInfo {
            first_offset: 3,
            last_offset: 4
        }
    );
    let p = &log.partition;
    let r = p.read(3, 1 << 20, true).unwrap().unwrap();
    assert_eq!(r.records, b2);
    assert_eq!(r.high_watermark, 5);
    let r = p.read(1, 1 << 20, true).unwrap().unwrap();
    assert_eq!(r.records.len(), b1.len() + b2.len());
    let r = p.read(0, 1, true).unwrap().unwrap();
    assert_eq!(r.records, b1, "at least one batch");
    let r = p.read(0, 1, false).unwrap().unwrap();
    assert!(r.records.is_empty());
    assert!(p.read(5, 100, true).unwrap().unwrap().records.is_empty());
    assert_eq!(
        p.read(6, 100, true).unwrap().unwrap_err(),
        ReadError::OffsetOutOfRange
    );
    let file = fs::read(dir.join("00000000000000000000.log")).unwrap();
    assert_eq!(file, [b1, b2].concat());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reopen_recovers_end_offset_and_truncates_torn_tail() {
    let dir = temp_dir("recover");
    let mut b1 = batch(2, b"x");
    {
        let mut log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
        log.append(&mut b1).unwrap();
        log.append(&mut batch(1, b"y")).unwrap();
    }
    let path = dir.join("00000000000000000000.log");
    let full = fs::read(&path).unwrap();
    fs::write(&path, &full[..full.len() - 3]).unwrap();
    let mut log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(fs::read(&path).unwrap(), b1);
    assert_eq!(log.append(&mut batch(1, b"z")).unwrap().first_offset, 2);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn segments_roll_and_reads_find_the_right_one() {
    let dir = temp_dir("roll");
    let config = small_segments(200, 1);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    let mut batches = Vec::new();
    for i in 0..6u8 {
        let mut b = batch(1, &[i; 50]);
        log.append(&mut b).unwrap();
        batches.push(b);
    }
    assert!(files_with_suffix(&dir, ".log").len() > 1, "rolled");
    for (i, b) in batches.iter().enumerate() {
        let r = log
            .partition
            .read(i as i64, b.len(), false)
            .unwrap()
            .unwrap();
        assert_eq!(&r.records, b, "offset {i}");
    }
    drop(log);
    let log = PartitionLog::open(&dir, tp(), config).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    let r = log.partition.read(4, 1000, false).unwrap().unwrap();
    assert_eq!(r.records[..batches[4].len()], batches[4][..]);
    fs::remove_dir_all(&dir).unwrap();
}

/// A batch's bytes are one segment's worth: the segment rolls at `segment.bytes` exactly, every
/// segment but the last is sealed with trimmed indexes, and file names are the base offsets.
#[test]
fn segment_rolls_at_segment_bytes_and_seals_the_old_one() {
    let dir = temp_dir("roll-exact");
    let size = batch(1, &[0; 100]).len() as u64;
    let config = small_segments(3 * size, 1);
    let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
    for _ in 0..7 {
        log.append(&mut batch(1, &[0; 100])).unwrap();
    }
    assert_eq!(log.partition.segment_base_offsets(), vec![0, 3, 6]);
    assert_eq!(
        files_with_suffix(&dir, ".log"),
        vec![
            "00000000000000000000.log",
            "00000000000000000003.log",
            "00000000000000000006.log"
        ]
    );
    for base in [0, 3] {
        let len = |suffix| {
            fs::metadata(dir.join(segment_file_name(base, suffix)))
                .unwrap()
                .len()
        };
        assert_eq!(len(".log"), 3 * size);
        // Entries for the 2nd and 3rd batch (more than 1 byte since the last entry).
        assert_eq!(
            len(".index"),
            2 * 8,
            "sealed offset index of {base} is trimmed"
        );
        assert_eq!(len(".timeindex"), 12, "one entry: timestamps are all 0");
    }
    let active_index = fs::metadata(dir.join(segment_file_name(6, ".index")))
        .unwrap()
        .len();
    assert_eq!(active_index, 4096, "the active index is preallocated");
    // Producer snapshots are taken at each roll.
    assert_eq!(
        files_with_suffix(&dir, ".snapshot"),
        vec![
            "00000000000000000003.snapshot",
            "00000000000000000006.snapshot"
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// The offset index has an entry per `index.interval.bytes` exactly where Kafka puts them, and a
/// fetch at every offset (below, at and between entries, first and last) finds its batch by
/// starting from the index: the bytes before the index entry are never read.
#[test]
fn index_lookups_at_every_boundary() {
    let dir = temp_dir("index-boundaries");
    let one = timed_batch(1, &[0; 200], 0).len() as u64;
    // An entry after every third batch: more than 2 batches' bytes since the last one.
    let config = small_segments(1 << 20, 2 * one);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    let batches = fill(&mut log, 20, 200);
    log.close().unwrap();
    let index = OffsetIndex::open(&dir.join(segment_file_name(0, ".index")), 0, 20 * one, None)
        .unwrap()
        .unwrap();
    let entries: Vec<OffsetPosition> = (0..index.entries())
        .map(|n| index.entry(n).unwrap())
        .collect();
    let expected: Vec<OffsetPosition> = [3, 6, 9, 12, 15, 18]
        .iter()
        .map(|&o| OffsetPosition {
            offset: o,
            position: o as u64 * one,
        })
        .collect();
    assert_eq!(entries, expected);
    // Wipe everything before the second entry: reads at or after it must not need those bytes.
    let log_path = dir.join(segment_file_name(0, ".log"));
    let mut bytes = fs::read(&log_path).unwrap();
    bytes[..6 * one as usize].fill(0xee);
    fs::write(&log_path, &bytes).unwrap();
    let log = PartitionLog::load(&dir, tp(), config, CLEAN).unwrap();
    for offset in 6..20 {
        assert_eq!(
            read_one(&log, offset),
            batches[offset as usize],
            "offset {offset}"
        );
    }
    let r = log.partition.read(19, 1 << 20, false).unwrap().unwrap();
    assert_eq!(r.records, batches[19], "the last batch");
    fs::remove_dir_all(&dir).unwrap();
}

/// A fetch from the middle of a three-segment log returns the right batch, and reads stop at the
/// end of the segment that holds the fetch offset.
#[test]
fn fetch_from_the_middle_of_a_three_segment_log() {
    let dir = temp_dir("three-segments");
    let one = timed_batch(1, &[0; 100], 0).len() as u64;
    let mut log = PartitionLog::open(&dir, tp(), small_segments(4 * one, 0)).unwrap();
    let batches = fill(&mut log, 12, 100);
    assert_eq!(log.partition.segment_base_offsets(), vec![0, 4, 8]);
    let r = log.partition.read(5, 1 << 20, false).unwrap().unwrap();
    assert_eq!(
        r.records,
        batches[5..8].concat(),
        "from 5 to the end of the middle segment"
    );
    assert_eq!(
        read_one(&log, 4),
        batches[4],
        "the first batch of the middle segment"
    );
    assert_eq!(
        read_one(&log, 7),
        batches[7],
        "the last batch of the middle segment"
    );
    assert_eq!(
        read_one(&log, 8),
        batches[8],
        "the first batch of the last segment"
    );
    assert_eq!(r.high_watermark, 12);
    fs::remove_dir_all(&dir).unwrap();
}

/// ListOffsets by timestamp through the time index, at and between entries, across segments,
/// and the largest timestamp.
#[test]
fn offset_for_timestamp_uses_the_time_index() {
    let dir = temp_dir("timestamps");
    let one = timed_batch(2, &[0; 100], 0).len() as u64;
    let mut log = PartitionLog::open(&dir, tp(), small_segments(5 * one, one)).unwrap();
    // Batch i holds offsets 2i and 2i + 1 with timestamps 1000 + 10i and 1001 + 10i.
    for i in 0..15 {
        log.append(&mut timed_batch(2, &[0; 100], 1000 + 10 * i))
            .unwrap();
    }
    let p = &log.partition;
    let cases: &[(i64, Option<(i64, i64)>)] = &[
        (0, Some((0, 1000))),
        (1000, Some((0, 1000))),
        (1001, Some((1, 1001))),
        (1002, Some((2, 1010))),
        (1050, Some((10, 1050))),
        (1051, Some((11, 1051))),
        (1099, Some((20, 1100))),
        (1141, Some((29, 1141))),
        (1142, None),
    ];
    for &(target, expected) in cases {
        assert_eq!(
            p.offset_for_timestamp(target).unwrap(),
            expected,
            "{target}"
        );
    }
    assert_eq!(p.max_timestamp_offset().unwrap(), Some((29, 1141)));
    let time_index = TimeIndex::open(&dir.join(segment_file_name(0, ".timeindex")), 0, Some(10))
        .unwrap()
        .unwrap();
    assert_eq!(
        time_index.last_entry(),
        TimestampOffset {
            timestamp: 1041,
            offset: 9
        },
        "sealed with the largest timestamp"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// `segment.ms`: a batch whose timestamp is more than `segment.ms` after the first batch's rolls.
#[test]
fn segment_rolls_by_time() {
    let dir = temp_dir("roll-ms");
    let config = LogConfig {
        segment_ms: 1000,
        ..small_segments(1 << 20, 4096)
    };
    let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
    log.append(&mut timed_batch(1, b"a", 10_000)).unwrap();
    log.append(&mut timed_batch(1, b"b", 11_000)).unwrap();
    assert_eq!(log.partition.segment_count(), 1, "exactly segment.ms later");
    log.append(&mut timed_batch(1, b"c", 11_001)).unwrap();
    assert_eq!(log.partition.segment_base_offsets(), vec![0, 2]);
    fs::remove_dir_all(&dir).unwrap();
}

/// After a clean shutdown nothing is scanned: a sealed segment whose bytes were damaged after
/// the fact is still served as it is. After an unclean one, segments below the recovery point are
/// trusted too, and those from it on are checked.
#[test]
fn clean_start_and_recovery_point_skip_trusted_segments() {
    let dir = temp_dir("trusted");
    let one = timed_batch(1, &[0; 100], 0).len() as u64;
    let config = small_segments(4 * one, 0);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    fill(&mut log, 10, 100);
    log.close().unwrap();
    let path = dir.join(segment_file_name(0, ".log"));
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let load = |options| PartitionLog::load(&dir, tp(), config.clone(), options).unwrap();
    assert_eq!(load(CLEAN).log_end_offset(), 10, "clean: trusted");
    let below = LoadOptions {
        recovery_point: Some(8),
        ..LoadOptions::default()
    };
    assert_eq!(
        load(below).log_end_offset(),
        10,
        "unclean, below the recovery point"
    );
    assert_eq!(fs::read(&path).unwrap().len(), bytes.len(), "not scanned");
    let log = load(LoadOptions::default());
    assert_eq!(
        log.log_end_offset(),
        3,
        "unclean without a checkpoint: recovered"
    );
    assert_eq!(
        log.partition.segment_base_offsets(),
        vec![0],
        "later segments deleted"
    );
    assert_eq!(files_with_suffix(&dir, ".log").len(), 1);
    fs::remove_dir_all(&dir).unwrap();
}

/// Within the segment that holds the recovery point, batches below it are checked from their
/// headers only (they are on disk); those from it on get their CRC checked.
#[test]
fn recovery_checks_crcs_from_the_recovery_point() {
    let dir = temp_dir("verify-from");
    let config = small_segments(1 << 20, 0);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    let batches = fill(&mut log, 10, 100);
    drop(log);
    let path = dir.join(segment_file_name(0, ".log"));
    let one = batches[0].len();
    let mut bytes = fs::read(&path).unwrap();
    bytes[2 * one + 70] ^= 0xff; // a record byte of batch 2
    bytes[7 * one + 70] ^= 0xff; // a record byte of batch 7
    fs::write(&path, &bytes).unwrap();
    let options = LoadOptions {
        recovery_point: Some(5),
        ..LoadOptions::default()
    };
    let log = PartitionLog::load(&dir, tp(), config, options).unwrap();
    assert_eq!(
        log.log_end_offset(),
        7,
        "cut at batch 7, batch 2 is below the recovery point"
    );
    assert_eq!(log.recovery_point(), 5);
    fs::remove_dir_all(&dir).unwrap();
}

/// Kafka's `LogSegmentTest.testRecoveryWithCorruptMessage`, for random positions: whatever is
/// written over the tail, exactly the batches before the damage survive, and appends continue
/// at the right offset.
#[test]
fn recovery_keeps_exactly_the_valid_prefix() {
    let mut seed: u64 = std::env::var("SPRAT_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut next = move || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let dir = temp_dir("valid-prefix");
    for round in 0..40 {
        let _ = fs::remove_dir_all(&dir);
        let config = small_segments(1 << 20, 64);
        let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
        let mut ends = Vec::new();
        let mut end = 0u64;
        for i in 0..20 {
            let mut b = timed_batch(1 + i % 3, &vec![i as u8; 10 + (next() % 90) as usize], 0);
            log.append(&mut b).unwrap();
            end += b.len() as u64;
            ends.push((end, log.log_end_offset()));
        }
        drop(log);
        let path = dir.join(segment_file_name(0, ".log"));
        let mut bytes = fs::read(&path).unwrap();
        let position = (next() % bytes.len() as u64) as usize;
        if round % 2 == 0 {
            bytes.truncate(position);
        } else {
            for b in &mut bytes[position..] {
                *b = next() as u8;
            }
        }
        fs::write(&path, &bytes).unwrap();
        let (valid_end, valid_next) = ends
            .iter()
            .rev()
            .find(|(end, _)| *end <= position as u64)
            .copied()
            .unwrap_or((0, 0));
        let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
        assert_eq!(
            log.log_end_offset(),
            valid_next,
            "round {round}, damage at {position}"
        );
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            valid_end,
            "round {round}"
        );
        let info = log.append(&mut batch(1, b"after")).unwrap();
        assert_eq!(info.first_offset, valid_next, "round {round}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A missing or corrupt index of a trusted segment is rebuilt at start-up, byte for byte as it
/// was written.
#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = temp_dir("rebuild");
    let one = timed_batch(1, &[0; 100], 0).len() as u64;
    let config = small_segments(10 * one, one);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    let batches = fill(&mut log, 25, 100);
    log.close().unwrap();
    let index = |base, suffix| dir.join(segment_file_name(base, suffix));
    let originals: Vec<Vec<u8>> = [
        (0, ".index"),
        (0, ".timeindex"),
        (10, ".index"),
        (20, ".index"),
    ]
    .iter()
    .map(|&(b, s)| fs::read(index(b, s)).unwrap())
    .collect();
    fs::remove_file(index(0, ".index")).unwrap();
    fs::write(index(0, ".timeindex"), b"garbage, not entries").unwrap();
    fs::write(index(10, ".index"), [0xffu8; 64]).unwrap();
    fs::write(index(20, ".index"), [0u8; 8 * 5]).unwrap();
    let mut log = PartitionLog::load(&dir, tp(), config, CLEAN).unwrap();
    for offset in 0..25 {
        assert_eq!(
            read_one(&log, offset),
            batches[offset as usize],
            "offset {offset}"
        );
    }
    log.close().unwrap();
    for (i, &(b, s)) in [
        (0, ".index"),
        (0, ".timeindex"),
        (10, ".index"),
        (20, ".index"),
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(fs::read(index(b, s)).unwrap(), originals[i], "{b}{s}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_by_time_deletes_whole_old_segments() {
    let dir = temp_dir("retention-time");
    let one = timed_batch(1, &[0; 100], 0).len() as u64;
    let config = LogConfig {
        retention_ms: 1000,
        ..small_segments(3 * one, 0)
    };
    let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
    // Timestamps 1000, 1010, ... 1090: segments [0,3) [3,6) [6,9) [9,10).
    fill(&mut log, 10, 100);
    assert_eq!(
        log.delete_old_segments(2020).unwrap(),
        0,
        "1020 ms is not past 1000"
    );
    assert_eq!(log.delete_old_segments(2021).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.partition.segment_base_offsets(), vec![3, 6, 9]);
    assert!(!dir.join(segment_file_name(0, ".log")).exists());
    assert!(files_with_suffix(&dir, ".deleted").is_empty());
    assert_eq!(
        log.partition.read(2, 100, true).unwrap().unwrap_err(),
        ReadError::OffsetOutOfRange
    );
    // Everything is expired: the active segment is rolled and deleted too.
    assert_eq!(log.delete_old_segments(10_000).unwrap(), 3);
    assert_eq!(log.partition.segment_base_offsets(), vec![10]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(log.append(&mut batch(1, b"x")).unwrap().first_offset, 10);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn retention_by_size_keeps_the_newest_segments() {
    let dir = temp_dir("retention-size");
    let one = timed_batch(1, &[0; 100], 0).len() as u64;
    let config = LogConfig {
        retention_bytes: (4 * one) as i64,
        ..small_segments(3 * one, 0)
    };
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    fill(&mut log, 10, 100);
    // 10 batches, limit 4: 6 too many, which [0,3) and [3,6) cover exactly; [6,9) would
    // leave fewer than the limit (Kafka deletes a segment only if the excess covers it).
    assert_eq!(log.delete_old_segments(0).unwrap(), 2);
    assert_eq!(log.partition.segment_base_offsets(), vec![6, 9]);
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(log.delete_old_segments(0).unwrap(), 0);
    // A compacted topic keeps everything.
    let mut kept = PartitionLog::open(
        &dir.join("compacted"),
        tp(),
        LogConfig {
            delete_enabled: false,
            ..config
        },
    )
    .unwrap();
    fill(&mut kept, 10, 100);
    assert_eq!(kept.delete_old_segments(i64::MAX / 2).unwrap(), 0);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn delete_records_moves_the_log_start_offset() {
    let dir = temp_dir("delete-records");
    let one = timed_batch(1, &[0; 100], 0).len() as u64;
    let config = small_segments(3 * one, 0);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    let batches = fill(&mut log, 10, 100);
    assert!(matches!(
        log.delete_records(11),
        Err(DeleteRecordsError::OffsetOutOfRange)
    ));
    assert!(matches!(
        log.delete_records(-2),
        Err(DeleteRecordsError::OffsetOutOfRange)
    ));
    assert_eq!(log.delete_records(4).unwrap(), 4);
    assert_eq!(log.partition.segment_base_offsets(), vec![3, 6, 9]);
    assert_eq!(log.delete_records(2).unwrap(), 4, "never moves back");
    assert_eq!(
        log.partition.read(3, 100, true).unwrap().unwrap_err(),
        ReadError::OffsetOutOfRange
    );
    assert_eq!(read_one(&log, 4), batches[4]);
    assert_eq!(
        log.partition.offset_for_timestamp(0).unwrap(),
        Some((4, 1040))
    );
    // The start offset survives a restart through the checkpoint.
    log.close().unwrap();
    let options = LoadOptions {
        log_start_offset: Some(4),
        ..CLEAN
    };
    let mut log = PartitionLog::load(&dir, tp(), config.clone(), options).unwrap();
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(
        log.delete_records(-1).unwrap(),
        10,
        "-1 is the high watermark"
    );
    assert_eq!(log.partition.segment_base_offsets(), vec![9]);
    let mut compacted = PartitionLog::open(
        &dir.join("compacted"),
        tp(),
        LogConfig {
            delete_enabled: false,
            ..config
        },
    )
    .unwrap();
    assert!(matches!(
        compacted.delete_records(0),
        Err(DeleteRecordsError::PolicyViolation)
    ));
    fs::remove_dir_all(&dir).unwrap();
}

/// A log start offset checkpoint past everything that survived a crash starts the log over
/// there, so offsets below it are never handed out again.
#[test]
fn log_start_offset_past_the_end_starts_over() {
    let dir = temp_dir("start-over");
    let mut log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
    fill(&mut log, 3, 10);
    drop(log);
    let options = LoadOptions {
        log_start_offset: Some(7),
        ..LoadOptions::default()
    };
    let mut log = PartitionLog::load(&dir, tp(), LogConfig::default(), options).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (7, 7));
    assert_eq!(log.append(&mut batch(1, b"x")).unwrap().first_offset, 7);
    fs::remove_dir_all(&dir).unwrap();
}

/// Producer state survives clean restarts through the snapshot, and unclean ones through the
/// snapshot taken at the last roll plus the headers after it.
#[test]
fn producer_state_survives_restarts() {
    let dir = temp_dir("producers");
    let one = idempotent_batch(7, 0, 2).len() as u64;
    let config = small_segments(3 * one, 0);
    let mut log = PartitionLog::open(&dir, tp(), config.clone()).unwrap();
    for i in 0..8 {
        log.append_batch(&mut idempotent_batch(7, i * 2, 2))
            .unwrap();
    }
    let retry = |log: &mut PartitionLog, i: i32| {
        log.append_batch(&mut idempotent_batch(7, i * 2, 2))
            .unwrap()
    };
    log.close().unwrap();
    let mut log = PartitionLog::load(&dir, tp(), config.clone(), CLEAN).unwrap();
    for i in 3..8 {
        let info = retry(&mut log, i);
        assert_eq!(
            info.first_offset,
            i64::from(i) * 2,
            "clean: retry of batch {i}"
        );
    }
    assert_eq!(log.log_end_offset(), 16);
    log.append_batch(&mut idempotent_batch(7, 16, 2)).unwrap();
    drop(log);
    let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
    for i in 4..9 {
        let info = retry(&mut log, i);
        assert_eq!(
            info.first_offset,
            i64::from(i) * 2,
            "unclean: retry of batch {i}"
        );
    }
    assert!(matches!(
        log.append_batch(&mut idempotent_batch(7, 30, 1)),
        Err(AppendError::Producer(ErrorCode::OutOfOrderSequenceNumber))
    ));
    assert_eq!(log.max_producer_id(), Some(7));
    log.close().unwrap();
    drop(log);
    // Snapshots at segment bases (6, 12) stay; of the others (16 and 18, from the two clean
    // shutdowns) only the latest.
    PartitionLog::load(&dir, tp(), small_segments(3 * one, 0), CLEAN).unwrap();
    assert_eq!(
        files_with_suffix(&dir, ".snapshot"),
        vec![
            "00000000000000000006.snapshot",
            "00000000000000000012.snapshot",
            "00000000000000000018.snapshot"
        ]
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// Flushing moves the recovery point; `flush.messages` says when a flush is due.
#[test]
fn flush_policy_and_recovery_point() {
    let dir = temp_dir("flush");
    let config = LogConfig {
        flush_interval_messages: 3,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
    fill(&mut log, 2, 10);
    assert_eq!(log.unflushed_messages(), 2);
    assert!(!log.flush_due(0));
    fill(&mut log, 1, 10);
    assert!(log.flush_due(0));
    log.flush().unwrap();
    assert_eq!((log.recovery_point(), log.unflushed_messages()), (3, 0));
    assert!(!log.flush_due(i64::MAX));
    fs::remove_dir_all(&dir).unwrap();
}

/// With `flush_on_ack`, appended records become visible (the high watermark) only once a flush
/// has put them on disk, also across a roll; without it, as soon as they are in the file.
#[test]
fn flush_on_ack_holds_the_high_watermark_at_the_recovery_point() {
    for flush_on_ack in [false, true] {
        let dir = temp_dir(&format!("hw-{flush_on_ack}"));
        let config = LogConfig {
            flush_on_ack,
            // Two of these batches per segment: the last one shares its segment with the append
            // made after the flush.
            ..small_segments(400, 4096)
        };
        let mut log = PartitionLog::open(&dir, tp(), config).unwrap();
        fill(&mut log, 5, 100);
        assert!(log.partition.segment_count() > 1, "the appends rolled");
        let visible = if flush_on_ack { 0 } else { 5 };
        assert_eq!(log.partition.high_watermark(), visible);
        let read = log.partition.read(0, 1 << 20, true).unwrap().unwrap();
        assert_eq!(read.records.is_empty(), flush_on_ack);
        log.flush().unwrap();
        assert_eq!(
            (log.recovery_point(), log.partition.high_watermark()),
            (5, 5)
        );
        // An append after the flush stays out of reads of the segment that holds it.
        fill(&mut log, 1, 10);
        let visible = if flush_on_ack { 5 } else { 6 };
        let mut read = Vec::new();
        let mut offset = 0;
        while let Ok(r) = log.partition.read(offset, 1 << 20, true).unwrap()
            && !r.records.is_empty()
        {
            let batches: Vec<_> = Batches::new(&r.records).map(|b| b.unwrap()).collect();
            offset = batches.last().unwrap().last_offset() + 1;
            read.extend(batches.iter().map(|b| b.base_offset()));
        }
        assert_eq!(read, (0..visible).collect::<Vec<i64>>());
        fs::remove_dir_all(&dir).unwrap();
    }
}

// ---- Transactions: markers, the LSO and the aborted transaction index ----------------------

fn txn_batch(producer_id: i64, epoch: i16, sequence: i32, n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|_| Record {
            value: Some(b"t".to_vec()),
            ..Record::default()
        })
        .collect();
    let header = BatchHeader {
        producer_id,
        producer_epoch: epoch,
        base_sequence: sequence,
        attributes: record_batch::TRANSACTIONAL_FLAG_MASK,
        // Markers carry the time they are written: a batch from 1970 would make them roll the
        // segment (`segment.ms`).
        base_timestamp: now_ms(),
        max_timestamp: now_ms(),
        ..BatchHeader::default()
    };
    build_batch(&header, &records)
}

fn txn_index_bytes(dir: &Path, base: i64) -> Vec<u8> {
    fs::read(dir.join(segment_file_name(base, TXN_INDEX_FILE_SUFFIX))).unwrap_or_default()
}

/// Producer 7 commits offsets 0-1 (marker 2), producer 8 opens at 3 and aborts (marker 6), with a
/// plain batch at 4 and producer 9 opening at 5 and staying open.
fn transactional_log(dir: &Path) -> PartitionLog {
    transactional_log_with(dir, LogConfig::default())
}

fn transactional_log_with(dir: &Path, config: LogConfig) -> PartitionLog {
    let mut log = PartitionLog::open(dir, tp(), config).unwrap();
    log.append_batch(&mut txn_batch(7, 0, 0, 2)).unwrap();
    assert_eq!(log.partition.last_stable_offset(), 0);
    assert_eq!(log.partition.high_watermark(), 2);
    let commit = log.append_marker(7, 0, true, 3, 0).unwrap();
    assert_eq!(commit.first_offset, 2);
    assert_eq!(log.partition.last_stable_offset(), 3);
    log.append_batch(&mut txn_batch(8, 1, 0, 1)).unwrap();
    log.append_batch(&mut batch(1, b"plain")).unwrap();
    log.append_batch(&mut txn_batch(9, 0, 0, 1)).unwrap();
    assert_eq!(log.partition.last_stable_offset(), 3);
    let abort = log.append_marker(8, 1, false, 3, 0).unwrap();
    assert_eq!(abort.first_offset, 6);
    log
}

fn expected_abort() -> AbortedTxn {
    AbortedTxn {
        producer_id: 8,
        first_offset: 3,
        last_offset: 6,
        // Producer 9's transaction, open from 5, still holds the LSO.
        last_stable_offset: 5,
    }
}

#[test]
fn markers_close_transactions_and_move_the_last_stable_offset() {
    let dir = temp_dir("txn-lso");
    let log = transactional_log(&dir);
    assert_eq!(log.partition.last_stable_offset(), 5);
    assert_eq!(log.ongoing_transactions(), vec![(5, 9)]);
    // The markers are control batches in Kafka's layout.
    let read = log.partition.read(2, 1 << 20, true).unwrap().unwrap();
    let marker = Batches::new(&read.records).next().unwrap().unwrap();
    assert_eq!(marker.attributes(), 0x30);
    assert_eq!(marker.base_sequence(), -1);
    assert_eq!(marker.producer_id(), 7);
    assert_eq!(
        record_batch::end_txn_marker(marker.bytes()),
        Some((true, 3))
    );
    let records = record_batch::decode_records(&marker).unwrap();
    assert_eq!(records[0].key.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(records[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 3][..]));
    // One entry in the index of the segment that holds the ABORT marker.
    assert_eq!(txn_index_bytes(&dir, 0), expected_abort().encode().to_vec());
    assert_eq!(
        log.partition.aborted_transactions(0, 5).unwrap(),
        vec![expected_abort()]
    );
    assert_eq!(log.partition.aborted_transactions(0, 3).unwrap(), vec![]);
    assert_eq!(log.partition.aborted_transactions(7, 9).unwrap(), vec![]);
    // read_committed stops at the LSO, read_uncommitted at the high watermark.
    let committed = log
        .partition
        .read_region_isolated(0, 1 << 20, true, true)
        .unwrap()
        .unwrap();
    let mut last = -1;
    let bytes = committed.region.unwrap().read().unwrap();
    for b in Batches::new(&bytes) {
        last = b.unwrap().last_offset();
    }
    assert_eq!((last, committed.last_stable_offset), (4, 5));
    let empty = log
        .partition
        .read_region_isolated(5, 1 << 20, true, true)
        .unwrap()
        .unwrap();
    assert!(empty.region.is_none());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn stale_markers_are_fenced() {
    let dir = temp_dir("txn-fenced");
    let mut log = transactional_log(&dir);
    assert!(matches!(
        log.append_marker(8, 0, false, 3, 0),
        Err(AppendError::Producer(ErrorCode::ProducerFenced))
    ));
    assert!(matches!(
        log.append_marker(8, 1, false, 2, 0),
        Err(AppendError::Producer(
            ErrorCode::TransactionCoordinatorFenced
        ))
    ));
    // A marker for a producer with no open transaction here is still written.
    let info = log.append_marker(42, 0, true, 3, 0).unwrap();
    assert_eq!(info.first_offset, 7);
    assert_eq!(log.partition.last_stable_offset(), 5);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn open_transactions_and_the_index_survive_clean_and_unclean_restarts() {
    let dir = temp_dir("txn-restart");
    let mut log = transactional_log(&dir);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::load(&dir, tp(), LogConfig::default(), CLEAN).unwrap();
    assert_eq!(log.partition.last_stable_offset(), 5);
    assert_eq!(log.ongoing_transactions(), vec![(5, 9)]);
    assert_eq!(txn_index_bytes(&dir, 0), expected_abort().encode().to_vec());
    drop(log);
    // As after kill -9 with no checkpoint: snapshots gone, the index torn; all is rebuilt from
    // the log.
    for s in list_snapshots(&dir).unwrap() {
        fs::remove_file(dir.join(segment_file_name(s, SNAPSHOT_FILE_SUFFIX))).unwrap();
    }
    fs::write(
        dir.join(segment_file_name(0, TXN_INDEX_FILE_SUFFIX)),
        [0u8; 20],
    )
    .unwrap();
    let mut log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
    assert_eq!(log.partition.last_stable_offset(), 5);
    assert_eq!(log.ongoing_transactions(), vec![(5, 9)]);
    assert_eq!(txn_index_bytes(&dir, 0), expected_abort().encode().to_vec());
    let producers = log.describe_producers();
    assert_eq!(producers.len(), 3);
    assert_eq!(producers[2].current_txn_start_offset, 5);
    assert_eq!(producers[1].coordinator_epoch, 3);
    // The open transaction ends after the restart.
    log.append_marker(9, 0, true, 3, 0).unwrap();
    assert_eq!(log.partition.last_stable_offset(), 8);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_marker_is_cut_and_its_transaction_stays_open() {
    let dir = temp_dir("txn-torn");
    let log = transactional_log(&dir);
    assert_eq!(log.partition.segment_count(), 1);
    let size = log.partition.size_in_bytes();
    drop(log);
    let path = dir.join(segment_file_name(0, LOG_FILE_SUFFIX));
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size - 5)
        .unwrap();
    let log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    // Producer 8's transaction is open again from 3, and its abort is in no index.
    assert_eq!(log.partition.last_stable_offset(), 3);
    assert_eq!(log.ongoing_transactions(), vec![(3, 8), (5, 9)]);
    assert!(txn_index_bytes(&dir, 0).is_empty());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn transaction_indexes_go_with_their_segments() {
    let dir = temp_dir("txn-delete");
    // One batch per segment: the ABORT marker at 6 has segment 6 to itself.
    let mut log = transactional_log_with(&dir, small_segments(1, 4096));
    let index = dir.join(segment_file_name(6, TXN_INDEX_FILE_SUFFIX));
    assert_eq!(
        fs::read(&index).unwrap(),
        expected_abort().encode().to_vec()
    );
    assert_eq!(files_with_suffix(&dir, TXN_INDEX_FILE_SUFFIX).len(), 1);
    assert_eq!(
        log.partition.aborted_transactions(3, 5).unwrap(),
        vec![expected_abort()],
        "found in a later segment than the fetch offset's"
    );
    log.append_marker(9, 0, true, 3, 0).unwrap();
    log.delete_records(-1).unwrap();
    assert!(!index.exists(), "deleted with segment 6");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn truncation_takes_the_index_entries_and_open_transactions_past_it() {
    let dir = temp_dir("txn-truncate");
    let mut log = PartitionLog::open(&dir, tp(), LogConfig::default()).unwrap();
    log.append_batch(&mut txn_batch(7, 0, 0, 2)).unwrap();
    log.append_marker(7, 0, false, 1, 0).unwrap();
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 3);
    log.append_batch(&mut txn_batch(8, 0, 0, 1)).unwrap();
    log.append_marker(8, 0, false, 1, 0).unwrap();
    log.append_batch(&mut txn_batch(9, 0, 0, 1)).unwrap();
    assert_eq!(txn_index_bytes(&dir, 0).len(), 68);
    assert_eq!(log.partition.last_stable_offset(), 5);
    // As after a failed fsync with flush_on_ack: the log is cut back to the recovery point.
    log.truncate_to_recovery_point().unwrap();
    assert_eq!(log.log_end_offset(), 3);
    let first = AbortedTxn {
        producer_id: 7,
        first_offset: 0,
        last_offset: 2,
        last_stable_offset: 3,
    };
    assert_eq!(txn_index_bytes(&dir, 0), first.encode().to_vec());
    assert_eq!(
        log.partition.aborted_transactions(0, 3).unwrap(),
        vec![first]
    );
    assert_eq!(log.ongoing_transactions(), vec![]);
    assert_eq!(log.partition.last_stable_offset(), 3);
    let _ = fs::remove_dir_all(&dir);
}
