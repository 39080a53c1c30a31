//! One topic-partition's log (Kafka's `UnifiedLog` and `LogLoader`): a directory of segments named
//! by their base offset (`<log.dirs>/<topic>-<partition>/00000000000000000000.log` with its
//! `.index`, `.timeindex` and, once it holds an ABORT marker, `.txnindex`), plus producer
//! snapshots (`<offset>.snapshot`).
//!
//! Ownership: only the `log-writer` thread holds the [`PartitionLog`] and changes the log (append,
//! roll, flush, retention, DeleteRecords). Connection threads read through [`Partition`]: they
//! clone the segment they need under a short read lock, then read its files with positional reads
//! and no lock held. The writer does its file I/O under an upgradable read lock (readers keep
//! reading) and publishes the result (segment size, index entries, log end offset) under the
//! write lock only once the bytes are in the files, so a reader never sees a partial batch.
//!
//! Invariants: segments are sorted by base offset and contiguous, and only the last (active) one
//! is ever written; `log_start_offset <= high_watermark <= log_end_offset`; everything below the
//! recovery point is on disk (log and sealed indexes). A single replica commits on write, so the
//! high watermark is the log end offset, except with `flush_on_ack`, where it is the recovery
//! point: a record becomes visible once it is on disk. The last stable offset (LSO) is the first
//! offset of the earliest open transaction, capped by the high watermark; it never passes a
//! transactional batch that read_committed readers may not see, nor an ABORT marker whose
//! `.txnindex` entry is not published yet.
//!
//! Faults: a failed write is cut off the file again and the append fails; the log stays
//! writable. A failed fsync is never retried as if it had succeeded, since the kernel may already
//! have dropped the pages it could not write (and reports that only once): with `flush_on_ack`
//! the log is cut back to the recovery point, which nobody has read past, and reloaded; otherwise
//! readers may have seen the unflushed records, so the log goes offline (Kafka's offline log dir):
//! it refuses appends, keeps serving reads, is never flushed again, and the next start recovers
//! it from the recovery point.

use super::checkpoint::{sync_dir, sync_parent_dir, temp_path};
use super::index::NO_TIMESTAMP;
use super::open_files::{self, SegmentFile};
use super::producer_state::{
    CompletedTxn, ProducerBatch, ProducerDescription, ProducerStateManager, SequenceCheck,
};
use super::record_batch::{self, HEADER_SIZE};
use super::segment::{
    BatchInfo, DELETED_FILE_SUFFIX, FileRegion, INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, LogSegment,
    TIME_INDEX_FILE_SUFFIX, parse_segment_file_name,
};
use super::txn_index::{self, AbortedTxn, TXN_INDEX_FILE_SUFFIX};
use crate::protocol::error_code::ErrorCode;
use byteorder::{BigEndian, ByteOrder};
use log::{debug, error, info, warn};
use parking_lot::{Condvar, Mutex, RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use super::segment::segment_file_name;
pub use compaction::{CRASH_POINT_ENV, CleanedSegment, cleaned_path, cleaned_txn_index_path};

mod compaction;

/// The suffix of Kafka's producer state snapshot files.
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snapshot";

/// A topic name and partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition's directory name, `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The settings of one log, from broker defaults (`log.*`) and topic overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes` / `log.segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms` / `log.roll.ms`.
    pub segment_ms: i64,
    /// `index.interval.bytes` / `log.index.interval.bytes`.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes` / `log.index.size.max.bytes`.
    pub max_index_size: u64,
    /// `retention.ms` / `log.retention.ms`; negative means no limit.
    pub retention_ms: i64,
    /// `retention.bytes` / `log.retention.bytes`; negative means no limit.
    pub retention_bytes: i64,
    /// Whether `cleanup.policy` includes `delete`: retention and DeleteRecords apply only then.
    pub delete_enabled: bool,
    /// `flush.messages` / `log.flush.interval.messages`.
    pub flush_interval_messages: i64,
    /// `flush.ms` / `log.flush.interval.ms`.
    pub flush_interval_ms: Option<i64>,
    /// `sprat.log.flush.on.ack`: the high watermark follows the recovery point, so that
    /// consumers only ever see records that are on disk, and an fsync that fails can be undone
    /// by cutting the log back to the recovery point (nobody has seen what it cuts).
    pub flush_on_ack: bool,
}

impl Default for LogConfig {
    /// Kafka's defaults, except that nothing is ever deleted: the settings of a log no topic
    /// configures, such as the cluster metadata log.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            index_interval_bytes: 4096,
            max_index_size: 10 << 20,
            retention_ms: -1,
            retention_bytes: -1,
            delete_enabled: false,
            flush_interval_messages: i64::MAX,
            flush_interval_ms: None,
            flush_on_ack: false,
        }
    }
}

/// The shared state of a partition's log.
#[derive(Debug)]
struct LogState {
    segments: Vec<LogSegment>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    /// The first offset of the earliest open transaction (the producer state's, published by the
    /// writer before a transactional batch becomes visible and after a marker's index entry is
    /// written).
    first_unstable_offset: Option<i64>,
}

impl LogState {
    /// The last stable offset: read_committed readers stop here.
    fn last_stable_offset(&self) -> i64 {
        self.first_unstable_offset
            .map_or(self.high_watermark, |f| f.min(self.high_watermark))
    }
}

impl LogState {
    fn active(&self) -> &LogSegment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// The index of the segment that holds `offset` (the last one whose base is at most it).
    fn segment_index(&self, offset: i64) -> Option<usize> {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .checked_sub(1)
    }

    /// The offset after segment `i`'s last batch.
    fn segment_end(&self, i: usize) -> i64 {
        self.segments
            .get(i + 1)
            .map_or(self.log_end_offset, LogSegment::base_offset)
    }
}

/// A partition's log as every thread sees it. The writer thread holds a [`PartitionLog`] that
/// changes it; readers call [`Partition::read`].
#[derive(Debug)]
pub struct Partition {
    pub topic_partition: TopicPartition,
    pub dir: PathBuf,
    state: RwLock<LogState>,
}

/// Why a read could not be served.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The offset is below the log start offset or above the log end offset.
    OffsetOutOfRange,
}

/// What a read returns: batch bytes (possibly empty) and the partition's offsets at that moment.
#[derive(Debug, Default)]
pub struct ReadResult {
    pub records: Vec<u8>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// What [`Partition::read_region`] found.
pub struct RegionRead {
    pub region: Option<FileRegion>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The last stable offset at the time of the read.
    pub last_stable_offset: i64,
}

impl Partition {
    pub fn high_watermark(&self) -> i64 {
        self.state.read().high_watermark
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.read().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.state.read().log_end_offset
    }

    /// The last stable offset (LSO): the first offset of the earliest open transaction, or the
    /// high watermark when none is open. read_committed fetches stop here, and so must the
    /// cleaner.
    pub fn last_stable_offset(&self) -> i64 {
        self.state.read().last_stable_offset()
    }

    /// Where a read from `offset` ends at the latest: the base offset of the next segment (a read
    /// never crosses a segment's end), or the log end offset (Kafka's `fetchUpperBoundOffset`,
    /// at segment granularity).
    pub fn read_upper_bound(&self, offset: i64) -> i64 {
        let state = self.state.read();
        state
            .segment_index(offset)
            .map_or(state.log_end_offset, |i| state.segment_end(i))
    }

