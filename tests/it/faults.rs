//! Storage faults against the real binary: a full disk, a failed fsync, and a power loss. The
//! broker runs with `tests/faultfs/faultfs.c` preloaded, which fails writes or fsyncs of files
//! in its log directory on request and records what each successful fsync made durable.

use crate::harness::{Client, TestBroker};
use crate::storage::{
    LATEST, NONE, batch, create_topic, fetched, kill_9, list_offsets, partition_dir, produce_with,
    segment_file, try_create_topic,
};
use sprat::storage::record_batch::Batches;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// The fault injection library, built once per test run with the system C compiler.
fn faultfs_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultfs/faultfs.c");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let library = out_dir.join("libfaultfs.so");
        let building = out_dir.join(format!("libfaultfs.so.{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&building)
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("the fault tests need a C compiler (`cc`) to build tests/faultfs/faultfs.c");
        assert!(status.success(), "building {} failed", source.display());
        fs::rename(&building, &library).unwrap();
        library
    })
}

/// The switches of a broker started with faultfs.
struct Faults {
    ctl: PathBuf,
    sync_log: PathBuf,
}

impl Faults {
    fn set(&self, faults: &str) {
        fs::write(&self.ctl, faults).unwrap();
    }

    fn clear(&self) {
        fs::write(&self.ctl, "").unwrap();
    }
}

/// Starts a broker whose log directory is behind faultfs (no fault switched on yet).
fn start_with_faults(name: &str, properties: &[&str]) -> (TestBroker, Faults) {
    let faultfs = faultfs_library();
    let mut faults = None;
    let broker = TestBroker::start_with_env(name, properties, |dir| {
        let dir = dir.canonicalize().unwrap();
        let f = Faults {
            ctl: dir.join("faults.ctl"),
            sync_log: dir.join("synced.log"),
        };
        let env = vec![
            ("LD_PRELOAD".to_string(), faultfs.display().to_string()),
            (
                "FAULTFS_DIR".to_string(),
                dir.join("logs").display().to_string(),
            ),
            ("FAULTFS_CTL".to_string(), f.ctl.display().to_string()),
            (
                "FAULTFS_SYNC_LOG".to_string(),
                f.sync_log.display().to_string(),
            ),
        ];
        faults = Some(f);
        env
    });
    (broker, faults.unwrap())
}

