//! The fuzz targets' bodies: each takes arbitrary bytes, feeds them to one of sprat's decoders of
//! untrusted input, and asserts what must hold for every input. A panic is a finding.
//!
//! The libFuzzer binaries in `fuzz_targets/` are one-line wrappers around these functions, and
//! `tests/fuzz_corpus.rs` includes this very file (`#[path]`) to replay every saved input in
//! `cargo test`, so the fuzzer and the test suite check the same properties. Nothing here may
//! depend on anything but `sprat` and `std`.
//!
//! - `request_decoder`: a request frame, without its size prefix → `decode_request`.
//! - `record_batch`: a produce request's `records` bytes → `Batches`, `BatchView::validate`,
//!   `decode_records`, and the produce path's `check_request_records` and `check_batch`.
//! - `metadata_record`: a metadata record value, or a sequence of them →
//!   `MetadataRecord::decode`, `MetadataImage::apply`.
//! - `log_recovery`: a partition directory (see [`LogDirInput`]) → `PartitionLog::load`,
//!   `Partition::read`, `PartitionLog::append` and `close`.

use sprat::metadata::{MetadataImage, MetadataRecord};
use sprat::protocol::decode::{DecodeError, decode_request};
use sprat::server::apis::{check_batch, check_request_records};
use sprat::storage::log::{LoadOptions, LogConfig, PartitionLog, TopicPartition};
use sprat::storage::record_batch::{
    self, BatchHeader, BatchView, Batches, HEADER_SIZE, LOG_OVERHEAD, Record,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A target's body: panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory (`fuzz/corpus/<name>`).
pub const TARGETS: &[(&str, Target)] = &[
    ("request_decoder", request_decoder),
    ("record_batch", record_batch),
    ("metadata_record", metadata_record),
    ("log_recovery", log_recovery),
];

// ---- request_decoder --------------------------------------------------------------------------

/// A frame either decodes, and then re-encodes to a frame that decodes to the same request, or is
/// refused with an error that points inside the frame.
pub fn request_decoder(frame: &[u8]) {
    match decode_request(frame) {
        Ok(request) => {
            assert_eq!(request.body.api_key(), request.header.api_key);
            assert!(request.trailing_bytes <= frame.len());
            let encoded = request.encode();
            let again = decode_request(&encoded)
                .unwrap_or_else(|e| panic!("a re-encoded request does not decode: {e}"));
            assert_eq!(again.header, request.header, "header round trip");
            assert_eq!(again.body, request.body, "body round trip");
            assert_eq!(again.trailing_bytes, 0);
        }
        Err(DecodeError::Header(e) | DecodeError::Body { error: e, .. }) => {
            assert!(
                e.offset <= frame.len(),
                "error offset {} is past the frame",
                e.offset
            );
        }
        Err(_) => {}
    }
}

// ---- record_batch -----------------------------------------------------------------------------

/// Kafka's default `message.max.bytes`.
const MESSAGE_MAX_BYTES: i32 = 1_048_588;

/// Runs the produce path's checks on the bytes as sent, and again with every batch's CRC-32C
/// made right, so that mutations get past the checksum to the checks behind it.
pub fn record_batch(records: &[u8]) {
    check_records(records);
    let mut fixed = records.to_vec();
    if fix_batch_crcs(&mut fixed) {
        check_records(&fixed);
    }
}

fn check_records(records: &[u8]) {
    let mut batches = Batches::new(records);
    let mut consumed = 0;
    for batch in &mut batches {
        let Ok(batch) = batch else { break };
        assert!(batch.size() >= HEADER_SIZE);
        consumed += batch.size();
        read_every_field(&batch);
        if batch.validate().is_ok()
            && batch.compression_codec() == 0
            && let Ok(decoded) = record_batch::decode_records(&batch)
        {
            assert!(decoded.len() <= batch.records_count().max(0) as usize);
        }
    }
    assert_eq!(consumed + batches.remaining().len(), records.len());

    // The produce path: the request-level checks, then the log-level ones, then the in-place
    // rewrites of the leader epoch and (LogAppendTime topics) the timestamp, after which the
    // batch must still be valid.
    let _ = check_batch(records, -1, true);
    let accepted = check_request_records(records, 11);
    let checked = accepted.is_ok_and(|b| check_batch(b, MESSAGE_MAX_BYTES, false).is_ok());
    if let (Ok(records), true) = (accepted, checked) {
        let batch = Batches::new(records).next().unwrap().unwrap();
        assert_eq!(batch.size(), records.len(), "one batch and nothing else");
        assert_eq!(batch.base_offset(), 0);
        assert_eq!(
            i64::from(batch.records_count()),
            i64::from(batch.last_offset_delta()) + 1
        );
        let mut stamped = records.to_vec();
        record_batch::set_partition_leader_epoch(&mut stamped, 7);
        record_batch::set_log_append_time(&mut stamped, 1_700_000_000_000);
        let batch = Batches::new(&stamped).next().unwrap().unwrap();
        assert_eq!(
            batch.validate(),
            Ok(()),
            "a stamped batch keeps a valid CRC"
        );
        assert_eq!(batch.partition_leader_epoch(), 7);
        assert_eq!(batch.max_timestamp(), 1_700_000_000_000);
    }
}

/// Reads every header field, as the broker's logging and producer-state code may. Not
/// `last_offset`, which adds base offset and delta unchecked: the broker calls it only on batches
/// whose offsets it has checked (a produced batch's base offset is 0, a recovered one's fit its
/// segment).
fn read_every_field(batch: &BatchView<'_>) {
    let _ = (
        batch.base_offset(),
        batch.partition_leader_epoch(),
        batch.magic(),
        batch.stored_crc(),
        batch.computed_crc(),
        batch.attributes(),
        batch.is_transactional(),
        batch.is_control(),
        batch.last_offset_delta(),
        batch.base_timestamp(),
        batch.max_timestamp(),
        batch.producer_id(),
        batch.producer_epoch(),
        batch.base_sequence(),
        batch.last_sequence(),
        batch.records_count(),
        batch.records_bytes().len(),
    );
}

/// Rewrites the CRC-32C of every whole batch in `bytes` (walking the length fields as far as they
/// hold). Returns whether anything changed.
pub fn fix_batch_crcs(bytes: &mut [u8]) -> bool {
    let mut changed = false;
    let mut position = 0;
    while let Ok(Some(size)) = record_batch::batch_size(&bytes[position..]) {
        let Some(batch) = bytes.get_mut(position..position + size) else {
            break;
        };
        let crc = crc32c::crc32c(&batch[record_batch::ATTRIBUTES_OFFSET..]).to_be_bytes();
        let field = &mut batch[record_batch::CRC_OFFSET..record_batch::CRC_OFFSET + 4];
        changed |= field != crc;
        field.copy_from_slice(&crc);
        position += size;
    }
    changed
}

// ---- metadata_record --------------------------------------------------------------------------

/// Decodes the whole input as one record value, then again as a sequence of records (each with a
/// 2-byte big-endian length) applied in order to an image, as a replay of the metadata log does.
pub fn metadata_record(data: &[u8]) {
    check_metadata_record(data);
    let mut image = MetadataImage::default();
    let mut rest = data;
    while let [high, low, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*high, *low])).min(tail.len());
        let (value, tail) = tail.split_at(len);
        if let Some(record) = check_metadata_record(value) {
            image.apply(&record);
        }
        rest = tail;
    }
    for topic in image.topics() {
        let _ = (image.topic(&topic.name), image.topic_by_id(&topic.topic_id));
    }
}