    /// The aborted transactions that overlap `[fetch_offset, upper_bound_offset)` (Kafka's
    /// `UnifiedLog.collectAbortedTransactions`): the index of every segment from the one holding
    /// `fetch_offset` on is searched until an entry's last stable offset reaches the bound.
    /// Segments without an index cost no I/O.
    pub fn aborted_transactions(
        &self,
        fetch_offset: i64,
        upper_bound_offset: i64,
    ) -> io::Result<Vec<AbortedTxn>> {
        let segments: Vec<LogSegment> = {
            let state = self.state.read();
            let i = state.segment_index(fetch_offset).unwrap_or(0);
            state.segments[i..]
                .iter()
                .filter(|s| s.txn_index_bytes() > 0)
                .cloned()
                .collect()
        };
        let mut aborted = Vec::new();
        for segment in segments {
            let entries = match segment.aborted_txns() {
                // Deleted (retention) since it was looked up: it is below the log start now.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                entries => entries?,
            };
            let found = txn_index::collect(&entries, fetch_offset, upper_bound_offset);
            aborted.extend(found.aborted);
            if found.complete {
                break;
            }
        }
        Ok(aborted)
    }

    /// The bytes in all segments.
    pub fn size_in_bytes(&self) -> u64 {
        self.state
            .read()
            .segments
            .iter()
            .map(LogSegment::size)
            .sum()
    }

    pub fn segment_count(&self) -> usize {
        self.state.read().segments.len()
    }

    /// Copies of the sealed segments (all but the active one), oldest first, for the cleaner.
    pub fn sealed_segments(&self) -> Vec<LogSegment> {
        let state = self.state.read();
        state.segments[..state.segments.len() - 1].to_vec()
    }

    /// The base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state
            .read()
            .segments
            .iter()
            .map(LogSegment::base_offset)
            .collect()
    }

    /// Reads whole batches starting with the one that holds `fetch_offset`, up to `max_bytes`.
    /// When `min_one_batch` is set, the first batch is returned whole even if it is larger than
    /// `max_bytes` (Kafka's rule that lets a consumer make progress). Reads stop at the end of the
    /// segment holding `fetch_offset` and never pass the high watermark. The start position comes
    /// from the segment's offset index, so at most one index interval is scanned.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> io::Result<Result<ReadResult, ReadError>> {
        let read = match self.read_region(fetch_offset, max_bytes, min_one_batch)? {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(ReadResult {
            records: match &read.region {
                Some(region) => region.read()?,
                None => Vec::new(),
            },
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
        }))
    }

    /// [`Partition::read`] without reading the batches: where they are in a segment file (`None`
    /// when there are none to read).
    pub fn read_region(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> io::Result<Result<RegionRead, ReadError>> {
        self.read_region_isolated(fetch_offset, max_bytes, min_one_batch, false)
    }

    /// [`Partition::read_region`] for a read_committed reader when `read_committed` is set: the
    /// read stops at the last stable offset instead of the high watermark.
    pub fn read_region_isolated(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        read_committed: bool,
    ) -> io::Result<Result<RegionRead, ReadError>> {
        // The base offset of the segment last tried, when it ended before `fetch_offset`.
        let mut tried: Option<i64> = None;
        let mut retried_missing = false;
        loop {
            let (segment, high_watermark, log_start_offset, last_stable_offset) = {
                let state = self.state.read();
                if fetch_offset < state.log_start_offset || fetch_offset > state.log_end_offset {
                    return Ok(Err(ReadError::OffsetOutOfRange));
                }
                let last_stable_offset = state.last_stable_offset();
                let max_offset = if read_committed {
                    last_stable_offset
                } else {
                    state.high_watermark
                };
                let i = match tried {
                    None => state.segment_index(fetch_offset),
                    Some(base) => Some(state.segments.partition_point(|s| s.base_offset() <= base)),
                };
                let segment = i.and_then(|i| state.segments.get(i));
                match segment {
                    Some(segment) if fetch_offset < max_offset => (
                        segment.clone(),
                        state.high_watermark,
                        state.log_start_offset,
                        last_stable_offset,
                    ),
                    _ => {
                        return Ok(Ok(RegionRead {
                            region: None,
                            high_watermark: state.high_watermark,
                            log_start_offset: state.log_start_offset,
                            last_stable_offset,
                        }));
                    }
                }
            };
            let max_offset = if read_committed {
                last_stable_offset
            } else {
                high_watermark
            };
            let read = match segment.read_region(fetch_offset, max_offset, max_bytes, min_one_batch)
            {
                // The segment was deleted (retention, DeleteRecords) after it was looked up, and
                // its file was not open: look again, the log start offset has moved past it.
                Err(e) if e.kind() == io::ErrorKind::NotFound && !retried_missing => {
                    retried_missing = true;
                    continue;
                }
                read => read?,
            };
            if let Some(region) = read {
                return Ok(Ok(RegionRead {
                    region: (region.len > 0).then_some(region),
                    high_watermark,
                    log_start_offset,
                    last_stable_offset,
                }));
            }
            tried = Some(segment.base_offset());
        }
    }

    /// The offset and timestamp of the first record at or after the log start offset whose
    /// timestamp is at least `target` (ListOffsets by timestamp), or `None` if every record is
    /// older. The first segment whose largest timestamp reaches `target` is searched through its
    /// time index.
    pub fn offset_for_timestamp(&self, target: i64) -> io::Result<Option<(i64, i64)>> {
        let mut from = 0;
        loop {
            let (segment, log_start_offset) = {
                let state = self.state.read();
                let found = state.segments[from.min(state.segments.len())..]
                    .iter()
                    .position(|s| s.max_timestamp_so_far().timestamp >= target);
                match found {
                    Some(i) => (state.segments[from + i].clone(), state.log_start_offset),
                    None => return Ok(None),
                }
            };
            if let Some(found) = segment.find_offset_by_timestamp(target, log_start_offset)? {
                return Ok(Some(found));
            }
            // Every record that reached the target lies below the log start offset.
            let state = self.state.read();
            from = state
                .segments
                .partition_point(|s| s.base_offset() <= segment.base_offset());
        }
    }

    /// The offset and timestamp of the record with the largest timestamp (the first one, if
    /// several share it), for ListOffsets with MAX_TIMESTAMP.
    pub fn max_timestamp_offset(&self) -> io::Result<Option<(i64, i64)>> {
        let segment = {
            let state = self.state.read();
            let mut best: Option<&LogSegment> = None;
            for s in state.segments.iter().filter(|s| s.size() > 0) {
                let ts = s.max_timestamp_so_far().timestamp;
                if best.is_none_or(|b| ts > b.max_timestamp_so_far().timestamp) {
                    best = Some(s);
                }
            }
            match best {
                Some(s) => s.clone(),
                None => return Ok(None),
            }
        };
        segment.max_timestamp_record()
    }
}

