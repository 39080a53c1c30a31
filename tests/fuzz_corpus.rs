//! Replays the saved fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets' own bodies,
//! so `cargo test` checks every input the fuzzer found interesting, without libFuzzer. The bodies
//! live in `fuzz/src/lib.rs`, included here as a module, so the fuzzer and this test can never
//! disagree on what is checked.
//!
//! Every crash the fuzzer found is also a named regression test below, with its input.
//!
//! `cargo test --test fuzz_corpus -- --ignored` (run by `scripts/fuzz --seeds`) rewrites the
//! hand-made seeds of the `record_batch`, `metadata_record` and `log_recovery` targets.

#[path = "../fuzz/src/lib.rs"]
mod targets;

use sprat::metadata::MetadataRecord;
use sprat::metadata::records::{
    config_record, feature_level_record, no_op_record, partition_change_record, partition_record,
    producer_ids_record, register_broker_record, remove_topic_record, topic_record,
};
use sprat::protocol::wire::{Encoder, Uuid};
use sprat::storage::log::{LogConfig, PartitionLog, TopicPartition};
use sprat::storage::record_batch::{self, BatchHeader, Record, build_batch};
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use targets::LogDirInput;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs `target` on every file of its corpus and reports every file that panicked.
fn replay(name: &str) {
    let (_, target) = targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a fuzz target of that name");
    let dir = corpus_dir(name);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    let failures: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| target(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} {name} inputs failed (see the panics above):\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn request_decoder_corpus() {
    replay("request_decoder");
}

#[test]
fn record_batch_corpus() {
    replay("record_batch");
}

#[test]
fn metadata_record_corpus() {
    replay("metadata_record");
}

#[test]
fn log_recovery_corpus() {
    replay("log_recovery");
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    for (name, _) in targets::TARGETS {
        assert!(corpus_dir(name).is_dir(), "no corpus for {name}");
        let binary = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        assert!(binary.is_file(), "no fuzz target for {name}");
    }
}

// ---- Regression tests: one per crash the fuzzer found -----------------------------------------
//
// The `log_recovery` inputs are laid out as `LogDirInput` documents: flags, settings, then the
// `.index`, `.timeindex` and `.snapshot` sections (2-byte length each) that the flags announce,
// then the `.log` file. The first two crashes need a clean shutdown (flag 1), after which the
// loader trusts the segment as Kafka does; trusting a corrupt file must still not mean panicking
// on it. Each was an unchecked addition or subtraction on offsets or epochs read from disk; the
// fixes use checked or saturating arithmetic.

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Found by `log_recovery` (minimized). A clean-shutdown segment of 5 bytes, `80 00 00 00 00`,
/// whose offset index has a last entry at position 4: the index passes the sanity check (the
/// position is inside the file), so the loader keeps the 4 bytes before it as if they were
/// batches and cuts only the 1 byte after. The append that follows lands at position 4, and a
/// read from offset 0 takes those 4 bytes plus the new batch as a header: base offset
/// 0x80000000_00000000 plus a negative last offset delta overflows in `segment::header_view`.
#[test]
fn log_recovery_trusted_index_entry_inside_a_torn_tail() {
    targets::log_recovery(&hex(
        "2f 40 0010 01007f00 00000000 05000100 00000004 0000 0000 8000000000",
    ));
}

/// Derived by hand from a `log_recovery` finding, whose smallest form always hit the crash above
/// first. A clean-shutdown segment of three batch headers, with an offset index entry at the
/// third (offset 5, position 122) so that the tail scan skips the second. The second header is
/// an idempotent producer's with base offset i64::MAX and last offset delta 1: rebuilding the
/// producer state (`log::replay_producer_batches`) adds them unchecked.
#[test]
fn log_recovery_trusted_producer_batch_at_the_top_of_the_offset_range() {
    let header = |base: &str, delta: &str, producer: &str| {
        format!(
            "{base} 00000031 00000000 02 00000000 0000 {delta} {} {producer}",
            "00".repeat(16)
        )
    };
    let no_producer = "ffffffffffffffff ffff ffffffff 00000000";
    let producer_0 = "0000000000000000 0000 00000000 00000000";
    targets::log_recovery(&hex(&format!(
        "07 40 0008 00000005 0000007a 0000 {} {} {}",
        header("0000000000000000", "00000000", no_producer),
        header("7fffffffffffffff", "00000001", producer_0),
        header("0000000000000005", "00000000", no_producer),
    )));
}

/// Found by `log_recovery` (run against a tree with the fixes proposed for the crashes above;
/// the smallest form is this). After an unclean shutdown, a segment whose first batch header has
/// base offset i64::MAX and last offset delta 1: recovery's header check computes the offset
/// relative to the segment base as `delta + (base - segment_base)` unchecked, in
/// `segment::check_header`, before it can refuse the batch.
#[test]
fn log_recovery_first_batch_at_the_top_of_the_offset_range() {
    targets::log_recovery(&hex(&format!(
        "00 00 7fffffffffffffff 00000031 00000000 02 00000000 0000 00000001 {}",
        "00".repeat(36)
    )));
}

/// Found by `log_recovery`, in recovery after an unclean shutdown; this is the smallest form. An
/// empty segment and a producer snapshot (flag 8; flag 16 makes the harness write the snapshot's
/// CRC-32C, so the entry is read) with one entry whose last offset is i64::MIN and whose offset
/// delta is 1: `ProducerStateManager::decode_snapshot` computes the first offset as
/// `last_offset - delta` unchecked.
#[test]
fn log_recovery_producer_snapshot_entry_below_offset_zero() {
    targets::log_recovery(&hex("18 00 0038
         0001 00000000 00000001
         0000000000000007 0000 00000000 8000000000000000 00000001 0000000000000000
         ffffffff ffffffffffffffff"));
}

/// Found by `metadata_record` (the fuzzer's input was a 2.6 KB replay; this is its essence). A
/// metadata log whose PartitionRecord carries the largest leader epoch (or partition epoch),
/// followed by a PartitionChangeRecord for the partition: `MetadataImage::apply` adds one to
/// each epoch unchecked.
#[test]
fn metadata_partition_change_at_the_largest_epoch() {
    let topic_id = Uuid([1; 16]);
    for (leader_epoch, partition_epoch) in [(i32::MAX, 0), (0, i32::MAX)] {
        let records = [
            MetadataRecord::Topic(topic_record::TopicRecord {
                name: "t".into(),
                topic_id,
            }),
            MetadataRecord::Partition(partition_record::PartitionRecord {
                topic_id,
                leader_epoch,
                partition_epoch,
                ..Default::default()
            }),
            MetadataRecord::PartitionChange(partition_change_record::PartitionChangeRecord {
                topic_id,
                leader: 1,
                ..Default::default()
            }),
        ];
        targets::metadata_record(&replay_input(&records));
    }
}

// ---- Seeds ------------------------------------------------------------------------------------

fn write_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus_dir(target);
    fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

fn record(value: &[u8]) -> Record {
    Record {
        value: Some(value.to_vec()),
        ..Record::default()
    }
}

/// A batch as a client sends it: base offset 0, timestamps set.
fn client_batch(header: BatchHeader, records: &[Record]) -> Vec<u8> {
    build_batch(
        &BatchHeader {
            base_timestamp: 1_700_000_000_000,
            max_timestamp: 1_700_000_000_000 + records.len() as i64,
            ..header
        },
        records,
    )
}

fn rich_records() -> Vec<Record> {
    vec![
        record(b"v0"),
        Record {
            timestamp_delta: 1,
            key: Some(b"key".to_vec()),
            value: None,
            headers: vec![("h".into(), Some(b"hv".to_vec())), ("n".into(), None)],
        },
        Record {
            timestamp_delta: 2,
            key: Some(Vec::new()),
            value: Some(vec![0xff; 40]),
            headers: Vec::new(),
        },
    ]
}

fn record_batch_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let plain = client_batch(BatchHeader::default(), &[record(b"hello")]);
    let rich = client_batch(BatchHeader::default(), &rich_records());
    let idempotent = client_batch(
        BatchHeader {
            producer_id: 1000,
            producer_epoch: 0,
            base_sequence: 5,
            ..BatchHeader::default()
        },
        &rich_records(),
    );
    let transactional = client_batch(
        BatchHeader {
            attributes: record_batch::TRANSACTIONAL_FLAG_MASK,
            producer_id: 1000,
            producer_epoch: 3,
            base_sequence: 0,
            ..BatchHeader::default()
        },
        &[record(b"txn")],
    );
    let control = client_batch(
        BatchHeader {
            attributes: record_batch::CONTROL_FLAG_MASK | record_batch::TRANSACTIONAL_FLAG_MASK,
            producer_id: 1000,
            ..BatchHeader::default()
        },
        &[Record {
            key: Some(vec![0, 0, 0, 1]),
            value: Some(vec![0, 0, 0, 0, 0, 0]),
            ..Record::default()
        }],
    );
    // Codec 4 (zstd) over bytes that are not zstd: the broker stores it opaque.
    let mut compressed = client_batch(
        BatchHeader {
            attributes: 4,
            ..BatchHeader::default()
        },
        &[record(b"not really compressed")],
    );
    let mut bad_crc = plain.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let mut magic_1 = plain.clone();
    magic_1[record_batch::MAGIC_OFFSET] = 1;
    let mut offset_7 = plain.clone();
    record_batch::set_base_offset(&mut offset_7, 7);
    let two = [plain.clone(), rich.clone()].concat();
    let truncated = rich[..rich.len() - 3].to_vec();
    targets::fix_batch_crcs(&mut compressed);
    vec![
        ("plain", plain),
        ("rich", rich),
        ("idempotent", idempotent),
        ("transactional", transactional),
        ("control", control),
        ("compressed", compressed),
        ("bad-crc", bad_crc),
        ("magic-1", magic_1),
        ("base-offset-7", offset_7),
        ("two-batches", two),
        ("truncated", truncated),
    ]
}

/// A metadata record value in any version: frame version 1, type, version, body.
fn framed(record_type: u16, version: i16, body: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uvarint(1);
    e.uvarint(u32::from(record_type));
    e.uvarint(version as u32);
    body(&mut e);
    e.into_inner()
}

fn metadata_record_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let topic_id = Uuid([7; 16]);
    let topic = topic_record::TopicRecord {
        name: "orders".into(),
        topic_id,
    };
    let partition = partition_record::PartitionRecord {
        partition_id: 0,
        topic_id,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 3,
        partition_epoch: 4,
        directories: vec![Uuid([9; 16])],
        eligible_leader_replicas: Some(vec![1]),
        last_known_elr: Some(vec![]),
        ..Default::default()
    };
    let change = partition_change_record::PartitionChangeRecord {
        partition_id: 0,
        topic_id,
        isr: Some(vec![1]),
        leader: 1,
        replicas: Some(vec![1]),
        directories: Some(vec![Uuid([9; 16])]),
        eligible_leader_replicas: Some(vec![1]),
        ..Default::default()
    };
    let config = config_record::ConfigRecord {
        resource_type: 2,
        resource_name: "orders".into(),
        name: "retention.ms".into(),
        value: Some("60000".into()),
    };
    let broker = register_broker_record::RegisterBrokerRecord {
        broker_id: 1,
        broker_epoch: 5,
        end_points: vec![register_broker_record::BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9092,
            security_protocol: 0,
        }],
        rack: Some("r1".into()),
        log_dirs: vec![Uuid([3; 16])],
        ..Default::default()
    };
    let records = [
        MetadataRecord::Topic(topic.clone()),
        MetadataRecord::Partition(partition.clone()),
        MetadataRecord::PartitionChange(change.clone()),
        MetadataRecord::Config(config.clone()),
        MetadataRecord::Config(config_record::ConfigRecord {
            value: None,
            ..config.clone()
        }),
        MetadataRecord::FeatureLevel(feature_level_record::FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 21,
        }),
        MetadataRecord::ProducerIds(producer_ids_record::ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 5,
            next_producer_id: 2000,
        }),
        MetadataRecord::RemoveTopic(remove_topic_record::RemoveTopicRecord { topic_id }),
    ];
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("topic", records[0].encode()),
        ("partition-v0", records[1].encode()),
        ("change-v0", records[2].encode()),
        ("config", records[3].encode()),
        ("config-delete", records[4].encode()),
        ("feature-level", records[5].encode()),
        ("producer-ids", records[6].encode()),
        ("remove-topic", records[7].encode()),
        ("no-op", framed(no_op_record::RECORD_TYPE, 0, |_| {})),
    ];
    for (name, version) in [("partition-v1", 1), ("partition-v2", 2)] {
        let bytes = framed(partition_record::RECORD_TYPE, version, |e| {
            partition.encode(e, version)
        });
        seeds.push((name, bytes));
    }
    for (name, version) in [("change-v1", 1), ("change-v2", 2)] {
        let bytes = framed(partition_change_record::RECORD_TYPE, version, |e| {
            change.encode(e, version)
        });
        seeds.push((name, bytes));
    }
    for (name, version) in [("broker-v0", 0), ("broker-v3", 3)] {
        let bytes = framed(register_broker_record::RECORD_TYPE, version, |e| {
            broker.encode(e, version)
        });
        seeds.push((name, bytes));
    }
    seeds.push(("replay", replay_input(&records)));
    seeds
}