/// A record that decodes encodes (in the version sprat writes) to bytes that decode to a record
/// that encodes to the same bytes.
fn check_metadata_record(value: &[u8]) -> Option<MetadataRecord> {
    let record = MetadataRecord::decode(value).ok()?;
    let encoded = record.encode();
    let again = MetadataRecord::decode(&encoded)
        .unwrap_or_else(|e| panic!("an encoded {record:?} does not decode: {e}"));
    assert_eq!(again.encode(), encoded, "metadata record round trip");
    Some(record)
}

// ---- log_recovery -----------------------------------------------------------------------------

/// The segment base offsets an input can pick: the first, small ones, the edge of the 32-bit
/// relative offsets, and large ones (a real log never comes near 2^63).
const SEGMENT_BASES: [i64; 8] = [0, 0, 1, 42, 1000, i32::MAX as i64, 1 << 32, 1 << 62];
const INDEX_INTERVALS: [u64; 4] = [0, 100, 4096, 4096];
/// `segment.index.bytes`: 24 bytes hold 3 offset index entries (8 bytes each) and 2 time index
/// entries (12 bytes each), so small inputs fill them; 10 MiB is Kafka's default.
const MAX_INDEX_SIZES: [u64; 4] = [24, 120, 4096, 10 << 20];

/// A partition directory described by a fuzz input:
///
/// - byte 0, flags: 1 clean shutdown, 2 `.index` present, 4 `.timeindex` present, 8 producer
///   snapshot present, 16 fix the CRCs of the log's batches and of the snapshot, 32 append a batch
///   after loading;
/// - byte 1, settings: bits 0-2 the segment base offset, bits 3-4 `index.interval.bytes`, bits 5-6
///   `segment.index.bytes` (see the tables above);
/// - for each of flags 2, 4 and 8 that is set, in that order: a 2-byte big-endian length and that
///   many bytes of the file;
/// - the rest: the `.log` file.
#[derive(Debug, Default)]
pub struct LogDirInput {
    pub clean_shutdown: bool,
    pub append: bool,
    pub base_offset: i64,
    pub index_interval_bytes: u64,
    pub max_index_size: u64,
    pub offset_index: Option<Vec<u8>>,
    pub time_index: Option<Vec<u8>>,
    pub producer_snapshot: Option<Vec<u8>>,
    pub log: Vec<u8>,
}

