//! Log compaction against the real binary: a seeded model of keyed writes and tombstones, the
//! cleaner run in the background, `kill -9` at random moments and at each step of a segment swap
//! (`SPRAT_TEST_CRASH_POINT`), and reads checked against the model: every record read is the
//! record written at that offset, below the cleaner's first dirty offset only each key's latest
//! record is left, and every key's latest record is still there. Transactions: a hand-written
//! log of committed, aborted and open transactions, cleaned as Kafka's cleaner cleans it.

use crate::harness::{Client, Rng, TestBroker, fetch_partition};
use crate::storage::{NONE, create_topic, fetch, produce_with};
use byteorder::{BigEndian, ByteOrder};
use sprat::storage::cleaner::{parse_records, records_section};
use sprat::storage::record_batch::{
    ATTRIBUTES_OFFSET, BatchHeader, BatchView, Batches, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET,
    LOG_OVERHEAD, MAGIC_OFFSET, Record, build_batch,
};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "compacted";

/// How a test batch's records are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCodec {
    None,
    Gzip,
    /// snappy-java's stream: magic, version 1, compatible version 1, then length-prefixed blocks.
    SnappyXerial,
    /// One raw snappy block, as librdkafka may write.
    SnappyRaw,
    Lz4,
    Zstd,
}

const TEST_CODECS: [TestCodec; 6] = [
    TestCodec::None,
    TestCodec::Gzip,
    TestCodec::SnappyXerial,
    TestCodec::SnappyRaw,
    TestCodec::Lz4,
    TestCodec::Zstd,
];

impl TestCodec {
    /// The codec id in a batch's attributes.
    fn id(self) -> i16 {
        match self {
            TestCodec::None => 0,
            TestCodec::Gzip => 1,
            TestCodec::SnappyXerial | TestCodec::SnappyRaw => 2,
            TestCodec::Lz4 => 3,
            TestCodec::Zstd => 4,
        }
    }

    fn compress(self, records: &[u8]) -> Vec<u8> {
        match self {
            TestCodec::None => records.to_vec(),
            TestCodec::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(records).unwrap();
                e.finish().unwrap()
            }
            TestCodec::SnappyXerial => {
                let mut out = vec![
                    0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
                ];
                for chunk in records.chunks(32 * 1024) {
                    let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
                    out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                    out.extend_from_slice(&block);
                }
                out
            }
            TestCodec::SnappyRaw => snap::raw::Encoder::new().compress_vec(records).unwrap(),
            TestCodec::Lz4 => {
                let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
                e.write_all(records).unwrap();
                e.finish().unwrap()
            }
            TestCodec::Zstd => zstd::stream::encode_all(records, 3).unwrap(),
        }
    }
}

/// An uncompressed batch with its records section compressed with `codec`.
fn compress_batch(batch: Vec<u8>, codec: TestCodec) -> Vec<u8> {
    if codec == TestCodec::None {
        return batch;
    }
    let mut out = batch[..HEADER_SIZE].to_vec();
    out.extend_from_slice(&codec.compress(&batch[HEADER_SIZE..]));
    let attributes = BigEndian::read_i16(&out[ATTRIBUTES_OFFSET..]) | codec.id();
    BigEndian::write_i16(&mut out[ATTRIBUTES_OFFSET..], attributes);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    BigEndian::write_i32(&mut out[LENGTH_OFFSET..], length);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut out[CRC_OFFSET..], crc);
    out
}

/// One record read back: offset, key, value (decompressed when the batch is).
struct ReadRecord {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

fn read_records(batch: &BatchView<'_>) -> Vec<ReadRecord> {
    let section = records_section(batch).expect("records decompress");
    parse_records(batch, &section)
        .expect("records parse")
        .into_iter()
        .map(|r| ReadRecord {
            offset: r.offset,
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
        })
        .collect()
}

/// Everything acknowledged: offset -> (key, value), and each key's latest offset.
#[derive(Default)]
struct Model {
    history: BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>,
    latest: HashMap<Vec<u8>, i64>,
    /// Bytes of the batches produced.
    produced_bytes: u64,
    /// Each produced batch's base offset and codec id.
    codecs: HashMap<i64, i16>,
}

impl Model {
    /// Produces one batch of random keyed records (some tombstones) and records it.
    fn produce(&mut self, client: &mut Client, rng: &mut Rng, keys: i64) {
        let n = rng.range(1, 8) as usize;
        let mut written = Vec::with_capacity(n);
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let key = format!("key-{}", rng.range(0, keys)).into_bytes();
                let value = (rng.range(0, 10) != 0)
                    .then(|| format!("value-{}-{}", rng.next_u64(), "x".repeat(40)).into_bytes());
                written.push((key.clone(), value.clone()));
                Record {
                    timestamp_delta: i as i64,
                    key: Some(key),
                    value,
                    headers: vec![],
                }
            })
            .collect();
        let now = now_ms();
        let codec = TEST_CODECS[rng.range(0, TEST_CODECS.len() as i64) as usize];
        let batch = build_batch(
            &BatchHeader {
                base_timestamp: now,
                max_timestamp: now + n as i64 - 1,
                ..BatchHeader::default()
            },
            &records,
        );
        let batch = compress_batch(batch, codec);
        let (error, base) = produce_with(client, TOPIC, 0, &batch, -1);
        assert_eq!(error, NONE, "produce");
        self.codecs.insert(base, codec.id());
        self.produced_bytes += batch.len() as u64;
        for (i, (key, value)) in written.into_iter().enumerate() {
            let offset = base + i as i64;
            self.latest.insert(key.clone(), offset);
            self.history.insert(offset, (key, value));
        }
    }

    /// Each key's latest offset below `first_dirty`: what a cleaning that reached it kept.
    fn latest_below(&self, first_dirty: i64) -> HashMap<Vec<u8>, i64> {
        let mut latest = HashMap::new();
        for (offset, (key, _)) in self.history.range(..first_dirty) {
            latest.insert(key.clone(), *offset);
        }
        latest
    }

    /// Reads the whole partition and checks it against the model (see the module documentation).
    /// Returns how many records were read.
    fn check(&self, client: &mut Client, first_dirty: i64) -> usize {
        let latest_below = self.latest_below(first_dirty);
        let mut offset = 0;
        let mut seen = HashMap::new();
        let mut read = 0;
        let end = self.history.keys().last().map_or(0, |o| o + 1);
        while offset < end {
            let data = fetch(client, TOPIC, offset, 1 << 20);
            assert_eq!(data.error_code, NONE, "fetch at {offset}");
            let bytes = data.records.unwrap_or_default();
            assert!(
                !bytes.is_empty(),
                "no batch at or after offset {offset} (end {end})"
            );
            for batch in Batches::new(&bytes) {
                let Ok(batch) = batch else { break };
                batch.validate().expect("a valid CRC after cleaning");
                if batch.records_count() > 0 {
                    assert_eq!(
                        Some(batch.compression_codec()),
                        self.codecs.get(&batch.base_offset()).copied(),
                        "the codec of the batch at {}",
                        batch.base_offset()
                    );
                }
                for r in read_records(&batch) {
                    if r.offset < offset {
                        continue;
                    }
                    let (key, value) = self
                        .history
                        .get(&r.offset)
                        .unwrap_or_else(|| panic!("offset {} was never written", r.offset));
                    assert_eq!(r.key.as_ref(), Some(key), "key at offset {}", r.offset);
                    assert_eq!(&r.value, value, "value at offset {}", r.offset);
                    if r.offset < first_dirty {
                        assert_eq!(
                            latest_below[key], r.offset,
                            "offset {} is superseded but still below the first dirty offset {first_dirty}",
                            r.offset
                        );
                    }
                    seen.insert(r.offset, ());
                    read += 1;
                }
                offset = offset.max(batch.last_offset() + 1);
            }
        }
        for (key, latest) in &self.latest {
            assert!(
                seen.contains_key(latest),
                "the latest record of {} (offset {latest}) is gone",
                String::from_utf8_lossy(key)
            );
        }
        read
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The first dirty offset of the test topic in `cleaner-offset-checkpoint`, 0 before any.
fn first_dirty_offset(log_dir: &Path) -> i64 {
    first_dirty_offset_of(log_dir, TOPIC)
}

fn first_dirty_offset_of(log_dir: &Path, topic: &str) -> i64 {
    let text = fs::read_to_string(log_dir.join("cleaner-offset-checkpoint")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(topic) && parts.next() == Some("0"))
                .then(|| parts.next()?.parse().ok())
                .flatten()
        })
        .next()
        .unwrap_or(0)
}

