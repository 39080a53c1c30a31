//! The v2 record batch ("magic 2", Kafka's `DefaultRecordBatch`): the unit in which records travel
//! on the wire and lie in a log segment.
//!
//! sprat treats a batch as opaque bytes. It reads the fixed 61-byte header, checks the length,
//! magic and CRC-32C, and rewrites only the base offset (and, for LogAppendTime topics, the max
//! timestamp and CRC). The CRC starts at `attributes` precisely so that the base offset, batch length
//! and partition leader epoch in front of it can be rewritten without recomputing it.
//!
//! Layout (all big-endian):
//!
//! | field                  | offset | length |
//! |------------------------|--------|--------|
//! | base offset            | 0      | 8      |
//! | batch length           | 8      | 4      |
//! | partition leader epoch | 12     | 4      |
//! | magic                  | 16     | 1      |
//! | crc (CRC-32C)          | 17     | 4      |
//! | attributes             | 21     | 2      |
//! | last offset delta      | 23     | 4      |
//! | base timestamp         | 27     | 8      |
//! | max timestamp          | 35     | 8      |
//! | producer id            | 43     | 8      |
//! | producer epoch         | 51     | 2      |
//! | base sequence          | 53     | 4      |
//! | records count          | 57     | 4      |
//! | records                | 61     | ...    |

use byteorder::{BigEndian, ByteOrder};

pub const BASE_OFFSET_OFFSET: usize = 0;
pub const LENGTH_OFFSET: usize = 8;
pub const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
pub const MAGIC_OFFSET: usize = 16;
pub const CRC_OFFSET: usize = 17;
pub const ATTRIBUTES_OFFSET: usize = 21;
pub const LAST_OFFSET_DELTA_OFFSET: usize = 23;
pub const BASE_TIMESTAMP_OFFSET: usize = 27;
pub const MAX_TIMESTAMP_OFFSET: usize = 35;
pub const PRODUCER_ID_OFFSET: usize = 43;
pub const PRODUCER_EPOCH_OFFSET: usize = 51;
pub const BASE_SEQUENCE_OFFSET: usize = 53;
pub const RECORDS_COUNT_OFFSET: usize = 57;
pub const RECORDS_OFFSET: usize = 61;
/// Bytes before the batch length field's coverage starts: base offset and the length itself.
pub const LOG_OVERHEAD: usize = 12;
pub const HEADER_SIZE: usize = RECORDS_OFFSET;
pub const MAGIC_V2: i8 = 2;

pub const COMPRESSION_CODEC_MASK: i16 = 0x07;
pub const TIMESTAMP_TYPE_MASK: i16 = 0x08;
pub const TRANSACTIONAL_FLAG_MASK: i16 = 0x10;
pub const CONTROL_FLAG_MASK: i16 = 0x20;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_SEQUENCE: i32 = -1;

/// Why a batch was refused. The produce path maps these to Kafka error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// The bytes end before the batch does, or the declared length is impossible
    /// (Kafka: CORRUPT_MESSAGE).
    BadLength { declared: i64, available: usize },
    /// The magic byte is not 2 (Kafka, for produce v3+: INVALID_RECORD).
    UnsupportedMagic(i8),
    /// The stored CRC does not match the bytes (Kafka: CORRUPT_MESSAGE).
    CrcMismatch { stored: u32, computed: u32 },
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::BadLength {
                declared,
                available,
            } => write!(
                f,
                "batch length {declared} does not fit the {available} bytes available"
            ),
            BatchError::UnsupportedMagic(m) => write!(f, "unsupported record batch magic {m}"),
            BatchError::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
        }
    }
}

