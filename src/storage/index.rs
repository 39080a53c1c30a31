//! A segment's sparse indexes, in Kafka's on-disk format (`OffsetIndex.java`, `TimeIndex.java`):
//!
//! | file         | entry                                              | size |
//! |--------------|----------------------------------------------------|------|
//! | `.index`     | relative offset (u32), file position (u32)         | 8    |
//! | `.timeindex` | timestamp (i64), relative offset (u32)             | 12   |
//!
//! All big-endian; the relative offset is `offset - base_offset`. The offset index maps the last
//! offset of a batch to the position where that batch starts; the time index maps the largest
//! timestamp seen so far in the segment to the last offset of the batch that carried it. Both
//! get one entry per `log.index.interval.bytes` of appended batches and are strictly increasing.
//!
//! The file of the active segment is preallocated to `log.index.size.max.bytes` (rounded down to a
//! whole number of entries) and trimmed to its entries when the segment is sealed or the broker
//! shuts down cleanly, exactly as Kafka leaves it, so `kafka-dump-log` reads them.
//!
//! Thread-safety: an index is a file handle plus the number of published entries. The `log-writer`
//! thread writes entries past the published count ([`OffsetIndex::write`]) and then publishes them
//! ([`OffsetIndex::publish`]) under the partition's write lock; readers clone the index under the
//! read lock and binary-search the file with positional reads, never looking past the count they
//! cloned. Nothing is memory-mapped, so trimming a file never faults a reader, and an index costs
//! no memory beyond its last entry.

use super::open_files::SegmentFile;
use byteorder::{BigEndian, ByteOrder};
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

pub const OFFSET_INDEX_ENTRY_SIZE: u64 = 8;
pub const TIME_INDEX_ENTRY_SIZE: u64 = 12;

/// An offset index entry: a batch whose last offset is `offset` starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u64,
}

/// A time index entry: no record up to the batch ending at `offset` has a timestamp above
/// `timestamp`, and that batch holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// Kafka's `RecordBatch.NO_TIMESTAMP`.
pub const NO_TIMESTAMP: i64 = -1;

/// Why an index file cannot be trusted; the segment's indexes are then rebuilt from its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptIndex(pub String);

impl std::fmt::Display for CorruptIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file and entry count shared by both index kinds.
#[derive(Debug, Clone)]
struct IndexFile {
    file: Arc<SegmentFile>,
    base_offset: i64,
    entry_size: u64,
    entries: u64,
    max_entries: u64,
    /// The file may be longer than its entries (preallocated, or written past them), so
    /// [`IndexFile::trim`] must cut it.
    untrimmed: bool,
}

impl IndexFile {
    /// Creates (or empties) the file and preallocates it to `max_index_size`.
    fn create(
        path: &Path,
        base_offset: i64,
        entry_size: u64,
        max_index_size: u64,
    ) -> io::Result<Self> {
        let file = SegmentFile::create(path.to_path_buf())?;
        let max_entries = max_index_size / entry_size;
        file.get()?.set_len(max_entries * entry_size)?;
        Ok(IndexFile {
            file,
            base_offset,
            entry_size,
            entries: 0,
            max_entries,
            untrimmed: true,
        })
    }

    /// Takes an existing, trimmed file, which is opened when it is first read: every whole entry
    /// in it counts. A length that is not a whole number of entries is corrupt (Kafka's
    /// `sanityCheck`).
    fn open(
        path: &Path,
        base_offset: i64,
        entry_size: u64,
    ) -> io::Result<Result<Self, CorruptIndex>> {
        let len = fs::metadata(path)?.len();
        if len % entry_size != 0 {
            return Ok(Err(CorruptIndex(format!(
                "{} has length {len}, not a multiple of {entry_size}",
                path.display()
            ))));
        }
        let entries = len / entry_size;
        Ok(Ok(IndexFile {
            file: SegmentFile::closed(path.to_path_buf()),
            base_offset,
            entry_size,
            entries,
            max_entries: entries,
            untrimmed: false,
        }))
    }

