//! One topic-partition's log: a directory of segments named by their base offset, each a file of
//! record batches, in Kafka's layout (`<log.dirs>/<topic>-<partition>/00000000000000000000.log`).
//!
//! Ownership: only the `log-writer` thread appends ([`PartitionLog::append`]). Connection threads
//! read through [`Partition::read`]: they find the segment and start position under a short read
//! lock, then read the file with positional reads and no lock held. The writer publishes each append
//! (segment size, index entries, high watermark) under the write lock only after the bytes are in the
//! file, so a reader never sees a batch that is not fully written.
//!
//! Invariants: segments are sorted by base offset and contiguous; every byte of a segment below its
//! published size is a complete, CRC-valid batch; `log_start_offset <= high_watermark ==
//! log_end_offset` (a single replica commits on write).

use super::producer_state::{ProducerBatch, ProducerStateManager, SequenceCheck};
use super::record_batch::{self, BatchView, Batches, HEADER_SIZE};
use crate::protocol::error_code::ErrorCode;
use byteorder::{BigEndian, ByteOrder};
use log::{info, warn};
use parking_lot::{Condvar, Mutex, RwLock};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// The settings of one log, from broker defaults and topic overrides.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
        }
    }
}

/// The 20-digit file name stem Kafka gives a segment with this base offset.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// One sparse index entry: the last offset of a batch and the file position where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: i64,
    pub position: u64,
}

/// What readers can see of one segment.
#[derive(Debug)]
pub struct SegmentView {
    pub base_offset: i64,
    pub file: Arc<File>,
    pub path: PathBuf,
    /// Bytes of complete batches published to readers.
    pub size: u64,
    /// Sparse offset index, in offset order.
    pub index: Vec<IndexEntry>,
    pub bytes_since_last_index_entry: u64,
}

impl SegmentView {
    /// The position from which to scan for `offset`: the start of the last indexed batch whose
    /// last offset is at most `offset`, or the segment start.
    fn scan_start(&self, offset: i64) -> u64 {
        let i = self.index.partition_point(|e| e.offset <= offset);
        if i == 0 {
            0
        } else {
            self.index[i - 1].position
        }
    }
}

/// The shared state of a partition's log.
#[derive(Debug)]
pub struct LogState {
    pub segments: Vec<SegmentView>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

/// A partition's log as every thread sees it. The writer thread holds a [`PartitionLog`] that
/// mutates it; readers call [`Partition::read`].
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

    /// Reads whole batches starting with the one that holds `fetch_offset`, up to `max_bytes`.
    /// When `min_one_batch` is set, the first batch is returned whole even if it is larger than
    /// `max_bytes` (Kafka's rule that lets a consumer make progress). Reads stop at the end of the
    /// segment holding `fetch_offset` and never pass the high watermark.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> io::Result<Result<ReadResult, ReadError>> {
        let (file, start, end, hw, lso) = {
            let state = self.state.read();
            if fetch_offset < state.log_start_offset || fetch_offset > state.log_end_offset {
                return Ok(Err(ReadError::OffsetOutOfRange));
            }
            let mut result = ReadResult {
                records: Vec::new(),
                high_watermark: state.high_watermark,
                log_start_offset: state.log_start_offset,
            };
            if fetch_offset == state.high_watermark {
                return Ok(Ok(result));
            }
            let i = state
                .segments
                .partition_point(|s| s.base_offset <= fetch_offset);
            let Some(segment) = i.checked_sub(1).map(|i| &state.segments[i]) else {
                return Ok(Ok(result));
            };
            result.records.clear();
            (
                segment.file.clone(),
                segment.scan_start(fetch_offset),
                segment.size,
                state.high_watermark,
                state.log_start_offset,
            )
        };
        let Some(position) = find_batch(&file, start, end, fetch_offset)? else {
            return Ok(Ok(ReadResult {
                records: Vec::new(),
                high_watermark: hw,
                log_start_offset: lso,
            }));
        };
        let records = read_batches(&file, position, end, max_bytes, min_one_batch)?;
        Ok(Ok(ReadResult {
            records,
            high_watermark: hw,
            log_start_offset: lso,
        }))
    }
}