/// (base offset, first value byte) of every batch in `records`.
fn batch_ids(records: &[u8]) -> Vec<(i64, u8)> {
    Batches::new(records)
        .map(|b| {
            let b = b.unwrap();
            b.validate().unwrap();
            (b.base_offset(), b.records_bytes()[10])
        })
        .collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// A full disk: the append gets 56 KAFKA_STORAGE_ERROR and what it wrote is cut off the file,
/// reads go on, and appends resume at the same offset once there is room again; all of it
/// survives a restart.
#[test]
fn disk_full_fails_the_append_and_appends_resume_when_space_returns() {
    let (mut broker, faults) = start_with_faults("disk-full", &[]);
    let mut client = broker.connect();
    create_topic(&mut client, "full", 1, &[]);
    let log = segment_file(&partition_dir(&broker, "full", 0), 0, ".log");
    assert_eq!(
        produce_with(&mut client, "full", 0, &batch(2, 100, 1, 1), -1),
        (NONE, 0)
    );
    let stored = fs::read(&log).unwrap();

    faults.set("enospc");
    for acks in [-1, 1] {
        let (error, _) = produce_with(&mut client, "full", 0, &batch(3, 5000, 1, 2), acks);
        assert_eq!(error, KAFKA_STORAGE_ERROR, "acks={acks} on a full disk");
        assert_eq!(
            file_len(&log),
            stored.len() as u64,
            "the short write is cut off"
        );
    }
    assert_eq!(
        fetched(&mut client, "full", 0, 1 << 20),
        stored,
        "reads go on"
    );
    assert_eq!(list_offsets(&mut client, "full", LATEST).1, 2);

    faults.clear();
    assert_eq!(
        produce_with(&mut client, "full", 0, &batch(1, 100, 1, 3), -1),
        (NONE, 2),
        "appends resume where the log ended"
    );
    kill_9(&broker);
    broker.restart();
    let mut client = broker.connect();
    let records = fetched(&mut client, "full", 0, 1 << 20);
    assert_eq!(batch_ids(&records), vec![(0, 1), (2, 3)]);
}

/// With `sprat.log.flush.on.ack`, a failed fsync is never acknowledged nor retried as if it had
/// succeeded: the appends it covered get 56, nobody ever reads them (the high watermark stays at
/// the recovery point), the log is cut back to what is on disk, and later appends reuse the
/// offsets, as a crash would have left it.
#[test]
fn failed_fsync_with_flush_on_ack_is_cut_off_and_never_acknowledged() {
    let (mut broker, faults) = start_with_faults("fsync-on-ack", &["sprat.log.flush.on.ack=true"]);
    let mut client = broker.connect();
    create_topic(&mut client, "durable", 1, &[]);
    let log = segment_file(&partition_dir(&broker, "durable", 0), 0, ".log");
    assert_eq!(
        produce_with(&mut client, "durable", 0, &batch(1, 100, 1, 1), -1),
        (NONE, 0)
    );
    let stored = fs::read(&log).unwrap();

    faults.set("eio_fsync");
    for acks in [-1, 1] {
        let (error, _) = produce_with(&mut client, "durable", 0, &batch(2, 100, 1, 2), acks);
        assert_eq!(
            error, KAFKA_STORAGE_ERROR,
            "acks={acks} with a failing fsync"
        );
    }
    // The kernel would now report success for the same pages: the broker must not ask again.
    faults.clear();
    assert_eq!(list_offsets(&mut client, "durable", LATEST).1, 1);
    assert_eq!(fetched(&mut client, "durable", 0, 1 << 20), stored);
    assert_eq!(fs::read(&log).unwrap(), stored, "the log was cut back");

    assert_eq!(
        produce_with(&mut client, "durable", 0, &batch(1, 100, 1, 3), -1),
        (NONE, 1)
    );
    let records = fetched(&mut client, "durable", 0, 1 << 20);
    assert_eq!(batch_ids(&records), vec![(0, 1), (1, 3)]);
    kill_9(&broker);
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(fetched(&mut client, "durable", 0, 1 << 20), records);
}

/// Without `sprat.log.flush.on.ack`, readers may already have seen what a failed fsync covered,
/// so the partition goes offline (Kafka's offline log directory, for this partition only): its
/// appends get 56 even after fsync works again, reads go on, no clean shutdown is recorded, and
/// the next start recovers it and takes appends again.
#[test]
fn failed_fsync_in_page_cache_mode_takes_the_partition_offline() {
    let (mut broker, faults) =
        start_with_faults("fsync-offline", &["log.flush.interval.messages=1"]);
    let mut client = broker.connect();
    create_topic(&mut client, "flaky", 2, &[]);
    assert_eq!(
        produce_with(&mut client, "flaky", 0, &batch(1, 100, 1, 1), -1),
        (NONE, 0)
    );
    faults.set("eio_fsync");
    let (error, _) = produce_with(&mut client, "flaky", 0, &batch(1, 100, 1, 2), -1);
    assert_eq!(error, KAFKA_STORAGE_ERROR);
    faults.clear();
    let (error, _) = produce_with(&mut client, "flaky", 0, &batch(1, 100, 1, 3), -1);
    assert_eq!(error, KAFKA_STORAGE_ERROR, "no retry of the failed fsync");
    assert_eq!(
        produce_with(&mut client, "flaky", 1, &batch(1, 100, 1, 4), -1),
        (NONE, 0),
        "other partitions take appends"
    );
    let records = fetched(&mut client, "flaky", 0, 1 << 20);
    assert_eq!(batch_ids(&records)[0], (0, 1), "reads go on");

    assert!(broker.terminate(), "the broker shuts down");
    assert!(
        !broker.log_dir.join(".kafka_cleanshutdown").exists(),
        "an offline log is no clean shutdown"
    );
    broker.restart();
    let mut client = broker.connect();
    let end = list_offsets(&mut client, "flaky", LATEST).1;
    assert_eq!(
        produce_with(&mut client, "flaky", 0, &batch(1, 100, 1, 5), -1),
        (NONE, end),
        "appends resume after the restart"
    );
}

/// What a power loss keeps of `log_dir`: every file cut back to its size at its last successful
/// fsync (as faultfs recorded them; a file renamed into place counts with its `.tmp` name).
/// Files never fsynced are emptied.
fn lose_power(log_dir: &Path, sync_log: &Path) {
    let mut synced: HashMap<PathBuf, u64> = HashMap::new();
    for line in fs::read_to_string(sync_log).unwrap_or_default().lines() {
        let (size, path) = line.split_once(' ').unwrap();
        synced.insert(PathBuf::from(path), size.parse().unwrap());
    }
    let mut dirs = vec![log_dir.canonicalize().unwrap()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            let durable = synced
                .get(&path)
                .or_else(|| synced.get(Path::new(&tmp)))
                .copied()
                .unwrap_or(0);
            if file_len(&path) > durable {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(durable)
                    .unwrap();
            }
        }
    }
}