/// Waits until the cleaner has cleaned past `offset`; returns the first dirty offset.
fn wait_for_cleaning_past(broker: &TestBroker, offset: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let first_dirty = first_dirty_offset(&broker.log_dir);
        if first_dirty > offset {
            return first_dirty;
        }
        assert!(
            Instant::now() < deadline,
            "the cleaner never passed offset {offset} (first dirty offset {first_dirty})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        // A segment swapped meanwhile may be gone.
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".swap") || n.ends_with(".deleted"))
        .collect()
}

/// Kafka's CORRUPT_MESSAGE.
const CORRUPT_MESSAGE: i16 = 2;
const CLEANER: &[&str] = &["log.cleaner.backoff.ms=20"];
const TOPIC_CONFIGS: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("segment.bytes", "2048"),
    ("min.cleanable.dirty.ratio", "0.01"),
];

fn partition_dir(broker: &TestBroker) -> std::path::PathBuf {
    broker.log_dir.join(format!("{TOPIC}-0"))
}

#[test]
fn compacted_topic_keeps_the_latest_record_of_each_key_at_its_offset() {
    let mut rng = Rng::new("compacted_topic_keeps_the_latest_record_of_each_key_at_its_offset");
    let broker = TestBroker::start_with("compaction-model", |_| {}, CLEANER);
    let mut client = broker.connect();
    create_topic(&mut client, TOPIC, 1, TOPIC_CONFIGS);
    let mut model = Model::default();
    for _ in 0..300 {
        model.produce(&mut client, &mut rng, 20);
    }
    let before = model.produced_bytes;
    let high = *model.history.keys().last().unwrap();
    // Everything but the active segment gets cleaned; roll past it with more writes.
    let first_dirty = wait_for_cleaning_past(&broker, high / 2);
    let read = model.check(&mut client, first_dirty);
    assert!(read < model.history.len(), "nothing was removed");
    let after = log_bytes(&partition_dir(&broker));
    assert!(
        after < before,
        "the log did not shrink: {before} -> {after} bytes"
    );
    // A fetch at an offset compaction removed answers from the next batch that holds a later
    // offset (the one that held it, if it still holds later records).
    let latest_below = model.latest_below(first_dirty);
    let removed = (0..first_dirty)
        .find(|o| latest_below[&model.history[o].0] != *o)
        .expect("some record below the first dirty offset was superseded");
    let data = fetch(&mut client, TOPIC, removed, 1 << 20);
    let bytes = data.records.unwrap();
    let batches: Vec<_> = Batches::new(&bytes).filter_map(Result::ok).collect();
    assert!(batches[0].last_offset() >= removed);
    assert!(
        batches
            .iter()
            .flat_map(read_records)
            .all(|r| r.offset != removed)
    );
    broker.assert_no_panics();
}

#[test]
fn tombstones_go_after_delete_retention_ms() {
    let mut rng = Rng::new("tombstones_go_after_delete_retention_ms");
    let broker = TestBroker::start_with("compaction-tombstones", |_| {}, CLEANER);
    let mut client = broker.connect();
    let mut configs = TOPIC_CONFIGS.to_vec();
    configs.push(("delete.retention.ms", "0"));
    create_topic(&mut client, TOPIC, 1, &configs);
    let mut model = Model::default();
    for _ in 0..200 {
        model.produce(&mut client, &mut rng, 10);
    }
    let first = wait_for_cleaning_past(&broker, 0);
    // More writes make the log dirty again; the second cleaning drops the tombstones it finds
    // in the segments the first one cleaned.
    for _ in 0..200 {
        model.produce(&mut client, &mut rng, 10);
    }
    let first_dirty = wait_for_cleaning_past(&broker, first);
    let mut offset = 0;
    let mut tombstones_below_first = 0;
    while offset < first {
        let bytes = fetch(&mut client, TOPIC, offset, 1 << 20)
            .records
            .unwrap_or_default();
        if bytes.is_empty() {
            break;
        }
        for b in Batches::new(&bytes).filter_map(Result::ok) {
            tombstones_below_first += read_records(&b)
                .iter()
                .filter(|r| r.value.is_none() && r.offset < first)
                .count();
            offset = offset.max(b.last_offset() + 1);
        }
    }
    assert_eq!(
        tombstones_below_first, 0,
        "tombstones survived a second cleaning"
    );
    // The model's latest tombstones may be gone: check the rest.
    model
        .latest
        .retain(|_, o| model.history[o].1.is_some() || *o >= first);
    model.check(&mut client, first_dirty);
}