impl Partition {
    /// The segments' files and published sizes, for scans that run without the lock.
    fn segment_files(&self) -> Vec<(Arc<File>, u64)> {
        self.state
            .read()
            .segments
            .iter()
            .map(|s| (s.file.clone(), s.size))
            .collect()
    }

    /// Calls `visit` with each batch header (and its file and position) in offset order until it
    /// returns false.
    fn scan_headers(
        &self,
        mut visit: impl FnMut(&File, u64, &[u8; HEADER_SIZE]) -> io::Result<bool>,
    ) -> io::Result<()> {
        for (file, size) in self.segment_files() {
            let mut position = 0;
            while let Some(header) = read_header(&file, position, size)? {
                if !visit(&file, position, &header)? {
                    return Ok(());
                }
                position += header_view(&header).1;
            }
        }
        Ok(())
    }

    /// The offset and timestamp of the first record whose timestamp is at least `target`
    /// (ListOffsets by timestamp), or `None` if every record is older.
    pub fn offset_for_timestamp(&self, target: i64) -> io::Result<Option<(i64, i64)>> {
        let mut found = None;
        self.scan_headers(|file, position, header| {
            let max_timestamp = BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]);
            if max_timestamp < target {
                return Ok(true);
            }
            found = record_timestamps(file, position, header)?
                .into_iter()
                .find(|&(_, ts)| ts >= target)
                .or(Some((BigEndian::read_i64(header), max_timestamp)));
            Ok(false)
        })?;
        Ok(found)
    }

    /// The offset and timestamp of the record with the largest timestamp (the first one, if
    /// several share it), for ListOffsets with MAX_TIMESTAMP.
    pub fn max_timestamp_offset(&self) -> io::Result<Option<(i64, i64)>> {
        let mut best: Option<(File, u64, [u8; HEADER_SIZE])> = None;
        let mut best_ts = i64::MIN;
        self.scan_headers(|file, position, header| {
            let ts = BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]);
            if ts > best_ts {
                best_ts = ts;
                best = Some((file.try_clone()?, position, *header));
            }
            Ok(true)
        })?;
        let Some((file, position, header)) = best else {
            return Ok(None);
        };
        let exact = record_timestamps(&file, position, &header)?
            .into_iter()
            .find(|&(_, ts)| ts == best_ts);
        Ok(Some(exact.unwrap_or((header_view(&header).0, best_ts))))
    }
}

/// The offsets and timestamps of an uncompressed batch's records; empty for a compressed one,
/// whose records sprat does not decompress.
fn record_timestamps(
    file: &File,
    position: u64,
    header: &[u8; HEADER_SIZE],
) -> io::Result<Vec<(i64, i64)>> {
    let attributes = BigEndian::read_i16(&header[record_batch::ATTRIBUTES_OFFSET..]);
    if attributes & record_batch::COMPRESSION_CODEC_MASK != 0 {
        return Ok(Vec::new());
    }
    let size = header_view(header).1 as usize;
    let mut bytes = vec![0u8; size];
    file.read_exact_at(&mut bytes, position)?;
    let Some(Ok(batch)) = Batches::new(&bytes).next() else {
        return Ok(Vec::new());
    };
    let base_offset = batch.base_offset();
    let base_timestamp = batch.base_timestamp();
    let log_append_time = batch.attributes() & record_batch::TIMESTAMP_TYPE_MASK != 0;
    Ok(record_batch::decode_records(&batch)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ts = if log_append_time {
                batch.max_timestamp()
            } else {
                base_timestamp + r.timestamp_delta
            };
            (base_offset + i as i64, ts)
        })
        .collect())
}

/// Reads the 61-byte batch header at `position`, or `None` past `end`.
fn read_header(file: &File, position: u64, end: u64) -> io::Result<Option<[u8; HEADER_SIZE]>> {
    if position + HEADER_SIZE as u64 > end {
        return Ok(None);
    }
    let mut header = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut header, position)?;
    Ok(Some(header))
}