/// Produces from two connections (acks=-1) until the broker is killed; returns every
/// acknowledged (offset, value byte).
fn produce_until_killed(broker: &TestBroker, topic: &str) -> Vec<(i64, u8)> {
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            let addr = broker.addr;
            let topic = topic.to_string();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut acked = Vec::new();
                for i in 0..20_000u32 {
                    let value = (i as u8 & 0x7f) | (p << 7);
                    let b = batch(2, 200, 1, value);
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        produce_with(&mut client, &topic, 0, &b, -1)
                    }));
                    match result {
                        Ok((NONE, offset)) => acked.push((offset, value)),
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    kill_9(broker);
    let mut acked: Vec<(i64, u8)> = producers
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    acked.sort_unstable();
    acked
}

/// Every batch of partition 0 of `topic`, read from the start: (base offset, value byte).
fn read_all(client: &mut Client, topic: &str) -> Vec<(i64, u8)> {
    let end = list_offsets(client, topic, LATEST).1;
    let mut all = Vec::new();
    let mut offset = 0;
    while offset < end {
        let ids = batch_ids(&fetched(client, topic, offset, 1 << 20));
        offset = ids.last().expect("records below the log end").0 + 2;
        all.extend(ids);
    }
    all
}

/// With `sprat.log.flush.on.ack`, a power loss (every file cut back to what was fsynced, after a
/// `kill -9` under load that rolls segments) loses no acknowledged record.
#[test]
fn flush_on_ack_loses_no_acknowledged_record_in_a_power_loss() {
    let (mut broker, faults) = start_with_faults("power-loss", &["sprat.log.flush.on.ack=true"]);
    let mut client = broker.connect();
    create_topic(&mut client, "durable", 1, &[("segment.bytes", "50000")]);
    let acked = produce_until_killed(&broker, "durable");
    assert!(
        acked.len() > 20,
        "the load ran: {} acknowledged",
        acked.len()
    );
    lose_power(&broker.log_dir, &faults.sync_log);

    broker.extra_env.clear();
    broker.restart();
    let mut client = broker.connect();
    let stored: HashMap<i64, u8> = read_all(&mut client, "durable").into_iter().collect();
    for (offset, value) in &acked {
        assert_eq!(
            stored.get(offset),
            Some(value),
            "acknowledged batch at offset {offset} after the power loss"
        );
    }
    let segments = fs::read_dir(partition_dir(&broker, "durable", 0))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
        .count();
    assert!(segments > 1, "the load rolled segments");
}