/// The writer thread's handle on one partition's log.
pub struct PartitionLog {
    pub partition: Arc<Partition>,
    config: LogConfig,
    producers: ProducerStateManager,
    /// Everything below this offset is on disk.
    recovery_point: i64,
    last_flush_ms: i64,
    /// A segment file was created or removed since the directory was last fsynced.
    dir_dirty: bool,
    /// Sealed segments waiting for a background fsync, see [`PartitionLog::take_sealed_flush`].
    sealed_flush: Option<SealedFlush>,
    /// Tells this log from a later one of the same name (after a topic is deleted and recreated).
    id: u64,
    /// Set when an fsync failed and could not be undone: see the module documentation.
    offline: bool,
    /// The snapshot [`PartitionLog::prepare_close`] wrote, for [`PartitionLog::finish_close`].
    closing_snapshot: Option<Arc<SegmentFile>>,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    /// The producer state forbids it (sequence gap, fenced epoch).
    Producer(ErrorCode),
    /// Writing the file failed.
    Io(io::Error),
    /// The log is offline after an fsync failed.
    Offline,
}

impl From<io::Error> for AppendError {
    fn from(e: io::Error) -> Self {
        AppendError::Io(e)
    }
}

/// Why DeleteRecords could not move the log start offset.
#[derive(Debug)]
pub enum DeleteRecordsError {
    /// The offset is negative (other than -1, "the high watermark") or past the high watermark.
    OffsetOutOfRange,
    /// The topic's `cleanup.policy` does not include `delete`.
    PolicyViolation,
    Io(io::Error),
}

/// The offsets an append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What the loader knows from the log directory's checkpoint files.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// `.kafka_cleanshutdown` was present: every segment is trusted as it is.
    pub had_clean_shutdown: bool,
    /// From `recovery-point-offset-checkpoint`; none means recover every segment.
    pub recovery_point: Option<i64>,
    /// From `log-start-offset-checkpoint`.
    pub log_start_offset: Option<i64>,
}

/// Files of sealed segments (and the producer snapshot taken at the roll) that are not yet known
/// to be on disk. The writer hands this to a background thread, which fsyncs them and reports
/// back so that the recovery point can move to `upto_offset` (Kafka flushes a rolled segment
/// asynchronously in the same way).
pub struct SealedFlush {
    pub topic_partition: TopicPartition,
    pub log_id: u64,
    pub upto_offset: i64,
    /// The recovery point when the flush was handed out: if it fails, the recovery point must
    /// not stay above this, even if a later fsync of the same files seems to succeed.
    pub from_offset: i64,
    /// The producer snapshot and the sealed segments' files, opened again when synced if the
    /// open files cache closed them meanwhile.
    files: Vec<Arc<SegmentFile>>,
    dir: PathBuf,
}

impl SealedFlush {
    /// fsyncs every file and the directory.
    pub fn run(&self) -> io::Result<()> {
        for f in &self.files {
            f.sync(false)?;
        }
        sync_dir(&self.dir)
    }
}

