//! The storage engine against the real binary: segment rolls and Kafka's index files, retention,
//! DeleteRecords, recovery after torn writes and damaged indexes (after `kill -9`), checkpoint
//! files, the clean shutdown marker, and the flush policy.

use crate::harness::{Client, Rng, TestBroker};
use sprat::protocol::messages::{
    create_topics as ct, delete_records as dr, fetch, list_offsets as lo, produce,
};
use sprat::storage::record_batch::{BatchHeader, Batches, Record, build_batch};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const POLICY_VIOLATION: i16 = 44;

pub(crate) const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

// ---------------------------------------------------------------------------------------------
// Protocol helpers
// ---------------------------------------------------------------------------------------------

pub(crate) fn create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let error_code = try_create_topic(client, name, partitions, configs);
    assert_eq!(error_code, NONE, "creating {name}");
}

/// CreateTopics v7 of one topic; returns its error code.
pub(crate) fn try_create_topic(
    client: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let request = ct::CreateTopicsRequest {
        topics: vec![ct::CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            configs: configs
                .iter()
                .map(|(k, v)| ct::CreatableTopicConfig {
                    name: k.to_string(),
                    value: Some(v.to_string()),
                })
                .collect(),
            ..ct::CreatableTopic::default()
        }],
        timeout_ms: 30000,
        validate_only: false,
    };
    let response = client.call(
        ct::API_KEY,
        7,
        |e| request.encode(e, 7),
        ct::CreateTopicsResponse::decode,
    );
    response.topics[0].error_code
}

/// Produces one batch with the given acks; returns (error, base offset).
pub(crate) fn produce_with(
    client: &mut Client,
    topic: &str,
    partition: i32,
    batch: &[u8],
    acks: i16,
) -> (i16, i64) {
    let request = produce_request(topic, partition, batch, acks);
    let response = client.call(
        produce::API_KEY,
        9,
        |e| request.encode(e, 9),
        produce::ProduceResponse::decode,
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// A produce request of one batch to one partition.
pub(crate) fn produce_request(
    topic: &str,
    partition: i32,
    batch: &[u8],
    acks: i16,
) -> produce::ProduceRequest {
    produce::ProduceRequest {
        transactional_id: None,
        acks,
        timeout_ms: 30000,
        topic_data: vec![produce::TopicProduceData {
            name: topic.into(),
            partition_data: vec![produce::PartitionProduceData {
                index: partition,
                records: Some(batch.to_vec()),
            }],
        }],
    }
}

/// Produces one batch (acks=-1) and checks that it landed at `base_offset`.
fn produce_at(client: &mut Client, topic: &str, batch: &[u8], base_offset: i64) {
    assert_eq!(
        produce_with(client, topic, 0, batch, -1),
        (NONE, base_offset),
        "produce to {topic}"
    );
}

/// Fetch v12 of one partition from `offset`, without waiting.
pub(crate) fn fetch(
    client: &mut Client,
    topic: &str,
    offset: i64,
    max_bytes: i32,
) -> fetch::PartitionData {
    let request = fetch_request(topic, offset, max_bytes);
    let response = client.call(
        fetch::API_KEY,
        12,
        |e| request.encode(e, 12),
        fetch::FetchResponse::decode,
    );
    response.responses[0].partitions[0].clone()
}

/// A fetch of partition 0 of `topic` from `offset` that does not wait for data.
pub(crate) fn fetch_request(topic: &str, offset: i64, max_bytes: i32) -> fetch::FetchRequest {
    fetch::FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: i32::MAX,
        topics: vec![fetch::FetchTopic {
            topic: topic.into(),
            partitions: vec![fetch::FetchPartition {
                partition: 0,
                current_leader_epoch: -1,
                fetch_offset: offset,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: max_bytes,
                ..fetch::FetchPartition::default()
            }],
            ..fetch::FetchTopic::default()
        }],
        ..fetch::FetchRequest::default()
    }
}

pub(crate) fn fetched(client: &mut Client, topic: &str, offset: i64, max_bytes: i32) -> Vec<u8> {
    let data = fetch(client, topic, offset, max_bytes);
    assert_eq!(data.error_code, NONE, "fetch {topic} at {offset}");
    data.records.unwrap_or_default()
}

/// ListOffsets v9: (error, offset, timestamp).
pub(crate) fn list_offsets(client: &mut Client, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let request = lo::ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: vec![lo::ListOffsetsTopic {
            name: topic.into(),
            partitions: vec![lo::ListOffsetsPartition {
                partition_index: 0,
                current_leader_epoch: -1,
                timestamp,
                max_num_offsets: 1,
            }],
        }],
    };
    let response = client.call(
        lo::API_KEY,
        9,
        |e| request.encode(e, 9),
        lo::ListOffsetsResponse::decode,
    );
    let p = &response.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

fn delete_records(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let request = dr::DeleteRecordsRequest {
        topics: vec![dr::DeleteRecordsTopic {
            name: topic.into(),
            partitions: vec![dr::DeleteRecordsPartition {
                partition_index: partition,
                offset,
            }],
        }],
        timeout_ms: 30000,
    };
    let response = client.call(
        dr::API_KEY,
        version,
        |e| request.encode(e, version),
        dr::DeleteRecordsResponse::decode,
    );
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name, topic);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.partition_index, partition);
    (p.error_code, p.low_watermark)
}