/// A read-only view of one complete batch's bytes (header plus records).
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// The whole batch, `LOG_OVERHEAD + batch length` bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    pub fn base_offset(&self) -> i64 {
        BigEndian::read_i64(&self.bytes[BASE_OFFSET_OFFSET..])
    }

    pub fn partition_leader_epoch(&self) -> i32 {
        BigEndian::read_i32(&self.bytes[PARTITION_LEADER_EPOCH_OFFSET..])
    }

    pub fn magic(&self) -> i8 {
        self.bytes[MAGIC_OFFSET] as i8
    }

    pub fn stored_crc(&self) -> u32 {
        BigEndian::read_u32(&self.bytes[CRC_OFFSET..])
    }

    pub fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    pub fn attributes(&self) -> i16 {
        BigEndian::read_i16(&self.bytes[ATTRIBUTES_OFFSET..])
    }

    pub fn compression_codec(&self) -> i16 {
        self.attributes() & COMPRESSION_CODEC_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_FLAG_MASK != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_FLAG_MASK != 0
    }

    pub fn last_offset_delta(&self) -> i32 {
        BigEndian::read_i32(&self.bytes[LAST_OFFSET_DELTA_OFFSET..])
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }

    pub fn base_timestamp(&self) -> i64 {
        BigEndian::read_i64(&self.bytes[BASE_TIMESTAMP_OFFSET..])
    }

    pub fn max_timestamp(&self) -> i64 {
        BigEndian::read_i64(&self.bytes[MAX_TIMESTAMP_OFFSET..])
    }

    pub fn producer_id(&self) -> i64 {
        BigEndian::read_i64(&self.bytes[PRODUCER_ID_OFFSET..])
    }

    pub fn producer_epoch(&self) -> i16 {
        BigEndian::read_i16(&self.bytes[PRODUCER_EPOCH_OFFSET..])
    }

    pub fn base_sequence(&self) -> i32 {
        BigEndian::read_i32(&self.bytes[BASE_SEQUENCE_OFFSET..])
    }

    /// The sequence number of the batch's last record (sequences wrap at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        let seq = self.base_sequence();
        if seq == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = i64::from(seq) + i64::from(self.last_offset_delta());
        (last % (i64::from(i32::MAX) + 1)) as i32
    }

    pub fn records_count(&self) -> i32 {
        BigEndian::read_i32(&self.bytes[RECORDS_COUNT_OFFSET..])
    }

    /// The raw records section (compressed when the codec is not none).
    pub fn records_bytes(&self) -> &'a [u8] {
        &self.bytes[RECORDS_OFFSET..]
    }

    /// Checks magic and CRC-32C. Length was checked when the view was made.
    pub fn validate(&self) -> Result<(), BatchError> {
        if self.magic() != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(self.magic()));
        }
        let (stored, computed) = (self.stored_crc(), self.computed_crc());
        if stored != computed {
            return Err(BatchError::CrcMismatch { stored, computed });
        }
        Ok(())
    }
}

/// Reads the size of the batch starting at `bytes[0]` from its length field, without trusting it
/// beyond what is there. Returns `Ok(None)` when fewer than `LOG_OVERHEAD` bytes remain.
pub fn batch_size(bytes: &[u8]) -> Result<Option<usize>, BatchError> {
    if bytes.len() < LOG_OVERHEAD {
        return Ok(None);
    }
    let declared = BigEndian::read_i32(&bytes[LENGTH_OFFSET..]);
    // A batch shorter than the v2 header is corrupt; a longer one must fit what is available.
    if declared < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
        return Err(BatchError::BadLength {
            declared: i64::from(declared),
            available: bytes.len(),
        });
    }
    Ok(Some(LOG_OVERHEAD + declared as usize))
}

/// Iterates over the complete batches in a byte buffer, such as a produce request's `records` or a
/// slice of a segment. The iterator yields an error for a batch whose length is impossible or does
/// not fit the buffer, and then stops.
pub struct Batches<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Batches {
            rest: bytes,
            failed: false,
        }
    }

    /// Bytes not yet consumed (for example a partial trailing batch).
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<BatchView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let size = match batch_size(self.rest) {
            Ok(Some(size)) if size <= self.rest.len() => size,
            Ok(size) => {
                self.failed = true;
                return Some(Err(BatchError::BadLength {
                    declared: size.map_or(-1, |s| (s - LOG_OVERHEAD) as i64),
                    available: self.rest.len(),
                }));
            }
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let (batch, rest) = self.rest.split_at(size);
        self.rest = rest;
        Some(Ok(BatchView { bytes: batch }))
    }
}

/// Writes `offset` into the batch's base offset field in place. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    BigEndian::write_i64(&mut batch[BASE_OFFSET_OFFSET..], offset);
}

/// Writes the partition leader epoch in place. The CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    BigEndian::write_i32(&mut batch[PARTITION_LEADER_EPOCH_OFFSET..], epoch);
}