static NEXT_LOG_ID: AtomicU64 = AtomicU64::new(1);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What a log directory holds, after stray files are removed.
struct DirListing {
    segment_bases: Vec<i64>,
    snapshot_offsets: Vec<i64>,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir` as after a crash with no checkpoint: every segment is
    /// recovered (see [`PartitionLog::load`]).
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
    ) -> io::Result<PartitionLog> {
        Self::load(dir, topic_partition, config, LoadOptions::default())
    }

    /// Opens (or creates) the log in `dir` (Kafka's `LogLoader`). After a clean shutdown every
    /// segment is trusted: only the ends of the indexes and the tail of the active segment after
    /// its last index entry are read. Otherwise each segment from the one holding the recovery
    /// point on is recovered: every batch's length, CRC-32C and offsets are checked, the file is
    /// cut at the first bad batch, later segments are deleted, and the indexes are rebuilt. A
    /// missing or corrupt index of a trusted segment is rebuilt the same way. Producer state comes
    /// from the latest valid snapshot plus the batch headers after it.
    pub fn load(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        options: LoadOptions,
    ) -> io::Result<PartitionLog> {
        let created = !dir.exists();
        fs::create_dir_all(dir)?;
        if created {
            // The new directory must outlive a power loss as much as the data written into it.
            sync_parent_dir(dir)?;
        }
        let now = now_ms();
        let tp = &topic_partition;
        let listing = list_log_dir(dir, tp)?;
        let (mut segments, mut dir_dirty, mut recovered) =
            load_segments(dir, tp, &config, &listing.segment_bases, &options, now)?;
        let mut log_end_offset = next_offset_of(&mut segments)?;
        let first_base = segments[0].base_offset();
        let mut log_start_offset = options
            .log_start_offset
            .unwrap_or(first_base)
            .max(first_base);
        if log_start_offset > log_end_offset {
            // The checkpointed start is past what survived: start over there, so that no offset
            // below it is ever handed out again (Kafka's `truncateFullyAndStartAt`).
            warn!(
                "{tp}: log end offset {log_end_offset} is below the log start offset {log_start_offset}; starting the log over at {log_start_offset}"
            );
            for s in &segments {
                s.delete()?;
            }
            segments = vec![LogSegment::create(dir, log_start_offset, &config, now)?];
            log_end_offset = log_start_offset;
            dir_dirty = true;
            recovered = vec![log_start_offset];
        }
        log_start_offset = log_start_offset.min(log_end_offset);
        let active = segments.last_mut().expect("at least one segment");
        active.resize_indexes(config.max_index_size);
        active.load_rolling_based_timestamp()?;
        let recovery_point = if options.had_clean_shutdown {
            log_end_offset
        } else {
            options.recovery_point.unwrap_or(0).min(log_end_offset)
        };
        let partition = Arc::new(Partition {
            topic_partition: topic_partition.clone(),
            dir: dir.to_path_buf(),
            state: RwLock::new(LogState {
                segments,
                log_start_offset,
                log_end_offset,
                high_watermark: log_end_offset,
                first_unstable_offset: None,
            }),
        });
        let producers = load_producer_state(&partition, &listing.snapshot_offsets, &recovered)?;
        partition.state.write().first_unstable_offset = producers.first_unstable_offset();
        if created {
            debug!("{tp}: created the log at offset {log_end_offset}");
        } else {
            debug!(
                "{tp}: loaded {} segment(s) after a{} shutdown, log start offset {log_start_offset}, log end offset {log_end_offset}, recovery point {recovery_point}, {} producer(s)",
                partition.segment_count(),
                if options.had_clean_shutdown {
                    " clean"
                } else {
                    "n unclean"
                },
                producers.producer_count()
            );
        }
        Ok(PartitionLog {
            partition,
            config,
            producers,
            recovery_point,
            last_flush_ms: now,
            dir_dirty,
            sealed_flush: None,
            id: NEXT_LOG_ID.fetch_add(1, Ordering::Relaxed),
            offline: false,
            closing_snapshot: None,
        })
    }

    pub fn log_end_offset(&self) -> i64 {
        self.partition.log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.partition.log_start_offset()
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies changed topic configs; they take effect from the next append or retention check.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Forgets producers idle for `expiration_ms` (see
    /// [`ProducerStateManager::remove_expired`]); returns how many.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// The largest producer id this log has seen.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.max_producer_id()
    }

    /// Appends one validated batch from a producer: a batch with a producer id is first checked
    /// against the producer's state, and a retry of a recent batch returns its original offsets
    /// without being written again.
    pub fn append_batch(&mut self, batch: &mut [u8]) -> Result<AppendInfo, AppendError> {
        if self.offline {
            return Err(AppendError::Offline);
        }
        let producer = producer_fields(batch);
        if let Some(p) = &producer {
            match self.producers.check(p).map_err(AppendError::Producer)? {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate {
                    first_offset,
                    last_offset,
                } => {
                    return Ok(AppendInfo {
                        first_offset,
                        last_offset,
                    });
                }
            }
        }
        // A batch that opens a transaction holds the LSO back before it becomes visible.
        let opens_txn = producer
            .as_ref()
            .is_some_and(|p| p.is_transactional && !self.producers.has_open_txn(p.producer_id));
        if opens_txn {
            let mut state = self.partition.state.write();
            let first = state.log_end_offset;
            state.first_unstable_offset =
                Some(state.first_unstable_offset.map_or(first, |f| f.min(first)));
        }
        let appended = self.append(batch);
        if let (Ok(info), Some(p)) = (&appended, &producer) {
            self.producers
                .update(p, info.first_offset, info.last_offset);
        }
        if opens_txn {
            self.publish_first_unstable_offset();
        }
        Ok(appended?)
    }

    /// Writes a COMMIT or ABORT marker of `producer_id` as a control batch (Kafka's
    /// `UnifiedLog.appendAsLeader` with origin COORDINATOR): checks it against the producer's
    /// state, appends it, closes the producer's transaction, adds an aborted transaction to the
    /// active segment's index, and only then lets the LSO move. A marker for a producer with no
    /// open transaction here is written all the same, as Kafka's is.
    ///
    /// When the index entry cannot be written the log goes offline: the marker is in the file
    /// and readers must not pass it without the entry; the next start recovers the segment and
    /// rebuilds its index.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partition_leader_epoch: i32,
    ) -> Result<AppendInfo, AppendError> {
        if self.offline {
            return Err(AppendError::Offline);
        }
        self.producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)
            .map_err(AppendError::Producer)?;
        let timestamp = now_ms();
        let mut batch = record_batch::build_end_txn_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            timestamp,
            partition_leader_epoch,
        );
        let info = self.append(&mut batch)?;
        let completed = self.producers.apply_marker(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            info.first_offset,
            timestamp,
        );
        if completed.is_aborted
            && let Err(e) = self.append_aborted_txn(&completed)
        {
            error!(
                "{}: cannot write the aborted transaction index: {e}",
                self.partition.topic_partition
            );
            self.go_offline();
            return Err(AppendError::Io(e));
        }
        self.publish_first_unstable_offset();
        Ok(info)
    }

    /// Adds an aborted transaction to the index of the active segment, which holds its marker.
    fn append_aborted_txn(&mut self, txn: &CompletedTxn) -> io::Result<()> {
        let entry = aborted_entry(txn);
        let partition = self.partition.clone();
        let state = partition.state.upgradable_read();
        let size = state.active().prepare_txn_entry(&entry)?;
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        state.active_mut().commit_txn_entry(size);
        Ok(())
    }

    fn publish_first_unstable_offset(&self) {
        self.partition.state.write().first_unstable_offset = self.producers.first_unstable_offset();
    }

    /// The producers this partition remembers, for DescribeProducers.
    pub fn describe_producers(&self) -> Vec<ProducerDescription> {
        self.producers.describe()
    }

    /// The open transactions as (first offset, producer id), oldest first.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.producers.ongoing_transactions()
    }

    /// Appends a buffer of one or more validated batches, giving them consecutive offsets from
    /// the log end offset by rewriting each base offset in place. Rolls a new segment first when
    /// the active one is due (`segment.bytes`, `segment.ms`, full index). Returns the offsets
    /// assigned. The bytes are in the file (page cache) when this returns; see
    /// [`PartitionLog::flush`].
    pub fn append(&mut self, batches: &mut [u8]) -> io::Result<AppendInfo> {
        let now = now_ms();
        let partition = self.partition.clone();
        let state = partition.state.upgradable_read();
        let first_offset = state.log_end_offset;
        let infos = assign_offsets(batches, first_offset)?;
        let next = infos.last().map_or(first_offset, |b| b.last_offset + 1);
        let info = AppendInfo {
            first_offset,
            last_offset: next - 1,
        };
        if infos.is_empty() {
            return Ok(info);
        }
        let max_timestamp = infos
            .iter()
            .map(|b| b.max_timestamp)
            .max()
            .unwrap_or(NO_TIMESTAMP);
        let roll = state.active().should_roll(
            &self.config,
            batches.len() as u64,
            max_timestamp,
            next - 1,
            now,
        );
        let state = if roll { self.roll(state, now)? } else { state };
        let pending =
            match state
                .active()
                .prepare_append(batches, &infos, self.config.index_interval_bytes)
            {
                Ok(pending) => pending,
                Err(e) => {
                    // A full disk may have taken part of the batch: cut it off, so that the file
                    // ends where the published log does and the next append starts clean.
                    if let Err(cut) = state.active().discard_unpublished() {
                        warn!(
                            "{}: could not cut a failed append off the log: {cut}",
                            self.partition.topic_partition
                        );
                    }
                    return Err(e);
                }
            };
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        state.active_mut().commit_append(pending);
        state.log_end_offset = next;
        if !self.config.flush_on_ack {
            state.high_watermark = next;
        }
        Ok(info)
    }

    /// Seals the active segment and starts a new one at the log end offset (Kafka's `roll`),
    /// taking a producer snapshot at the new base offset and queueing the sealed files for a
    /// background fsync. The I/O happens before the write lock is taken.
    fn roll<'a>(
        &mut self,
        state: RwLockUpgradableReadGuard<'a, LogState>,
        now: i64,
    ) -> io::Result<RwLockUpgradableReadGuard<'a, LogState>> {
        let base_offset = state.log_end_offset;
        let mut sealed = state.active().clone();
        sealed.seal()?;
        let new = LogSegment::create(&self.partition.dir, base_offset, &self.config, now)?;
        let snapshot = self.write_producer_snapshot(base_offset, false)?;
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        *state.active_mut() = sealed;
        state.segments.push(new);
        self.dir_dirty = true;
        info!(
            "{}: rolled new segment at offset {base_offset}",
            self.partition.topic_partition
        );
        let mut files = vec![snapshot];
        let from = state.segment_index(self.recovery_point).unwrap_or(0);
        let sealed_count = state.segments.len() - 1;
        for s in &state.segments[from.min(sealed_count)..sealed_count] {
            files.extend(s.files());
        }
        self.sealed_flush = Some(SealedFlush {
            topic_partition: self.partition.topic_partition.clone(),
            log_id: self.id,
            upto_offset: base_offset,
            from_offset: self.recovery_point,
            files,
            dir: self.partition.dir.clone(),
        });
        Ok(RwLockWriteGuard::downgrade_to_upgradable(state))
    }

    /// Sealed segments that wait for an fsync, taken by the writer after each group of appends.
    pub fn take_sealed_flush(&mut self) -> Option<SealedFlush> {
        self.sealed_flush.take()
    }

    /// Records that a [`SealedFlush`] finished: the recovery point may move up to its offset.
    pub fn mark_flushed(&mut self, upto_offset: i64) {
        if self.offline {
            return;
        }
        let upto = upto_offset.min(self.log_end_offset());
        if upto > self.recovery_point {
            self.recovery_point = upto;
            self.publish_recovery_point();
        }
    }

    /// Records that a [`SealedFlush`] failed. Its fsync may have been the one that reported the
    /// lost pages, so a later fsync of the same files proves nothing: the recovery point goes
    /// back to where the flush started and the log goes offline.
    pub fn mark_flush_failed(&mut self, from_offset: i64) {
        self.recovery_point = self.recovery_point.min(from_offset);
        self.go_offline();
    }

    /// With `flush_on_ack`, makes what is on disk visible: the high watermark moves up to the
    /// recovery point.
    fn publish_recovery_point(&self) {
        if self.config.flush_on_ack {
            let mut state = self.partition.state.write();
            let visible = self.recovery_point.min(state.log_end_offset);
            state.high_watermark = state.high_watermark.max(visible);
        }
    }

    fn go_offline(&mut self) {
        if !self.offline {
            error!(
                "{}: an fsync failed; the partition is offline for appends until the broker is restarted, and will then be recovered from offset {}",
                self.partition.topic_partition, self.recovery_point
            );
        }
        self.offline = true;
        self.sealed_flush = None;
    }

    /// Messages appended since the last flush (Kafka's `unflushedMessages`).
    pub fn unflushed_messages(&self) -> i64 {
        self.log_end_offset() - self.recovery_point
    }

    /// Whether unflushed messages call for an fsync now: any, with `flush_on_ack` (they are not
    /// visible until then); otherwise Kafka's policy, `flush.messages` messages or `flush.ms`
    /// since the last flush.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let unflushed = self.unflushed_messages();
        !self.offline
            && unflushed > 0
            && (self.config.flush_on_ack
                || unflushed >= self.config.flush_interval_messages
                || self
                    .config
                    .flush_interval_ms
                    .is_some_and(|ms| now_ms - self.last_flush_ms >= ms))
    }

    /// Forces every segment with data past the recovery point to disk (sealed segments with
    /// their indexes), then moves the recovery point to the log end offset. One fsync when only
    /// the active segment changed.
    ///
    /// When an fsync fails, the log is cut back to the recovery point (with `flush_on_ack`) or
    /// goes offline, see the module documentation; either way the error is returned, and the
    /// records past the recovery point are not acknowledged.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.offline {
            return Err(offline_error());
        }
        match self.flush_segments(false) {
            Ok(()) => {
                self.publish_recovery_point();
                Ok(())
            }
            // No fsync failed: a file could not be opened (out of descriptors). Nothing moved;
            // the next flush tries again.
            Err(e) if open_files::is_open_failure(&e) => Err(e),
            Err(e) => {
                self.handle_flush_failure(&e);
                Err(e)
            }
        }
    }

    /// After a failed fsync: cuts the log back to the recovery point when no reader can have
    /// seen past it, else takes the log offline.
    fn handle_flush_failure(&mut self, e: &io::Error) {
        let tp = self.partition.topic_partition.clone();
        if !self.config.flush_on_ack {
            error!("{tp}: fsync failed: {e}");
            self.go_offline();
            return;
        }
        error!(
            "{tp}: fsync failed: {e}; cutting the log back to the recovery point {}",
            self.recovery_point
        );
        if let Err(cut) = self.truncate_to_recovery_point() {
            error!("{tp}: cutting the log back failed: {cut}");
            self.go_offline();
        }
    }

    /// Removes everything past the recovery point from the files and reloads the log from them
    /// (Kafka's `truncateTo`, with the producer state rebuilt from snapshots and the log). The
    /// reloaded state replaces the shared one in place, so readers keep their handle; the files
    /// are opened anew, so that no later fsync shares the failed file descriptions.
    fn truncate_to_recovery_point(&mut self) -> io::Result<()> {
        let recovery_point = self.recovery_point;
        let (segments, log_start_offset) = {
            let state = self.partition.state.read();
            let i = state.segment_index(recovery_point).unwrap_or(0);
            (state.segments[i..].to_vec(), state.log_start_offset)
        };
        let (holding, later) = segments.split_first().expect("a log has a segment");
        for s in later {
            s.delete()?;
        }
        let position = holding
            .translate_offset(recovery_point)?
            .unwrap_or(holding.size());
        holding.truncate_log_file(position)?;
        let options = LoadOptions {
            had_clean_shutdown: false,
            recovery_point: Some(recovery_point),
            log_start_offset: Some(log_start_offset),
        };
        let fresh = PartitionLog::load(
            &self.partition.dir,
            self.partition.topic_partition.clone(),
            self.config.clone(),
            options,
        )?;
        let state = Arc::into_inner(fresh.partition)
            .expect("a log just loaded is not shared yet")
            .state
            .into_inner();
        warn!(
            "{}: log cut back to offset {}",
            self.partition.topic_partition, state.log_end_offset
        );
        *self.partition.state.write() = state;
        self.producers = fresh.producers;
        self.recovery_point = fresh.recovery_point;
        self.sealed_flush = None;
        self.dir_dirty = true;
        self.id = fresh.id;
        Ok(())
    }

    fn flush_segments(&mut self, include_active_indexes: bool) -> io::Result<()> {
        let (segments, log_end_offset) = {
            let state = self.partition.state.read();
            if state.log_end_offset == self.recovery_point
                && !self.dir_dirty
                && !include_active_indexes
            {
                return Ok(());
            }
            let from = state.segment_index(self.recovery_point).unwrap_or(0);
            (state.segments[from..].to_vec(), state.log_end_offset)
        };
        let last = segments.len() - 1;
        for (i, s) in segments.iter().enumerate() {
            s.flush(i < last || include_active_indexes)?;
        }
        if self.dir_dirty {
            sync_dir(&self.partition.dir)?;
            self.dir_dirty = false;
        }
        self.recovery_point = self.recovery_point.max(log_end_offset);
        self.last_flush_ms = now_ms();
        // Everything a pending background flush would have synced is on disk now.
        self.sealed_flush = None;
        Ok(())
    }

    /// Prepares the log for a clean shutdown (Kafka's `LogSegment.close` and the snapshot taken
    /// at close): the active segment gets its final time index entry and trimmed indexes,
    /// everything is fsynced, and a producer snapshot is written at the log end offset.
    pub fn close(&mut self) -> io::Result<()> {
        self.prepare_close()?;
        self.finish_close(false)
    }

    /// The first half of [`PartitionLog::close`], which writes but does not fsync: the seal of
    /// the active segment and the producer snapshot at the log end offset (unless one is there
    /// already, as after a restart with no appends since, or a roll at the log end). A log that
    /// nobody wrote since it was loaded opens no file here.
    pub fn prepare_close(&mut self) -> io::Result<()> {
        if self.offline {
            return Err(offline_error());
        }
        let log_end_offset = {
            let mut state = self.partition.state.write();
            state.active_mut().seal()?;
            state.log_end_offset
        };
        let snapshot = self
            .partition
            .dir
            .join(segment_file_name(log_end_offset, SNAPSHOT_FILE_SUFFIX));
        if !snapshot.exists() {
            self.closing_snapshot = Some(match self.reuse_latest_snapshot(&snapshot)? {
                Some(renamed) => renamed,
                None => self.write_producer_snapshot(log_end_offset, false)?,
            });
            self.dir_dirty = true;
        }
        Ok(())
    }

    /// Moves the latest producer snapshot to `path` when it already says what a new one would
    /// (typically: no producers since the last roll), which spares the file system a new inode
    /// per partition at every clean shutdown. `None` when a new snapshot must be written.
    fn reuse_latest_snapshot(&self, path: &Path) -> io::Result<Option<Arc<SegmentFile>>> {
        let Some(&latest) = list_snapshots(&self.partition.dir)?.last() else {
            return Ok(None);
        };
        let old = self
            .partition
            .dir
            .join(segment_file_name(latest, SNAPSHOT_FILE_SUFFIX));
        let content = self.producers.encode_snapshot();
        match fs::read(&old) {
            Ok(existing) if existing == content => {
                fs::rename(&old, path)?;
                // Not known to be on disk: it may be a roll's, not yet flushed.
                Ok(Some(SegmentFile::opened(
                    path.to_path_buf(),
                    File::open(path)?,
                )))
            }
            _ => Ok(None),
        }
    }

    /// The second half of [`PartitionLog::close`]: fsyncs what is not yet on disk, or, when the
    /// caller has synced the whole file system since [`PartitionLog::prepare_close`]
    /// (`synced_by_caller`), only records that it is.
    pub fn finish_close(&mut self, synced_by_caller: bool) -> io::Result<()> {
        if self.offline {
            return Err(offline_error());
        }
        let snapshot = self.closing_snapshot.take();
        if synced_by_caller {
            let state = self.partition.state.read();
            for s in &state.segments[state.segment_index(self.recovery_point).unwrap_or(0)..] {
                for f in s.files() {
                    f.mark_synced();
                }
            }
            self.recovery_point = state.log_end_offset;
            self.dir_dirty = false;
            self.sealed_flush = None;
            return Ok(());
        }
        if let Err(e) = self.flush_segments(true) {
            if !open_files::is_open_failure(&e) {
                self.handle_flush_failure(&e);
            }
            return Err(e);
        }
        match snapshot {
            Some(snapshot) => snapshot.sync(false)?,
            None => {
                // The snapshot at the log end may be one a roll wrote and a background flush
                // has not synced yet.
                let path = self.partition.dir.join(segment_file_name(
                    self.log_end_offset(),
                    SNAPSHOT_FILE_SUFFIX,
                ));
                File::open(path)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Writes the producer state as `<offset>.snapshot` through a temporary file and a rename.
    /// The file goes to the open files cache, so that thousands of rolls at once (each queueing
    /// its snapshot for a background fsync) hold no more descriptors than the cache allows.
    fn write_producer_snapshot(&self, offset: i64, sync: bool) -> io::Result<Arc<SegmentFile>> {
        let path = self
            .partition
            .dir
            .join(segment_file_name(offset, SNAPSHOT_FILE_SUFFIX));
        let tmp = temp_path(&path);
        let mut file = File::create(&tmp)?;
        file.write_all(&self.producers.encode_snapshot())?;
        if sync {
            file.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        let snapshot = SegmentFile::opened(path, file);
        if sync {
            snapshot.mark_synced();
        }
        Ok(snapshot)
    }

    /// Deletes whole segments that retention no longer keeps (Kafka's `deleteOldSegments`):
    /// those whose largest timestamp is older than `retention.ms`, then the oldest ones while the
    /// log is larger than `retention.bytes` by at least their size, then those entirely below
    /// the log start offset. Time and size retention apply only with `cleanup.policy=delete`.
    /// When the active segment itself is due, a new one is rolled first. Returns how many
    /// segments were deleted.
    pub fn delete_old_segments(&mut self, now_ms: i64) -> io::Result<usize> {
        if self.offline {
            return Ok(0);
        }
        let mut deleted = 0;
        if self.config.delete_enabled {
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                let count =
                    self.deletable_prefix(|s| now_ms - s.largest_timestamp() > retention_ms);
                deleted += self.delete_segments(count, "retention time", now_ms)?;
            }
            let retention_bytes = self.config.retention_bytes;
            let size = self.partition.size_in_bytes() as i64;
            if retention_bytes >= 0 && size >= retention_bytes {
                let mut excess = size - retention_bytes;
                let count = self.deletable_prefix(|s| {
                    let fits = excess - s.size() as i64 >= 0;
                    if fits {
                        excess -= s.size() as i64;
                    }
                    fits
                });
                deleted += self.delete_segments(count, "retention size", now_ms)?;
            }
        }
        deleted += self.delete_segments_below_log_start(now_ms)?;
        Ok(deleted)
    }

    /// How many segments from the oldest satisfy `deletable` in a row. An empty active segment
    /// is never deletable.
    fn deletable_prefix(&self, mut deletable: impl FnMut(&LogSegment) -> bool) -> usize {
        let state = self.partition.state.read();
        let last = state.segments.len() - 1;
        state
            .segments
            .iter()
            .enumerate()
            .take_while(|&(i, s)| !(i == last && s.size() == 0) && deletable(s))
            .count()
    }

    fn delete_segments_below_log_start(&mut self, now_ms: i64) -> io::Result<usize> {
        let count = {
            let state = self.partition.state.read();
            (0..state.segments.len() - 1)
                .take_while(|&i| state.segment_end(i) <= state.log_start_offset)
                .count()
        };
        self.delete_segments(count, "log start offset", now_ms)
    }

    /// Removes the `count` oldest segments from the log (rolling first if that is all of them),
    /// moves the log start offset to the new first segment, then deletes their files and the
    /// producer snapshots below it.
    fn delete_segments(&mut self, count: usize, reason: &str, now_ms: i64) -> io::Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        if count == self.partition.segment_count() {
            let partition = self.partition.clone();
            let state = partition.state.upgradable_read();
            drop(self.roll(state, now_ms)?);
        }
        let (removed, log_start_offset) = {
            let mut state = self.partition.state.write();
            let removed: Vec<LogSegment> = state.segments.drain(..count).collect();
            let first_base = state.segments[0].base_offset();
            state.log_start_offset = state.log_start_offset.max(first_base);
            (removed, state.log_start_offset)
        };
        for s in &removed {
            s.delete()?;
            info!(
                "{}: deleted segment {} ({} bytes) by {reason}; log start offset is now {log_start_offset}",
                self.partition.topic_partition,
                s.base_offset(),
                s.size()
            );
        }
        self.dir_dirty = true;
        self.delete_snapshots_below(self.partition.segment_base_offsets()[0])?;
        Ok(removed.len())
    }

    fn delete_snapshots_below(&self, offset: i64) -> io::Result<()> {
        for snapshot in list_snapshots(&self.partition.dir)? {
            if snapshot < offset {
                let path = self
                    .partition
                    .dir
                    .join(segment_file_name(snapshot, SNAPSHOT_FILE_SUFFIX));
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 means the high watermark) and
    /// deletes the segments entirely below it. Returns the new log start offset (Kafka's "low
    /// watermark").
    pub fn delete_records(&mut self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if self.offline {
            return Err(DeleteRecordsError::Io(offline_error()));
        }
        let high_watermark = self.partition.high_watermark();
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset < 0 || offset > high_watermark {
            return Err(DeleteRecordsError::OffsetOutOfRange);
        }
        if !self.config.delete_enabled {
            return Err(DeleteRecordsError::PolicyViolation);
        }
        {
            let mut state = self.partition.state.write();
            if offset > state.log_start_offset {
                state.log_start_offset = offset;
                info!(
                    "{}: log start offset moved to {offset} by DeleteRecords",
                    self.partition.topic_partition
                );
            }
        }
        self.delete_segments_below_log_start(now_ms())
            .map_err(DeleteRecordsError::Io)?;
        Ok(self.partition.log_start_offset())
    }
}

fn offline_error() -> io::Error {
    io::Error::other("the log is offline after a failed fsync")
}

/// Rewrites the base offsets of the batches in `batches` from `first_offset` on and describes
/// each for the segment.
fn assign_offsets(batches: &mut [u8], first_offset: i64) -> io::Result<Vec<BatchInfo>> {
    let mut infos = Vec::with_capacity(1);
    let mut next = first_offset;
    let mut cursor = 0;
    while cursor < batches.len() {
        let size = record_batch::batch_size(&batches[cursor..])
            .ok()
            .flatten()
            .filter(|s| cursor + s <= batches.len() && *s >= HEADER_SIZE)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "append of an unvalidated batch",
                )
            })?;
        let batch = &mut batches[cursor..cursor + size];
        record_batch::set_base_offset(batch, next);
        let delta = BigEndian::read_i32(&batch[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
        let max_timestamp = BigEndian::read_i64(&batch[record_batch::MAX_TIMESTAMP_OFFSET..]);
        infos.push(BatchInfo {
            size: size as u64,
            last_offset: next + i64::from(delta),
            max_timestamp,
        });
        next += i64::from(delta) + 1;
        cursor += size;
    }
    Ok(infos)
}

/// Lists a log directory: segment base offsets (sorted) and snapshot offsets. Removes what an
/// interrupted operation left behind: `.deleted` files, temporary files, and index files whose
/// log file is gone.
fn list_log_dir(dir: &Path, tp: &TopicPartition) -> io::Result<DirListing> {
    compaction::complete_swaps(dir, tp)?;
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    let mut segment_bases: Vec<i64> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n, LOG_FILE_SUFFIX))
        .collect();
    segment_bases.sort_unstable();
    let mut snapshot_offsets = Vec::new();
    for name in &names {
        let stray = name.ends_with(DELETED_FILE_SUFFIX)
            || name.ends_with(".tmp")
            || name.ends_with(".cleaned")
            || name.ends_with(".swap");
        let orphan_index = [
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            TXN_INDEX_FILE_SUFFIX,
        ]
        .iter()
        .any(|suffix| {
            parse_segment_file_name(name, suffix)
                .is_some_and(|base| segment_bases.binary_search(&base).is_err())
        });
        if stray || orphan_index {
            info!("{tp}: removing leftover file {name}");
            fs::remove_file(dir.join(name))?;
        } else if let Some(offset) = parse_segment_file_name(name, SNAPSHOT_FILE_SUFFIX) {
            snapshot_offsets.push(offset);
        }
    }
    snapshot_offsets.sort_unstable();
    Ok(DirListing {
        segment_bases,
        snapshot_offsets,
    })
}

fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string()
            && let Some(offset) = parse_segment_file_name(&name, SNAPSHOT_FILE_SUFFIX)
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// Opens every segment, trusting or recovering each (see [`PartitionLog::load`]). Returns the
/// segments (at least one), whether files were created or deleted, and the base offsets of the
/// recovered segments, whose aborted transaction indexes were removed for the producer state's
/// replay to rebuild.
fn load_segments(
    dir: &Path,
    tp: &TopicPartition,
    config: &LogConfig,
    bases: &[i64],
    options: &LoadOptions,
    now: i64,
) -> io::Result<(Vec<LogSegment>, bool, Vec<i64>)> {
    if bases.is_empty() {
        let base = options.log_start_offset.unwrap_or(0).max(0);
        return Ok((
            vec![LogSegment::create(dir, base, config, now)?],
            true,
            vec![base],
        ));
    }
    // After an unclean shutdown, recovery starts with the segment holding the recovery point,
    // and batches are CRC-checked from the recovery point on. After a clean one, everything is
    // on disk: an index rebuild reads batch headers only.
    let (recover_from, verify_from) = if options.had_clean_shutdown {
        (bases.len(), i64::MAX)
    } else {
        let recovery_point = options.recovery_point.unwrap_or(0);
        let from = bases
            .iter()
            .rposition(|&b| b <= recovery_point)
            .unwrap_or(0);
        (from, recovery_point)
    };
    let mut segments = Vec::with_capacity(bases.len());
    let mut dir_dirty = false;
    let mut recovered = Vec::new();
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let trusted = if i < recover_from {
            match LogSegment::open(dir, base, next_base, now)? {
                Ok(segment) => Some(segment),
                Err(corrupt) => {
                    warn!("{tp}: {corrupt}; rebuilding the indexes of segment {base}");
                    None
                }
            }
        } else {
            None
        };
        let segment = match trusted {
            Some(segment) => segment,
            None => {
                let mut segment = LogSegment::open_for_recovery(dir, base, config, now)?;
                segment.reset_txn_index()?;
                recovered.push(base);
                let recovery = segment.recover(config.index_interval_bytes, verify_from)?;
                if recovery.truncated_bytes > 0 {
                    warn!(
                        "{tp}: segment {} is invalid at position {} ({}); truncated {} bytes, the log now ends at offset {}",
                        segment.log_path().display(),
                        segment.size(),
                        recovery.reason.as_deref().unwrap_or("unknown reason"),
                        recovery.truncated_bytes,
                        recovery.next_offset.unwrap_or(base)
                    );
                    segments.push(segment);
                    dir_dirty |= delete_later_segments(dir, tp, &bases[i + 1..])?;
                    break;
                }
                segment
            }
        };
        segments.push(segment);
    }
    Ok((segments, dir_dirty, recovered))
}

/// Deletes the segments after one that was cut short: their offsets no longer follow on.
fn delete_later_segments(dir: &Path, tp: &TopicPartition, bases: &[i64]) -> io::Result<bool> {
    for &base in bases {
        warn!("{tp}: deleting segment {base}, which follows a truncated segment");
        for suffix in [
            LOG_FILE_SUFFIX,
            INDEX_FILE_SUFFIX,
            TIME_INDEX_FILE_SUFFIX,
            TXN_INDEX_FILE_SUFFIX,
        ] {
            match fs::remove_file(dir.join(segment_file_name(base, suffix))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(!bases.is_empty())
}

/// The log end offset: the active segment's next offset (read from its tail when it was
/// trusted), or its base offset when it is empty.
fn next_offset_of(segments: &mut [LogSegment]) -> io::Result<i64> {
    let active = segments.last_mut().expect("at least one segment");
    Ok(active.read_next_offset()?.unwrap_or(active.base_offset()))
}

/// Rebuilds the producer state: the latest snapshot at or below the log end offset that decodes,
/// then the headers of the batches after it. Snapshots past the log end (from before a
/// truncation) and unreadable ones are deleted.
///
/// The replay also rebuilds the aborted transaction index of every `recovered` segment, so it
/// starts at or below the first of them: a later snapshot is passed over (but kept).
fn load_producer_state(
    partition: &Partition,
    snapshot_offsets: &[i64],
    recovered: &[i64],
) -> io::Result<ProducerStateManager> {
    let tp = &partition.topic_partition;
    let (log_end_offset, first_base) = {
        let state = partition.state.read();
        (state.log_end_offset, state.segments[0].base_offset())
    };
    let replay_limit = recovered
        .iter()
        .min()
        .map_or(log_end_offset, |&b| b.min(log_end_offset));
    let mut producers = ProducerStateManager::default();
    let mut replay_from = first_base;
    for &offset in snapshot_offsets.iter().rev() {
        let path = partition
            .dir
            .join(segment_file_name(offset, SNAPSHOT_FILE_SUFFIX));
        if offset > log_end_offset {
            info!("{tp}: deleting producer snapshot {offset}, past the log end offset");
            fs::remove_file(&path)?;
            continue;
        }
        if offset > replay_limit {
            continue;
        }
        match ProducerStateManager::decode_snapshot(&fs::read(&path)?) {
            Ok(state) => {
                producers = state;
                replay_from = offset.max(first_base);
                break;
            }
            Err(e) => {
                warn!("{tp}: deleting unreadable producer snapshot {offset}: {e}");
                fs::remove_file(&path)?;
            }
        }
    }
    replay_producer_batches(partition, replay_from, &mut producers, recovered)?;
    remove_stray_snapshots(partition)?;
    Ok(producers)
}

/// Deletes the snapshots that are neither at a segment's base offset nor the latest one (Kafka's
/// `removeStraySnapshots`), so that clean restarts do not pile them up.
fn remove_stray_snapshots(partition: &Partition) -> io::Result<()> {
    let snapshots = list_snapshots(&partition.dir)?;
    let bases = partition.segment_base_offsets();
    let latest = snapshots.last().copied();
    for offset in snapshots {
        if Some(offset) != latest && bases.binary_search(&offset).is_err() {
            let path = partition
                .dir
                .join(segment_file_name(offset, SNAPSHOT_FILE_SUFFIX));
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// Applies the producer fields of every batch from `from` to the log end to `producers`,
/// reading batch headers, and the whole batch of each transaction marker. An ABORT marker in a
/// `recovered` segment adds its transaction to that segment's aborted transaction index.
fn replay_producer_batches(
    partition: &Partition,
    from: i64,
    producers: &mut ProducerStateManager,
    recovered: &[i64],
) -> io::Result<()> {
    let segments: Vec<LogSegment> = {
        let state = partition.state.read();
        let i = state.segment_index(from).unwrap_or(0);
        state.segments[i..].to_vec()
    };
    for segment in segments {
        let mut failed = None;
        let mut aborted = Vec::new();
        let rebuild_index = recovered.contains(&segment.base_offset());
        segment.scan_headers_from(from, |header, position| {
            let base = BigEndian::read_i64(&header[record_batch::BASE_OFFSET_OFFSET..]);
            if let Some(p) = producer_batch_from_header(header) {
                let delta = BigEndian::read_i32(&header[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
                producers.update(&p, base, base.saturating_add(i64::from(delta)));
                return true;
            }
            let Some((producer_id, producer_epoch)) = marker_producer(header) else {
                return true;
            };
            let marker = match segment.read_batch_at(position, header) {
                Ok(Some(batch)) => record_batch::end_txn_marker(&batch),
                Ok(None) => None,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            if let Some((commit, coordinator_epoch)) = marker {
                let txn = producers.apply_marker(
                    producer_id,
                    producer_epoch,
                    commit,
                    coordinator_epoch,
                    base,
                    BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]),
                );
                if txn.is_aborted && rebuild_index {
                    aborted.push(aborted_entry(&txn));
                }
            }
            true
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !aborted.is_empty() {
            let mut state = partition.state.write();
            let i = state
                .segments
                .iter()
                .position(|s| s.base_offset() == segment.base_offset())
                .expect("the log is not shared while it loads");
            for entry in &aborted {
                let size = state.segments[i].prepare_txn_entry(entry)?;
                state.segments[i].commit_txn_entry(size);
            }
        }
    }
    Ok(())
}

/// The producer id and epoch of a control batch with a producer (a transaction marker).
fn marker_producer(header: &[u8; HEADER_SIZE]) -> Option<(i64, i16)> {
    let producer_id = BigEndian::read_i64(&header[record_batch::PRODUCER_ID_OFFSET..]);
    let attributes = BigEndian::read_i16(&header[record_batch::ATTRIBUTES_OFFSET..]);
    (producer_id >= 0 && attributes & record_batch::CONTROL_FLAG_MASK != 0).then(|| {
        (
            producer_id,
            BigEndian::read_i16(&header[record_batch::PRODUCER_EPOCH_OFFSET..]),
        )
    })
}

fn aborted_entry(txn: &CompletedTxn) -> AbortedTxn {
    AbortedTxn {
        producer_id: txn.producer_id,
        first_offset: txn.first_offset,
        last_offset: txn.last_offset,
        last_stable_offset: txn.last_stable_offset,
    }
}

/// The producer fields of a batch written by an idempotent producer; `None` for other batches.
fn producer_fields(batch: &[u8]) -> Option<ProducerBatch> {
    let header: &[u8; HEADER_SIZE] = batch.get(..HEADER_SIZE)?.try_into().ok()?;
    producer_batch_from_header(header)
}

fn producer_batch_from_header(header: &[u8; HEADER_SIZE]) -> Option<ProducerBatch> {
    let producer_id = BigEndian::read_i64(&header[record_batch::PRODUCER_ID_OFFSET..]);
    let attributes = BigEndian::read_i16(&header[record_batch::ATTRIBUTES_OFFSET..]);
    if producer_id < 0 || attributes & record_batch::CONTROL_FLAG_MASK != 0 {
        return None;
    }
    let first_sequence = BigEndian::read_i32(&header[record_batch::BASE_SEQUENCE_OFFSET..]);
    let delta = BigEndian::read_i32(&header[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
    let last_sequence = if first_sequence == record_batch::NO_SEQUENCE {
        record_batch::NO_SEQUENCE
    } else {
        ((i64::from(first_sequence) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
    };
    Some(ProducerBatch {
        producer_id,
        producer_epoch: BigEndian::read_i16(&header[record_batch::PRODUCER_EPOCH_OFFSET..]),
        first_sequence,
        last_sequence,
        max_timestamp: BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]),
        is_transactional: attributes & record_batch::TRANSACTIONAL_FLAG_MASK != 0,
    })
}

/// Waits for appends, so that a fetch with `max_wait_ms` can sleep until data arrives instead of
/// polling. The writer bumps the sequence after every group of appends.
#[derive(Default)]
pub struct AppendNotifier {
    sequence: Mutex<u64>,
    condvar: Condvar,
}

impl AppendNotifier {
    pub fn notify(&self) {
        *self.sequence.lock() += 1;
        self.condvar.notify_all();
    }

    pub fn sequence(&self) -> u64 {
        *self.sequence.lock()
    }

    /// Waits until the sequence moves past `seen` or `deadline` passes. Returns the new sequence.
    pub fn wait_past(&self, seen: u64, deadline: std::time::Instant) -> u64 {
        let mut seq = self.sequence.lock();
        while *seq == seen {
            if self.condvar.wait_until(&mut seq, deadline).timed_out() {
                break;
            }
        }
        *seq
    }
}

#[cfg(test)]
mod tests;