impl LogDirInput {
    pub fn parse(data: &[u8]) -> LogDirInput {
        let (flags, settings, mut rest) = match data {
            [f, s, rest @ ..] => (*f, *s, rest),
            _ => (0, 0, &[][..]),
        };
        let mut section = |present: bool| {
            if !present {
                return None;
            }
            let len = match rest {
                [high, low, tail @ ..] => {
                    rest = tail;
                    usize::from(u16::from_be_bytes([*high, *low])).min(rest.len())
                }
                _ => 0,
            };
            let (bytes, tail) = rest.split_at(len);
            rest = tail;
            Some(bytes.to_vec())
        };
        let offset_index = section(flags & 2 != 0);
        let time_index = section(flags & 4 != 0);
        let producer_snapshot = section(flags & 8 != 0);
        let mut input = LogDirInput {
            clean_shutdown: flags & 1 != 0,
            append: flags & 32 != 0,
            base_offset: SEGMENT_BASES[usize::from(settings & 7)],
            index_interval_bytes: INDEX_INTERVALS[usize::from((settings >> 3) & 3)],
            max_index_size: MAX_INDEX_SIZES[usize::from((settings >> 5) & 3)],
            offset_index,
            time_index,
            producer_snapshot,
            log: rest.to_vec(),
        };
        if flags & 16 != 0 {
            fix_batch_crcs(&mut input.log);
            if let Some(snapshot) = &mut input.producer_snapshot {
                fix_snapshot_crc(snapshot);
            }
        }
        input
    }