    fn read_entry(&self, file: &fs::File, n: u64, buf: &mut [u8]) -> io::Result<()> {
        debug_assert!(n < self.entries);
        file.read_exact_at(&mut buf[..self.entry_size as usize], n * self.entry_size)
    }

    /// The number of the last entry whose key is at most `target` (`key` reads an entry's key),
    /// or `None` when the first entry's key is already above it.
    fn largest_lower_bound(
        &self,
        target: i64,
        key: impl Fn(&[u8]) -> i64,
    ) -> io::Result<Option<u64>> {
        let mut buf = [0u8; TIME_INDEX_ENTRY_SIZE as usize];
        let (mut lo, mut hi) = (0u64, self.entries);
        if lo == hi {
            return Ok(None);
        }
        let file = self.file.get()?;
        // Invariant: entries below `lo` have keys <= target, entries at `hi` and above > target.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.read_entry(&file, mid, &mut buf)?;
            if key(&buf) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo.checked_sub(1))
    }

    /// Writes `bytes` (whole entries) after the published ones, without publishing them. A file
    /// that was not preallocated grows as it is written.
    fn write(&self, bytes: &[u8]) -> io::Result<()> {
        debug_assert_eq!(bytes.len() as u64 % self.entry_size, 0);
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.mark_written();
        self.file
            .get()?
            .write_all_at(bytes, self.entries * self.entry_size)
    }

    fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(i32::MAX)).contains(&relative),
            "offset {offset} does not fit an index of base offset {}",
            self.base_offset
        );
        relative as u32
    }

    /// Lets the index take entries up to `max_index_size` bytes (never fewer than it has), for
    /// appends. The file is not preallocated: nothing maps it, and positional writes grow it, so
    /// an index that is never written (an idle partition's) needs no descriptor at all.
    fn resize(&mut self, max_index_size: u64) {
        self.max_entries = (max_index_size / self.entry_size).max(self.entries);
    }

    /// Shrinks the file to its entries, as Kafka's `trimToValidSize`; nothing to do for a file
    /// that was neither preallocated nor written since it was opened.
    fn trim(&mut self) -> io::Result<()> {
        if self.file.take_written_since_trim() | self.untrimmed {
            self.file.get()?.set_len(self.entries * self.entry_size)?;
        }
        self.max_entries = self.entries;
        self.untrimmed = false;
        Ok(())
    }
}

/// A segment's `.index` file. See the module documentation.
#[derive(Debug, Clone)]
pub struct OffsetIndex {
    inner: IndexFile,
    /// The last published entry, kept in memory: most fetches are at the tail.
    last: Option<OffsetPosition>,
}

impl OffsetIndex {
    /// Creates an empty index preallocated to `max_index_size` bytes.
    pub fn create(path: &Path, base_offset: i64, max_index_size: u64) -> io::Result<Self> {
        Ok(OffsetIndex {
            inner: IndexFile::create(path, base_offset, OFFSET_INDEX_ENTRY_SIZE, max_index_size)?,
            last: None,
        })
    }

