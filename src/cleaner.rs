//! The `log-cleaner` thread (Kafka's `LogCleaner`, `LogCleanerManager` and `CleanerThread`):
//! compacts the logs whose `cleanup.policy` includes `compact` (and `__consumer_offsets`), so
//! that each keeps at least the latest record of every key.
//!
//! Each round it picks the dirtiest log (the largest share of its sealed bytes at or past the
//! first dirty offset from `cleaner-offset-checkpoint`, at least `min.cleanable.dirty.ratio`, or
//! any dirty log past `max.compaction.lag.ms`), builds the key -> latest offset map over its dirty
//! sealed segments as far as `log.cleaner.dedupe.buffer.size` holds (stopping at the first
//! segment younger than `min.compaction.lag.ms`), writes a `.cleaned` copy of every sealed
//! segment up to there (see [`crate::storage::cleaner`]), and asks the `log-writer` to swap them
//! in; it never writes a log itself. The active segment is never cleaned, nor any segment that
//! ends past the last stable offset (an open transaction's records stay as they are).
//!
//! Tombstones: a segment's log file keeps the modification time of its first cleaning (a cleaned
//! copy of an already clean segment is given its source's time), and tombstones are dropped from
//! a clean segment once that time is `delete.retention.ms` old, as Kafka's delete horizon does.
//!
//! A log whose cleaning fails (a batch that cannot be decompressed or parsed, an I/O error) is
//! logged at `error!` and skipped until its sealed segments change, as Kafka marks a partition
//! uncleanable; whatever `.cleaned` files that cleaning wrote are removed, and the log itself is
//! never touched.
//!
//! The thread runs at a lower scheduling priority (nice 10) than the request threads, so that
//! cleaning takes the CPU produce and fetch leave idle first. Reading is throttled to
//! `log.cleaner.io.max.bytes.per.second`. sprat runs one cleaner thread
//! whatever `log.cleaner.threads` says.

use crate::broker::BrokerContext;
use crate::storage::checkpoint::{read_offset_checkpoint, write_offset_checkpoint};
use crate::storage::cleaner::{self, CleanStats, OffsetMap, TxnCleaning};
use crate::storage::log::{
    CleanedSegment, Partition, TopicPartition, cleaned_path, cleaned_txn_index_path,
};
use crate::storage::segment::LogSegment;
use crate::writer::WriterCommand;
use log::{debug, error, info, warn};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Kafka's name for the file of each log's first dirty offset.
pub const CLEANER_OFFSET_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// The topic Kafka always compacts.
const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often a sleeping cleaner looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// The broker-wide cleaner settings.
#[derive(Debug, Clone)]
struct CleanerConfig {
    backoff_ms: u64,
    dedupe_buffer_size: usize,
    io_max_bytes_per_second: f64,
}

/// One log's compaction settings: topic overrides, else the broker's `log.cleaner.*` defaults.
#[derive(Debug, Clone, PartialEq)]
struct LogCleaningConfig {
    compact: bool,
    min_cleanable_ratio: f64,
    min_compaction_lag_ms: i64,
    max_compaction_lag_ms: i64,
    delete_retention_ms: i64,
}