    /// The inverse of [`LogDirInput::parse`], for writing seeds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let pick = |table: &[i64], v: i64| table.iter().position(|&t| t == v).unwrap() as u8;
        let base = pick(&SEGMENT_BASES, self.base_offset);
        let interval = INDEX_INTERVALS
            .iter()
            .position(|&t| t == self.index_interval_bytes)
            .unwrap() as u8;
        let size = MAX_INDEX_SIZES
            .iter()
            .position(|&t| t == self.max_index_size)
            .unwrap() as u8;
        let sections = [
            &self.offset_index,
            &self.time_index,
            &self.producer_snapshot,
        ];
        let mut flags = u8::from(self.clean_shutdown) | (u8::from(self.append) << 5);
        for (i, s) in sections.iter().enumerate() {
            flags |= u8::from(s.is_some()) << (i + 1);
        }
        let mut out = vec![flags, base | (interval << 3) | (size << 5)];
        for bytes in sections.into_iter().flatten() {
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&self.log);
        out
    }
}

/// Producer snapshot layout: version (2 bytes), CRC-32C (4) of everything after it.
fn fix_snapshot_crc(snapshot: &mut [u8]) {
    if snapshot.len() >= 6 {
        let crc = crc32c::crc32c(&snapshot[6..]).to_be_bytes();
        snapshot[2..6].copy_from_slice(&crc);
    }
}

