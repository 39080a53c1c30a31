//! The storage half of log compaction (Kafka's `Cleaner.cleanSegments` and `SkimpyOffsetMap`):
//! the map of key -> latest offset built over a log's dirty segments, and the rewrite of a sealed
//! segment into a `.cleaned` file that keeps only the latest record of each key.
//!
//! Invariants of a cleaned segment: it has the same base offset as its source, every surviving
//! batch keeps its base offset, last offset delta, timestamps, partition leader epoch and
//! producer id/epoch/base sequence (only its records, their count, its length and its CRC-32C
//! change), and batches stay in offset order. A batch all of whose records go is dropped, unless
//! it is the last batch of its producer, which stays empty so that the producer's idempotence
//! state survives a reload (as Kafka keeps it).
//!
//! Transactions (Kafka's `CleanedTransactionMetadata`): the cleaner walks the log in offset order
//! with the aborted transactions of the `.txnindex` files ([`TxnCleaning`]). The records of a
//! transactional batch of an aborted transaction are removed, and never enter the offset map (so
//! that they never hide an older committed value). A COMMIT or ABORT marker is removed only when
//! no batch of its transaction was seen before it in this cleaning (its data is all gone) and the
//! segment is past the same `delete.retention.ms` horizon as tombstones; other control batches
//! are copied unchanged. The caller never cleans at or past the last stable offset, so every
//! transaction seen here has ended.
//!
//! A compressed batch is decompressed (one batch at a time, at most
//! [`MAX_DECOMPRESSED_BATCH_BYTES`]), filtered like an uncompressed one, and its surviving
//! records, byte for byte as they were, are recompressed with the batch's own codec, as Kafka's
//! `MemoryRecords.filterTo` does. An emptied batch that stays is written with no records and no
//! codec, as Kafka's `writeEmptyHeader` does. A batch that cannot be decompressed or parsed fails
//! the cleaning of its log with an error; nothing is written over the log.
//!
//! Nothing here changes a log: the `log-cleaner` thread writes the `.cleaned` file and asks the
//! `log-writer` to swap it in (see `PartitionLog::replace_cleaned_segment`).

use super::compression::{self, Codec, MAX_DECOMPRESSED_BATCH_BYTES};
use super::record_batch::{
    ATTRIBUTES_OFFSET, BatchView, Batches, COMPRESSION_CODEC_MASK, CRC_OFFSET, HEADER_SIZE,
    LENGTH_OFFSET, LOG_OVERHEAD, RECORDS_COUNT_OFFSET,
};
use super::segment::{LogSegment, header_view, read_header};
use super::txn_index::AbortedTxn;
use crate::protocol::wire::{DecodeError, Decoder};
use byteorder::{BigEndian, ByteOrder};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What a cleaned segment's log file is first written as (Kafka's `CleanedFileSuffix`).
pub const CLEANED_FILE_SUFFIX: &str = ".cleaned";
/// What a cleaned segment is renamed to once it is complete (Kafka's `SwapFileSuffix`).
pub const SWAP_FILE_SUFFIX: &str = ".swap";

/// Bytes an offset map entry costs besides its key: the offset, the hash table slot and the
/// key's allocation header. The map's bound is counted in these, so that
/// `log.cleaner.dedupe.buffer.size` bounds the cleaner's memory.
const ENTRY_OVERHEAD_BYTES: usize = 48;

/// Key -> offset of its latest record, bounded in bytes (Kafka's `OffsetMap`). Unlike Kafka's
/// `SkimpyOffsetMap` it keeps whole keys, not hashes, so that two keys never collide.
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<Vec<u8>, i64>,
    bytes: usize,
    max_bytes: usize,
}