/// A broker key from the live configuration (the dynamic keys set by AlterConfigs on top of
/// `server.properties`), so that the cleaner follows them at run time as Kafka's does.
fn broker_value<T: std::str::FromStr>(ctx: &BrokerContext, key: &str, default: T) -> T {
    ctx.live_config()
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn cleaner_config(ctx: &BrokerContext) -> CleanerConfig {
    CleanerConfig {
        backoff_ms: broker_value(ctx, "log.cleaner.backoff.ms", 15_000u64).max(1),
        dedupe_buffer_size: broker_value(ctx, "log.cleaner.dedupe.buffer.size", 134_217_728usize),
        io_max_bytes_per_second: broker_value(ctx, "log.cleaner.io.max.bytes.per.second", f64::MAX),
    }
}

fn log_cleaning_config(ctx: &BrokerContext, topic: &str) -> LogCleaningConfig {
    let meta = ctx.topic(topic);
    let topic_value = |key: &str| {
        meta.as_ref()
            .and_then(|t| t.configs.get(key).map(|v| v.trim().to_string()))
    };
    let live = ctx.live_config();
    let value = |topic_key: &str, broker_key: &str| {
        topic_value(topic_key).or_else(|| live.get(broker_key).map(|v| v.trim().to_string()))
    };
    let long = |topic_key: &str, broker_key: &str, default: i64| {
        value(topic_key, broker_key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    LogCleaningConfig {
        compact: topic == CONSUMER_OFFSETS_TOPIC
            || meta
                .as_ref()
                .is_some_and(|t| crate::broker::cleanup_policy(&t.configs, &live).compact),
        min_cleanable_ratio: value(
            "min.cleanable.dirty.ratio",
            "log.cleaner.min.cleanable.ratio",
        )
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.5),
        min_compaction_lag_ms: long(
            "min.compaction.lag.ms",
            "log.cleaner.min.compaction.lag.ms",
            0,
        ),
        max_compaction_lag_ms: long(
            "max.compaction.lag.ms",
            "log.cleaner.max.compaction.lag.ms",
            i64::MAX,
        ),
        delete_retention_ms: long(
            "delete.retention.ms",
            "log.cleaner.delete.retention.ms",
            86_400_000,
        ),
    }
}

/// Starts the `log-cleaner` thread unless `log.cleaner.enable` is false.
pub fn start(ctx: Arc<BrokerContext>) -> io::Result<()> {
    if !broker_value(&ctx, "log.cleaner.enable", true) {
        info!("log cleaner disabled (log.cleaner.enable=false)");
        return Ok(());
    }
    let threads: u32 = broker_value(&ctx, "log.cleaner.threads", 1);
    if threads > 1 {
        info!("log.cleaner.threads={threads}: sprat runs one log-cleaner thread");
    }
    std::thread::Builder::new()
        .name("log-cleaner".into())
        .spawn(move || {
            lower_priority();
            LogCleaner::new(ctx).run()
        })?;
    Ok(())
}

/// The `log-cleaner` thread's nice value. Cleaning is background work that can wait, while
/// produce and fetch cannot: at 10 the scheduler gives the cleaner about a tenth of a core that
/// request threads also want (CFS weights 110 against 1024), so that produce keeps at least 90%
/// of its throughput while the cleaner runs (the goal), and all of an idle one.
const CLEANER_NICE: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority to [`CLEANER_NICE`]. On Linux a thread id
/// given to `setpriority(PRIO_PROCESS)` names that one thread.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers and only read their arguments.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, CLEANER_NICE)
    };
    if result != 0 {
        warn!(
            "log cleaner: could not lower its priority: {}",
            io::Error::last_os_error()
        );
    }
}

/// A log the cleaner may clean this round, and how dirty it is.
struct Candidate {
    partition: Arc<Partition>,
    config: LogCleaningConfig,
    sealed: Vec<LogSegment>,
    /// Index in `sealed` of the first dirty segment.
    first_dirty: usize,
    ratio: f64,
}

struct LogCleaner {
    ctx: Arc<BrokerContext>,
    config: CleanerConfig,
    checkpoint_path: PathBuf,
    /// Each log's first dirty offset: everything below it has been cleaned.
    first_dirty_offsets: HashMap<TopicPartition, i64>,
    /// Logs whose cleaning failed, with their sealed segments at the time: skipped while those
    /// stay the same (Kafka's uncleanable partitions).
    uncleanable: HashMap<TopicPartition, Vec<(i64, u64)>>,
}

/// What identifies a log's sealed segments for [`LogCleaner::uncleanable`]: base offsets and sizes.
fn sealed_signature(sealed: &[LogSegment]) -> Vec<(i64, u64)> {
    sealed.iter().map(|s| (s.base_offset(), s.size())).collect()
}

impl LogCleaner {
    fn new(ctx: Arc<BrokerContext>) -> Self {
        let checkpoint_path = ctx.config.log_dir().join(CLEANER_OFFSET_CHECKPOINT_FILE);
        let first_dirty_offsets = match read_offset_checkpoint(&checkpoint_path) {
            Ok(offsets) => offsets,
            Err(e) => {
                warn!(
                    "{}: {e}; cleaning every log from its start",
                    checkpoint_path.display()
                );
                HashMap::new()
            }
        };
        LogCleaner {
            config: cleaner_config(&ctx),
            ctx,
            checkpoint_path,
            first_dirty_offsets,
            uncleanable: HashMap::new(),
        }
    }