#[test]
fn kill_9_at_each_step_of_a_swap_loses_nothing() {
    for point in [
        "after-swap-rename",
        "after-source-deleted",
        "after-swap-complete",
    ] {
        let mut rng = Rng::new(point);
        let mut broker = TestBroker::start_with(
            &format!("compaction-crash-{point}"),
            |_| {},
            &["log.cleaner.enable=false"],
        );
        let mut client = broker.connect();
        create_topic(&mut client, TOPIC, 1, TOPIC_CONFIGS);
        let mut model = Model::default();
        for _ in 0..150 {
            model.produce(&mut client, &mut rng, 15);
        }
        drop(client);
        assert!(broker.terminate());
        broker.extra_properties = CLEANER.iter().map(|s| s.to_string()).collect();
        broker.extra_env = vec![(
            sprat::storage::log::CRASH_POINT_ENV.to_string(),
            point.to_string(),
        )];
        broker.restart();
        let deadline = Instant::now() + Duration::from_secs(60);
        while broker.is_running() {
            assert!(
                Instant::now() < deadline,
                "{point}: the crash hook never fired"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        broker.extra_env.clear();
        broker.restart();
        let mut client = broker.connect();
        // Right after the restart, before the cleaner has run again.
        model.check(&mut client, 0);
        let first_dirty = wait_for_cleaning_past(&broker, 0);
        model.check(&mut client, first_dirty);
        drop(client);
        assert!(broker.terminate());
        assert_eq!(
            leftovers(&partition_dir(&broker)),
            Vec::<String>::new(),
            "{point}"
        );
    }
}

#[test]
fn random_kill_9_while_cleaning_loses_nothing() {
    let mut rng = Rng::new("random_kill_9_while_cleaning_loses_nothing");
    let mut broker = TestBroker::start_with("compaction-random-kill", |_| {}, CLEANER);
    let mut client = broker.connect();
    create_topic(&mut client, TOPIC, 1, TOPIC_CONFIGS);
    let mut model = Model::default();
    for _round in 0..6 {
        for _ in 0..rng.range(20, 80) {
            model.produce(&mut client, &mut rng, 12);
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 150) as u64));
        broker.kill_and_restart();
        client = broker.connect();
        model.check(&mut client, first_dirty_offset(&broker.log_dir));
    }
    let first_dirty = wait_for_cleaning_past(&broker, 0);
    model.check(&mut client, first_dirty);
}

#[test]
fn consumer_offsets_stays_small_under_many_commits_and_restores_the_latest() {
    use crate::groups;
    let mut broker = TestBroker::start_with(
        "compaction-offsets",
        |_| {},
        &[
            "offsets.topic.num.partitions=1",
            "offsets.topic.segment.bytes=4096",
            "log.cleaner.backoff.ms=20",
            "log.cleaner.min.cleanable.ratio=0.01",
        ],
    );
    let mut client = broker.connect();
    groups::create_topic(&mut client, "t", 3);
    const COMMITS: i64 = 3000;
    for i in 0..COMMITS {
        let offsets = [(0, i), (1, 2 * i), (2, 3 * i)];
        assert_eq!(
            groups::commit(&mut client, 2, "g", -1, "", "t", &offsets),
            [NONE; 3]
        );
    }
    let dir = broker.log_dir.join("__consumer_offsets-0");
    // Every commit is a batch of three records of about 60 bytes: ~600 KB uncleaned.
    let deadline = Instant::now() + Duration::from_secs(60);
    while log_bytes(&dir) > 40_000 {
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets is still {} bytes",
            log_bytes(&dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Segments that cleaning emptied are removed, so the file count stays bounded too.
    while fs::read_dir(&dir).unwrap().count() > 40 {
        assert!(
            Instant::now() < deadline,
            "{} files in {}",
            fs::read_dir(&dir).unwrap().count(),
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    let last = COMMITS - 1;
    let committed: Vec<(i32, i64)> = groups::fetch(&mut client, 1, "g", Some(&[("t", &[0, 1, 2])]))
        .into_iter()
        .map(|(_, p, offset, _, _)| (p, offset))
        .collect();
    assert_eq!(committed, [(0, last), (1, 2 * last), (2, 3 * last)]);
}

/// A keyed uncompressed batch of `n` records with 60-byte values, for the corrupt-batch test.
fn filler_batch(round: usize, n: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            timestamp_delta: i as i64,
            key: Some(format!("key-{}", i % 5).into_bytes()),
            value: Some(format!("value-{round}-{i}-{}", "x".repeat(40)).into_bytes()),
            headers: vec![],
        })
        .collect();
    let now = now_ms();
    build_batch(
        &BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            ..BatchHeader::default()
        },
        &records,
    )
}

/// Every batch of a partition, fetched from offset 0: (base offset, batch bytes).
fn all_batches(client: &mut Client, topic: &str) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let bytes = fetch(client, topic, offset, 1 << 20)
            .records
            .unwrap_or_default();
        let batches: Vec<_> = Batches::new(&bytes).filter_map(Result::ok).collect();
        if batches.is_empty() {
            return out;
        }
        for b in batches {
            if b.last_offset() >= offset {
                out.push((b.base_offset(), b.bytes().to_vec()));
                offset = b.last_offset() + 1;
            }
        }
    }
}