impl OffsetMap {
    pub fn new(max_bytes: usize) -> Self {
        OffsetMap {
            map: HashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// Records that `key`'s latest record is at `offset`. Returns false, changing nothing, when
    /// the key is new and the map has no room for it.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(latest) = self.map.get_mut(key) {
            *latest = (*latest).max(offset);
            return true;
        }
        let cost = key.len() + ENTRY_OVERHEAD_BYTES;
        if self.bytes + cost > self.max_bytes {
            return false;
        }
        self.bytes += cost;
        self.map.insert(key.to_vec(), offset);
        true
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bytes the entries are counted as.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One record of a batch, as the cleaner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The value is null: a delete marker for the key.
    pub is_tombstone: bool,
    /// The record as stored (after decompression): its length varint and body.
    pub bytes: &'a [u8],
}

/// Whether the cleaner may rewrite a batch's records: any data batch, compressed or not.
pub fn is_cleanable(batch: &BatchView<'_>) -> bool {
    !batch.is_control()
}

/// A batch's records section, decompressed if its codec says so (borrowed when it is not).
pub fn records_section<'a>(batch: &BatchView<'a>) -> io::Result<Cow<'a, [u8]>> {
    match Codec::from_attributes(batch.attributes())? {
        Codec::None => Ok(Cow::Borrowed(batch.records_bytes())),
        codec => {
            compression::decompress(codec, batch.records_bytes(), MAX_DECOMPRESSED_BATCH_BYTES)
                .map(Cow::Owned)
        }
    }
}

/// The records of an uncompressed batch, each with its absolute offset.
pub fn records<'a>(batch: &BatchView<'a>) -> Result<Vec<RecordRef<'a>>, DecodeError> {
    parse_records(batch, batch.records_bytes())
}

/// The records in `body`, the (decompressed) records section of `batch`, each with its absolute
/// offset. `records_count` records must be there.
pub fn parse_records<'a>(
    batch: &BatchView<'_>,
    body: &'a [u8],
) -> Result<Vec<RecordRef<'a>>, DecodeError> {
    let mut d = Decoder::new(body);
    let count = batch.records_count().max(0) as usize;
    let mut out = Vec::with_capacity(count.min(body.len()));
    for _ in 0..count {
        let start = d.position();
        let length = d.varint()?;
        let mut r = Decoder::new(d.take(length.max(0) as usize)?);
        let _attributes = r.i8()?;
        let _timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key_len = r.varint()?;
        let key = if key_len < 0 {
            None
        } else {
            Some(r.take(key_len as usize)?)
        };
        let value_len = r.varint()?;
        let value = if value_len < 0 {
            None
        } else {
            Some(r.take(value_len as usize)?)
        };
        out.push(RecordRef {
            offset: batch.base_offset() + i64::from(offset_delta),
            key,
            value,
            is_tombstone: value_len < 0,
            bytes: &body[start..d.position()],
        });
    }
    Ok(out)
}

/// Rewrites `batch` with the records `keep` accepts. `None` when none is kept and `keep_empty` is
/// false; the batch's own bytes when every record is kept; an empty batch without codec when none
/// is kept and `keep_empty` is set; otherwise the header unchanged but for the records count,
/// length and CRC-32C, followed by the surviving records as they were, recompressed with the
/// batch's codec.
pub fn filter_batch(
    batch: &BatchView<'_>,
    mut keep: impl FnMut(&RecordRef<'_>) -> bool,
    keep_empty: bool,
) -> io::Result<Option<Vec<u8>>> {
    let codec = Codec::from_attributes(batch.attributes())?;
    let section = records_section(batch)?;
    let all = parse_records(batch, &section).map_err(invalid)?;
    let kept: Vec<&RecordRef<'_>> = all.iter().filter(|r| keep(r)).collect();
    if kept.len() == all.len() {
        return Ok(Some(batch.bytes().to_vec()));
    }
    if kept.is_empty() && !keep_empty {
        return Ok(None);
    }
    let parts: Vec<&[u8]> = kept.iter().map(|r| r.bytes).collect();
    let (codec, records) = if kept.is_empty() {
        (Codec::None, Vec::new())
    } else {
        (codec, compression::compress_parts(codec, &parts)?)
    };
    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&batch.bytes()[..HEADER_SIZE]);
    out.extend_from_slice(&records);
    if codec == Codec::None {
        let attributes = batch.attributes() & !COMPRESSION_CODEC_MASK;
        BigEndian::write_i16(&mut out[ATTRIBUTES_OFFSET..], attributes);
    }
    BigEndian::write_i32(&mut out[RECORDS_COUNT_OFFSET..], kept.len() as i32);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    BigEndian::write_i32(&mut out[LENGTH_OFFSET..], length);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut out[CRC_OFFSET..], crc);
    Ok(Some(out))
}