/// A `metadata_record` input that replays `records` in order: each with a 2-byte length.
fn replay_input(records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let value = r.encode();
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(&value);
    }
    out
}

/// The files of a log written by sprat itself: `batches` appended, then a clean close.
fn written_log(name: &str, base_offset: i64, batches: &[Vec<u8>], interval: u64) -> LogDirInput {
    let dir = std::env::temp_dir().join(format!("sprat-fuzz-seed-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let config = LogConfig {
        index_interval_bytes: interval,
        max_index_size: 4096,
        ..LogConfig::default()
    };
    let options = sprat::storage::log::LoadOptions {
        log_start_offset: Some(base_offset),
        ..Default::default()
    };
    let mut log =
        PartitionLog::load(&dir, TopicPartition::new("seed", 0), config, options).unwrap();
    for batch in batches {
        let mut batch = batch.clone();
        log.append_batch(&mut batch).unwrap();
    }
    log.close().unwrap();
    drop(log);
    let file = |suffix: &str| fs::read(dir.join(format!("{base_offset:020}{suffix}"))).ok();
    let input = LogDirInput {
        clean_shutdown: true,
        append: true,
        base_offset,
        index_interval_bytes: interval,
        max_index_size: 4096,
        offset_index: file(".index"),
        time_index: file(".timeindex"),
        producer_snapshot: newest_snapshot(&dir),
        log: file(".log").unwrap(),
    };
    fs::remove_dir_all(&dir).unwrap();
    input
}

/// The newest producer snapshot in `dir` (the one written at close).
fn newest_snapshot(dir: &Path) -> Option<Vec<u8>> {
    let newest: i64 = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".snapshot")?.parse().ok())
        .max()?;
    fs::read(dir.join(format!("{newest:020}.snapshot"))).ok()
}