/// The batches read are the batches produced at their offsets: the same bytes from the magic
/// on (the broker sets the base offset and partition leader epoch in front of it).
fn assert_same_batches(read: Vec<(i64, Vec<u8>)>, produced: &[(i64, Vec<u8>)]) {
    assert_eq!(read.len(), produced.len(), "batches read");
    for ((offset, bytes), (base, batch)) in read.iter().zip(produced) {
        assert_eq!(offset, base);
        assert!(
            bytes[MAGIC_OFFSET..] == batch[MAGIC_OFFSET..],
            "the batch at {base} changed"
        );
    }
}

/// Appends `batch` (base offset 0) to the end of the topic's partition 0 on disk, with the broker
/// stopped, as bytes that reached the log without going through Produce (a log directory written
/// by an older broker, say). The clean-shutdown marker is removed, so that the next start
/// recovers the tail and takes the batch in. Returns the batch's base offset.
fn inject_batch(log_dir: &Path, topic: &str, batch: &[u8]) -> i64 {
    let dir = log_dir.join(format!("{topic}-0"));
    let active = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .max()
        .unwrap();
    let existing = fs::read(&active).unwrap();
    let end = Batches::new(&existing)
        .filter_map(Result::ok)
        .map(|b| b.last_offset() + 1)
        .last()
        .unwrap();
    let mut batch = batch.to_vec();
    BigEndian::write_i64(&mut batch, end);
    let mut file = fs::OpenOptions::new().append(true).open(&active).unwrap();
    std::io::Write::write_all(&mut file, &batch).unwrap();
    fs::remove_file(log_dir.join(".kafka_cleanshutdown")).unwrap();
    end
}

/// Produces filler batches of rounds `0..rounds` to partition 0 of `topic`, except that at round
/// `at` the broker is stopped and `injected` goes into the log on disk instead (see
/// [`inject_batch`]). Returns a connection and every batch with its base offset.
fn produce_around_injected(
    broker: &mut TestBroker,
    mut client: Client,
    topic: &str,
    rounds: usize,
    at: usize,
    injected: &[u8],
) -> (Client, Vec<(i64, Vec<u8>)>) {
    let mut produced = Vec::new();
    for round in 0..rounds {
        if round == at {
            drop(client);
            assert!(broker.terminate());
            let base = inject_batch(&broker.log_dir, topic, injected);
            produced.push((base, injected.to_vec()));
            broker.restart();
            client = broker.connect();
            continue;
        }
        let batch = filler_batch(round, 5);
        let (error, base) = produce_with(&mut client, topic, 0, &batch, -1);
        assert_eq!(error, NONE);
        produced.push((base, batch));
    }
    (client, produced)
}

fn cleaning_failures(broker: &TestBroker, topic: &str, seen: &mut Vec<String>) -> usize {
    seen.extend(broker.drain_log());
    let needle = format!("{topic}-0: cleaning failed");
    seen.iter().filter(|l| l.contains(&needle)).count()
}