/// For LogAppendTime topics: sets the timestamp type bit and the max timestamp, then recomputes the
/// CRC, which covers both.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    let attributes = BigEndian::read_i16(&batch[ATTRIBUTES_OFFSET..]) | TIMESTAMP_TYPE_MASK;
    BigEndian::write_i16(&mut batch[ATTRIBUTES_OFFSET..], attributes);
    BigEndian::write_i64(&mut batch[MAX_TIMESTAMP_OFFSET..], timestamp_ms);
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut batch[CRC_OFFSET..], crc);
}

/// One record to put in a batch built by [`build_batch`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub timestamp_delta: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Header fields of a batch built by [`build_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl Default for BatchHeader {
    fn default() -> Self {
        BatchHeader {
            base_offset: 0,
            partition_leader_epoch: -1,
            attributes: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
        }
    }
}

/// Builds an uncompressed v2 batch. The broker uses it for its own logs (cluster metadata, group
/// offsets); clients' batches are never rebuilt.
pub fn build_batch(header: &BatchHeader, records: &[Record]) -> Vec<u8> {
    use crate::protocol::wire::Encoder;
    let mut e = Encoder::with_capacity(HEADER_SIZE + records.len() * 32);
    e.i64(header.base_offset);
    e.i32(0); // length, patched below
    e.i32(header.partition_leader_epoch);
    e.i8(MAGIC_V2);
    e.u32(0); // crc, patched below
    e.i16(header.attributes);
    e.i32(records.len().saturating_sub(1) as i32);
    e.i64(header.base_timestamp);
    e.i64(header.max_timestamp);
    e.i64(header.producer_id);
    e.i16(header.producer_epoch);
    e.i32(header.base_sequence);
    e.i32(records.len() as i32);
    for (delta, record) in records.iter().enumerate() {
        let mut r = Encoder::new();
        r.i8(0); // record attributes, unused
        r.varlong(record.timestamp_delta);
        r.varint(delta as i32);
        write_varint_bytes(&mut r, record.key.as_deref());
        write_varint_bytes(&mut r, record.value.as_deref());
        r.varint(record.headers.len() as i32);
        for (key, value) in &record.headers {
            write_varint_bytes(&mut r, Some(key.as_bytes()));
            write_varint_bytes(&mut r, value.as_deref());
        }
        e.varint(r.len() as i32);
        e.raw(&r.buf);
    }
    let mut batch = e.into_inner();
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    BigEndian::write_i32(&mut batch[LENGTH_OFFSET..], length);
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut batch[CRC_OFFSET..], crc);
    batch
}

fn write_varint_bytes(e: &mut crate::protocol::wire::Encoder, bytes: Option<&[u8]>) {
    match bytes {
        None => e.varint(-1),
        Some(b) => {
            e.varint(b.len() as i32);
            e.raw(b);
        }
    }
}

/// The control record type of an ABORT marker (Kafka's `ControlRecordType.ABORT`).
pub const CONTROL_TYPE_ABORT: i16 = 0;
/// The control record type of a COMMIT marker.
pub const CONTROL_TYPE_COMMIT: i16 = 1;

/// A transaction marker (Kafka's `EndTransactionMarker`) as a control batch in Kafka's exact
/// layout: transactional and control attributes, base sequence -1, and one record whose key is
/// (version 0: i16, type: i16) and whose value is (version 0: i16, coordinator epoch: i32).
pub fn build_end_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp_ms: i64,
    partition_leader_epoch: i32,
) -> Vec<u8> {
    let kind = if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let header = BatchHeader {
        partition_leader_epoch,
        attributes: TRANSACTIONAL_FLAG_MASK | CONTROL_FLAG_MASK,
        base_timestamp: timestamp_ms,
        max_timestamp: timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence: NO_SEQUENCE,
        ..BatchHeader::default()
    };
    let record = Record {
        key: Some(key),
        value: Some(value),
        ..Record::default()
    };
    build_batch(&header, &[record])
}