fn log_recovery_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let batches: Vec<Vec<u8>> = (0..6)
        .map(|i| client_batch(BatchHeader::default(), &rich_records()[..1 + i % 3]))
        .collect();
    let idempotent: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            client_batch(
                BatchHeader {
                    producer_id: 1000,
                    producer_epoch: 0,
                    base_sequence: i * 2,
                    ..BatchHeader::default()
                },
                &rich_records()[..2],
            )
        })
        .collect();
    let clean = written_log("clean", 0, &batches, 0);
    let clean_1000 = written_log("clean-1000", 1000, &batches, 100);
    let producers = written_log("producers", 0, &idempotent, 0);
    let unclean = |input: &LogDirInput| LogDirInput {
        clean_shutdown: false,
        offset_index: None,
        time_index: None,
        producer_snapshot: None,
        log: input.log.clone(),
        ..*input
    };
    let torn = LogDirInput {
        log: clean.log[..clean.log.len() - 10].to_vec(),
        ..unclean(&clean)
    };
    let mut corrupt_middle = unclean(&clean);
    let middle = corrupt_middle.log.len() / 2;
    corrupt_middle.log[middle] ^= 0x55;
    let mut gap = unclean(&clean);
    let second = record_batch::batch_size(&gap.log).unwrap().unwrap();
    record_batch::set_base_offset(&mut gap.log[second..], 40);
    let empty = LogDirInput {
        log: Vec::new(),
        ..unclean(&clean)
    };
    let below_base = LogDirInput {
        log: clean.log.clone(),
        ..unclean(&clean_1000)
    };
    let fix_crcs = |input: LogDirInput| {
        let mut bytes = input.to_bytes();
        bytes[0] |= 16;
        bytes
    };
    vec![
        ("clean", clean.to_bytes()),
        ("clean-base-1000", clean_1000.to_bytes()),
        ("clean-producers", producers.to_bytes()),
        (
            "producers-snapshot-fix-crcs",
            fix_crcs(LogDirInput {
                clean_shutdown: false,
                ..producers
            }),
        ),
        ("unclean", unclean(&clean).to_bytes()),
        ("unclean-base-1000", unclean(&clean_1000).to_bytes()),
        ("torn-tail", torn.to_bytes()),
        ("corrupt-middle", corrupt_middle.to_bytes()),
        ("offset-gap", gap.to_bytes()),
        ("offset-gap-fix-crcs", fix_crcs(gap)),
        ("empty", empty.to_bytes()),
        ("below-base", below_base.to_bytes()),
    ]
}

#[test]
#[ignore = "writes files; run by scripts/fuzz --seeds"]
fn write_seed_corpora() {
    write_seeds("record_batch", &record_batch_seeds());
    write_seeds("metadata_record", &metadata_record_seeds());
    write_seeds("log_recovery", &log_recovery_seeds());
}

#[test]
fn seeds_pass_their_targets() {
    for seed in record_batch_seeds() {
        targets::record_batch(&seed.1);
    }
    for seed in metadata_record_seeds() {
        targets::metadata_record(&seed.1);
    }
    for seed in log_recovery_seeds() {
        targets::log_recovery(&seed.1);
    }
}