// ---------------------------------------------------------------------------------------------
// Batch, file and process helpers
// ---------------------------------------------------------------------------------------------

/// A CreateTime batch of `records` records of `value_len` bytes, timestamps `timestamp` on.
pub(crate) fn batch(records: usize, value_len: usize, timestamp: i64, fill: u8) -> Vec<u8> {
    let header = BatchHeader {
        base_timestamp: timestamp,
        max_timestamp: timestamp + records as i64 - 1,
        ..BatchHeader::default()
    };
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            timestamp_delta: i as i64,
            value: Some(vec![fill; value_len]),
            ..Record::default()
        })
        .collect();
    build_batch(&header, &records)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub(crate) fn partition_dir(broker: &TestBroker, topic: &str, partition: i32) -> PathBuf {
    broker.log_dir.join(format!("{topic}-{partition}"))
}

pub(crate) fn segment_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}{suffix}"))
}

/// The base offsets of a partition's segments, from its `.log` files.
fn segment_bases(dir: &Path) -> Vec<i64> {
    let mut bases: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    bases
}

fn names_ending_with(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// An offset index entry: (relative offset, position).
type OffsetEntry = (u32, u32);
/// A time index entry: (timestamp, relative offset).
type TimeEntry = (i64, u32);

/// Decodes a `.index` file as Kafka's `OffsetIndex` lays it out.
fn decode_offset_index(path: &Path) -> Vec<OffsetEntry> {
    let bytes = fs::read(path).unwrap();
    assert_eq!(bytes.len() % 8, 0, "{}", path.display());
    bytes
        .chunks_exact(8)
        .map(|e| {
            (
                u32::from_be_bytes(e[..4].try_into().unwrap()),
                u32::from_be_bytes(e[4..].try_into().unwrap()),
            )
        })
        .collect()
}

/// Decodes a `.timeindex` file as Kafka's `TimeIndex` lays it out.
fn decode_time_index(path: &Path) -> Vec<TimeEntry> {
    let bytes = fs::read(path).unwrap();
    assert_eq!(bytes.len() % 12, 0, "{}", path.display());
    bytes
        .chunks_exact(12)
        .map(|e| {
            (
                i64::from_be_bytes(e[..8].try_into().unwrap()),
                u32::from_be_bytes(e[8..].try_into().unwrap()),
            )
        })
        .collect()
}

/// (position, last offset, max timestamp, size) of every batch in a segment file.
fn batches_in(path: &Path) -> Vec<(u32, i64, i64, usize)> {
    let bytes = fs::read(path).unwrap();
    let mut position = 0;
    Batches::new(&bytes)
        .map(|b| {
            let b = b.unwrap();
            let entry = (
                position as u32,
                b.last_offset(),
                b.max_timestamp(),
                b.size(),
            );
            position += b.size();
            entry
        })
        .collect()
}

/// The entries Kafka's `LogSegment.append` writes for these batches: an offset index entry for
/// a batch when more than `interval` bytes were appended since the last entry, with a time index
/// entry when the largest timestamp grew; and, if the segment is sealed, the largest timestamp.
fn expected_index(
    batches: &[(u32, i64, i64, usize)],
    base: i64,
    interval: usize,
    sealed: bool,
) -> (Vec<OffsetEntry>, Vec<TimeEntry>) {
    let (mut offsets, mut times) = (Vec::new(), Vec::<TimeEntry>::new());
    let mut since = 0;
    let mut max = (-1i64, 0u32);
    for &(position, last_offset, max_timestamp, size) in batches {
        let relative = (last_offset - base) as u32;
        if max_timestamp > max.0 {
            max = (max_timestamp, relative);
        }
        if since > interval {
            offsets.push((relative, position));
            if times.last().is_none_or(|t| max.0 > t.0) {
                times.push(max);
            }
            since = 0;
        }
        since += size;
    }
    if sealed && max.0 >= 0 && times.last().is_none_or(|t| max.0 > t.0) {
        times.push(max);
    }
    (offsets, times)
}

/// The broker's process id, found by its `server.properties` path, which is unique per test.
pub(crate) fn broker_pid(broker: &TestBroker) -> u32 {
    let config = broker.dir.join("server.properties");
    let needle = config.to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc").unwrap() {
        let Ok(pid) = entry.unwrap().file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes())
        {
            return pid;
        }
    }
    panic!("no broker process runs {needle}");
}