/// Calls `visit` with every batch of a sealed segment, in order, reading one batch at a time.
/// Stops early when `visit` returns false.
pub fn for_each_batch(
    segment: &LogSegment,
    mut visit: impl FnMut(&BatchView<'_>) -> io::Result<bool>,
) -> io::Result<()> {
    let file = segment.log_file()?;
    let end = segment.size();
    let mut position = 0;
    let mut buf = Vec::new();
    while let Some(header) = read_header(&file, position, end)? {
        let (_, size) = header_view(&header);
        buf.resize(size as usize, 0);
        file.read_exact_at(&mut buf, position)?;
        let Some(Ok(view)) = Batches::new(&buf).next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: unreadable batch at position {position}",
                    segment.log_path().display()
                ),
            ));
        };
        if !visit(&view)? {
            break;
        }
        position += size;
    }
    Ok(())
}

fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("record batch: {e}"))
}

/// Names the segment and batch an error is about.
fn in_batch(segment: &LogSegment, batch: &BatchView<'_>, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "{}: batch at offset {}: {e}",
            segment.log_path().display(),
            batch.base_offset()
        ),
    )
}

/// Adds a segment's keys to the map and each producer's latest batch to `producers`. Returns
/// false when the map filled up before the segment's end (its entries so far stay in the map:
/// they are all later records, so they never make the cleaner drop a key's latest record).
pub fn map_segment(
    segment: &LogSegment,
    map: &mut OffsetMap,
    producers: &mut HashMap<i64, i64>,
    txn: &mut TxnCleaning,
) -> io::Result<bool> {
    let mut complete = true;
    for_each_batch(segment, |batch| {
        note_producer(batch, producers);
        if !is_cleanable(batch) {
            txn.on_control_batch_read(batch);
            return Ok(true);
        }
        if txn.on_batch_read(batch) {
            return Ok(true);
        }
        let section = records_section(batch).map_err(|e| in_batch(segment, batch, e))?;
        let records =
            parse_records(batch, &section).map_err(|e| in_batch(segment, batch, invalid(e)))?;
        for r in records {
            if let Some(key) = r.key
                && !map.put(key, r.offset)
            {
                complete = false;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    Ok(complete)
}

/// Notes each producer's latest batch (by base offset).
pub fn note_producer(batch: &BatchView<'_>, producers: &mut HashMap<i64, i64>) {
    if batch.producer_id() >= 0 {
        let latest = producers
            .entry(batch.producer_id())
            .or_insert(batch.base_offset());
        *latest = (*latest).max(batch.base_offset());
    }
}

/// The transactions of the part of a log being walked (Kafka's `CleanedTransactionMetadata`):
/// the aborted transactions not reached yet, and those open at the current batch.
#[derive(Debug, Default)]
pub struct TxnCleaning {
    /// Aborted transactions by first offset, not reached yet.
    aborted: VecDeque<AbortedTxn>,
    /// Producer id -> whether a batch of its aborted transaction was seen.
    ongoing_aborted: HashMap<i64, bool>,
    /// Producers with a batch of a committed transaction seen since their last marker.
    ongoing_committed: HashSet<i64>,
}

/// What a marker's transaction left in a cleaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkerVerdict {
    /// A batch of its transaction was seen before it: it stays.
    Needed,
    /// No data of its transaction is left before it: it may go once past the delete horizon.
    Discardable,
    /// Not a COMMIT or ABORT marker: it stays.
    Other,
}

impl TxnCleaning {
    /// `aborted`: the `.txnindex` entries that overlap the part of the log to walk.
    pub fn new(mut aborted: Vec<AbortedTxn>) -> Self {
        aborted.sort_by_key(|a| a.first_offset);
        TxnCleaning {
            aborted: aborted.into(),
            ..TxnCleaning::default()
        }
    }

    fn consume_aborted_up_to(&mut self, offset: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.first_offset <= offset)
        {
            let a = self.aborted.pop_front().expect("checked");
            self.ongoing_aborted.entry(a.producer_id).or_insert(false);
        }
    }

    /// Notes a data batch; true when its records belong to an aborted transaction.
    pub fn on_batch_read(&mut self, batch: &BatchView<'_>) -> bool {
        self.consume_aborted_up_to(batch.last_offset());
        if !batch.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&batch.producer_id()) {
            Some(seen) => {
                *seen = true;
                true
            }
            None => {
                self.ongoing_committed.insert(batch.producer_id());
                false
            }
        }
    }

    /// Notes a control batch: a marker ends its producer's transaction.
    pub fn on_control_batch_read(&mut self, batch: &BatchView<'_>) -> MarkerVerdict {
        self.consume_aborted_up_to(batch.last_offset());
        let pid = batch.producer_id();
        match super::record_batch::end_txn_marker(batch.bytes()) {
            Some((false, _)) => match self.ongoing_aborted.remove(&pid) {
                Some(true) => MarkerVerdict::Needed,
                _ => MarkerVerdict::Discardable,
            },
            Some((true, _)) if self.ongoing_committed.remove(&pid) => MarkerVerdict::Needed,
            Some((true, _)) => MarkerVerdict::Discardable,
            None if batch.records_count() == 0 => MarkerVerdict::Discardable,
            None => MarkerVerdict::Other,
        }
    }
}

/// What cleaning one segment did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_kept: u64,
    pub records_removed: u64,
    /// The offsets of the ABORT markers removed: their `.txnindex` entries go with them.
    pub removed_abort_markers: Vec<i64>,
    /// The COMMIT and ABORT markers removed.
    pub markers_removed: u64,
}

