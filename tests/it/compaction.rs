//! Log compaction against the real binary: a seeded model of keyed writes and tombstones, the
//! cleaner run in the background, `kill -9` at random moments and at each step of a segment swap
//! (`SPRAT_TEST_CRASH_POINT`), and reads checked against the model: every record read is the
//! record written at that offset, below the cleaner's first dirty offset only each key's latest
//! record is left, and every key's latest record is still there.

use crate::harness::{Client, Rng, TestBroker};
use crate::storage::{NONE, create_topic, fetch, produce_with};
use sprat::storage::cleaner::records;
use sprat::storage::record_batch::{BatchHeader, Batches, Record, build_batch};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "compacted";

/// Everything acknowledged: offset -> (key, value), and each key's latest offset.
#[derive(Default)]
struct Model {
    history: BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>,
    latest: HashMap<Vec<u8>, i64>,
    /// Bytes of the batches produced.
    produced_bytes: u64,
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
        let batch = build_batch(
            &BatchHeader {
                base_timestamp: now,
                max_timestamp: now + n as i64 - 1,
                ..BatchHeader::default()
            },
            &records,
        );
        let (error, base) = produce_with(client, TOPIC, 0, &batch, -1);
        assert_eq!(error, NONE, "produce");
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
                for r in records(&batch).unwrap() {
                    if r.offset < offset {
                        continue;
                    }
                    let (key, value) = self
                        .history
                        .get(&r.offset)
                        .unwrap_or_else(|| panic!("offset {} was never written", r.offset));
                    assert_eq!(r.key, Some(&key[..]), "key at offset {}", r.offset);
                    assert_eq!(r.value, value.as_deref(), "value at offset {}", r.offset);
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
    let text = fs::read_to_string(log_dir.join("cleaner-offset-checkpoint")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            (parts.next() == Some(TOPIC) && parts.next() == Some("0"))
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
            .flat_map(|b| records(b).unwrap())
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
            tombstones_below_first += records(&b)
                .unwrap()
                .iter()
                .filter(|r| r.is_tombstone && r.offset < first)
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