/// `kill -9` the broker and wait until it is gone, leaving its files as the crash left them.
pub(crate) fn kill_9(broker: &TestBroker) {
    let pid = broker_pid(broker);
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Dead means gone or a zombie (the harness reaps its child later).
        let state = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim().to_string()));
        if state.as_deref().is_none_or(|s| s.starts_with('Z')) {
            return;
        }
        assert!(Instant::now() < deadline, "broker {pid} did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `check` until it is true or ten seconds pass.
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An offset checkpoint file's entries for `topic`, as (partition, offset), or `None` when the
/// file is missing.
fn checkpoint_entries(path: &Path, topic: &str) -> Option<Vec<(i32, i64)>> {
    let text = fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("0"),
        "version line of {}",
        path.display()
    );
    let count: usize = lines.next().unwrap().parse().unwrap();
    let all: Vec<Vec<&str>> = lines.map(|l| l.split(' ').collect()).collect();
    assert_eq!(all.len(), count, "{text}");
    let mut entries: Vec<(i32, i64)> = all
        .iter()
        .filter(|parts| parts[0] == topic)
        .map(|parts| (parts[1].parse().unwrap(), parts[2].parse().unwrap()))
        .collect();
    entries.sort_unstable();
    Some(entries)
}

// ---------------------------------------------------------------------------------------------
// Segments and indexes
// ---------------------------------------------------------------------------------------------

/// Segments roll at `segment.bytes`; sealed segments have trimmed indexes holding exactly the
/// entries Kafka would write (decoded here from the files), the active one's are preallocated to
/// `log.index.size.max.bytes`; every offset is fetched at, below and between index entries, a
/// fetch from the middle of the three segments returns the right batches, and ListOffsets finds
/// every timestamp.
#[test]
fn segments_roll_with_kafka_index_files() {
    let broker = TestBroker::start_with("segments", |_| {}, &["log.index.size.max.bytes=4096"]);
    let mut client = broker.connect();
    let base_ts = 1_700_000_000_000;
    let batches: Vec<Vec<u8>> = (0..25)
        .map(|i| batch(2, 300, base_ts + 1000 * i, i as u8))
        .collect();
    let size = batches[0].len();
    let interval = 2 * size;
    create_topic(
        &mut client,
        "rolled",
        1,
        &[
            ("segment.bytes", &(10 * size).to_string()),
            ("index.interval.bytes", &interval.to_string()),
        ],
    );
    for (i, b) in batches.iter().enumerate() {
        produce_at(&mut client, "rolled", b, 2 * i as i64);
    }
    let dir = partition_dir(&broker, "rolled", 0);
    assert_eq!(segment_bases(&dir), vec![0, 20, 40]);
    for (base, sealed) in [(0, true), (20, true), (40, false)] {
        let log = segment_file(&dir, base, ".log");
        let in_file = batches_in(&log);
        let (offsets, times) = expected_index(&in_file, base, interval, sealed);
        let index = segment_file(&dir, base, ".index");
        let time_index = segment_file(&dir, base, ".timeindex");
        if sealed {
            assert_eq!(in_file.len(), 10, "segment {base} holds 10 batches");
            assert_eq!(offsets.len(), 3, "entries at the 4th, 7th and 10th batch");
            assert_eq!(decode_offset_index(&index), offsets, "{}", index.display());
            assert_eq!(
                decode_time_index(&time_index),
                times,
                "{}",
                time_index.display()
            );
        } else {
            assert_eq!(fs::metadata(&index).unwrap().len(), 4096, "preallocated");
            assert_eq!(
                fs::metadata(&time_index).unwrap().len(),
                4092,
                "341 whole entries"
            );
            let written = &decode_offset_index(&index)[..offsets.len()];
            assert_eq!(written, offsets, "active offset index");
        }
    }
    // One batch at a time, from every offset: first and last of each segment, index entries
    // (relative offsets 7, 13, 19) and everything between.
    for offset in 0..50 {
        let one = fetched(&mut client, "rolled", offset, 1);
        let got = Batches::new(&one).next().unwrap().unwrap();
        assert_eq!(
            got.base_offset(),
            offset - offset % 2,
            "the batch holding {offset}"
        );
        assert_eq!(got.records_bytes(), &batches[offset as usize / 2][61..]);
    }
    let middle = fetched(&mut client, "rolled", 27, i32::MAX);
    let bases: Vec<i64> = Batches::new(&middle)
        .map(|b| b.unwrap().base_offset())
        .collect();
    assert_eq!(
        bases,
        vec![26, 28, 30, 32, 34, 36, 38],
        "to the end of the middle segment"
    );
    for i in 0..25 {
        let ts = base_ts + 1000 * i;
        assert_eq!(list_offsets(&mut client, "rolled", ts), (NONE, 2 * i, ts));
        assert_eq!(
            list_offsets(&mut client, "rolled", ts + 1),
            (NONE, 2 * i + 1, ts + 1)
        );
    }
    assert_eq!(list_offsets(&mut client, "rolled", base_ts + 25_000).1, -1);
}