#[test]
fn a_corrupt_compressed_batch_fails_cleaning_of_its_log_only_and_loses_nothing() {
    const BROKEN: &str = "broken";
    // Written with the cleaner off, so that no cleaning gets ahead of the corrupt batch.
    let mut broker =
        TestBroker::start_with("compaction-corrupt", |_| {}, &["log.cleaner.enable=false"]);
    let mut client = broker.connect();
    create_topic(&mut client, BROKEN, 1, TOPIC_CONFIGS);
    create_topic(&mut client, TOPIC, 1, TOPIC_CONFIGS);
    // A gzip batch whose records are not gzip, behind a valid CRC: Produce refuses it, so it is
    // put into the log on disk; the cleaner cannot read it.
    let mut corrupt = compress_batch(filler_batch(0, 3), TestCodec::Gzip);
    for b in &mut corrupt[HEADER_SIZE + 10..] {
        *b ^= 0x5a;
    }
    let crc = crc32c::crc32c(&corrupt[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut corrupt[CRC_OFFSET..], crc);
    assert_eq!(
        produce_with(&mut client, BROKEN, 0, &corrupt, -1).0,
        CORRUPT_MESSAGE
    );
    let (mut client, mut produced) =
        produce_around_injected(&mut broker, client, BROKEN, 120, 40, &corrupt);
    let mut rng = Rng::new("a_corrupt_compressed_batch_fails_cleaning_of_its_log_only");
    let mut model = Model::default();
    for _ in 0..200 {
        model.produce(&mut client, &mut rng, 20);
    }
    drop(client);
    assert!(broker.terminate());
    broker.extra_properties = CLEANER.iter().map(|s| s.to_string()).collect();
    broker.restart();
    let mut client = broker.connect();
    // The other compacted log is cleaned all the same.
    let first_dirty = wait_for_cleaning_past(&broker, 0);
    model.check(&mut client, first_dirty);
    // The first attempt may come before the broker says it is listening (the harness reads
    // those lines itself): roll a segment so that the log is tried again meanwhile.
    let mut round = 120;
    let mut roll = |client: &mut Client, produced: &mut Vec<(i64, Vec<u8>)>| {
        for _ in 0..80 {
            let batch = filler_batch(round, 5);
            round += 1;
            let (error, base) = produce_with(client, BROKEN, 0, &batch, -1);
            assert_eq!(error, NONE);
            produced.push((base, batch));
        }
    };
    roll(&mut client, &mut produced);
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cleaning_failures(&broker, BROKEN, &mut log) == 0 {
        assert!(Instant::now() < deadline, "no cleaning failure was logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = log
        .iter()
        .find(|l| l.contains("broken-0: cleaning failed"))
        .unwrap();
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("gzip"), "{line}");
    // Nothing was cleaned or lost: every batch is served as it was produced.
    assert_eq!(first_dirty_offset_of(&broker.log_dir, BROKEN), 0);
    assert_same_batches(all_batches(&mut client, BROKEN), &produced);
    let dir = broker.log_dir.join(format!("{BROKEN}-0"));
    let stray: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert_eq!(stray, Vec::<String>::new());
    // Skipped while its segments stay the same (the backoff is 20 ms: dozens of rounds)...
    std::thread::sleep(Duration::from_millis(1000));
    let failures = cleaning_failures(&broker, BROKEN, &mut log);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(cleaning_failures(&broker, BROKEN, &mut log), failures);
    // ...and tried again once a segment rolls.
    roll(&mut client, &mut produced);
    while cleaning_failures(&broker, BROKEN, &mut log) == failures {
        assert!(Instant::now() < deadline, "the log was never tried again");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_same_batches(all_batches(&mut client, BROKEN), &produced);
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:?}");
}

#[test]
fn the_log_cleaner_thread_runs_at_nice_10() {
    let broker = TestBroker::start_with("compaction-nice", |_| {}, CLEANER);
    let tasks = Path::new("/proc")
        .join(broker.pid().to_string())
        .join("task");
    // Fields after the parenthesised name: state is field 3, nice field 19.
    let nice_of = |stat: &str| -> i32 {
        stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(16)
            .unwrap()
            .parse()
            .unwrap()
    };
    // The request threads keep the broker's own priority (0, unless the test runs niced: then
    // the cleaner cannot go below it without privileges).
    let main_nice =
        nice_of(&fs::read_to_string(tasks.join(broker.pid().to_string()).join("stat")).unwrap());
    // The thread is named before it lowers its priority: wait for both.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = fs::read_dir(&tasks)
            .unwrap()
            .filter_map(|e| e.ok())
            .find_map(|t| {
                let comm = fs::read_to_string(t.path().join("comm")).ok()?;
                (comm.trim() == "log-cleaner")
                    .then(|| fs::read_to_string(t.path().join("stat")).ok())?
            });
        let last = found.as_deref().map(nice_of);
        if last == Some(main_nice.max(10)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log-cleaner thread's nice value: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A keyed batch of `keys` from an idempotent producer, compressed with `codec`.
fn producer_batch(keys: &[&str], sequence: i32, codec: TestCodec) -> Vec<u8> {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            timestamp_delta: i as i64,
            key: Some(k.as_bytes().to_vec()),
            value: Some(format!("{k}-{sequence}-{}", "z".repeat(60)).into_bytes()),
            headers: vec![],
        })
        .collect();
    let now = now_ms();
    compress_batch(
        build_batch(
            &BatchHeader {
                base_timestamp: now,
                max_timestamp: now + keys.len() as i64 - 1,
                producer_id: 9,
                producer_epoch: 0,
                base_sequence: sequence,
                ..BatchHeader::default()
            },
            &records,
        ),
        codec,
    )
}

#[test]
fn the_last_compressed_batch_of_a_producer_stays_when_emptied() {
    const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    let mut broker =
        TestBroker::start_with("compaction-producer", |_| {}, &["log.cleaner.enable=false"]);
    let mut client = broker.connect();
    create_topic(&mut client, TOPIC, 1, TOPIC_CONFIGS);
    let first = producer_batch(&["a", "b", "c"], 0, TestCodec::Zstd);
    let (error, first_base) = produce_with(&mut client, TOPIC, 0, &first, -1);
    assert_eq!((error, first_base), (NONE, 0));
    let last = producer_batch(&["a", "b"], 3, TestCodec::Lz4);
    let (error, last_base) = produce_with(&mut client, TOPIC, 0, &last, -1);
    assert_eq!((error, last_base), (NONE, 3));
    // Later records of every key, from no producer, then enough to seal them all.
    for round in 0..60 {
        let records = filler_batch(round, 5);
        assert_eq!(produce_with(&mut client, TOPIC, 0, &records, -1).0, NONE);
    }
    let latest_records: Vec<Record> = ["a", "b", "c"]
        .iter()
        .map(|k| Record {
            key: Some(k.as_bytes().to_vec()),
            value: Some(b"latest".to_vec()),
            ..Record::default()
        })
        .collect();
    let gzip = compress_batch(
        build_batch(&BatchHeader::default(), &latest_records),
        TestCodec::Gzip,
    );
    assert_eq!(produce_with(&mut client, TOPIC, 0, &gzip, -1).0, NONE);
    for round in 61..120 {
        let records = filler_batch(round, 5);
        assert_eq!(produce_with(&mut client, TOPIC, 0, &records, -1).0, NONE);
    }
    drop(client);
    assert!(broker.terminate());
    broker.extra_properties = CLEANER.iter().map(|s| s.to_string()).collect();
    broker.restart();
    wait_for_cleaning_past(&broker, 400);
    let mut client = broker.connect();
    let batches = all_batches(&mut client, TOPIC);
    // The producer's first batch went with its records; its last stays, empty and without codec,
    // with its offsets and producer fields.
    assert!(batches.iter().all(|(base, _)| *base != first_base));
    let (_, kept) = batches
        .iter()
        .find(|(base, _)| *base == last_base)
        .expect("the producer's last batch is gone");
    let kept = Batches::new(kept).next().unwrap().unwrap();
    kept.validate().unwrap();
    assert_eq!(
        (
            kept.records_count(),
            kept.compression_codec(),
            kept.last_offset()
        ),
        (0, 0, 4)
    );
    assert_eq!(
        (
            kept.producer_id(),
            kept.producer_epoch(),
            kept.base_sequence()
        ),
        (9, 0, 3)
    );
    // The gzip batch's records are each key's latest: kept, still gzip.
    let (_, latest) = batches
        .iter()
        .find(|(_, b)| Batches::new(b).next().unwrap().unwrap().compression_codec() == 1)
        .expect("the gzip batch is gone");
    let latest = Batches::new(latest).next().unwrap().unwrap();
    assert_eq!(read_records(&latest).len(), 3);
    // After a restart the producer's state is still there: its next sequence is 5.
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    let gap = producer_batch(&["d"], 6, TestCodec::None);
    assert_eq!(
        produce_with(&mut client, TOPIC, 0, &gap, -1).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    let next = producer_batch(&["d"], 5, TestCodec::None);
    assert_eq!(produce_with(&mut client, TOPIC, 0, &next, -1).0, NONE);
}

#[test]
fn a_zstd_bomb_fails_cleaning_at_the_decompression_limit() {
    const BOMB: &str = "bomb";
    let mut broker =
        TestBroker::start_with("compaction-bomb", |_| {}, &["log.cleaner.enable=false"]);
    let mut client = broker.connect();
    create_topic(&mut client, BOMB, 1, TOPIC_CONFIGS);
    // A batch of 1 KiB whose records section inflates to 65 MiB of zeros, behind a valid CRC.
    let zeros = vec![0u8; 65 << 20];
    let mut bomb = filler_batch(0, 1)[..HEADER_SIZE].to_vec();
    bomb.extend_from_slice(&zstd::stream::encode_all(&zeros[..], 3).unwrap());
    drop(zeros);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    BigEndian::write_i16(&mut bomb[ATTRIBUTES_OFFSET..], TestCodec::Zstd.id());
    let length = (bomb.len() - LOG_OVERHEAD) as i32;
    BigEndian::write_i32(&mut bomb[LENGTH_OFFSET..], length);
    let crc = crc32c::crc32c(&bomb[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut bomb[CRC_OFFSET..], crc);
    // Produce decompresses it to check its records and stops at the same limit.
    assert_eq!(
        produce_with(&mut client, BOMB, 0, &bomb, -1).0,
        CORRUPT_MESSAGE
    );
    let (client, mut produced) = produce_around_injected(&mut broker, client, BOMB, 80, 20, &bomb);
    drop(client);
    assert!(broker.terminate());
    broker.extra_properties = CLEANER.iter().map(|s| s.to_string()).collect();
    broker.restart();
    let mut client = broker.connect();
    // Roll a segment, so that a cleaning certainly starts after the log lines are read.
    for round in 80..120 {
        let batch = filler_batch(round, 5);
        let (error, base) = produce_with(&mut client, BOMB, 0, &batch, -1);
        assert_eq!(error, NONE);
        produced.push((base, batch));
    }
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while cleaning_failures(&broker, BOMB, &mut log) == 0 {
        assert!(Instant::now() < deadline, "no cleaning failure was logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = log
        .iter()
        .find(|l| l.contains("bomb-0: cleaning failed"))
        .unwrap();
    assert!(
        line.contains("zstd records: decompress to more than 67108864 bytes"),
        "{line}"
    );
    assert_eq!(first_dirty_offset_of(&broker.log_dir, BOMB), 0);
    assert_same_batches(all_batches(&mut client, BOMB), &produced);
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:?}");
}

// ---- Transactions ---------------------------------------------------------------------------

const TXN_TIMESTAMP: i64 = 1726045973899;
/// Producer ids: A commits twice, B aborts then commits, C's transaction is open.
const PRODUCER_A: i64 = 1000;
const PRODUCER_B: i64 = 2000;
const PRODUCER_C: i64 = 3000;

/// A batch of `producer_id` (transactional when `producer_id` is not -1) with keyed records.
fn txn_keyed(
    base_offset: i64,
    producer_id: i64,
    sequence: i32,
    records: &[(&str, &str)],
) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        attributes: if producer_id < 0 { 0 } else { 0x10 },
        base_timestamp: TXN_TIMESTAMP,
        max_timestamp: TXN_TIMESTAMP,
        producer_id,
        producer_epoch: if producer_id < 0 { -1 } else { 0 },
        base_sequence: if producer_id < 0 { -1 } else { sequence },
    };
    let records: Vec<Record> = records
        .iter()
        .map(|(k, v)| Record {
            key: Some(k.as_bytes().to_vec()),
            value: Some(v.as_bytes().to_vec()),
            ..Record::default()
        })
        .collect();
    build_batch(&header, &records)
}

fn txn_marker(base_offset: i64, producer_id: i64, commit: bool) -> Vec<u8> {
    let mut b = sprat::storage::record_batch::build_end_txn_marker(
        producer_id,
        0,
        commit,
        5,
        TXN_TIMESTAMP,
        0,
    );
    sprat::storage::record_batch::set_base_offset(&mut b, base_offset);
    b
}

/// Segment 0 (0-11): A commits k1 twice at 0-1 (marker 4), B aborts k1 at 2 and k2 at 5 (marker
/// 6), k3 at 3 and 9, A commits k1 at 7 (marker 8), B commits k4 at 10 (marker 11). Segment 12:
/// C's open transaction writes k1 at 12, k6 at 13. Segment 14 (active): k7. The LSO is 12.
fn txn_segments() -> [Vec<Vec<u8>>; 3] {
    [
        vec![
            txn_keyed(0, PRODUCER_A, 0, &[("k1", "a1"), ("k1", "a1b")]),
            txn_keyed(2, PRODUCER_B, 0, &[("k1", "b1")]),
            txn_keyed(3, -1, 0, &[("k3", "p1")]),
            txn_marker(4, PRODUCER_A, true),
            txn_keyed(5, PRODUCER_B, 1, &[("k2", "b2")]),
            txn_marker(6, PRODUCER_B, false),
            txn_keyed(7, PRODUCER_A, 2, &[("k1", "a3")]),
            txn_marker(8, PRODUCER_A, true),
            txn_keyed(9, -1, 0, &[("k3", "p2")]),
            txn_keyed(10, PRODUCER_B, 2, &[("k4", "b3")]),
            txn_marker(11, PRODUCER_B, true),
        ],
        vec![
            txn_keyed(12, PRODUCER_C, 0, &[("k1", "c1")]),
            txn_keyed(13, -1, 0, &[("k6", "p3")]),
        ],
        vec![txn_keyed(14, -1, 0, &[("k7", "p4")])],
    ]
}

/// B's aborted transaction in segment 0's `.txnindex`: 2 to 6, LSO 7 when it ended.
fn b_aborted_entry() -> Vec<u8> {
    let mut entry = vec![0, 0];
    for field in [PRODUCER_B, 2, 6, 7] {
        entry.extend_from_slice(&field.to_be_bytes());
    }
    entry
}

/// A record read back: offset, key, value.
type TxnRecord = (i64, String, String);

/// (offset, key, value) of every record of the batches in `bytes`, and each batch's
/// (base offset, is control).
fn txn_contents(bytes: &[u8]) -> (Vec<TxnRecord>, Vec<(i64, bool)>) {
    let mut records = Vec::new();
    let mut batches = Vec::new();
    for b in Batches::new(bytes) {
        let b = b.unwrap();
        batches.push((b.base_offset(), b.is_control()));
        if b.is_control() {
            continue;
        }
        for r in read_records(&b) {
            let text = |v: Option<Vec<u8>>| String::from_utf8(v.unwrap()).unwrap();
            records.push((r.offset, text(r.key), text(r.value)));
        }
    }
    (records, batches)
}

fn segment_file(broker: &TestBroker, base: i64, suffix: &str) -> std::path::PathBuf {
    partition_dir(broker).join(format!("{base:020}{suffix}"))
}

/// What every read of the log must show after the first cleaning: segment 0 holds
/// `segment_0_batches`, with `segment_0_records`; C's records past the LSO are untouched.
fn check_txn_reads(
    broker: &TestBroker,
    segment_0_batches: &[(i64, bool)],
    segment_0_records: &[(i64, &str, &str)],
    aborted_producers: &[i64],
    lso: i64,
) {
    let expected: Vec<TxnRecord> = segment_0_records
        .iter()
        .map(|(o, k, v)| (*o, k.to_string(), v.to_string()))
        .collect();
    let mut client = broker.connect();
    for isolation_level in [0, 1] {
        let p = fetch_partition(&mut client, TOPIC, 0, isolation_level);
        assert_eq!(p.last_stable_offset, lso);
        let (records, batches) = txn_contents(p.records.as_deref().unwrap());
        assert_eq!(
            batches, segment_0_batches,
            "isolation level {isolation_level}"
        );
        assert_eq!(records, expected, "isolation level {isolation_level}");
        if isolation_level == 1 {
            let aborted: Vec<i64> = p
                .aborted_transactions
                .unwrap()
                .iter()
                .map(|a| a.producer_id)
                .collect();
            assert_eq!(aborted, aborted_producers);
        }
    }
    // Segment 12 as written: C's k1 at 12 is there for read_uncommitted, beyond read_committed.
    let p = fetch_partition(&mut client, TOPIC, 12, 0);
    let (records, _) = txn_contents(p.records.as_deref().unwrap());
    assert_eq!(records[0], (12, "k1".to_string(), "c1".to_string()));
    let p = fetch_partition(&mut client, TOPIC, 12, 1);
    if lso == 12 {
        assert!(p.records.unwrap_or_default().is_empty());
    }
}

#[test]
fn the_cleaner_removes_aborted_records_and_then_their_markers_but_not_past_the_lso() {
    let segments = txn_segments();
    let setup_segments = segments.clone();
    let mut broker = TestBroker::start_with(
        "compaction-txn",
        move |log_dir| {
            crate::harness::write_cluster_metadata(
                log_dir,
                &[crate::harness::TopicSpec::new(TOPIC, 9, 1)],
            );
            let dir = log_dir.join(format!("{TOPIC}-0"));
            for (base, batches) in [0, 12, 14].iter().zip(&setup_segments) {
                fs::write(dir.join(format!("{base:020}.log")), batches.concat()).unwrap();
            }
            fs::write(dir.join(format!("{:020}.txnindex", 0)), b_aborted_entry()).unwrap();
        },
        &[
            "log.cleaner.backoff.ms=20",
            "log.cleanup.policy=compact",
            "log.cleaner.min.cleanable.ratio=0.01",
            "log.cleaner.delete.retention.ms=0",
        ],
    );
    let segment_12 = segments[1].concat();
    // The first cleaning, of segment 0 only (segment 12 ends past the LSO): the aborted
    // records and the superseded ones go; every marker stays, as data of each transaction was
    // there before it.
    assert_eq!(wait_for_cleaning_past(&broker, 11), 12);
    let first_batches = [
        (4, true),
        (6, true),
        (7, false),
        (8, true),
        (9, false),
        (10, false),
        (11, true),
    ];
    let first_records = [(7, "k1", "a3"), (9, "k3", "p2"), (10, "k4", "b3")];
    check_txn_reads(&broker, &first_batches, &first_records, &[PRODUCER_B], 12);
    assert_eq!(
        fs::read(segment_file(&broker, 12, ".log")).unwrap(),
        segment_12
    );
    assert_eq!(
        fs::read(segment_file(&broker, 0, ".txnindex")).unwrap(),
        b_aborted_entry()
    );
    broker.kill_and_restart();
    check_txn_reads(&broker, &first_batches, &first_records, &[PRODUCER_B], 12);

    // C commits (the marker written by hand while the broker is down): the LSO moves to the
    // end, segment 12 becomes cleanable, and the second cleaning, past the horizon of
    // delete.retention.ms=0, removes the markers with no data left before them (A's first
    // COMMIT and B's ABORT, with its .txnindex entry) and A's k1 at 7, which C's k1 replaces.
    broker.kill();
    let mut active = segments[2].concat();
    active.extend_from_slice(&txn_marker(15, PRODUCER_C, true));
    fs::write(segment_file(&broker, 14, ".log"), active).unwrap();
    broker.restart();
    assert_eq!(wait_for_cleaning_past(&broker, 12), 14);
    let second_batches = [(8, true), (9, false), (10, false), (11, true)];
    let second_records = [(9, "k3", "p2"), (10, "k4", "b3")];
    check_txn_reads(&broker, &second_batches, &second_records, &[], 16);
    let index = fs::read(segment_file(&broker, 0, ".txnindex")).unwrap_or_default();
    assert!(index.is_empty(), "B's entry is gone with its marker");
    broker.kill_and_restart();
    check_txn_reads(&broker, &second_batches, &second_records, &[], 16);
    assert!(leftovers(&partition_dir(&broker)).is_empty());
    broker.assert_no_panics();
}

/// Segment 0 as the first cleaning of [`txn_segments`] leaves it.
fn txn_segment_0_cleaned_once() -> Vec<Vec<u8>> {
    vec![
        txn_marker(4, PRODUCER_A, true),
        txn_marker(6, PRODUCER_B, false),
        txn_keyed(7, PRODUCER_A, 2, &[("k1", "a3")]),
        txn_marker(8, PRODUCER_A, true),
        txn_keyed(9, -1, 0, &[("k3", "p2")]),
        txn_keyed(10, PRODUCER_B, 2, &[("k4", "b3")]),
        txn_marker(11, PRODUCER_B, true),
    ]
}

/// kill -9 at each step of the swap of a cleaned segment 0 whose `.txnindex` loses an entry:
/// after the restart the log and its index agree and every read is right.
#[test]
fn kill_9_at_each_step_of_a_swap_that_rewrites_the_txnindex_loses_nothing() {
    for point in [
        "after-swap-rename",
        "after-source-deleted",
        "after-txn-index-swapped",
        "after-swap-complete",
    ] {
        // Segment 0 cleaned once (first dirty offset 12), C committed: this cleaning removes
        // B's ABORT marker and its .txnindex entry.
        let mut segments = txn_segments();
        segments[0] = txn_segment_0_cleaned_once();
        segments[2].push(txn_marker(15, PRODUCER_C, true));
        let mut broker = TestBroker::start_with(
            &format!("compaction-txn-crash-{point}"),
            move |log_dir| {
                crate::harness::write_cluster_metadata(
                    log_dir,
                    &[crate::harness::TopicSpec::new(TOPIC, 9, 1)],
                );
                let dir = log_dir.join(format!("{TOPIC}-0"));
                for (base, batches) in [0, 12, 14].iter().zip(&segments) {
                    fs::write(dir.join(format!("{base:020}.log")), batches.concat()).unwrap();
                }
                fs::write(dir.join(format!("{:020}.txnindex", 0)), b_aborted_entry()).unwrap();
                sprat::storage::checkpoint::write_offset_checkpoint(
                    &log_dir.join("cleaner-offset-checkpoint"),
                    &[(sprat::storage::log::TopicPartition::new(TOPIC, 0), 12)],
                )
                .unwrap();
                // Segments 0 and 12 are below the recovery point: an unclean start trusts them,
                // except a segment whose swap it completes (its indexes, the .txnindex too, are
                // rebuilt from its batches).
                sprat::storage::checkpoint::write_offset_checkpoint(
                    &log_dir.join("recovery-point-offset-checkpoint"),
                    &[(sprat::storage::log::TopicPartition::new(TOPIC, 0), 14)],
                )
                .unwrap();
            },
            &["log.cleaner.enable=false"],
        );
        // Started only to be restarted with the cleaner and the crash hook.
        drop(broker.connect());
        broker.kill();
        broker.extra_properties = [
            "log.cleaner.backoff.ms=20",
            "log.cleanup.policy=compact",
            "log.cleaner.min.cleanable.ratio=0.01",
            "log.cleaner.delete.retention.ms=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        broker.extra_env = vec![(
            sprat::storage::log::CRASH_POINT_ENV.to_string(),
            point.to_string(),
        )];
        broker.restart();
        let deadline = Instant::now() + Duration::from_secs(60);
        while broker.is_running() {
            assert!(
                Instant::now() < deadline,
                "{point}: the crash hook never fired"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let hook = format!("{}={point}", sprat::storage::log::CRASH_POINT_ENV);
        assert!(
            broker.drain_log().iter().any(|l| l.contains(&hook)),
            "{point}: the broker exited, but not at the crash point"
        );
        broker.extra_env.clear();
        broker.restart();
        assert_eq!(wait_for_cleaning_past(&broker, 12), 14, "{point}");
        let second_batches = [(8, true), (9, false), (10, false), (11, true)];
        let second_records = [(9, "k3", "p2"), (10, "k4", "b3")];
        check_txn_reads(&broker, &second_batches, &second_records, &[], 16);
        let index = fs::read(segment_file(&broker, 0, ".txnindex")).unwrap_or_default();
        assert!(
            index.is_empty(),
            "{point}: B's entry is gone with its marker"
        );
        assert!(broker.terminate());
        let stray: Vec<String> = fs::read_dir(partition_dir(&broker))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| {
                [".swap", ".deleted", ".cleaned"]
                    .iter()
                    .any(|s| n.ends_with(s))
            })
            .collect();
        assert!(stray.is_empty(), "{point}: {stray:?}");
    }
}

/// Regression: a log held back by an open transaction (its dirty segments end past the LSO)
/// has nothing cleanable, so it must not be picked as the dirtiest log round after round while
/// another log waits. Five such logs and one cleanable one: without the LSO in the choice the
/// cleanable one is starved unless it happens to come first.
#[test]
fn logs_held_back_by_an_open_transaction_do_not_starve_the_cleaner() {
    const BLOCKED: [&str; 5] = [
        "blocked-0",
        "blocked-1",
        "blocked-2",
        "blocked-3",
        "blocked-4",
    ];
    let broker = TestBroker::start_with(
        "compaction-txn-starve",
        |log_dir| {
            let mut specs: Vec<crate::harness::TopicSpec> = BLOCKED
                .iter()
                .enumerate()
                .map(|(i, t)| crate::harness::TopicSpec::new(t, 20 + i as u8, 1))
                .collect();
            specs.push(crate::harness::TopicSpec::new(TOPIC, 9, 1));
            crate::harness::write_cluster_metadata(log_dir, &specs);
            let write = |topic: &str, segments: &[(i64, Vec<Vec<u8>>)]| {
                let dir = log_dir.join(format!("{topic}-0"));
                for (base, batches) in segments {
                    fs::write(dir.join(format!("{base:020}.log")), batches.concat()).unwrap();
                }
            };
            for t in BLOCKED {
                // C's transaction opens at 0: nothing is below the LSO.
                write(
                    t,
                    &[
                        (
                            0,
                            vec![
                                txn_keyed(0, PRODUCER_C, 0, &[("k", "c")]),
                                txn_keyed(1, -1, 0, &[("k", "1")]),
                            ],
                        ),
                        (2, vec![txn_keyed(2, -1, 0, &[("k", "2")])]),
                    ],
                );
            }
            write(
                TOPIC,
                &[
                    (
                        0,
                        vec![
                            txn_keyed(0, -1, 0, &[("k", "1")]),
                            txn_keyed(1, -1, 0, &[("k", "2")]),
                        ],
                    ),
                    (2, vec![txn_keyed(2, -1, 0, &[("j", "3")])]),
                ],
            );
        },
        &[
            "log.cleaner.backoff.ms=20",
            "log.cleanup.policy=compact",
            "log.cleaner.min.cleanable.ratio=0.01",
        ],
    );
    assert_eq!(wait_for_cleaning_past(&broker, 0), 2);
    for t in BLOCKED {
        assert_eq!(first_dirty_offset_of(&broker.log_dir, t), 0, "{t}");
    }
    broker.assert_no_panics();
}