/// The check above can fail: without `sprat.log.flush.on.ack` (Kafka's default of never
/// fsyncing on produce), the same power loss takes acknowledged records with it.
#[test]
fn page_cache_mode_loses_acknowledged_records_in_a_power_loss() {
    let (mut broker, faults) = start_with_faults("power-loss-page-cache", &[]);
    let mut client = broker.connect();
    create_topic(&mut client, "volatile", 1, &[]);
    let acked = produce_until_killed(&broker, "volatile");
    assert!(
        acked.len() > 20,
        "the load ran: {} acknowledged",
        acked.len()
    );
    lose_power(&broker.log_dir, &faults.sync_log);

    broker.extra_env.clear();
    broker.restart();
    let mut client = broker.connect();
    let end = list_offsets(&mut client, "volatile", LATEST).1;
    let last = acked.last().unwrap().0;
    assert!(
        end <= last,
        "log end offset {end} after the power loss: the unflushed records up to {last} are gone"
    );
}

/// A topic whose metadata record could not be written or fsynced is not created, and creating
/// it again works once the disk does; a restart agrees.
#[test]
fn topic_creation_fails_cleanly_on_a_failing_disk() {
    let (mut broker, faults) = start_with_faults("create-faults", &[]);
    let mut client = broker.connect();
    for fault in ["enospc", "eio_fsync"] {
        faults.set(fault);
        assert_eq!(
            try_create_topic(&mut client, "later", 1, &[]),
            KAFKA_STORAGE_ERROR,
            "{fault}"
        );
        faults.clear();
        assert_eq!(
            produce_with(&mut client, "later", 0, &batch(1, 10, 1, 1), -1).0,
            UNKNOWN_TOPIC_OR_PARTITION,
            "no topic after {fault}"
        );
    }
    assert_eq!(try_create_topic(&mut client, "later", 1, &[]), NONE);
    assert_eq!(
        produce_with(&mut client, "later", 0, &batch(1, 10, 1, 1), -1),
        (NONE, 0)
    );
    kill_9(&broker);
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(
        try_create_topic(&mut client, "later", 1, &[]),
        TOPIC_ALREADY_EXISTS
    );
    assert_eq!(
        produce_with(&mut client, "later", 0, &batch(1, 10, 1, 2), -1),
        (NONE, 1)
    );
}

/// A roll that cannot create the new segment fails the append with 56; the next append rolls
/// and lands where the log ended, and every acknowledged batch survives `kill -9`.
#[test]
fn disk_full_during_a_roll_loses_nothing() {
    let (mut broker, faults) = start_with_faults("roll-full", &[]);
    let mut client = broker.connect();
    create_topic(&mut client, "rolls", 1, &[("segment.bytes", "3000")]);
    let dir = partition_dir(&broker, "rolls", 0);
    let mut acked = Vec::new();
    for i in 0..6u8 {
        let (error, offset) = produce_with(&mut client, "rolls", 0, &batch(1, 1000, 1, i), -1);
        assert_eq!(error, NONE);
        acked.push((offset, i));
    }
    assert!(
        segment_file(&dir, 2, ".log").exists(),
        "the log rolled at offset 2"
    );
    faults.set("enospc");
    for i in 6..9u8 {
        let (error, _) = produce_with(&mut client, "rolls", 0, &batch(1, 1000, 1, i), -1);
        assert_eq!(error, KAFKA_STORAGE_ERROR);
    }
    faults.clear();
    for i in 9..12u8 {
        let (error, offset) = produce_with(&mut client, "rolls", 0, &batch(1, 1000, 1, i), -1);
        assert_eq!(error, NONE);
        acked.push((offset, i));
    }
    assert_eq!(
        acked.iter().map(|a| a.0).collect::<Vec<_>>(),
        (0..9).collect::<Vec<i64>>()
    );
    kill_9(&broker);
    broker.restart();
    let mut client = broker.connect();
    let mut stored = Vec::new();
    let mut offset = 0;
    while offset < 9 {
        let ids = batch_ids(&fetched(&mut client, "rolls", offset, 1 << 20));
        offset = ids.last().unwrap().0 + 1;
        stored.extend(ids);
    }
    assert_eq!(stored, acked);
}