/// What a transaction marker says: COMMIT (true) or ABORT, and the coordinator epoch. `None`
/// for a batch that is not a whole, well-formed marker (another control type, such as the
/// leader change records, or a malformed record).
pub fn end_txn_marker(batch: &[u8]) -> Option<(bool, i32)> {
    let view = Batches::new(batch).next()?.ok()?;
    if !view.is_control() || view.compression_codec() != 0 {
        return None;
    }
    let record = decode_records(&view).ok()?.into_iter().next()?;
    let key = record.key?;
    let value = record.value?;
    if key.len() < 4 || value.len() < 6 {
        return None;
    }
    let commit = match BigEndian::read_i16(&key[2..]) {
        CONTROL_TYPE_COMMIT => true,
        CONTROL_TYPE_ABORT => false,
        _ => return None,
    };
    Some((commit, BigEndian::read_i32(&value[2..])))
}

/// Decodes the records of an uncompressed batch. Used for the broker's own logs and in tests.
pub fn decode_records(
    batch: &BatchView<'_>,
) -> Result<Vec<Record>, crate::protocol::wire::DecodeError> {
    use crate::protocol::wire::Decoder;
    let mut d = Decoder::new(batch.records_bytes());
    let count = batch.records_count().max(0) as usize;
    let mut out = Vec::with_capacity(count.min(d.remaining()));
    for _ in 0..count {
        let length = d.varint()?;
        let mut r = Decoder::new(d.take(length.max(0) as usize)?);
        let _attributes = r.i8()?;
        let timestamp_delta = r.varlong()?;
        let _offset_delta = r.varint()?;
        let key = read_varint_bytes(&mut r)?;
        let value = read_varint_bytes(&mut r)?;
        let header_count = r.varint()?.max(0) as usize;
        let mut headers = Vec::with_capacity(header_count.min(r.remaining()));
        for _ in 0..header_count {
            let key = read_varint_bytes(&mut r)?.unwrap_or_default();
            let value = read_varint_bytes(&mut r)?;
            headers.push((String::from_utf8_lossy(&key).into_owned(), value));
        }
        out.push(Record {
            timestamp_delta,
            key,
            value,
            headers,
        });
    }
    Ok(out)
}

