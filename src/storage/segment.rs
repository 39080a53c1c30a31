//! One log segment (Kafka's `LogSegment`): a `.log` file of record batches, its two sparse
//! indexes and its aborted transaction index (see [`super::txn_index`]), all named by the
//! segment's base offset (`00000000000000000000.log`, `.index`, `.timeindex`, `.txnindex`).
//!
//! Invariants: every byte below `size` is a whole, CRC-valid batch; batch offsets increase (with
//! gaps where the cleaner dropped a batch) and start at or after the base offset; every offset in the segment fits
//! the indexes' 32-bit relative offsets; index entries point at batch starts below `size`.
//!
//! Files: a segment holds no descriptor of its own. Its three files are [`SegmentFile`]s, opened
//! on first use through the broker's bounded cache of open files and closed when the cache needs
//! the descriptor (see [`super::open_files`]), so a sealed segment nobody reads costs none, and
//! an idle active segment none either once the cache has closed it.
//!
//! Thread-safety: a `LogSegment` is cheap to clone (file handles behind `Arc`s and numbers).
//! The partition keeps the authoritative copy under its `RwLock`; readers clone it under the read
//! lock and then read the files with positional reads, seeing exactly the batches published at
//! the time of the clone. Only the `log-writer` thread changes a segment, in two steps:
//! [`LogSegment::prepare_append`] writes bytes past the published size (no lock needed, no reader
//! looks there) and [`LogSegment::commit_append`] publishes them under the write lock. A sealed
//! segment (not the last one) is never written again.

use super::index::{
    CorruptIndex, NO_TIMESTAMP, OffsetIndex, OffsetPosition, TimeIndex, TimestampOffset,
};
use super::log::LogConfig;
use super::open_files::SegmentFile;
use super::record_batch::{self, Batches, HEADER_SIZE};
use super::txn_index::{self, AbortedTxn, TXN_INDEX_FILE_SUFFIX};
use byteorder::{BigEndian, ByteOrder};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const LOG_FILE_SUFFIX: &str = ".log";
pub const INDEX_FILE_SUFFIX: &str = ".index";
pub const TIME_INDEX_FILE_SUFFIX: &str = ".timeindex";
/// What a segment's files are renamed to before they are removed (Kafka's `DELETED_FILE_SUFFIX`).
pub const DELETED_FILE_SUFFIX: &str = ".deleted";

/// How much of a segment recovery reads at a time.
const RECOVERY_READ_BYTES: usize = 1 << 20;

/// The 20-digit file name Kafka gives a segment file with this base offset.
pub fn segment_file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}{suffix}")
}

/// The base offset in a segment file name such as `00000000000000000042.log`.
pub fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The aborted transaction index of segment `base_offset` (not opened) and its size in whole
/// entries; 0 when the file does not exist.
fn open_txn_index(dir: &Path, base_offset: i64) -> io::Result<(Arc<SegmentFile>, u64)> {
    let path = dir.join(segment_file_name(base_offset, TXN_INDEX_FILE_SUFFIX));
    let bytes = match fs::metadata(&path) {
        Ok(m) => m.len() - m.len() % txn_index::ENTRY_SIZE as u64,
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    Ok((SegmentFile::closed(path), bytes))
}

/// What the writer knows of one batch it is about to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    pub size: u64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

/// The result of [`LogSegment::prepare_append`], to be published by
/// [`LogSegment::commit_append`].
#[derive(Debug)]
pub struct PendingAppend {
    size: u64,
    offset_entries: Vec<OffsetPosition>,
    time_entries: Vec<TimestampOffset>,
    max_timestamp_so_far: TimestampOffset,
    bytes_since_last_index_entry: u64,
    rolling_based_timestamp: Option<i64>,
}

/// Bytes of whole batches in a segment's log file, and the file, held open for as long as the
/// region is: a reader sends them with `sendfile` or reads them with [`FileRegion::read`]. The
/// file is never cut below a published batch while readers can see it, so the bytes stay there.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
}

impl FileRegion {
    /// Reads the region's bytes.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; self.len as usize];
        self.file.read_exact_at(&mut out, self.position)?;
        Ok(out)
    }
}

/// What [`LogSegment::recover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the file.
    pub truncated_bytes: u64,
    /// The offset after the last valid batch, `None` when the segment holds none.
    pub next_offset: Option<i64>,
    /// Why the first invalid batch was refused, if there was one.
    pub reason: Option<String>,
}