/// Writes the directory, loads the log, reads everything back and checks it.
///
/// After an unclean shutdown every segment is recovered, so the log must hold exactly the valid
/// prefix of the file (whole batches with the right magic and CRC-32C, offsets increasing from
/// the segment base, with gaps allowed as compaction leaves them), and every batch read back is that prefix's. After a clean shutdown the
/// files are trusted as Kafka trusts them, so only "no panic, no hang, bounded reads" holds.
/// With flag 32, a batch is appended and must read back at the old log end offset; an unclean
/// load is then closed cleanly and loaded again, which must give the same log.
pub fn log_recovery(data: &[u8]) {
    let input = LogDirInput::parse(data);
    let dir = TempDir::new();
    write_log_dir(dir.path(), &input);
    let config = LogConfig {
        index_interval_bytes: input.index_interval_bytes,
        max_index_size: input.max_index_size,
        ..LogConfig::default()
    };
    let options = LoadOptions {
        had_clean_shutdown: input.clean_shutdown,
        ..LoadOptions::default()
    };
    let tp = TopicPartition::new("fuzz", 0);
    let strict = !input.clean_shutdown;
    let mut log = match PartitionLog::load(dir.path(), tp.clone(), config.clone(), options) {
        Ok(log) => log,
        Err(e) => {
            // Recovery turns any content into a valid log; only trusted files may fail to load.
            assert!(!strict, "loading after an unclean shutdown failed: {e}");
            return;
        }
    };
    let expected = strict.then(|| valid_prefix(&input.log, input.base_offset));
    let content = read_all(&log, strict);
    if let Some((prefix_len, next_offset)) = expected {
        assert_eq!(log.log_start_offset(), input.base_offset);
        assert_eq!(
            log.log_end_offset(),
            next_offset,
            "log end offset after recovery"
        );
        assert_eq!(
            content,
            input.log[..prefix_len],
            "the valid prefix survives, nothing else"
        );
    }
    if !input.append {
        return;
    }
    let end = log.log_end_offset();
    let mut batch = record_batch::build_batch(
        &BatchHeader::default(),
        &[Record {
            value: Some(b"after recovery".to_vec()),
            ..Record::default()
        }],
    );
    let Ok(info) = log.append(&mut batch) else {
        assert!(!strict, "appending to a recovered log failed");
        return;
    };
    assert_eq!(info.first_offset, end);
    let read = log.partition.read(end, 1 << 20, true);
    if strict {
        let records = read.unwrap().unwrap().records;
        assert_eq!(
            records, batch,
            "the appended batch reads back at the old log end offset"
        );
        let before = read_all(&log, true);
        log.close().unwrap();
        drop(log);
        let reopened = PartitionLog::load(
            dir.path(),
            tp,
            config,
            LoadOptions {
                had_clean_shutdown: true,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            reopened.log_end_offset(),
            end + 1,
            "log end offset after a clean restart"
        );
        assert_eq!(
            read_all(&reopened, true),
            before,
            "the same log after a clean restart"
        );
    }
}

fn write_log_dir(dir: &Path, input: &LogDirInput) {
    let name = |suffix: &str| dir.join(format!("{:020}{suffix}", input.base_offset));
    fs::write(name(".log"), &input.log).unwrap();
    if let Some(bytes) = &input.offset_index {
        fs::write(name(".index"), bytes).unwrap();
    }
    if let Some(bytes) = &input.time_index {
        fs::write(name(".timeindex"), bytes).unwrap();
    }
    if let Some(bytes) = &input.producer_snapshot {
        fs::write(name(".snapshot"), bytes).unwrap();
    }
}

/// What recovery must keep of a segment file: the length of its valid prefix and the offset
/// after it. This is the rule of Kafka's `LogSegment.recover`, written independently of sprat's.
fn valid_prefix(log: &[u8], segment_base: i64) -> (usize, i64) {
    let mut len = 0;
    let mut next: Option<i64> = None;
    for batch in Batches::new(log) {
        let Ok(batch) = batch else { break };
        let base = batch.base_offset();
        let delta = i64::from(batch.last_offset_delta());
        let follows = match next {
            // Compaction leaves gaps between batches; offsets never go back.
            Some(n) => base >= n,
            None => base >= segment_base,
        };
        if batch.validate().is_err() || !follows {
            break;
        }
        // Every offset must fit the indexes' 32-bit offsets relative to the segment base.
        let relative_last = (base - segment_base).checked_add(delta);
        if delta < 0 || relative_last.is_none_or(|r| r > i64::from(i32::MAX)) {
            break;
        }
        len += batch.size();
        next = Some(base + delta + 1);
    }
    (len, next.unwrap_or(segment_base))
}

/// Reads the log from its start to its end in small fetches. In strict mode every batch must be
/// whole and CRC-valid and follow the previous one; otherwise reading stops at anything odd.
fn read_all(log: &PartitionLog, strict: bool) -> Vec<u8> {
    let partition = &log.partition;
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let mut expected_base: Option<i64> = None;
    // Every fetch returns at least one batch of at least LOG_OVERHEAD bytes, or the loop ends.
    let max_fetches = partition.size_in_bytes() / LOG_OVERHEAD as u64 + 2;
    for _ in 0..max_fetches {
        if offset >= log.log_end_offset() {
            break;
        }
        let records = match partition.read(offset, 256, true) {
            Ok(Ok(read)) => read.records,
            result => {
                assert!(!strict, "read at {offset} failed: {result:?}");
                break;
            }
        };
        if records.is_empty() {
            assert!(!strict, "empty read at {offset} below the log end offset");
            break;
        }
        let mut next = None;
        for batch in Batches::new(&records) {
            let batch = match batch {
                Ok(b) if !strict || b.validate().is_ok() => b,
                other => {
                    assert!(!strict, "bad batch read at {offset}: {:?}", other.err());
                    return out;
                }
            };
            if strict {
                if let Some(base) = expected_base {
                    // Compaction leaves gaps between batches; offsets never go back.
                    assert!(batch.base_offset() >= base, "offsets increase");
                }
                expected_base =
                    Some(batch.base_offset() + i64::from(batch.last_offset_delta()) + 1);
            }
            next = batch
                .base_offset()
                .checked_add(i64::from(batch.last_offset_delta()))
                .and_then(|last| last.checked_add(1));
        }
        out.extend_from_slice(&records);
        match next {
            Some(n) if n > offset => offset = n,
            _ => {
                assert!(!strict, "no progress reading at {offset}");
                break;
            }
        }
    }
    if strict {
        assert!(offset >= log.log_end_offset(), "read stopped at {offset}");
    }
    out
}

/// A fresh directory under the temp dir (`TMPDIR`; scripts/fuzz points it at /dev/shm), removed
/// on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sprat-fuzz-log-{}-{n}/fuzz-0", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(parent) = self.0.parent() {
            let _ = fs::remove_dir_all(parent);
        }
    }
}