    fn run(mut self) {
        while !self.ctx.shutting_down.load(Ordering::Relaxed) {
            let cleaned = match self.grab_filthiest_log() {
                Some(candidate) => {
                    let tp = candidate.partition.topic_partition.clone();
                    let signature = sealed_signature(&candidate.sealed);
                    match self.clean(candidate) {
                        Ok(cleaned) => cleaned,
                        Err(e) => {
                            error!(
                                "{tp}: cleaning failed, the log is skipped until its segments change: {e}"
                            );
                            self.uncleanable.insert(tp, signature);
                            false
                        }
                    }
                }
                None => false,
            };
            if !cleaned {
                self.back_off();
            }
        }
    }

    fn back_off(&self) {
        let until = Instant::now() + Duration::from_millis(self.config.backoff_ms);
        while !self.ctx.shutting_down.load(Ordering::Relaxed) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(SHUTDOWN_POLL));
        }
    }

    /// The dirtiest log that is due for cleaning (Kafka's `grabFilthiestCompactedLog`).
    fn grab_filthiest_log(&mut self) -> Option<Candidate> {
        let partitions: Vec<Arc<Partition>> =
            self.ctx.partitions.read().values().cloned().collect();
        let now = crate::server::apis::now_ms();
        let mut best: Option<Candidate> = None;
        for partition in partitions {
            let config = log_cleaning_config(&self.ctx, &partition.topic_partition.topic);
            if !config.compact {
                continue;
            }
            let mut sealed = partition.sealed_segments();
            // Only segments that end at or before the last stable offset can be cleaned: a log
            // held back by an open transaction must not win the round and starve the others.
            let last_stable_offset = partition.last_stable_offset();
            let cleanable = sealed.partition_point(|s| {
                partition.read_upper_bound(s.base_offset()) <= last_stable_offset
            });
            sealed.truncate(cleanable);
            let tp = &partition.topic_partition;
            if let Some(failed) = self.uncleanable.get(tp) {
                if *failed == sealed_signature(&sealed) {
                    continue;
                }
                self.uncleanable.remove(tp);
            }
            // A checkpointed offset past the log's end is from a deleted log of the same name.
            let first_dirty_offset = self
                .first_dirty_offsets
                .get(&partition.topic_partition)
                .copied()
                .filter(|&o| o <= partition.log_end_offset())
                .unwrap_or(0)
                .max(partition.log_start_offset());
            let first_dirty = sealed.partition_point(|s| s.base_offset() < first_dirty_offset);
            let clean_bytes: u64 = sealed[..first_dirty].iter().map(LogSegment::size).sum();
            let dirty_bytes: u64 = sealed[first_dirty..].iter().map(LogSegment::size).sum();
            if dirty_bytes == 0 {
                continue;
            }
            let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64;
            let overdue = config.max_compaction_lag_ms < i64::MAX
                && sealed[first_dirty..]
                    .iter()
                    .any(|s| now - s.largest_timestamp() > config.max_compaction_lag_ms);
            if ratio < config.min_cleanable_ratio && !overdue {
                continue;
            }
            if best.as_ref().is_none_or(|b| ratio > b.ratio) {
                best = Some(Candidate {
                    partition,
                    config,
                    sealed,
                    first_dirty,
                    ratio,
                });
            }
        }
        best
    }

    /// Cleans one log. Returns whether any segment was swapped or the first dirty offset moved.
    fn clean(&mut self, c: Candidate) -> io::Result<bool> {
        let tp = c.partition.topic_partition.clone();
        // The throughput covers both passes: the offset map and the rewrite.
        let started = Instant::now();
        let now = crate::server::apis::now_ms();
        let mut throttle = Throttle::new(self.config.io_max_bytes_per_second);
        let mut map = OffsetMap::new(self.config.dedupe_buffer_size);
        let mut producers = HashMap::new();
        for s in &c.sealed[..c.first_dirty] {
            cleaner::for_each_batch(s, |b| {
                cleaner::note_producer(b, &mut producers);
                Ok(true)
            })?;
        }
        // Segments [0, mapped_end) are cleaned; those below `fully_mapped` become clean. The
        // cleanable range ends at the active segment, the compaction lag, and the last stable
        // offset: a segment that ends past it may hold an open transaction's records.
        let last_stable_offset = c.partition.last_stable_offset();
        let mut map_txn = match c.sealed.get(c.first_dirty) {
            Some(s) => TxnCleaning::new(
                c.partition
                    .aborted_transactions(s.base_offset(), last_stable_offset)?,
            ),
            None => TxnCleaning::default(),
        };
        let mut fully_mapped = c.first_dirty;
        let mut mapped_end = c.first_dirty;
        let mut cleanable_end = c.sealed.first().map_or(0, LogSegment::base_offset);
        for s in &c.sealed[c.first_dirty..] {
            if now - s.largest_timestamp() < c.config.min_compaction_lag_ms {
                break;
            }
            let segment_end = c.partition.read_upper_bound(s.base_offset());
            if segment_end > last_stable_offset {
                break;
            }
            cleanable_end = segment_end;
            let complete = cleaner::map_segment(s, &mut map, &mut producers, &mut map_txn)?;
            throttle.consumed(s.size());
            mapped_end += 1;
            if !complete {
                warn!(
                    "{tp}: log.cleaner.dedupe.buffer.size holds {} keys; segment {} is cleaned with a partial offset map",
                    map.len(),
                    s.base_offset()
                );
                break;
            }
            fully_mapped += 1;
        }
        if mapped_end == c.first_dirty {
            return Ok(false);
        }
        let mut txn = TxnCleaning::new(
            c.partition
                .aborted_transactions(c.sealed[0].base_offset(), cleanable_end)?,
        );
        let mut total = CleanStats::default();
        let mut cleaned = Vec::new();
        for (i, s) in c.sealed[..mapped_end].iter().enumerate() {
            if self.ctx.shutting_down.load(Ordering::Relaxed) {
                remove_cleaned(&c.partition.dir, &cleaned);
                return Ok(false);
            }
            let was_clean = i < c.first_dirty;
            let modified = fs::metadata(s.log_path()).and_then(|m| m.modified()).ok();
            let age_ms = modified
                .and_then(|t| t.elapsed().ok())
                .map_or(0, |d| d.as_millis() as i64);
            let drop_tombstones = was_clean && age_ms >= c.config.delete_retention_ms;
            let out = cleaned_path(&c.partition.dir, s.base_offset());
            let result =
                cleaner::clean_segment(s, &out, &map, &producers, drop_tombstones, &mut txn)
                    .and_then(|stats| {
                        write_cleaned_txn_index(s, &stats.removed_abort_markers)?;
                        Ok(stats)
                    });
            let stats = match result {
                Ok(stats) => stats,
                Err(e) => {
                    let _ = fs::remove_file(&out);
                    remove_cleaned(&c.partition.dir, &cleaned);
                    return Err(e);
                }
            };
            throttle.consumed(stats.bytes_read + stats.bytes_written);
            total.bytes_read += stats.bytes_read;
            total.bytes_written += stats.bytes_written;
            total.records_kept += stats.records_kept;
            total.records_removed += stats.records_removed;
            total.markers_removed += stats.markers_removed;
            // A recompressed batch may come out at its old size, so the size alone does not say
            // that nothing was removed.
            if stats.records_removed == 0 && stats.bytes_written == s.size() {
                // Nothing to remove here: keep the segment (and its time) as it is.
                fs::remove_file(&out)?;
                continue;
            }
            if was_clean && let Some(modified) = modified {
                fs::File::options()
                    .write(true)
                    .open(&out)?
                    .set_modified(modified)?;
            }
            cleaned.push(CleanedSegment {
                base_offset: s.base_offset(),
                source_size: s.size(),
            });
        }
        let swapped = if cleaned.is_empty() {
            0
        } else {
            self.swap(&c.partition, cleaned)?
        };
        // The base of the segment after the last fully mapped one (the active segment, or one
        // rolled meanwhile, when every sealed segment was mapped).
        let next_dirty = match fully_mapped.checked_sub(1) {
            None => c.sealed[0].base_offset(),
            Some(last) => {
                let last_base = c.sealed[last].base_offset();
                let bases = c.partition.segment_base_offsets();
                bases[bases
                    .partition_point(|&b| b <= last_base)
                    .min(bases.len() - 1)]
            }
        };
        let moved = self.first_dirty_offsets.insert(tp.clone(), next_dirty) != Some(next_dirty);
        self.write_checkpoint()?;
        let secs = started.elapsed().as_secs_f64();
        info!(
            "{tp}: cleaned {} segment(s), swapped {swapped}: {} -> {} bytes, {} record(s) kept, {} removed, {} marker(s) removed, {:.1} MB/s; first dirty offset {next_dirty}",
            mapped_end,
            total.bytes_read,
            total.bytes_written,
            total.records_kept,
            total.records_removed,
            total.markers_removed,
            total.bytes_read as f64 / 1e6 / secs.max(1e-6)
        );
        Ok(swapped > 0 || moved)
    }

    /// Asks the writer to swap the cleaned segments in and waits for its answer.
    fn swap(&self, partition: &Arc<Partition>, segments: Vec<CleanedSegment>) -> io::Result<usize> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let gone = || io::Error::other("the log writer has stopped");
        if self
            .ctx
            .writer
            .send(WriterCommand::ReplaceCleanedSegments {
                partition: partition.clone(),
                segments: segments.clone(),
                reply,
            })
            .is_err()
        {
            remove_cleaned(&partition.dir, &segments);
            return Err(gone());
        }
        answer.recv().map_err(|_| gone())?
    }

    /// Writes `cleaner-offset-checkpoint` with the logs that still exist.
    fn write_checkpoint(&mut self) -> io::Result<()> {
        let partitions = self.ctx.partitions.read();
        self.first_dirty_offsets
            .retain(|tp, _| partitions.contains_key(tp));
        drop(partitions);
        let mut entries: Vec<(TopicPartition, i64)> = self
            .first_dirty_offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        entries.sort();
        debug!(
            "writing {} ({} logs)",
            self.checkpoint_path.display(),
            entries.len()
        );
        write_offset_checkpoint(&self.checkpoint_path, &entries)
    }
}