// ---------------------------------------------------------------------------------------------
// Retention and DeleteRecords
// ---------------------------------------------------------------------------------------------

/// Time retention deletes whole segments whose newest record is older than `retention.ms`,
/// advances the log start offset, and leaves no `.deleted` files; fetching below it is
/// OFFSET_OUT_OF_RANGE and ListOffsets earliest reports it.
#[test]
fn retention_by_time_deletes_whole_old_segments() {
    let broker = TestBroker::start_with(
        "retention-time",
        |_| {},
        &["log.retention.check.interval.ms=100"],
    );
    let mut client = broker.connect();
    let size = batch(1, 200, 0, 0).len();
    create_topic(
        &mut client,
        "aged",
        1,
        &[
            ("segment.bytes", &(3 * size).to_string()),
            ("retention.ms", "600000"),
        ],
    );
    let hour_ago = now_ms() - 3_600_000;
    let mut batches = Vec::new();
    for i in 0..10 {
        // Offsets 0-5 are an hour old, 6-9 are new: segments [0,3) and [3,6) expire.
        let ts = if i < 6 { hour_ago + i } else { now_ms() };
        let b = batch(1, 200, ts, i as u8);
        produce_at(&mut client, "aged", &b, i);
        batches.push(b);
    }
    let dir = partition_dir(&broker, "aged", 0);
    // The log start offset moves before the old files are unlinked: wait for both.
    eventually("retention to delete two segments", || {
        list_offsets(&mut client, "aged", EARLIEST).1 == 6 && segment_bases(&dir) == vec![6, 9]
    });
    assert!(names_ending_with(&dir, ".deleted").is_empty());
    assert!(!segment_file(&dir, 0, ".index").exists());
    let below = fetch(&mut client, "aged", 5, 1 << 20);
    assert_eq!(below.error_code, OFFSET_OUT_OF_RANGE);
    let at = fetch(&mut client, "aged", 6, 1 << 20);
    assert_eq!((at.error_code, at.log_start_offset), (NONE, 6));
    assert_eq!(list_offsets(&mut client, "aged", LATEST).1, 10);
    let logged = broker.drain_log().join("\n");
    assert!(logged.contains("by retention time"), "{logged}");
}