fn header_view(header: &[u8; HEADER_SIZE]) -> (i64, u64) {
    let base = BigEndian::read_i64(&header[record_batch::BASE_OFFSET_OFFSET..]);
    let delta = BigEndian::read_i32(&header[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
    let length = BigEndian::read_i32(&header[record_batch::LENGTH_OFFSET..]);
    (
        base + i64::from(delta),
        record_batch::LOG_OVERHEAD as u64 + length.max(0) as u64,
    )
}

/// Scans batch headers from `position` to find the first batch whose last offset is at least
/// `offset`.
fn find_batch(file: &File, mut position: u64, end: u64, offset: i64) -> io::Result<Option<u64>> {
    while let Some(header) = read_header(file, position, end)? {
        let (last_offset, size) = header_view(&header);
        if last_offset >= offset {
            return Ok(Some(position));
        }
        position += size;
    }
    Ok(None)
}

/// Reads whole batches from `position`, as many as fit in `max_bytes` (at least one when
/// `min_one_batch`), never past `end`.
fn read_batches(
    file: &File,
    position: u64,
    end: u64,
    max_bytes: usize,
    min_one_batch: bool,
) -> io::Result<Vec<u8>> {
    let mut len: u64 = 0;
    let mut cursor = position;
    while let Some(header) = read_header(file, cursor, end)? {
        let (_, size) = header_view(&header);
        if cursor + size > end {
            break;
        }
        let fits = len + size <= max_bytes as u64;
        let first_batch_anyway = len == 0 && min_one_batch;
        if !fits && !first_batch_anyway {
            break;
        }
        len += size;
        cursor += size;
        if !fits {
            break;
        }
    }
    let mut out = vec![0u8; len as usize];
    file.read_exact_at(&mut out, position)?;
    Ok(out)
}

/// The writer thread's handle on one partition's log.
pub struct PartitionLog {
    pub partition: Arc<Partition>,
    config: LogConfig,
    producers: ProducerStateManager,
}

/// Why an append was refused.
#[derive(Debug)]
pub enum AppendError {
    /// The producer state forbids it (sequence gap, fenced epoch).
    Producer(ErrorCode),
    /// Writing the file failed.
    Io(io::Error),
}

impl From<io::Error> for AppendError {
    fn from(e: io::Error) -> Self {
        AppendError::Io(e)
    }
}

/// The offsets an append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`, scanning every segment to find the log end offset.
    /// A torn or corrupt tail is truncated at the last valid batch, with a warning.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
    ) -> io::Result<PartitionLog> {
        fs::create_dir_all(dir)?;
        let mut bases: Vec<i64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".log")?;
                (stem.len() == 20)
                    .then(|| stem.parse::<i64>().ok())
                    .flatten()
            })
            .collect();
        bases.sort_unstable();
        if bases.is_empty() {
            bases.push(0);
        }
        let mut segments = Vec::with_capacity(bases.len());
        let mut producers = ProducerStateManager::default();
        let mut log_end_offset = bases[0];
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(segment_file_name(base, ".log"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let mut segment = SegmentView {
                base_offset: base,
                file: Arc::new(file),
                path,
                size: 0,
                index: Vec::new(),
                bytes_since_last_index_entry: 0,
            };
            let (next, truncated) =
                recover_segment(&mut segment, &config, &topic_partition, &mut producers)?;
            log_end_offset = next.unwrap_or(log_end_offset.max(base));
            segments.push(segment);
            if truncated && i + 1 < bases.len() {
                // A corrupt segment that is not the last: everything after it is unreachable.
                warn!("{topic_partition}: deleting segments after corrupt segment {base}");
                for &later in &bases[i + 1..] {
                    let _ = fs::remove_file(dir.join(segment_file_name(later, ".log")));
                }
                break;
            }
        }
        let log_start_offset = segments[0].base_offset;
        info!(
            "{topic_partition}: loaded {} segment(s), log start offset {log_start_offset}, log end offset {log_end_offset}",
            segments.len()
        );
        Ok(PartitionLog {
            partition: Arc::new(Partition {
                topic_partition,
                dir: dir.to_path_buf(),
                state: RwLock::new(LogState {
                    segments,
                    log_start_offset,
                    log_end_offset,
                    high_watermark: log_end_offset,
                }),
            }),
            config,
            producers,
        })
    }

    pub fn log_end_offset(&self) -> i64 {
        self.partition.log_end_offset()
    }

    /// The largest producer id this log has seen.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.max_producer_id()
    }

    /// Appends one validated batch from a producer: a batch with a producer id is first checked
    /// against the producer's state, and a retry of a recent batch returns its original offsets
    /// without being written again.
    pub fn append_batch(&mut self, batch: &mut [u8]) -> Result<AppendInfo, AppendError> {
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
        let info = self.append(batch)?;
        if let Some(p) = &producer {
            self.producers
                .update(p, info.first_offset, info.last_offset);
        }
        Ok(info)
    }

    /// Appends a buffer of one or more validated batches, giving them consecutive offsets from
    /// the log end offset by rewriting each base offset in place. Returns the offsets assigned.
    /// The bytes are in the file (page cache) when this returns; see [`PartitionLog::flush`].
    pub fn append(&mut self, batches: &mut [u8]) -> io::Result<AppendInfo> {
        let mut state = self.partition.state.write();
        let first_offset = state.log_end_offset;
        let mut next = first_offset;
        let mut cursor = 0;
        let mut sizes = Vec::new();
        while cursor < batches.len() {
            let size = record_batch::batch_size(&batches[cursor..])
                .ok()
                .flatten()
                .filter(|s| cursor + s <= batches.len())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "append of an unvalidated batch",
                    )
                })?;
            let batch = &mut batches[cursor..cursor + size];
            record_batch::set_base_offset(batch, next);
            let delta = BigEndian::read_i32(&batch[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
            sizes.push((next + i64::from(delta), size as u64));
            next += i64::from(delta) + 1;
            cursor += size;
        }
        let roll = {
            let active = state
                .segments
                .last()
                .expect("a log always has an active segment");
            active.size > 0 && active.size + batches.len() as u64 > self.config.segment_bytes
        };
        if roll {
            self.roll(&mut state, first_offset)?;
        }
        let interval = self.config.index_interval_bytes;
        let active = state
            .segments
            .last_mut()
            .expect("a log always has an active segment");
        active.file.write_all_at(batches, active.size)?;
        let mut position = active.size;
        for (last_offset, size) in sizes {
            if active.index.is_empty() && position == 0
                || active.bytes_since_last_index_entry >= interval
            {
                active.index.push(IndexEntry {
                    offset: last_offset,
                    position,
                });
                active.bytes_since_last_index_entry = 0;
            }
            active.bytes_since_last_index_entry += size;
            position += size;
        }
        active.size = position;
        state.log_end_offset = next;
        state.high_watermark = next;
        Ok(AppendInfo {
            first_offset,
            last_offset: next - 1,
        })
    }

    fn roll(&self, state: &mut LogState, base_offset: i64) -> io::Result<()> {
        let path = self
            .partition
            .dir
            .join(segment_file_name(base_offset, ".log"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        info!(
            "{}: rolled new segment {}",
            self.partition.topic_partition,
            path.display()
        );
        state.segments.push(SegmentView {
            base_offset,
            file: Arc::new(file),
            path,
            size: 0,
            index: Vec::new(),
            bytes_since_last_index_entry: 0,
        });
        Ok(())
    }

    /// Forces the active segment's bytes to disk.
    pub fn flush(&self) -> io::Result<()> {
        let file = self
            .partition
            .state
            .read()
            .segments
            .last()
            .map(|s| s.file.clone());
        match file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

/// Scans a segment from the start, checking each batch's length and CRC-32C and building the
/// sparse index. Truncates the file after the last valid batch. Returns the offset after the last
/// valid batch (`None` if the segment holds none) and whether anything was truncated.
fn recover_segment(
    segment: &mut SegmentView,
    config: &LogConfig,
    tp: &TopicPartition,
    producers: &mut ProducerStateManager,
) -> io::Result<(Option<i64>, bool)> {
    let file_len = segment.file.metadata()?.len();
    let mut position: u64 = 0;
    let mut next_offset = None;
    let mut buf = Vec::new();
    while position < file_len {
        let Some(header) = read_header(&segment.file, position, file_len)? else {
            break;
        };
        let size = match record_batch::batch_size(&header) {
            Ok(Some(size)) if position + size as u64 <= file_len => size,
            _ => break,
        };
        buf.resize(size, 0);
        segment.file.read_exact_at(&mut buf, position)?;
        let batch = match Batches::new(&buf).next() {
            Some(Ok(b)) => b,
            _ => break,
        };
        if batch.validate().is_err() {
            break;
        }
        index_batch(segment, &batch, position, config);
        if let Some(p) = producer_fields(batch.bytes()) {
            producers.update(&p, batch.base_offset(), batch.last_offset());
        }
        next_offset = Some(batch.last_offset() + 1);
        position += size as u64;
    }
    let truncated = position < file_len;
    if truncated {
        warn!(
            "{tp}: segment {} has {} invalid or torn trailing bytes at position {position}; truncating",
            segment.path.display(),
            file_len - position
        );
        segment.file.set_len(position)?;
    }
    segment.size = position;
    Ok((next_offset, truncated))
}

/// The producer fields of a batch written by an idempotent producer; `None` for other batches.
fn producer_fields(batch: &[u8]) -> Option<ProducerBatch> {
    let view = Batches::new(batch).next()?.ok()?;
    if view.producer_id() < 0 || view.is_control() {
        return None;
    }
    Some(ProducerBatch {
        producer_id: view.producer_id(),
        producer_epoch: view.producer_epoch(),
        first_sequence: view.base_sequence(),
        last_sequence: view.last_sequence(),
    })
}

fn index_batch(
    segment: &mut SegmentView,
    batch: &BatchView<'_>,
    position: u64,
    config: &LogConfig,
) {
    if segment.index.is_empty() && position == 0
        || segment.bytes_since_last_index_entry >= config.index_interval_bytes
    {
        segment.index.push(IndexEntry {
            offset: batch.last_offset(),
            position,
        });
        segment.bytes_since_last_index_entry = 0;
    }
    segment.bytes_since_last_index_entry += batch.size() as u64;
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
mod tests {
    use super::*;
    use crate::storage::record_batch::{BatchHeader, Record, build_batch};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sprat-log-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn batch(n: usize, value: &[u8]) -> Vec<u8> {
        let records: Vec<_> = (0..n)
            .map(|_| Record {
                value: Some(value.to_vec()),
                ..Record::default()
            })
            .collect();
        build_batch(&BatchHeader::default(), &records)
    }

    #[test]
    fn append_assigns_offsets_and_reads_back() {
        let dir = temp_dir("append");
        let mut log =
            PartitionLog::open(&dir, TopicPartition::new("t", 0), LogConfig::default()).unwrap();
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
            let mut log =
                PartitionLog::open(&dir, TopicPartition::new("t", 0), LogConfig::default())
                    .unwrap();
            log.append(&mut b1).unwrap();
            log.append(&mut batch(1, b"y")).unwrap();
        }
        let path = dir.join("00000000000000000000.log");
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 3]).unwrap();
        let mut log =
            PartitionLog::open(&dir, TopicPartition::new("t", 0), LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(fs::read(&path).unwrap(), b1);
        assert_eq!(log.append(&mut batch(1, b"z")).unwrap().first_offset, 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn segments_roll_and_reads_find_the_right_one() {
        let dir = temp_dir("roll");
        let config = LogConfig {
            segment_bytes: 200,
            index_interval_bytes: 1,
        };
        let mut log =
            PartitionLog::open(&dir, TopicPartition::new("t", 0), config.clone()).unwrap();
        let mut batches = Vec::new();
        for i in 0..6u8 {
            let mut b = batch(1, &[i; 50]);
            log.append(&mut b).unwrap();
            batches.push(b);
        }
        assert!(fs::read_dir(&dir).unwrap().count() > 1, "rolled");
        for (i, b) in batches.iter().enumerate() {
            let r = log
                .partition
                .read(i as i64, b.len(), false)
                .unwrap()
                .unwrap();
            assert_eq!(&r.records, b, "offset {i}");
        }
        drop(log);
        let log = PartitionLog::open(&dir, TopicPartition::new("t", 0), config).unwrap();
        assert_eq!(log.log_end_offset(), 6);
        let r = log.partition.read(4, 1000, false).unwrap().unwrap();
        assert_eq!(r.records[..batches[4].len()], batches[4][..]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