    /// Opens an existing index file and checks what can be checked without reading it all
    /// (Kafka's `sanityCheck`): whole entries, entries increasing from first to last, and the last
    /// entry inside the segment (`log_size` bytes, offsets below `next_offset` when known).
    /// A missing file is an `io::ErrorKind::NotFound` error.
    pub fn open(
        path: &Path,
        base_offset: i64,
        log_size: u64,
        next_offset: Option<i64>,
    ) -> io::Result<Result<Self, CorruptIndex>> {
        let inner = match IndexFile::open(path, base_offset, OFFSET_INDEX_ENTRY_SIZE)? {
            Ok(inner) => inner,
            Err(e) => return Ok(Err(e)),
        };
        let mut index = OffsetIndex { inner, last: None };
        if index.inner.entries == 0 {
            return Ok(Ok(index));
        }
        let first = index.entry(0)?;
        let last = index.entry(index.inner.entries - 1)?;
        let corrupt = |why: &str| {
            Ok(Err(CorruptIndex(format!(
                "{}: {why} (first entry {first:?}, last entry {last:?}, {} entries)",
                path.display(),
                index.inner.entries
            ))))
        };
        if last.offset < first.offset || last.position < first.position {
            return corrupt("entries are not increasing");
        }
        if index.inner.entries > 1 && last.offset == first.offset {
            return corrupt("entries repeat");
        }
        if last.position >= log_size {
            return corrupt("the last entry points past the end of the log");
        }
        if next_offset.is_some_and(|next| last.offset >= next) {
            return corrupt("the last entry is past the segment's last offset");
        }
        index.last = Some(last);
        Ok(Ok(index))
    }

    pub fn path(&self) -> &Path {
        self.inner.file.path()
    }

    pub fn file(&self) -> &Arc<SegmentFile> {
        &self.inner.file
    }

    pub fn entries(&self) -> u64 {
        self.inner.entries
    }

    pub fn max_entries(&self) -> u64 {
        self.inner.max_entries
    }