fn remove_cleaned(dir: &Path, segments: &[CleanedSegment]) {
    for s in segments {
        let _ = fs::remove_file(cleaned_path(dir, s.base_offset));
        let _ = fs::remove_file(cleaned_txn_index_path(dir, s.base_offset));
    }
}

/// Writes `<base>.txnindex.cleaned`, the segment's aborted transaction index without the entries
/// of the ABORT markers the cleaning removed (their data went before them), for the swap to
/// install. Nothing when no ABORT marker was removed: the index stays as it is.
fn write_cleaned_txn_index(segment: &LogSegment, removed_markers: &[i64]) -> io::Result<()> {
    if removed_markers.is_empty() {
        return Ok(());
    }
    let kept: Vec<u8> = segment
        .aborted_txns()?
        .iter()
        .filter(|a| !removed_markers.contains(&a.last_offset))
        .flat_map(|a| a.encode())
        .collect();
    let dir = segment
        .log_path()
        .parent()
        .expect("a segment is in a directory");
    let path = cleaned_txn_index_path(dir, segment.base_offset());
    let mut file = fs::File::create(&path)?;
    io::Write::write_all(&mut file, &kept)?;
    file.sync_all()
}

/// Keeps the cleaner's I/O under `log.cleaner.io.max.bytes.per.second` (Kafka's `Throttler`).
struct Throttle {
    bytes_per_second: f64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(bytes_per_second: f64) -> Self {
        Throttle {
            bytes_per_second,
            started: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes` of I/O and sleeps while the cleaner is ahead of its rate.
    fn consumed(&mut self, bytes: u64) {
        self.bytes += bytes;
        if !(self.bytes_per_second > 0.0 && self.bytes_per_second < f64::MAX) {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes as f64 / self.bytes_per_second);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead.min(Duration::from_secs(60)));
        }
    }
}