/// Size retention: the topic's `retention.bytes` overrides `log.retention.bytes`; the oldest
/// segments go while the log exceeds the limit by at least their size.
#[test]
fn retention_by_size_deletes_the_oldest_segments() {
    let broker = TestBroker::start_with(
        "retention-size",
        |_| {},
        &[
            "log.retention.check.interval.ms=100",
            "log.retention.bytes=1",
        ],
    );
    let mut client = broker.connect();
    let size = batch(1, 200, 0, 0).len();
    let segment_bytes = (3 * size).to_string();
    let retention_bytes = (4 * size).to_string();
    create_topic(
        &mut client,
        "sized",
        1,
        &[
            ("segment.bytes", &segment_bytes),
            ("retention.bytes", &retention_bytes),
        ],
    );
    create_topic(
        &mut client,
        "unlimited",
        1,
        &[("segment.bytes", &segment_bytes), ("retention.bytes", "-1")],
    );
    let now = now_ms();
    for i in 0..10 {
        produce_at(&mut client, "sized", &batch(1, 200, now, 1), i);
        produce_at(&mut client, "unlimited", &batch(1, 200, now, 1), i);
    }
    // 10 batches, at most 4: [0,3) and [3,6) go, [6,9) would leave too little.
    eventually("size retention", || {
        list_offsets(&mut client, "sized", EARLIEST).1 == 6
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        segment_bases(&partition_dir(&broker, "sized", 0)),
        vec![6, 9]
    );
    assert_eq!(list_offsets(&mut client, "unlimited", EARLIEST).1, 0);
    assert_eq!(
        segment_bases(&partition_dir(&broker, "unlimited", 0)),
        vec![0, 3, 6, 9]
    );
    assert_eq!(
        fetch(&mut client, "sized", 0, 1 << 20).error_code,
        OFFSET_OUT_OF_RANGE
    );
}

/// DeleteRecords v0-2: the log start offset moves (never back), whole segments below it are
/// deleted, fetches below it fail, -1 means the high watermark, offsets past it fail, unknown
/// partitions fail, and the move survives `kill -9`.
#[test]
fn delete_records_moves_the_log_start_offset() {
    let mut broker = TestBroker::start("delete-records");
    let mut client = broker.connect();
    let size = batch(1, 100, 0, 0).len();
    for version in 0..=2 {
        let topic = format!("dr-v{version}");
        create_topic(
            &mut client,
            &topic,
            1,
            &[("segment.bytes", &(3 * size).to_string())],
        );
        for i in 0..10 {
            produce_at(&mut client, &topic, &batch(1, 100, 1000 + i, i as u8), i);
        }
        let dr = |client: &mut Client, offset| delete_records(client, version, &topic, 0, offset);
        assert_eq!(dr(&mut client, 4), (NONE, 4), "v{version}");
        assert_eq!(dr(&mut client, 2), (NONE, 4), "v{version}: never backwards");
        assert_eq!(dr(&mut client, 11), (OFFSET_OUT_OF_RANGE, -1), "v{version}");
        assert_eq!(dr(&mut client, -7), (OFFSET_OUT_OF_RANGE, -1), "v{version}");
        assert_eq!(
            delete_records(&mut client, version, &topic, 3, 1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            "v{version}"
        );
        assert_eq!(
            delete_records(&mut client, version, "no-such-topic", 0, 1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            "v{version}"
        );
        assert_eq!(list_offsets(&mut client, &topic, EARLIEST).1, 4);
        assert_eq!(
            fetch(&mut client, &topic, 3, 1000).error_code,
            OFFSET_OUT_OF_RANGE
        );
        let at = fetch(&mut client, &topic, 4, 1000);
        assert_eq!((at.error_code, at.log_start_offset), (NONE, 4));
        assert_eq!(
            segment_bases(&partition_dir(&broker, &topic, 0)),
            vec![3, 6, 9],
            "v{version}: [0,3) deleted"
        );
        assert_eq!(
            list_offsets(&mut client, &topic, 1000).1,
            4,
            "by timestamp, from the start"
        );
    }
    assert_eq!(delete_records(&mut client, 2, "dr-v2", 0, -1), (NONE, 10));
    create_topic(
        &mut client,
        "compacted",
        1,
        &[("cleanup.policy", "compact")],
    );
    // A compacted topic takes only records with keys, as in Kafka.
    let keyed = build_batch(
        &BatchHeader::default(),
        &[Record {
            key: Some(b"k".to_vec()),
            value: Some(vec![0; 10]),
            ..Record::default()
        }],
    );
    assert_eq!(
        produce_with(&mut client, "compacted", 0, &batch(1, 10, 0, 0), -1).0,
        87,
        "INVALID_RECORD: no key"
    );
    produce_at(&mut client, "compacted", &keyed, 0);
    assert_eq!(
        delete_records(&mut client, 2, "compacted", 0, 1),
        (POLICY_VIOLATION, -1)
    );
    drop(client);
    // The log start offset checkpoint is written before DeleteRecords answers.
    kill_9(&broker);
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(list_offsets(&mut client, "dr-v0", EARLIEST).1, 4);
    assert_eq!(list_offsets(&mut client, "dr-v2", EARLIEST).1, 10);
    assert_eq!(
        fetch(&mut client, "dr-v1", 3, 1000).error_code,
        OFFSET_OUT_OF_RANGE
    );
    produce_at(&mut client, "dr-v2", &batch(1, 10, 0, 0), 10);
}

// ---------------------------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------------------------

/// `kill -9`, then the tail of the segment is torn at a seeded random position (cut there, or
/// overwritten from there with random bytes); on restart exactly the whole batches before the
/// damage survive, the cut is logged, and appends continue at the next offset.
#[test]
fn torn_writes_at_random_positions_keep_exactly_the_valid_prefix() {
    let mut rng = Rng::new("torn_writes_at_random_positions_keep_exactly_the_valid_prefix");
    let mut broker = TestBroker::start("torn");
    let mut client = broker.connect();
    create_topic(&mut client, "torn", 1, &[]);
    let path = segment_file(&partition_dir(&broker, "torn", 0), 0, ".log");
    let mut next = 0i64;
    for round in 0..6 {
        for _ in 0..rng.range(3, 12) {
            let records = rng.range(1, 5) as usize;
            let b = batch(records, rng.range(1, 400) as usize, now_ms(), round as u8);
            assert_eq!(produce_with(&mut client, "torn", 0, &b, 1), (NONE, next));
            next += records as i64;
        }
        drop(client);
        kill_9(&broker);
        let original = fs::read(&path).unwrap();
        let position = rng.range(0, original.len() as i64 + 1) as usize;
        let mut damaged = original[..position].to_vec();
        if round % 2 == 1 {
            let garbage = original.len() - position + rng.range(0, 100) as usize;
            damaged.extend(rng.bytes(garbage));
        }
        fs::write(&path, &damaged).unwrap();
        // The valid prefix: the batches that end at or before the damage.
        let mut valid_end = 0;
        next = 0;
        for b in Batches::new(&original) {
            let b = b.unwrap();
            if valid_end + b.size() > position {
                break;
            }
            valid_end += b.size();
            next = b.last_offset() + 1;
        }
        broker.restart();
        client = broker.connect();
        let what = format!("round {round}: damage at {position} of {}", original.len());
        assert_eq!(list_offsets(&mut client, "torn", LATEST).1, next, "{what}");
        assert_eq!(fs::read(&path).unwrap(), original[..valid_end], "{what}");
        if next > 0 {
            let all = fetched(&mut client, "torn", 0, i32::MAX);
            assert_eq!(all, original[..valid_end], "{what}");
        }
    }
    let b = batch(1, 10, now_ms(), 0);
    assert_eq!(produce_with(&mut client, "torn", 0, &b, -1), (NONE, next));
}

/// Acknowledged records survive `kill -9` in the middle of a produce load.
#[test]
fn kill_9_under_load_loses_no_acknowledged_record() {
    let mut broker = TestBroker::start("kill-under-load");
    let mut client = broker.connect();
    create_topic(&mut client, "load", 1, &[("segment.bytes", "20000")]);
    let addr = broker.addr;
    let producer = std::thread::spawn(move || {
        let mut client = Client::connect(addr);
        let mut acked = Vec::new();
        for i in 0..100_000u32 {
            let b = batch(3, 300, 0, i as u8);
            // After the kill the connection breaks: stop there.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                produce_with(&mut client, "load", 0, &b, 1)
            }));
            match result {
                Ok((NONE, offset)) => acked.push((offset, i as u8)),
                _ => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(400));
    kill_9(&broker);
    let acked = producer.join().unwrap();
    assert!(acked.len() > 10, "the load ran");
    broker.restart();
    let mut client = broker.connect();
    let end = list_offsets(&mut client, "load", LATEST).1;
    let (last, _) = *acked.last().unwrap();
    assert!(
        end > last,
        "log end {end} covers the last acknowledged offset {last}"
    );
    for &(offset, fill) in acked.iter().step_by(7).chain(acked.last()) {
        let one = fetched(&mut client, "load", offset, 1);
        let b = Batches::new(&one).next().unwrap().unwrap();
        assert_eq!((b.base_offset(), b.records_bytes()[10]), (offset, fill));
    }
}

/// Deleted and corrupt indexes are rebuilt at start-up, identical to what was written.
#[test]
fn deleted_or_corrupt_indexes_are_rebuilt() {
    let mut broker = TestBroker::start("rebuild-index");
    let mut client = broker.connect();
    let size = batch(1, 200, 0, 0).len();
    create_topic(
        &mut client,
        "indexed",
        1,
        &[
            ("segment.bytes", &(10 * size).to_string()),
            ("index.interval.bytes", &size.to_string()),
        ],
    );
    let batches: Vec<Vec<u8>> = (0..25)
        .map(|i| batch(1, 200, 5000 + 10 * i, i as u8))
        .collect();
    for (i, b) in batches.iter().enumerate() {
        produce_at(&mut client, "indexed", b, i as i64);
    }
    drop(client);
    assert!(broker.terminate());
    let dir = partition_dir(&broker, "indexed", 0);
    let files = [
        (0, ".index"),
        (0, ".timeindex"),
        (10, ".index"),
        (20, ".timeindex"),
    ];
    let originals: Vec<Vec<u8>> = files
        .iter()
        .map(|&(b, s)| fs::read(segment_file(&dir, b, s)).unwrap())
        .collect();
    fs::remove_file(segment_file(&dir, 0, ".index")).unwrap();
    fs::remove_file(segment_file(&dir, 0, ".timeindex")).unwrap();
    fs::write(segment_file(&dir, 10, ".index"), [0xa5u8; 40]).unwrap();
    fs::write(segment_file(&dir, 20, ".timeindex"), b"not a whole entry").unwrap();
    broker.restart();
    let mut client = broker.connect();
    for (i, b) in batches.iter().enumerate() {
        let one = fetched(&mut client, "indexed", i as i64, 1);
        assert_eq!(
            &one[16..],
            &b[16..],
            "offset {i}: all but base offset and leader epoch"
        );
        let ts = 5000 + 10 * i as i64;
        assert_eq!(
            list_offsets(&mut client, "indexed", ts - 5),
            (NONE, i as i64, ts)
        );
    }
    drop(client);
    assert!(broker.terminate());
    for (i, &(b, s)) in files.iter().enumerate() {
        let rebuilt = fs::read(segment_file(&dir, b, s)).unwrap();
        assert_eq!(rebuilt, originals[i], "{b}{s}");
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints, clean shutdown and flushing
// ---------------------------------------------------------------------------------------------

/// A clean shutdown trims the active indexes, writes a producer snapshot at the log end, both
/// offset checkpoints and, last, `.kafka_cleanshutdown`; the next start trusts them and removes
/// the marker.
#[test]
fn clean_shutdown_writes_the_marker_and_checkpoints() {
    let mut broker = TestBroker::start("clean-shutdown");
    let mut client = broker.connect();
    create_topic(&mut client, "closed", 2, &[("index.interval.bytes", "100")]);
    for i in 0..7 {
        assert_eq!(
            produce_with(&mut client, "closed", 0, &batch(1, 150, 100 + i, 0), -1),
            (NONE, i)
        );
    }
    assert_eq!(
        produce_with(&mut client, "closed", 1, &batch(3, 10, 0, 0), -1),
        (NONE, 0)
    );
    assert_eq!(delete_records(&mut client, 2, "closed", 1, 2), (NONE, 2));
    drop(client);
    let marker = broker.log_dir.join(".kafka_cleanshutdown");
    assert!(!marker.exists(), "no marker while running");
    assert!(broker.terminate(), "a clean exit on SIGTERM");
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        r#"{"broker_epoch":"0","version":"0"}"#
    );
    let recovery = broker.log_dir.join("recovery-point-offset-checkpoint");
    let starts = broker.log_dir.join("log-start-offset-checkpoint");
    assert_eq!(
        checkpoint_entries(&recovery, "closed"),
        Some(vec![(0, 7), (1, 3)])
    );
    assert_eq!(
        checkpoint_entries(&starts, "closed"),
        Some(vec![(0, 0), (1, 2)])
    );
    assert!(checkpoint_entries(&recovery, "__cluster_metadata").is_some_and(|e| e.len() == 1));
    assert!(
        !broker
            .log_dir
            .join("recovery-point-offset-checkpoint.tmp")
            .exists()
    );
    let dir = partition_dir(&broker, "closed", 0);
    let entries = decode_offset_index(&segment_file(&dir, 0, ".index"));
    assert_eq!(
        entries.len(),
        6,
        "trimmed to its entries (every batch but the first)"
    );
    let times = decode_time_index(&segment_file(&dir, 0, ".timeindex"));
    assert_eq!(
        times.last(),
        Some(&(106, 6)),
        "the largest timestamp, appended at close"
    );
    assert!(segment_file(&dir, 7, ".snapshot").exists());
    broker.restart();
    assert!(!marker.exists(), "removed at start-up");
    let mut client = broker.connect();
    assert_eq!(list_offsets(&mut client, "closed", LATEST).1, 7);
    assert_eq!(list_offsets(&mut client, "closed", 103), (NONE, 3, 103));
    assert_eq!(
        produce_with(&mut client, "closed", 0, &batch(1, 150, 200, 0), -1),
        (NONE, 7)
    );
    drop(client);
    kill_9(&broker);
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(list_offsets(&mut client, "closed", LATEST).1, 8);
    assert_eq!(list_offsets(&mut client, "closed", EARLIEST).1, 0);
}

/// A crash between writing a checkpoint's temporary file and renaming it leaves the old
/// checkpoint and a stray `.tmp`: the broker starts from the old one, and the next checkpoint
/// replaces the stray file. A malformed checkpoint only costs a full recovery.
#[test]
fn checkpoints_survive_a_crash_between_write_and_rename() {
    let mut broker = TestBroker::start_with(
        "checkpoint-crash",
        |_| {},
        &[
            "log.flush.interval.messages=1",
            "log.flush.offset.checkpoint.interval.ms=100",
            "log.flush.start.offset.checkpoint.interval.ms=100",
        ],
    );
    let mut client = broker.connect();
    create_topic(&mut client, "cp", 1, &[]);
    for i in 0..5 {
        produce_at(&mut client, "cp", &batch(1, 50, 0, i as u8), i);
    }
    let recovery = broker.log_dir.join("recovery-point-offset-checkpoint");
    let starts = broker.log_dir.join("log-start-offset-checkpoint");
    eventually("the recovery point checkpoint", || {
        checkpoint_entries(&recovery, "cp") == Some(vec![(0, 5)])
    });
    drop(client);
    kill_9(&broker);
    let stray = |path: &Path| PathBuf::from(format!("{}.tmp", path.display()));
    fs::write(stray(&recovery), "0\n3\ncp 0 9").unwrap();
    fs::write(stray(&starts), "0\n").unwrap();
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(list_offsets(&mut client, "cp", LATEST).1, 5);
    assert_eq!(
        fetched(&mut client, "cp", 0, i32::MAX).len(),
        5 * batch(1, 50, 0, 0).len()
    );
    produce_at(&mut client, "cp", &batch(1, 50, 0, 5), 5);
    eventually("the stray temporary files to be replaced", || {
        !stray(&recovery).exists()
            && !stray(&starts).exists()
            && checkpoint_entries(&recovery, "cp") == Some(vec![(0, 6)])
    });
    drop(client);
    kill_9(&broker);
    fs::write(&recovery, "0\n2\ncp 0").unwrap();
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(list_offsets(&mut client, "cp", LATEST).1, 6);
}

/// `log.flush.interval.messages`: the writer fsyncs a partition once that many messages are
/// unflushed, which moves its recovery point (seen in the checkpoint); `sprat.log.flush.on.ack`
/// fsyncs every group of appends before answering, whatever the acks.
#[test]
fn flush_policies_move_the_recovery_point() {
    let broker = TestBroker::start_with(
        "flush-policy",
        |_| {},
        &[
            "log.flush.interval.messages=4",
            "log.flush.offset.checkpoint.interval.ms=50",
        ],
    );
    let mut client = broker.connect();
    create_topic(&mut client, "flushed", 1, &[]);
    create_topic(&mut client, "per-topic", 1, &[("flush.messages", "1")]);
    let recovery = broker.log_dir.join("recovery-point-offset-checkpoint");
    let recovery_point = |topic| {
        checkpoint_entries(&recovery, topic)
            .and_then(|e| e.first().copied())
            .map(|(_, o)| o)
    };
    let mut produce = |topic, records, acks, expected_base| {
        let b = batch(records, 10, 0, 0);
        assert_eq!(
            produce_with(&mut client, topic, 0, &b, acks),
            (NONE, expected_base)
        );
    };
    produce("flushed", 3, 1, 0);
    produce("per-topic", 1, 1, 0);
    eventually("a checkpoint", || recovery_point("per-topic") == Some(1));
    assert_eq!(
        recovery_point("flushed"),
        Some(0),
        "3 < log.flush.interval.messages"
    );
    produce("flushed", 1, 1, 3);
    eventually("the flush at 4 messages", || {
        recovery_point("flushed") == Some(4)
    });
    produce("flushed", 1, -1, 4);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        recovery_point("flushed"),
        Some(4),
        "acks=-1 alone does not flush"
    );

    let broker = TestBroker::start_with(
        "flush-on-ack",
        |_| {},
        &[
            "log.flush.offset.checkpoint.interval.ms=50",
            "sprat.log.flush.on.ack=true",
        ],
    );
    let mut client = broker.connect();
    create_topic(&mut client, "flushed", 1, &[]);
    let recovery = broker.log_dir.join("recovery-point-offset-checkpoint");
    for (acks, base) in [(1, 0), (-1, 2)] {
        let b = batch(2, 10, 0, 0);
        assert_eq!(
            produce_with(&mut client, "flushed", 0, &b, acks),
            (NONE, base)
        );
        eventually("the flush on ack", || {
            checkpoint_entries(&recovery, "flushed") == Some(vec![(0, base + 2)])
        });
    }
}

/// Without any flush policy, a rolled segment is fsynced in the background (as Kafka does on
/// roll) and the recovery point moves to the new segment's base offset, so that a crash only
/// recovers the active segment.
#[test]
fn rolled_segments_are_flushed_in_the_background() {
    let broker = TestBroker::start_with(
        "roll-flush",
        |_| {},
        &["log.flush.offset.checkpoint.interval.ms=50"],
    );
    let mut client = broker.connect();
    let size = batch(1, 100, 0, 0).len();
    create_topic(
        &mut client,
        "rolling",
        1,
        &[("segment.bytes", &(3 * size).to_string())],
    );
    let recovery = broker.log_dir.join("recovery-point-offset-checkpoint");
    for i in 0..7 {
        let b = batch(1, 100, 0, i as u8);
        assert_eq!(produce_with(&mut client, "rolling", 0, &b, 1), (NONE, i));
    }
    eventually("the recovery point to pass the rolled segments", || {
        checkpoint_entries(&recovery, "rolling") == Some(vec![(0, 6)])
    });
    let dir = partition_dir(&broker, "rolling", 0);
    assert_eq!(segment_bases(&dir), vec![0, 3, 6]);
    assert_eq!(
        names_ending_with(&dir, ".snapshot"),
        vec![
            "00000000000000000003.snapshot",
            "00000000000000000006.snapshot"
        ]
    );
}