fn read_varint_bytes(
    d: &mut crate::protocol::wire::Decoder<'_>,
) -> Result<Option<Vec<u8>>, crate::protocol::wire::DecodeError> {
    let len = d.varint()?;
    if len < 0 {
        return Ok(None);
    }
    Ok(Some(d.take(len as usize)?.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build_batch(
            &BatchHeader {
                base_timestamp: 1_700_000_000_000,
                max_timestamp: 1_700_000_000_005,
                ..BatchHeader::default()
            },
            &[
                Record {
                    value: Some(b"hello".to_vec()),
                    ..Record::default()
                },
                Record {
                    timestamp_delta: 5,
                    key: Some(b"k".to_vec()),
                    value: Some(b"world".to_vec()),
                    headers: vec![("h".into(), Some(b"v".to_vec()))],
                },
            ],
        )
    }

    #[test]
    fn built_batch_has_a_valid_header_and_crc() {
        let bytes = sample();
        let batches: Vec<_> = Batches::new(&bytes).collect();
        assert_eq!(batches.len(), 1);
        let b = batches[0].clone().unwrap();
        b.validate().unwrap();
        assert_eq!(b.size(), bytes.len());
        assert_eq!(b.magic(), 2);
        assert_eq!(b.records_count(), 2);
        assert_eq!(b.last_offset_delta(), 1);
        assert_eq!(b.producer_id(), -1);
        assert_eq!(b.base_sequence(), -1);
        assert_eq!(b.max_timestamp(), 1_700_000_000_005);
        let records = decode_records(&b).unwrap();
        assert_eq!(records[1].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[1].headers[0].0, "h");
    }

    #[test]
    fn base_offset_rewrite_keeps_crc_valid() {
        let mut bytes = sample();
        set_base_offset(&mut bytes, 42);
        set_partition_leader_epoch(&mut bytes, 7);
        let b = Batches::new(&bytes).next().unwrap().unwrap();
        b.validate().unwrap();
        assert_eq!(b.base_offset(), 42);
        assert_eq!(b.last_offset(), 43);
        assert_eq!(b.partition_leader_epoch(), 7);
    }

    #[test]
    fn log_append_time_rewrite_recomputes_crc() {
        let mut bytes = sample();
        set_log_append_time(&mut bytes, 99);
        let b = Batches::new(&bytes).next().unwrap().unwrap();
        b.validate().unwrap();
        assert_eq!(b.max_timestamp(), 99);
        assert_ne!(b.attributes() & TIMESTAMP_TYPE_MASK, 0);
    }

    #[test]
    fn corrupt_byte_fails_the_crc() {
        let mut bytes = sample();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let b = Batches::new(&bytes).next().unwrap().unwrap();
        assert!(matches!(b.validate(), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn wrong_magic_is_reported() {
        let mut bytes = sample();
        bytes[MAGIC_OFFSET] = 1;
        let b = Batches::new(&bytes).next().unwrap().unwrap();
        assert_eq!(b.validate(), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn truncated_and_impossible_lengths_are_errors() {
        let bytes = sample();
        let mut it = Batches::new(&bytes[..bytes.len() - 1]);
        assert!(matches!(it.next(), Some(Err(BatchError::BadLength { .. }))));
        assert!(it.next().is_none());
        let mut tiny = bytes.clone();
        BigEndian::write_i32(&mut tiny[LENGTH_OFFSET..], 10);
        assert!(matches!(
            Batches::new(&tiny).next(),
            Some(Err(BatchError::BadLength { .. }))
        ));
        let mut negative = bytes.clone();
        BigEndian::write_i32(&mut negative[LENGTH_OFFSET..], -5);
        assert!(matches!(
            Batches::new(&negative).next(),
            Some(Err(BatchError::BadLength { .. }))
        ));
        // Fewer bytes than the length field needs.
        assert!(matches!(
            Batches::new(&bytes[..5]).next(),
            Some(Err(BatchError::BadLength { .. }))
        ));
    }

    #[test]
    fn two_batches_back_to_back() {
        let mut bytes = sample();
        bytes.extend_from_slice(&sample());
        let n = Batches::new(&bytes).filter(|b| b.is_ok()).count();
        assert_eq!(n, 2);
    }

    #[test]
    fn last_sequence_wraps() {
        let mut bytes = sample();
        BigEndian::write_i32(&mut bytes[BASE_SEQUENCE_OFFSET..], i32::MAX);
        let b = Batches::new(&bytes).next().unwrap().unwrap();
        assert_eq!(b.last_sequence(), 0);
    }

    #[test]
    fn end_txn_markers_have_kafkas_control_batch_layout() {
        let batch = build_end_txn_marker(77, 3, true, 9, 1_700_000_000_000, 4);
        let view = Batches::new(&batch).next().unwrap().unwrap();
        view.validate().unwrap();
        assert_eq!(
            BigEndian::read_i32(&batch[PARTITION_LEADER_EPOCH_OFFSET..]),
            4
        );
        assert_eq!(BigEndian::read_i16(&batch[ATTRIBUTES_OFFSET..]), 0x30);
        assert_eq!(BigEndian::read_i32(&batch[LAST_OFFSET_DELTA_OFFSET..]), 0);
        assert_eq!(BigEndian::read_i64(&batch[PRODUCER_ID_OFFSET..]), 77);
        assert_eq!(BigEndian::read_i16(&batch[PRODUCER_EPOCH_OFFSET..]), 3);
        assert_eq!(BigEndian::read_i32(&batch[BASE_SEQUENCE_OFFSET..]), -1);
        assert_eq!(BigEndian::read_i32(&batch[RECORDS_COUNT_OFFSET..]), 1);
        // One record: length (16, zigzag), attributes, timestamp delta, offset delta, key (4 bytes: version 0,
        // type 1 = COMMIT), value (6 bytes: version 0, coordinator epoch 9), no headers.
        assert_eq!(
            &batch[RECORDS_OFFSET..],
            &[
                0x20, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x09, 0x00
            ][..]
        );
        assert_eq!(end_txn_marker(&batch), Some((true, 9)));
        let abort = build_end_txn_marker(77, 3, false, 0, 0, 0);
        assert_eq!(end_txn_marker(&abort), Some((false, 0)));
        // Other control records (type 2 and up, such as a leader change) are not markers, and
        // neither is a data batch.
        let mut other = abort.clone();
        let key_type = RECORDS_OFFSET + 8;
        assert_eq!(other[key_type], CONTROL_TYPE_ABORT as u8);
        other[key_type] = 2;
        let crc = crc32c::crc32c(&other[ATTRIBUTES_OFFSET..]);
        BigEndian::write_u32(&mut other[CRC_OFFSET..], crc);
        assert_eq!(end_txn_marker(&other), None);
        assert_eq!(end_txn_marker(&sample()), None);
    }
}