/// Writes the cleaned copy of `segment` to `out` (created or emptied, then fsynced). `producers`
/// holds each producer's latest batch seen by the cleaning (whose emptied batch is kept). A record
/// is kept unless it belongs to an aborted transaction, the map holds a later offset for its key,
/// or it is a tombstone and `drop_tombstones` is set (the segment is past `delete.retention.ms`
/// since it was first cleaned). Keyless records are kept. A marker goes when `txn` finds it
/// discardable and `drop_tombstones` is set.
pub fn clean_segment(
    segment: &LogSegment,
    out: &Path,
    map: &OffsetMap,
    producers: &HashMap<i64, i64>,
    drop_tombstones: bool,
    txn: &mut TxnCleaning,
) -> io::Result<CleanStats> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut stats = CleanStats::default();
    for_each_batch(segment, |batch| {
        stats.bytes_read += batch.size() as u64;
        let last_of_producer = batch.producer_id() >= 0
            && producers.get(&batch.producer_id()) == Some(&batch.base_offset());
        let cleaned = if is_cleanable(batch) {
            let aborted = txn.on_batch_read(batch);
            let mut removed = 0;
            let cleaned = filter_batch(
                batch,
                |r| {
                    if aborted {
                        removed += 1;
                        return false;
                    }
                    let superseded = r
                        .key
                        .and_then(|k| map.get(k))
                        .is_some_and(|latest| latest > r.offset);
                    let keep = !(superseded || (r.is_tombstone && drop_tombstones));
                    if !keep {
                        removed += 1;
                    }
                    keep
                },
                last_of_producer,
            )
            .map_err(|e| in_batch(segment, batch, e))?;
            stats.records_removed += removed;
            stats.records_kept += batch.records_count().max(0) as u64 - removed;
            cleaned
        } else {
            let verdict = txn.on_control_batch_read(batch);
            if verdict == MarkerVerdict::Discardable && drop_tombstones && !last_of_producer {
                stats.markers_removed += 1;
                if super::record_batch::end_txn_marker(batch.bytes()).is_some_and(|(c, _)| !c) {
                    stats.removed_abort_markers.push(batch.base_offset());
                }
                None
            } else {
                Some(batch.bytes().to_vec())
            }
        };
        if let Some(bytes) = cleaned {
            stats.bytes_written += bytes.len() as u64;
            writer.write_all(&bytes)?;
        }
        Ok(true)
    })?;
    let file: File = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record_batch::{BatchHeader, Record, build_batch, decode_records};

    fn keyed(base: i64, records: &[(&str, Option<&str>)]) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                timestamp_delta: i as i64,
                key: Some(k.as_bytes().to_vec()),
                value: v.map(|v| v.as_bytes().to_vec()),
                headers: vec![],
            })
            .collect();
        build_batch(
            &BatchHeader {
                base_offset: base,
                base_timestamp: 1_000,
                max_timestamp: 1_000 + records.len() as i64 - 1,
                producer_id: 7,
                producer_epoch: 2,
                base_sequence: 11,
                ..BatchHeader::default()
            },
            &records,
        )
    }

    fn view(bytes: &[u8]) -> BatchView<'_> {
        Batches::new(bytes).next().unwrap().unwrap()
    }

    #[test]
    fn records_have_absolute_offsets_keys_and_tombstones() {
        let bytes = keyed(40, &[("a", Some("1")), ("b", None)]);
        let b = view(&bytes);
        let rs = records(&b).unwrap();
        assert_eq!(rs.len(), 2);
        assert_eq!(
            (rs[0].offset, rs[0].key, rs[0].is_tombstone),
            (40, Some(&b"a"[..]), false)
        );
        assert_eq!(
            (rs[1].offset, rs[1].key, rs[1].is_tombstone),
            (41, Some(&b"b"[..]), true)
        );
        let total: usize = rs.iter().map(|r| r.bytes.len()).sum();
        assert_eq!(total, b.records_bytes().len());
    }

    #[test]
    fn filtered_batch_keeps_offsets_timestamps_and_producer_fields() {
        let bytes = keyed(100, &[("a", Some("1")), ("b", Some("2")), ("a", Some("3"))]);
        let original = view(&bytes);
        let out = filter_batch(&original, |r| r.offset != 100, false)
            .unwrap()
            .unwrap();
        let b = view(&out);
        b.validate().unwrap();
        assert_eq!(b.size(), out.len());
        assert_eq!(b.base_offset(), 100);
        assert_eq!(b.last_offset(), 102);
        assert_eq!(b.records_count(), 2);
        assert_eq!(b.base_timestamp(), original.base_timestamp());
        assert_eq!(b.max_timestamp(), original.max_timestamp());
        assert_eq!(
            (b.producer_id(), b.producer_epoch(), b.base_sequence()),
            (7, 2, 11)
        );
        let rs = records(&b).unwrap();
        assert_eq!(
            rs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![101, 102]
        );
        let decoded = decode_records(&b).unwrap();
        assert_eq!(decoded[0].value.as_deref(), Some(&b"2"[..]));
        assert_eq!(decoded[1].timestamp_delta, 2);
    }

    #[test]
    fn emptied_batch_is_dropped_or_kept_empty() {
        let bytes = keyed(5, &[("a", Some("1"))]);
        let b = view(&bytes);
        assert_eq!(filter_batch(&b, |_| false, false).unwrap(), None);
        let empty = filter_batch(&b, |_| false, true).unwrap().unwrap();
        let e = view(&empty);
        e.validate().unwrap();
        assert_eq!(
            (e.records_count(), e.base_offset(), e.last_offset()),
            (0, 5, 5)
        );
        assert_eq!(e.size(), HEADER_SIZE);
    }

    #[test]
    fn untouched_batch_is_copied_byte_for_byte() {
        let bytes = keyed(0, &[("a", Some("1")), ("b", Some("2"))]);
        assert_eq!(
            filter_batch(&view(&bytes), |_| true, false)
                .unwrap()
                .unwrap(),
            bytes
        );
    }

    #[test]
    fn offset_map_keeps_the_latest_offset_within_its_bound() {
        let mut map = OffsetMap::new(2 * (1 + ENTRY_OVERHEAD_BYTES));
        assert!(map.put(b"a", 3));
        assert!(map.put(b"a", 1));
        assert!(map.put(b"b", 4));
        assert!(!map.put(b"c", 5));
        assert!(map.put(b"b", 9));
        assert_eq!(
            (map.get(b"a"), map.get(b"b"), map.get(b"c")),
            (Some(3), Some(9), None)
        );
        assert_eq!(map.len(), 2);
    }

    fn compressed(bytes: &[u8], codec: Codec) -> Vec<u8> {
        compression::compressed_batch(bytes, codec)
    }

    const CODECS: [Codec; 4] = [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

    #[test]
    fn compressed_batch_is_filtered_and_recompressed_with_its_codec() {
        let plain = keyed(100, &[("a", Some("1")), ("b", Some("2")), ("a", Some("3"))]);
        for codec in CODECS {
            let bytes = compressed(&plain, codec);
            let original = view(&bytes);
            original.validate().unwrap();
            let out = filter_batch(&original, |r| r.offset != 100, false)
                .unwrap()
                .unwrap();
            let b = view(&out);
            b.validate().unwrap();
            assert_eq!(b.compression_codec(), codec as i16, "{}", codec.name());
            assert_eq!(&out[..RECORDS_COUNT_OFFSET], {
                // Only the length and CRC of the header change before the count.
                let mut h = bytes[..RECORDS_COUNT_OFFSET].to_vec();
                h[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&out[LENGTH_OFFSET..][..4]);
                h[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&out[CRC_OFFSET..][..4]);
                h
            });
            assert_eq!(b.records_count(), 2);
            let section = records_section(&b).unwrap();
            // The kept records are the original records' bytes, in order.
            let plain_view = view(&plain);
            let plain_records = records(&plain_view).unwrap();
            assert_eq!(
                &section[..],
                [plain_records[1].bytes, plain_records[2].bytes].concat()
            );
            let rs = parse_records(&b, &section).unwrap();
            assert_eq!(
                rs.iter().map(|r| (r.offset, r.value)).collect::<Vec<_>>(),
                vec![(101, Some(&b"2"[..])), (102, Some(&b"3"[..]))]
            );
            // Untouched: byte for byte, not recompressed.
            assert_eq!(
                filter_batch(&original, |_| true, false).unwrap().unwrap(),
                bytes
            );
        }
    }

    #[test]
    fn emptied_compressed_batch_is_dropped_or_kept_empty_without_codec() {
        let plain = keyed(5, &[("a", Some("1")), ("b", Some("2"))]);
        for codec in CODECS {
            let bytes = compressed(&plain, codec);
            let b = view(&bytes);
            assert_eq!(filter_batch(&b, |_| false, false).unwrap(), None);
            let empty = filter_batch(&b, |_| false, true).unwrap().unwrap();
            let e = view(&empty);
            e.validate().unwrap();
            assert_eq!(e.size(), HEADER_SIZE);
            assert_eq!(e.compression_codec(), 0);
            assert_eq!(
                (e.records_count(), e.base_offset(), e.last_offset()),
                (0, 5, 6)
            );
            assert_eq!(
                (e.producer_id(), e.producer_epoch(), e.base_sequence()),
                (7, 2, 11)
            );
        }
    }

    #[test]
    fn corrupt_compressed_records_are_an_error() {
        let plain = keyed(0, &[("a", Some("1")), ("b", Some("2"))]);
        for codec in CODECS {
            let mut bytes = compressed(&plain, codec);
            let n = bytes.len();
            // Cut the compressed stream in half.
            let cut = HEADER_SIZE + (n - HEADER_SIZE) / 2;
            bytes.truncate(cut);
            BigEndian::write_i32(&mut bytes[LENGTH_OFFSET..], (cut - LOG_OVERHEAD) as i32);
            let b = view(&bytes);
            assert!(
                filter_batch(&b, |_| false, false).is_err(),
                "{}",
                codec.name()
            );
        }
        // An unknown codec id.
        let mut bytes = plain.clone();
        BigEndian::write_i16(&mut bytes[ATTRIBUTES_OFFSET..], 6);
        assert!(filter_batch(&view(&bytes), |_| true, false).is_err());
    }

    #[test]
    fn truncated_records_are_a_decode_error() {
        let mut bytes = keyed(0, &[("a", Some("1"))]);
        let n = bytes.len();
        bytes.truncate(n - 1);
        BigEndian::write_i32(&mut bytes[LENGTH_OFFSET..], (n - 1 - LOG_OVERHEAD) as i32);
        let b = view(&bytes);
        assert!(records(&b).is_err());
    }

    // ---- Transactions -------------------------------------------------------------------

    /// A transactional batch of `producer_id` at `base` with keys `keys` (value "v").
    fn txn_batch(base: i64, producer_id: i64, keys: &[&str]) -> Vec<u8> {
        let records: Vec<Record> = keys
            .iter()
            .map(|k| Record {
                key: Some(k.as_bytes().to_vec()),
                value: Some(b"v".to_vec()),
                ..Record::default()
            })
            .collect();
        build_batch(
            &BatchHeader {
                base_offset: base,
                attributes: crate::storage::record_batch::TRANSACTIONAL_FLAG_MASK,
                producer_id,
                producer_epoch: 0,
                base_sequence: 0,
                ..BatchHeader::default()
            },
            &records,
        )
    }

    fn marker(base: i64, producer_id: i64, commit: bool) -> Vec<u8> {
        let mut b =
            crate::storage::record_batch::build_end_txn_marker(producer_id, 0, commit, 1, 0, 0);
        crate::storage::record_batch::set_base_offset(&mut b, base);
        b
    }

    fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: last_offset + 1,
        }
    }

    #[test]
    fn txn_cleaning_tells_aborted_batches_and_needed_markers() {
        // 0-1 A commits, 2 B's aborted batch, 3 A's COMMIT, 4 B's ABORT, 5 C's ABORT (no data
        // left), 6 A's COMMIT (no data left), 7 A's plain (non-transactional) batch.
        let mut txn = TxnCleaning::new(vec![aborted(3, 5, 5), aborted(2, 2, 4)]);
        let mut plain = keyed(7, &[("a", Some("1"))]);
        crate::storage::record_batch::set_base_offset(&mut plain, 7);
        let (a, b) = (txn_batch(0, 1, &["x", "y"]), txn_batch(2, 2, &["x"]));
        assert!(!txn.on_batch_read(&view(&a)));
        assert!(txn.on_batch_read(&view(&b)));
        let verdicts: Vec<MarkerVerdict> = [marker(3, 1, true), marker(4, 2, false)]
            .iter()
            .chain(&[marker(5, 3, false), marker(6, 1, true)])
            .map(|m| txn.on_control_batch_read(&view(m)))
            .collect();
        use MarkerVerdict::*;
        assert_eq!(verdicts, vec![Needed, Needed, Discardable, Discardable]);
        // The producer's later batches are no longer aborted: its transaction ended.
        assert!(!txn.on_batch_read(&view(&txn_batch(8, 2, &["z"]))));
        assert!(!txn.on_batch_read(&view(&plain)));
    }

    /// A sealed segment in a fresh directory holding `batches`.
    fn segment_of(name: &str, batches: &[Vec<u8>]) -> (std::path::PathBuf, LogSegment) {
        let dir = std::env::temp_dir().join(format!(
            "sprat-storage-cleaner-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(crate::storage::segment::segment_file_name(0, ".log"));
        std::fs::write(&path, batches.concat()).unwrap();
        let segment = open_segment(&dir);
        (dir, segment)
    }

    /// Segment 0 of `dir`, its indexes rebuilt.
    fn open_segment(dir: &Path) -> LogSegment {
        let config = crate::storage::log::LogConfig::default();
        let mut segment = LogSegment::open_for_recovery(dir, 0, &config, 0).unwrap();
        segment.recover(4096, 0).unwrap();
        segment
    }

    /// (base offset, is control, records count) of each batch of a cleaned file.
    fn layout(path: &Path) -> Vec<(i64, bool, i32)> {
        let bytes = std::fs::read(path).unwrap();
        Batches::new(&bytes)
            .map(|b| {
                let b = b.unwrap();
                b.validate().unwrap();
                (b.base_offset(), b.is_control(), b.records_count())
            })
            .collect()
    }

    #[test]
    fn aborted_records_go_and_markers_stay_until_the_horizon() {
        // Producer 1 commits k1=0 then k1=3; producer 2 aborts k1=1,k2=2; producer 9 writes the
        // last batch, so that no marker is its producer's last batch.
        let batches = vec![
            txn_batch(0, 1, &["k1"]),
            txn_batch(1, 2, &["k1", "k2"]),
            marker(3, 1, true),
            marker(4, 2, false),
            txn_batch(5, 1, &["k1"]),
            marker(6, 1, true),
            keyed(7, &[("z", Some("1"))]),
        ];
        let (dir, segment) = segment_of("abort", &batches);
        let txns = || TxnCleaning::new(vec![aborted(2, 1, 4)]);
        let mut map = OffsetMap::new(1 << 20);
        let mut producers = HashMap::new();
        assert!(map_segment(&segment, &mut map, &mut producers, &mut txns()).unwrap());
        // The aborted k1 (offset 1) and k2 never entered the map.
        assert_eq!((map.get(b"k1"), map.get(b"k2")), (Some(5), None));
        for p in [1, 2] {
            producers.insert(p, -1);
        }
        let out = dir.join("first.cleaned");
        let first = clean_segment(&segment, &out, &map, &producers, true, &mut txns()).unwrap();
        // Data of both transactions was seen before their markers: they stay this time.
        assert_eq!(
            layout(&out),
            vec![
                (3, true, 1),
                (4, true, 1),
                (5, false, 1),
                (6, true, 1),
                (7, false, 1)
            ]
        );
        assert_eq!((first.records_removed, first.markers_removed), (3, 0));
        // The next cleaning, of the cleaned copy: before the horizon, every marker stays.
        std::fs::rename(&out, dir.join("00000000000000000000.log")).unwrap();
        let cleaned = open_segment(&dir);
        let again = dir.join("again.cleaned");
        clean_segment(&cleaned, &again, &map, &producers, false, &mut txns()).unwrap();
        assert_eq!(layout(&again).len(), 5);
        // Past it, the markers with no data before them go: the first COMMIT and the ABORT
        // (whose .txnindex entry goes with it); the COMMIT of k1=5 stays.
        let stats = clean_segment(&cleaned, &again, &map, &producers, true, &mut txns()).unwrap();
        assert_eq!(
            layout(&again),
            vec![(5, false, 1), (6, true, 1), (7, false, 1)]
        );
        assert_eq!(
            (stats.markers_removed, stats.removed_abort_markers),
            (2, vec![4])
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_marker_that_is_its_producers_last_batch_stays() {
        let batches = vec![txn_batch(0, 2, &["k"]), marker(1, 2, false)];
        let (dir, segment) = segment_of("last-marker", &batches);
        let mut producers = HashMap::new();
        let map = OffsetMap::new(1 << 20);
        producers.insert(2, 1);
        let out = dir.join("x.cleaned");
        let txns = || TxnCleaning::new(vec![aborted(2, 0, 1)]);
        clean_segment(&segment, &out, &map, &producers, true, &mut txns()).unwrap();
        assert_eq!(layout(&out), vec![(1, true, 1)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