/// One segment. See the module documentation.
#[derive(Debug, Clone)]
pub struct LogSegment {
    base_offset: i64,
    log: Arc<SegmentFile>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Bytes of complete batches published to readers.
    size: u64,
    /// The largest batch max timestamp so far and the last offset of the (first) batch with it;
    /// `(NO_TIMESTAMP, base_offset)` when no batch has a timestamp.
    max_timestamp_so_far: TimestampOffset,
    bytes_since_last_index_entry: u64,
    /// The first batch's max timestamp, which `segment.ms` rolls are measured from.
    rolling_based_timestamp: Option<i64>,
    /// When this process created or opened the segment, for `segment.ms` without timestamps.
    created_ms: i64,
    /// The aborted transaction index, created with its first entry (see [`super::txn_index`]).
    txn_index: Arc<SegmentFile>,
    /// Bytes of whole entries in the aborted transaction index published to readers.
    txn_index_bytes: u64,
}

impl LogSegment {
    /// Creates an empty segment with preallocated indexes.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<Self> {
        let log = SegmentFile::create(dir.join(segment_file_name(base_offset, LOG_FILE_SUFFIX)))?;
        let mut segment = LogSegment::create_indexes_only(dir, base_offset, config, log, now_ms)?;
        // A new segment has no aborted transaction, whatever an earlier log left at this name.
        segment.reset_txn_index()?;
        Ok(segment)
    }

    /// Opens a segment whose files are trusted (below the recovery point, or after a clean
    /// shutdown), reading nothing but the ends of its indexes (and keeping no file open).
    /// `next_offset` is the next segment's base offset, when there is one. A missing or corrupt
    /// index is reported so that the caller can rebuild it with [`LogSegment::open_for_recovery`]
    /// and [`LogSegment::recover`]; an empty segment's missing indexes are simply created, as
    /// Kafka's lazy indexes do.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        next_offset: Option<i64>,
        now_ms: i64,
    ) -> io::Result<Result<Self, CorruptIndex>> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_FILE_SUFFIX));
        let size = fs::metadata(&log_path)?.len();
        let log = SegmentFile::closed(log_path);
        let index_path = dir.join(segment_file_name(base_offset, INDEX_FILE_SUFFIX));
        let time_path = dir.join(segment_file_name(base_offset, TIME_INDEX_FILE_SUFFIX));
        if size == 0 && !(index_path.exists() && time_path.exists()) {
            let mut segment = LogSegment::create_indexes_only(
                dir,
                base_offset,
                &LogConfig::default(),
                log,
                now_ms,
            )?;
            segment.offset_index.trim()?;
            segment.time_index.trim()?;
            return Ok(Ok(segment));
        }
        let missing = |e: io::Error, path: &Path| {
            if e.kind() == io::ErrorKind::NotFound {
                Ok(Err(CorruptIndex(format!("{} is missing", path.display()))))
            } else {
                Err(e)
            }
        };
        let offset_index = match OffsetIndex::open(&index_path, base_offset, size, next_offset) {
            Ok(Ok(index)) => index,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(e) => return missing(e, &index_path),
        };
        let time_index = match TimeIndex::open(&time_path, base_offset, next_offset) {
            Ok(Ok(index)) => index,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(e) => return missing(e, &time_path),
        };
        let bytes_since_last_index_entry =
            size - offset_index.last_entry().map_or(0, |e| e.position);
        let (txn_index, txn_index_bytes) = open_txn_index(dir, base_offset)?;
        Ok(Ok(LogSegment {
            base_offset,
            log,
            max_timestamp_so_far: time_index.last_entry(),
            offset_index,
            time_index,
            size,
            bytes_since_last_index_entry,
            rolling_based_timestamp: None,
            created_ms: now_ms,
            txn_index,
            txn_index_bytes,
        }))
    }

    /// Opens a segment's log with new, empty indexes, for [`LogSegment::recover`] to fill.
    pub fn open_for_recovery(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> io::Result<Self> {
        let log_path = dir.join(segment_file_name(base_offset, LOG_FILE_SUFFIX));
        let size = fs::metadata(&log_path)?.len();
        let log = SegmentFile::closed(log_path);
        let mut segment = LogSegment::create_indexes_only(dir, base_offset, config, log, now_ms)?;
        segment.size = size;
        Ok(segment)
    }

    fn create_indexes_only(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        log: Arc<SegmentFile>,
        now_ms: i64,
    ) -> io::Result<Self> {
        let (txn_index, txn_index_bytes) = open_txn_index(dir, base_offset)?;
        Ok(LogSegment {
            txn_index,
            txn_index_bytes,
            base_offset,
            log,
            offset_index: OffsetIndex::create(
                &dir.join(segment_file_name(base_offset, INDEX_FILE_SUFFIX)),
                base_offset,
                config.max_index_size,
            )?,
            time_index: TimeIndex::create(
                &dir.join(segment_file_name(base_offset, TIME_INDEX_FILE_SUFFIX)),
                base_offset,
                config.max_index_size,
            )?,
            size: 0,
            max_timestamp_so_far: TimestampOffset {
                timestamp: NO_TIMESTAMP,
                offset: base_offset,
            },
            bytes_since_last_index_entry: 0,
            rolling_based_timestamp: None,
            created_ms: now_ms,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Bytes of published batches.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// The log file, opened if the cache had closed it.
    pub fn log_file(&self) -> io::Result<Arc<File>> {
        self.log.get()
    }

    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// The largest timestamp in the segment and the last offset of the batch that holds it.
    pub fn max_timestamp_so_far(&self) -> TimestampOffset {
        self.max_timestamp_so_far
    }

    /// What time retention compares with: the largest record timestamp, or the file's
    /// modification time when no record has one (Kafka's `largestTimestamp`).
    pub fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp_so_far.timestamp >= 0 {
            return self.max_timestamp_so_far.timestamp;
        }
        fs::metadata(self.log.path())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    // ---- Reads (any thread, on a clone) -------------------------------------------------------

    /// The position of the first batch whose last offset is at least `offset`, found through the
    /// offset index (so at most one index interval of batch headers is read), or `None` when no
    /// batch in the segment reaches `offset`.
    pub fn translate_offset(&self, offset: i64) -> io::Result<Option<u64>> {
        if self.size == 0 {
            return Ok(None);
        }
        let log = self.log.get()?;
        let start = self.offset_index.lookup(offset)?.position.min(self.size);
        let mut position = start;
        while let Some(header) = read_header(&log, position, self.size)? {
            let (last_offset, size) = header_view(&header);
            if last_offset >= offset {
                return Ok(Some(position));
            }
            position += size;
        }
        Ok(None)
    }

    /// Reads whole batches starting with the one that holds `offset`, as many as fit in
    /// `max_bytes` (at least one when `min_one_batch`), none at or past `end_offset` (the high
    /// watermark). `None` when the segment holds no batch reaching `offset`.
    pub fn read(
        &self,
        offset: i64,
        end_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> io::Result<Option<Vec<u8>>> {
        match self.read_region(offset, end_offset, max_bytes, min_one_batch)? {
            Some(region) => region.read().map(Some),
            None => Ok(None),
        }
    }

    /// Where in the log file [`LogSegment::read`] would read from, without reading the batches:
    /// for a response that sends them straight from the file (`sendfile`).
    pub fn read_region(
        &self,
        offset: i64,
        end_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> io::Result<Option<FileRegion>> {
        let Some(position) = self.translate_offset(offset)? else {
            return Ok(None);
        };
        let limits = ReadLimits {
            end: self.size,
            end_offset,
            max_bytes,
            min_one_batch,
        };
        let log = self.log.get()?;
        let len = batches_length(&log, position, &limits)?;
        Ok(Some(FileRegion {
            file: log,
            position,
            len,
        }))
    }

    /// Calls `visit` with the header and file position of each batch from the one holding
    /// `offset` to the end, until it returns false.
    pub fn scan_headers_from(
        &self,
        offset: i64,
        mut visit: impl FnMut(&[u8; HEADER_SIZE], u64) -> bool,
    ) -> io::Result<()> {
        let Some(mut position) = self.translate_offset(offset)? else {
            return Ok(());
        };
        let log = self.log.get()?;
        while let Some(header) = read_header(&log, position, self.size)? {
            if !visit(&header, position) {
                break;
            }
            position += header_view(&header).1;
        }
        Ok(())
    }

    /// Reads the whole batch at `position` whose header is `header` (a control batch, whose
    /// record says which marker it is). `None` when it does not fit the published size.
    pub fn read_batch_at(
        &self,
        position: u64,
        header: &[u8; HEADER_SIZE],
    ) -> io::Result<Option<Vec<u8>>> {
        let size = header_view(header).1;
        if position + size > self.size {
            return Ok(None);
        }
        let mut bytes = vec![0u8; size as usize];
        self.log.get()?.read_exact_at(&mut bytes, position)?;
        Ok(Some(bytes))
    }

    /// The first record at or after `start_offset` whose timestamp is at least `target`
    /// (ListOffsets, Kafka's `findOffsetByTimestamp`): the time index gives the last point before
    /// which every record is older, the offset index gives where that is in the file, and the
    /// batches from there are scanned. `None` when no such record is in the segment.
    pub fn find_offset_by_timestamp(
        &self,
        target: i64,
        start_offset: i64,
    ) -> io::Result<Option<(i64, i64)>> {
        if self.max_timestamp_so_far.timestamp < target {
            return Ok(None);
        }
        let after = match self.time_index.last_entry_before(target)? {
            Some(entry) => entry.offset.max(start_offset),
            None => start_offset,
        };
        let mut position = self.offset_index.lookup(after)?.position.min(self.size);
        let log = self.log.get()?;
        while let Some(header) = read_header(&log, position, self.size)? {
            let (last_offset, size) = header_view(&header);
            let max_timestamp = BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]);
            if last_offset >= start_offset && max_timestamp >= target {
                let records = record_timestamps(&log, position, &header)?;
                if records.is_empty() {
                    // A compressed batch: its records are not decoded.
                    let base_offset =
                        BigEndian::read_i64(&header[record_batch::BASE_OFFSET_OFFSET..]);
                    return Ok(Some((base_offset.max(start_offset), max_timestamp)));
                }
                if let Some(found) = records
                    .into_iter()
                    .find(|&(offset, ts)| offset >= start_offset && ts >= target)
                {
                    return Ok(Some(found));
                }
            }
            position += size;
        }
        Ok(None)
    }

    /// The first record with the segment's largest timestamp (ListOffsets MAX_TIMESTAMP); the
    /// first batch's when no record has a timestamp.
    pub fn max_timestamp_record(&self) -> io::Result<Option<(i64, i64)>> {
        let max = self.max_timestamp_so_far;
        let position = if max.timestamp >= 0 {
            self.translate_offset(max.offset)?
        } else {
            Some(0)
        };
        let Some(position) = position else {
            return Ok(None);
        };
        let log = self.log.get()?;
        let Some(header) = read_header(&log, position, self.size)? else {
            return Ok(None);
        };
        let batch_max = BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]);
        let exact = record_timestamps(&log, position, &header)?
            .into_iter()
            .find(|&(_, ts)| ts == batch_max);
        Ok(Some(exact.unwrap_or((header_view(&header).0, batch_max))))
    }

    // ---- Writes (the log-writer thread only) --------------------------------------------------

    /// Whether appending `batches` (`size` bytes, offsets up to `last_offset`, timestamps up to
    /// `max_timestamp`) must go to a new segment (Kafka's `shouldRoll`): the segment would pass
    /// `segment.bytes`, has waited `segment.ms` since its first batch's timestamp (or its creation,
    /// without timestamps), has a full index, or cannot index `last_offset` relative to its base.
    pub fn should_roll(
        &self,
        config: &LogConfig,
        size: u64,
        max_timestamp: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let full = self.size + size > config.segment_bytes;
        let aged = self.time_waited_for_roll(now_ms, max_timestamp) > config.segment_ms;
        let relative = last_offset - self.base_offset;
        full || aged
            || self.offset_index.is_full()
            || self.time_index.is_full()
            || !(0..=i64::from(i32::MAX)).contains(&relative)
    }

    /// How long the segment has waited to be rolled (Kafka's `timeWaitedForRoll`): from its first
    /// batch's timestamp to the new batches' largest one, or from its creation to now when the
    /// first batch has no timestamp.
    fn time_waited_for_roll(&self, now_ms: i64, max_timestamp: i64) -> i64 {
        match self.rolling_based_timestamp {
            Some(ts) if ts >= 0 => max_timestamp.saturating_sub(ts),
            _ => now_ms.saturating_sub(self.created_ms),
        }
    }

    /// Reads the first batch's timestamp, which `segment.ms` is measured from, for a segment that
    /// was opened rather than created (Kafka's `loadFirstBatchTimestamp`).
    pub fn load_rolling_based_timestamp(&mut self) -> io::Result<()> {
        if self.rolling_based_timestamp.is_none() && self.size > 0 {
            self.rolling_based_timestamp = read_header(&*self.log.get()?, 0, self.size)?
                .map(|h| BigEndian::read_i64(&h[record_batch::MAX_TIMESTAMP_OFFSET..]));
        }
        Ok(())
    }

    /// Writes `bytes` (the batches described by `batches`) after the published end, with their
    /// index entries, as Kafka's `LogSegment.append` does per batch: a batch gets an offset index
    /// entry (its last offset, its position) when more than `index.interval.bytes` were appended
    /// since the last entry, and with it a time index entry if the largest timestamp grew.
    /// Nothing is visible to readers until [`LogSegment::commit_append`].
    pub fn prepare_append(
        &self,
        bytes: &[u8],
        batches: &[BatchInfo],
        index_interval_bytes: u64,
    ) -> io::Result<PendingAppend> {
        let mut pending = PendingAppend {
            size: self.size,
            offset_entries: Vec::new(),
            time_entries: Vec::new(),
            max_timestamp_so_far: self.max_timestamp_so_far,
            bytes_since_last_index_entry: self.bytes_since_last_index_entry,
            rolling_based_timestamp: self.rolling_based_timestamp,
        };
        let mut last_time_entry = self.time_index.last_entry();
        for batch in batches {
            if pending.size == 0 {
                pending.rolling_based_timestamp = Some(batch.max_timestamp);
            }
            if batch.max_timestamp > pending.max_timestamp_so_far.timestamp {
                pending.max_timestamp_so_far = TimestampOffset {
                    timestamp: batch.max_timestamp,
                    offset: batch.last_offset,
                };
            }
            let offset_room = self.offset_index.entries() + (pending.offset_entries.len() as u64)
                < self.offset_index.max_entries();
            if pending.bytes_since_last_index_entry > index_interval_bytes && offset_room {
                pending.offset_entries.push(OffsetPosition {
                    offset: batch.last_offset,
                    position: pending.size,
                });
                let time_room = self.time_index_has_room(pending.time_entries.len());
                if pending.max_timestamp_so_far.timestamp > last_time_entry.timestamp && time_room {
                    pending.time_entries.push(pending.max_timestamp_so_far);
                    last_time_entry = pending.max_timestamp_so_far;
                }
                pending.bytes_since_last_index_entry = 0;
            }
            pending.bytes_since_last_index_entry += batch.size;
            pending.size += batch.size;
        }
        assert_eq!(
            pending.size - self.size,
            bytes.len() as u64,
            "batch sizes add up"
        );
        self.log.mark_written();
        self.log.get()?.write_all_at(bytes, self.size)?;
        if !pending.offset_entries.is_empty() {
            let mut encoded = Vec::with_capacity(pending.offset_entries.len() * 8);
            self.offset_index
                .encode(&pending.offset_entries, &mut encoded);
            self.offset_index.write(&encoded)?;
        }
        if !pending.time_entries.is_empty() {
            let mut encoded = Vec::with_capacity(pending.time_entries.len() * 12);
            self.time_index.encode(&pending.time_entries, &mut encoded);
            self.time_index.write(&encoded)?;
        }
        Ok(pending)
    }

    /// Cuts whatever a failed [`LogSegment::prepare_append`] left after the published end.
    pub fn discard_unpublished(&self) -> io::Result<()> {
        self.log.mark_written();
        self.log.get()?.set_len(self.size)
    }

    /// Cuts the log file at `position` (a batch boundary), for a log that is reloaded from its
    /// files right after; this segment's own view is stale from then on.
    pub fn truncate_log_file(&self, position: u64) -> io::Result<()> {
        assert!(position <= self.size, "truncation only shortens a segment");
        // No fsync here: this file description may be the one whose fsync failed. The reloaded
        // log opens the file anew, and its next flush makes the new length durable.
        self.log.mark_written();
        self.log.get()?.set_len(position)
    }

    /// Whether the time index can take `pending` more entries plus one, keeping the slot Kafka
    /// reserves for the entry written at seal time.
    fn time_index_has_room(&self, pending: usize) -> bool {
        self.time_index.entries() + pending as u64 + 2 <= self.time_index.max_entries()
    }

    /// Publishes a prepared append.
    pub fn commit_append(&mut self, pending: PendingAppend) {
        self.offset_index.publish(&pending.offset_entries);
        self.time_index.publish(&pending.time_entries);
        self.size = pending.size;
        self.max_timestamp_so_far = pending.max_timestamp_so_far;
        self.bytes_since_last_index_entry = pending.bytes_since_last_index_entry;
        self.rolling_based_timestamp = pending.rolling_based_timestamp;
    }

    /// Seals the segment (Kafka's `onBecomeInactiveSegment`): writes the largest timestamp as the
    /// last time index entry, which time retention and ListOffsets rely on, and trims both
    /// indexes to their entries. Also used at clean shutdown for the active segment.
    pub fn seal(&mut self) -> io::Result<()> {
        self.time_index
            .maybe_append(self.max_timestamp_so_far, true)?;
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// Lets the indexes take entries again so that the segment can take appends (the active
    /// segment after loading).
    pub fn resize_indexes(&mut self, max_index_size: u64) {
        self.offset_index.resize(max_index_size);
        self.time_index.resize(max_index_size);
    }

    /// Forces the log (and, for a sealed segment whose indexes are final, the indexes) to disk.
    /// Files not written since their last fsync are skipped.
    pub fn flush(&self, sealed: bool) -> io::Result<()> {
        self.log.sync(true)?;
        // Entries are appended with their markers, so they must be on disk with them.
        self.txn_index.sync(false)?;
        if sealed {
            self.offset_index.file().sync(false)?;
            self.time_index.file().sync(false)?;
        }
        Ok(())
    }

    /// The segment's files, for a background fsync: the log, its two indexes and the aborted
    /// transaction index (which a sync skips when it was never written).
    pub fn files(&self) -> [Arc<SegmentFile>; 4] {
        [
            self.log.clone(),
            self.offset_index.file().clone(),
            self.time_index.file().clone(),
            self.txn_index.clone(),
        ]
    }

    // ---- The aborted transaction index ----------------------------------------------------

    pub fn txn_index_path(&self) -> &Path {
        self.txn_index.path()
    }

    /// Bytes of published entries in the aborted transaction index.
    pub fn txn_index_bytes(&self) -> u64 {
        self.txn_index_bytes
    }

    /// Writes `entry` after the published entries (creating the file with the first one) and
    /// returns the index size to publish with [`LogSegment::commit_txn_entry`]. Only the writer
    /// calls this; readers never look past the published size.
    pub fn prepare_txn_entry(&self, entry: &AbortedTxn) -> io::Result<u64> {
        if self.txn_index_bytes == 0 && !self.txn_index.path().exists() {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.txn_index.path())?;
        }
        let file = self.txn_index.get()?;
        self.txn_index.mark_written();
        file.write_all_at(&entry.encode(), self.txn_index_bytes)?;
        let size = self.txn_index_bytes + txn_index::ENTRY_SIZE as u64;
        if file.metadata()?.len() > size {
            // Bytes a failed append or an older index left past the published entries.
            file.set_len(size)?;
        }
        Ok(size)
    }

    pub fn commit_txn_entry(&mut self, size: u64) {
        self.txn_index_bytes = size;
    }

    /// Removes the aborted transaction index, so that recovery rebuilds it from the markers.
    pub fn reset_txn_index(&mut self) -> io::Result<()> {
        self.txn_index.close();
        match fs::remove_file(self.txn_index.path()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.txn_index_bytes = 0;
        Ok(())
    }

    /// The published entries of the aborted transaction index, read through the open files
    /// cache; none (and no I/O) when the segment has none.
    pub fn aborted_txns(&self) -> io::Result<Vec<AbortedTxn>> {
        if self.txn_index_bytes == 0 {
            return Ok(Vec::new());
        }
        let file = self.txn_index.get()?;
        let mut bytes = vec![0u8; self.txn_index_bytes as usize];
        file.read_exact_at(&mut bytes, 0)?;
        txn_index::decode(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", self.txn_index.path().display()),
            )
        })
    }

    /// Opens and retires the segment's files (see [`SegmentFile::retire`]) and renames them with
    /// the `.deleted` suffix, for a cleaned copy to take their names. Returns the renamed paths.
    pub fn retire_for_swap(&self) -> io::Result<Vec<PathBuf>> {
        let mut deleted = Vec::with_capacity(3);
        // The aborted transaction index stays: the cleaned copy keeps the offsets it names.
        for file in &self.files()[..3] {
            // Open before the rename, so that readers of this copy keep reading the old bytes.
            let _ = file.get();
            file.retire();
            let mut target = file.path().to_path_buf().into_os_string();
            target.push(DELETED_FILE_SUFFIX);
            let target = PathBuf::from(target);
            match fs::rename(file.path(), &target) {
                Ok(()) => deleted.push(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Renames the segment's files with the `.deleted` suffix, then removes them. Readers that
    /// still hold the files keep reading them until they drop them.
    pub fn delete(&self) -> io::Result<()> {
        for file in self.files() {
            file.close();
        }
        let paths = [
            self.log.path().to_path_buf(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
            self.txn_index.path().to_path_buf(),
        ];
        let mut deleted = Vec::with_capacity(paths.len());
        for path in paths {
            let mut target = path.clone().into_os_string();
            target.push(DELETED_FILE_SUFFIX);
            let target = PathBuf::from(target);
            match fs::rename(&path, &target) {
                Ok(()) => deleted.push(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for path in deleted {
            fs::remove_file(path)?;
        }
        Ok(())
    }

    // ---- Recovery (start-up, before the segment is shared) ------------------------------------

    /// Finds the end of a trusted segment: reads batch headers from the last offset index entry
    /// (at most one index interval) and returns the offset after the last batch, or `None` for an
    /// empty segment. A partial batch at the end, which a clean shutdown never leaves, is cut.
    pub fn read_next_offset(&mut self) -> io::Result<Option<i64>> {
        let start = self.offset_index.last_entry().map_or(0, |e| e.position);
        if self.size == 0 {
            self.bytes_since_last_index_entry = 0;
            return Ok(None);
        }
        let log = self.log.get()?;
        let mut position = start;
        let mut next = None;
        while let Some(header) = read_header(&log, position, self.size)? {
            let Ok(Some(size)) = record_batch::batch_size(&header) else {
                break;
            };
            if position + size as u64 > self.size {
                break;
            }
            next = Some(header_view(&header).0 + 1);
            position += size as u64;
        }
        if position < self.size {
            log::warn!(
                "{}: {} bytes after position {position} are not whole batches; truncating",
                self.log.path().display(),
                self.size - position
            );
            self.log.mark_written();
            log.set_len(position)?;
            self.size = position;
        }
        self.bytes_since_last_index_entry = self.size - start;
        Ok(next)
    }

    /// Checks every batch from the start of the segment (Kafka's `LogSegment.recover`): its length
    /// must fit, its magic must be 2, its offsets must follow the previous batch's (the first at
    /// or after the base offset) and, from `verify_from` on, its CRC-32C must match. Batches that
    /// end below `verify_from` (the recovery point: known to be on disk) are checked from their
    /// headers alone, so that only what may be torn is read in full. Rebuilds both indexes on the
    /// way, cuts the file at the first batch that fails, and trims the indexes.
    pub fn recover(&mut self, index_interval_bytes: u64, verify_from: i64) -> io::Result<Recovery> {
        assert_eq!(
            self.offset_index.entries() + self.time_index.entries(),
            0,
            "recovery starts from empty indexes"
        );
        let log = self.log.get()?;
        let file_len = log.metadata()?.len();
        let mut scanner = Scanner::new(&log, file_len);
        let mut valid: u64 = 0;
        let mut next_offset: Option<i64> = None;
        let mut reason = None;
        let mut offset_entries = Vec::new();
        let mut time_entries: Vec<TimestampOffset> = Vec::new();
        let mut max_timestamp = TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: self.base_offset,
        };
        let mut last_index_entry_position: u64 = 0;
        let mut first_batch_timestamp = None;
        while valid < file_len {
            let verify = next_offset.unwrap_or(self.base_offset) >= verify_from;
            let header = if verify {
                scanner.header_at(valid)?
            } else {
                read_header(&log, valid, file_len)?
            };
            let Some(header) = header else {
                reason = Some(format!(
                    "{} trailing bytes are too few for a batch header",
                    file_len - valid
                ));
                break;
            };
            let batch = match check_header(&header, valid, file_len, self.base_offset, next_offset)
            {
                Ok(batch) => batch,
                Err(why) => {
                    reason = Some(why);
                    break;
                }
            };
            if verify || batch.last_offset >= verify_from {
                let bytes = scanner.batch_at(valid, batch.size as usize)?;
                let crc = Batches::new(bytes)
                    .next()
                    .map(|b| b.map_err(|e| e.to_string()));
                if let Some(Err(why)) | Some(Ok(Err(why))) =
                    crc.map(|b| b.map(|view| view.validate().map_err(|e| e.to_string())))
                {
                    reason = Some(why);
                    break;
                }
            }
            first_batch_timestamp.get_or_insert(batch.max_timestamp);
            if batch.max_timestamp > max_timestamp.timestamp {
                max_timestamp = TimestampOffset {
                    timestamp: batch.max_timestamp,
                    offset: batch.last_offset,
                };
            }
            let index_room = (offset_entries.len() as u64) < self.offset_index.max_entries();
            if valid - last_index_entry_position > index_interval_bytes && index_room {
                offset_entries.push(OffsetPosition {
                    offset: batch.last_offset,
                    position: valid,
                });
                let last_ts = time_entries.last().map_or(NO_TIMESTAMP, |e| e.timestamp);
                let time_room = self.time_index_has_room(time_entries.len());
                if max_timestamp.timestamp > last_ts && time_room {
                    time_entries.push(max_timestamp);
                }
                last_index_entry_position = valid;
            }
            next_offset = Some(batch.last_offset + 1);
            valid += batch.size;
        }
        drop(scanner);
        let truncated_bytes = file_len - valid;
        if truncated_bytes > 0 {
            self.log.mark_written();
            log.set_len(valid)?;
        }
        let mut encoded = Vec::with_capacity(offset_entries.len() * 8);
        self.offset_index.encode(&offset_entries, &mut encoded);
        self.offset_index.write(&encoded)?;
        self.offset_index.publish(&offset_entries);
        encoded.clear();
        self.time_index.encode(&time_entries, &mut encoded);
        self.time_index.write(&encoded)?;
        self.time_index.publish(&time_entries);
        self.size = valid;
        self.max_timestamp_so_far = max_timestamp;
        self.bytes_since_last_index_entry = valid - last_index_entry_position;
        self.rolling_based_timestamp = first_batch_timestamp;
        self.seal()?;
        Ok(Recovery {
            truncated_bytes,
            next_offset,
            reason,
        })
    }
}

/// What recovery needs from a batch header that passed [`check_header`].
struct CheckedHeader {
    size: u64,
    last_offset: i64,
    max_timestamp: i64,
}

/// Checks what a batch header says without its CRC, which does not cover the base offset: the
/// length fits the file, the magic is 2, and the offsets continue the segment.
fn check_header(
    header: &[u8; HEADER_SIZE],
    position: u64,
    file_len: u64,
    segment_base: i64,
    expected: Option<i64>,
) -> Result<CheckedHeader, String> {
    let size = match record_batch::batch_size(header) {
        Ok(Some(size)) => size as u64,
        Ok(None) => return Err("truncated batch header".to_string()),
        Err(e) => return Err(e.to_string()),
    };
    if position + size > file_len {
        return Err(format!(
            "batch of {size} bytes at position {position} passes the end of the file"
        ));
    }
    let magic = header[record_batch::MAGIC_OFFSET] as i8;
    if magic != record_batch::MAGIC_V2 {
        return Err(format!("unsupported record batch magic {magic}"));
    }
    let base = BigEndian::read_i64(&header[record_batch::BASE_OFFSET_OFFSET..]);
    let delta = BigEndian::read_i32(&header[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
    match expected {
        // The cleaner drops emptied batches, leaving gaps; offsets never go back.
        Some(next) if base < next => {
            return Err(format!(
                "batch base offset {base} does not follow offset {}",
                next - 1
            ));
        }
        None if base < segment_base => {
            return Err(format!(
                "batch base offset {base} is below the segment's {segment_base}"
            ));
        }
        _ => {}
    }
    let relative_last = i64::from(delta).saturating_add(base.saturating_sub(segment_base));
    if delta < 0
        || relative_last > i64::from(i32::MAX)
        || base.checked_add(i64::from(delta)).is_none()
    {
        return Err(format!(
            "batch at offset {base} with last offset delta {delta} does not fit the segment"
        ));
    }
    Ok(CheckedHeader {
        size,
        last_offset: base + i64::from(delta),
        max_timestamp: BigEndian::read_i64(&header[record_batch::MAX_TIMESTAMP_OFFSET..]),
    })
}

/// Reads a segment file sequentially in large chunks, for recovery.
struct Scanner<'a> {
    file: &'a File,
    file_len: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    start: u64,
}

impl<'a> Scanner<'a> {
    fn new(file: &'a File, file_len: u64) -> Self {
        Scanner {
            file,
            file_len,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Makes `[position, position + len)` available in the buffer, if the file has it.
    fn fill(&mut self, position: u64, len: usize) -> io::Result<bool> {
        if position + len as u64 > self.file_len {
            return Ok(false);
        }
        let have =
            position >= self.start && position + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = len
                .max(RECOVERY_READ_BYTES)
                .min((self.file_len - position) as usize);
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.start = position;
        }
        Ok(true)
    }

    /// The batch header at `position`, or `None` when the file ends first.
    fn header_at(&mut self, position: u64) -> io::Result<Option<[u8; HEADER_SIZE]>> {
        if !self.fill(position, HEADER_SIZE)? {
            return Ok(None);
        }
        let at = (position - self.start) as usize;
        let mut header = [0u8; HEADER_SIZE];
        header.copy_from_slice(&self.buf[at..at + HEADER_SIZE]);
        Ok(Some(header))
    }

    /// The `size` bytes of the batch at `position`, which [`check_header`] found to fit the file.
    fn batch_at(&mut self, position: u64, size: usize) -> io::Result<&[u8]> {
        let filled = self.fill(position, size)?;
        assert!(filled, "a checked batch fits the file");
        let at = (position - self.start) as usize;
        Ok(&self.buf[at..at + size])
    }
}

/// Reads the 61-byte batch header at `position`, or `None` past `end`.
pub fn read_header(file: &File, position: u64, end: u64) -> io::Result<Option<[u8; HEADER_SIZE]>> {
    if position + HEADER_SIZE as u64 > end {
        return Ok(None);
    }
    let mut header = [0u8; HEADER_SIZE];
    file.read_exact_at(&mut header, position)?;
    Ok(Some(header))
}

/// A batch header's last offset and total size.
pub fn header_view(header: &[u8; HEADER_SIZE]) -> (i64, u64) {
    let base = BigEndian::read_i64(&header[record_batch::BASE_OFFSET_OFFSET..]);
    let delta = BigEndian::read_i32(&header[record_batch::LAST_OFFSET_DELTA_OFFSET..]);
    let length = BigEndian::read_i32(&header[record_batch::LENGTH_OFFSET..]);
    (
        base.saturating_add(i64::from(delta)),
        record_batch::LOG_OVERHEAD as u64 + length.max(0) as u64,
    )
}

/// Where a read of whole batches stops.
struct ReadLimits {
    /// The segment's published size.
    end: u64,
    /// No batch whose offsets reach this one (the high watermark).
    end_offset: i64,
    max_bytes: usize,
    /// Return the first batch even if it is larger than `max_bytes`.
    min_one_batch: bool,
}

/// Reads whole batches from `position`, as many as the limits allow.
/// The length of the whole batches from `position` that fit `limits`.
fn batches_length(file: &File, position: u64, limits: &ReadLimits) -> io::Result<u64> {
    let (end, max_bytes, min_one_batch) = (limits.end, limits.max_bytes, limits.min_one_batch);
    let mut len: u64 = 0;
    let mut cursor = position;
    while let Some(header) = read_header(file, cursor, end)? {
        let (last_offset, size) = header_view(&header);
        if cursor + size > end || last_offset >= limits.end_offset {
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
    Ok(len)
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