    pub fn is_full(&self) -> bool {
        self.inner.entries >= self.inner.max_entries
    }

    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.last
    }

    /// Reads entry `n` (below [`OffsetIndex::entries`]).
    pub fn entry(&self, n: u64) -> io::Result<OffsetPosition> {
        let mut buf = [0u8; OFFSET_INDEX_ENTRY_SIZE as usize];
        self.inner
            .read_entry(&*self.inner.file.get()?, n, &mut buf)?;
        Ok(self.parse(&buf))
    }

    fn parse(&self, buf: &[u8]) -> OffsetPosition {
        OffsetPosition {
            offset: self.inner.base_offset + i64::from(BigEndian::read_i32(buf)),
            position: u64::from(BigEndian::read_u32(&buf[4..])),
        }
    }

    /// The entry with the largest offset at most `target`, or `(base_offset, 0)` when there is
    /// none (Kafka's `lookup`): the batch holding `target` starts at or after its position.
    pub fn lookup(&self, target: i64) -> io::Result<OffsetPosition> {
        let none = OffsetPosition {
            offset: self.inner.base_offset,
            position: 0,
        };
        match self.last {
            None => return Ok(none),
            Some(last) if last.offset <= target => return Ok(last),
            Some(_) => {}
        }
        let base = self.inner.base_offset;
        let slot = self
            .inner
            .largest_lower_bound(target, |b| base + i64::from(BigEndian::read_i32(b)))?;
        match slot {
            Some(n) => self.entry(n),
            None => Ok(none),
        }
    }

    /// Encodes entries for [`OffsetIndex::write`].
    pub fn encode(&self, entries: &[OffsetPosition], out: &mut Vec<u8>) {
        for e in entries {
            let position = u32::try_from(e.position).expect("segment positions fit 32 bits");
            out.extend_from_slice(&self.inner.relative(e.offset).to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
    }

    /// Writes encoded entries after the published ones; readers do not see them until
    /// [`OffsetIndex::publish`].
    pub fn write(&self, encoded: &[u8]) -> io::Result<()> {
        self.inner.write(encoded)
    }

    /// Makes entries written by [`OffsetIndex::write`] visible.
    pub fn publish(&mut self, entries: &[OffsetPosition]) {
        if let Some(&last) = entries.last() {
            self.inner.entries += entries.len() as u64;
            assert!(
                self.inner.entries <= self.inner.max_entries,
                "index overflow"
            );
            self.last = Some(last);
        }
    }

    pub fn resize(&mut self, max_index_size: u64) {
        self.inner.resize(max_index_size)
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }
}

/// A segment's `.timeindex` file. See the module documentation.
#[derive(Debug, Clone)]
pub struct TimeIndex {
    inner: IndexFile,
    last: Option<TimestampOffset>,
}

impl TimeIndex {
    pub fn create(path: &Path, base_offset: i64, max_index_size: u64) -> io::Result<Self> {
        Ok(TimeIndex {
            inner: IndexFile::create(path, base_offset, TIME_INDEX_ENTRY_SIZE, max_index_size)?,
            last: None,
        })
    }

    /// Opens an existing time index with Kafka's sanity checks plus the bound on the last
    /// entry's offset. A missing file is an `io::ErrorKind::NotFound` error.
    pub fn open(
        path: &Path,
        base_offset: i64,
        next_offset: Option<i64>,
    ) -> io::Result<Result<Self, CorruptIndex>> {
        let inner = match IndexFile::open(path, base_offset, TIME_INDEX_ENTRY_SIZE)? {
            Ok(inner) => inner,
            Err(e) => return Ok(Err(e)),
        };
        let mut index = TimeIndex { inner, last: None };
        if index.inner.entries == 0 {
            return Ok(Ok(index));
        }
        let first = index.entry(0)?;
        let last = index.entry(index.inner.entries - 1)?;
        let corrupt = |why: &str| {
            Ok(Err(CorruptIndex(format!(
                "{}: {why} (first entry {first:?}, last entry {last:?})",
                path.display()
            ))))
        };
        if last.timestamp < first.timestamp || last.offset < first.offset {
            return corrupt("entries are not increasing");
        }
        if last.offset < base_offset || next_offset.is_some_and(|next| last.offset >= next) {
            return corrupt("the last entry is outside the segment");
        }
        index.last = Some(last);
        Ok(Ok(index))
    }

    pub fn path(&self) -> &Path {
        self.inner.file.path()
    }

    pub fn file(&self) -> &Arc<SegmentFile> {
        &self.inner.file
    }

    pub fn entries(&self) -> u64 {
        self.inner.entries
    }

    pub fn max_entries(&self) -> u64 {
        self.inner.max_entries
    }

    /// Kafka keeps the last slot free for the entry written when the segment is sealed.
    pub fn is_full(&self) -> bool {
        self.inner.entries + 1 >= self.inner.max_entries
    }

    /// The last entry, or Kafka's `(NO_TIMESTAMP, base_offset)` for an empty index.
    pub fn last_entry(&self) -> TimestampOffset {
        self.last.unwrap_or(TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: self.inner.base_offset,
        })
    }

    pub fn entry(&self, n: u64) -> io::Result<TimestampOffset> {
        let mut buf = [0u8; TIME_INDEX_ENTRY_SIZE as usize];
        self.inner
            .read_entry(&*self.inner.file.get()?, n, &mut buf)?;
        Ok(TimestampOffset {
            timestamp: BigEndian::read_i64(&buf),
            offset: self.inner.base_offset + i64::from(BigEndian::read_i32(&buf[8..])),
        })
    }

    /// The last entry whose timestamp is below `target`: every record up to its offset is older
    /// than `target`, so a search for the first record at or after `target` can start after it.
    pub fn last_entry_before(&self, target: i64) -> io::Result<Option<TimestampOffset>> {
        match self.last {
            None => return Ok(None),
            Some(last) if last.timestamp < target => return Ok(Some(last)),
            Some(_) => {}
        }
        // Entries with timestamp <= target - 1 are exactly those below target.
        let slot = self
            .inner
            .largest_lower_bound(target.saturating_sub(1), BigEndian::read_i64)?;
        slot.map(|n| self.entry(n)).transpose()
    }

    /// Whether [`TimeIndex::maybe_append`] would add `entry` (Kafka appends only when the
    /// timestamp grows).
    pub fn accepts(&self, entry: TimestampOffset) -> bool {
        entry.timestamp > self.last_entry().timestamp
    }

    pub fn encode(&self, entries: &[TimestampOffset], out: &mut Vec<u8>) {
        for e in entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&self.inner.relative(e.offset).to_be_bytes());
        }
    }

    pub fn write(&self, encoded: &[u8]) -> io::Result<()> {
        self.inner.write(encoded)
    }

    pub fn publish(&mut self, entries: &[TimestampOffset]) {
        if let Some(&last) = entries.last() {
            self.inner.entries += entries.len() as u64;
            assert!(
                self.inner.entries <= self.inner.max_entries,
                "time index overflow"
            );
            self.last = Some(last);
        }
    }

    /// Writes and publishes one entry if its timestamp is larger than the last one's, ignoring
    /// the reserved last slot when `skip_full_check` (the entry written at seal time).
    pub fn maybe_append(
        &mut self,
        entry: TimestampOffset,
        skip_full_check: bool,
    ) -> io::Result<()> {
        if !self.accepts(entry) || (!skip_full_check && self.is_full()) {
            return Ok(());
        }
        if self.inner.entries >= self.inner.max_entries {
            // Only possible for an index opened trimmed and not resized.
            self.inner
                .resize((self.inner.entries + 1) * TIME_INDEX_ENTRY_SIZE);
        }
        let mut bytes = Vec::with_capacity(TIME_INDEX_ENTRY_SIZE as usize);
        self.encode(&[entry], &mut bytes);
        self.write(&bytes)?;
        self.publish(&[entry]);
        Ok(())
    }

    pub fn resize(&mut self, max_index_size: u64) {
        self.inner.resize(max_index_size)
    }

    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sprat-index-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn offset_index_with(dir: &Path, base: i64, entries: &[(i64, u64)]) -> OffsetIndex {
        let mut index = OffsetIndex::create(&dir.join("0.index"), base, 1024).unwrap();
        let entries: Vec<_> = entries
            .iter()
            .map(|&(offset, position)| OffsetPosition { offset, position })
            .collect();
        let mut bytes = Vec::new();
        index.encode(&entries, &mut bytes);
        index.write(&bytes).unwrap();
        index.publish(&entries);
        index
    }

    #[test]
    fn offset_index_lookup_at_every_boundary() {
        let dir = temp_dir("lookup");
        let index = offset_index_with(&dir, 100, &[(105, 400), (110, 900), (120, 1500)]);
        let cases: &[(&str, i64, (i64, u64))] = &[
            ("below the first entry", 101, (100, 0)),
            ("at the base offset", 100, (100, 0)),
            ("exactly the first entry", 105, (105, 400)),
            ("between entries", 107, (105, 400)),
            ("exactly a middle entry", 110, (110, 900)),
            ("just below the last entry", 119, (110, 900)),
            ("exactly the last entry", 120, (120, 1500)),
            ("past the last entry", 1000, (120, 1500)),
        ];
        for &(name, target, (offset, position)) in cases {
            assert_eq!(
                index.lookup(target).unwrap(),
                OffsetPosition { offset, position },
                "{name}"
            );
        }
        // The binary search agrees with the in-memory last entry for every target.
        let mut cold = index.clone();
        cold.last = Some(OffsetPosition {
            offset: i64::MAX,
            position: 0,
        });
        for target in 100..130 {
            let expected = index.lookup(target).unwrap();
            if target < 120 {
                assert_eq!(cold.lookup(target).unwrap(), expected, "target {target}");
            }
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offset_index_file_is_kafkas_format() {
        let dir = temp_dir("format");
        let mut index = offset_index_with(&dir, 1000, &[(1003, 4200), (1010, 9000)]);
        assert_eq!(
            fs::metadata(index.path()).unwrap().len(),
            1024,
            "preallocated"
        );
        index.trim().unwrap();
        let bytes = fs::read(index.path()).unwrap();
        assert_eq!(
            bytes,
            [
                0, 0, 0, 3, 0, 0, 0x10, 0x68, // 1003 - 1000 = 3, 4200
                0, 0, 0, 10, 0, 0, 0x23, 0x28, // 10, 9000
            ]
        );
        let reopened = OffsetIndex::open(index.path(), 1000, 10_000, Some(1011))
            .unwrap()
            .unwrap();
        assert_eq!(reopened.entries(), 2);
        assert_eq!(
            reopened.lookup(1009).unwrap(),
            OffsetPosition {
                offset: 1003,
                position: 4200
            }
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn offset_index_sanity_checks() {
        let dir = temp_dir("sanity");
        let path = dir.join("0.index");
        let mut index = offset_index_with(&dir, 0, &[(3, 100), (8, 300)]);
        index.trim().unwrap();
        let good = fs::read(&path).unwrap();
        let cases: &[(&str, Vec<u8>, u64, Option<i64>)] = &[
            ("a partial entry", good[..12].to_vec(), 1000, None),
            ("decreasing", [&good[8..], &good[..8]].concat(), 1000, None),
            ("past the log", good.clone(), 300, None),
            ("past the next offset", good.clone(), 1000, Some(8)),
            (
                "preallocated zeros",
                [&good[..], &[0u8; 16]].concat(),
                1000,
                None,
            ),
        ];
        for (name, bytes, log_size, next) in cases {
            fs::write(&path, bytes).unwrap();
            assert!(
                OffsetIndex::open(&path, 0, *log_size, *next)
                    .unwrap()
                    .is_err(),
                "{name}"
            );
        }
        fs::write(&path, &good).unwrap();
        assert!(OffsetIndex::open(&path, 0, 1000, Some(9)).unwrap().is_ok());
        fs::remove_file(&path).unwrap();
        assert_eq!(
            OffsetIndex::open(&path, 0, 1000, None).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn time_index_appends_only_growing_timestamps_and_keeps_a_slot() {
        let dir = temp_dir("time");
        let mut index = TimeIndex::create(&dir.join("0.timeindex"), 50, 36).unwrap();
        assert_eq!(
            index.last_entry(),
            TimestampOffset {
                timestamp: -1,
                offset: 50
            }
        );
        let entry = |timestamp, offset| TimestampOffset { timestamp, offset };
        index.maybe_append(entry(-1, 50), false).unwrap();
        assert_eq!(index.entries(), 0, "no timestamp is not indexed");
        index.maybe_append(entry(1000, 52), false).unwrap();
        index.maybe_append(entry(1000, 53), false).unwrap();
        assert_eq!(index.entries(), 1, "equal timestamps are not indexed");
        index.maybe_append(entry(2000, 55), false).unwrap();
        assert!(index.is_full(), "3 slots, the last reserved");
        index.maybe_append(entry(3000, 57), false).unwrap();
        assert_eq!(index.entries(), 2);
        index.maybe_append(entry(3000, 57), true).unwrap();
        assert_eq!(index.entries(), 3);
        index.trim().unwrap();
        let bytes = fs::read(index.path()).unwrap();
        assert_eq!(bytes.len(), 36);
        assert_eq!(&bytes[24..], &[0, 0, 0, 0, 0, 0, 0x0b, 0xb8, 0, 0, 0, 7]);
        let cases: &[(i64, Option<(i64, i64)>)] = &[
            (500, None),
            (1000, None),
            (1001, Some((1000, 52))),
            (2000, Some((1000, 52))),
            (2500, Some((2000, 55))),
            (3001, Some((3000, 57))),
        ];
        let reopened = TimeIndex::open(index.path(), 50, Some(58))
            .unwrap()
            .unwrap();
        for &(target, expected) in cases {
            let expected =
                expected.map(|(timestamp, offset)| TimestampOffset { timestamp, offset });
            assert_eq!(
                index.last_entry_before(target).unwrap(),
                expected,
                "{target}"
            );
            assert_eq!(
                reopened.last_entry_before(target).unwrap(),
                expected,
                "{target}"
            );
        }
        assert!(
            TimeIndex::open(index.path(), 50, Some(57))
                .unwrap()
                .is_err()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
