//! The aborted transaction index (Kafka's `TransactionIndex`): a `.txnindex` file per segment,
//! holding one entry per transaction whose ABORT marker is in that segment, so that a
//! read_committed fetch can tell its consumer which producers' records to drop.
//!
//! Layout (Kafka's `AbortedTxn`), 34 bytes per entry, big-endian, entries in marker order:
//!
//! | field               | type | offset |
//! |---------------------|------|--------|
//! | version (0)         | i16  | 0      |
//! | producer id         | i64  | 2      |
//! | first offset        | i64  | 10     |
//! | last offset         | i64  | 18     |
//! | last stable offset  | i64  | 26     |
//!
//! The first offset is the transaction's first batch on the partition, the last offset its
//! marker's, and the last stable offset the partition's LSO once the transaction ended. The file
//! is created with its first entry (a segment with no aborted transaction has none), appended by
//! the `log-writer` only, and read through the open files cache. This module holds the pure
//! encoding; [`crate::storage::segment::LogSegment`] owns the file.

use byteorder::{BigEndian, ByteOrder};

/// The suffix of a segment's aborted transaction index.
pub const TXN_INDEX_FILE_SUFFIX: &str = ".txnindex";

/// The size of one entry.
pub const ENTRY_SIZE: usize = 34;

/// The only entry version Kafka writes.
const VERSION: i16 = 0;

const VERSION_OFFSET: usize = 0;
const PRODUCER_ID_OFFSET: usize = 2;
const FIRST_OFFSET_OFFSET: usize = 10;
const LAST_OFFSET_OFFSET: usize = 18;
const LAST_STABLE_OFFSET_OFFSET: usize = 26;

/// One aborted transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        BigEndian::write_i16(&mut out[VERSION_OFFSET..], VERSION);
        BigEndian::write_i64(&mut out[PRODUCER_ID_OFFSET..], self.producer_id);
        BigEndian::write_i64(&mut out[FIRST_OFFSET_OFFSET..], self.first_offset);
        BigEndian::write_i64(&mut out[LAST_OFFSET_OFFSET..], self.last_offset);
        BigEndian::write_i64(
            &mut out[LAST_STABLE_OFFSET_OFFSET..],
            self.last_stable_offset,
        );
        out
    }
}

/// Decodes whole entries; bytes after the last whole entry are ignored. An entry of another
/// version is refused, as Kafka's index refuses it.
pub fn decode(bytes: &[u8]) -> Result<Vec<AbortedTxn>, String> {
    bytes
        .chunks_exact(ENTRY_SIZE)
        .map(|e| {
            let version = BigEndian::read_i16(&e[VERSION_OFFSET..]);
            if version != VERSION {
                return Err(format!("aborted transaction entry of version {version}"));
            }
            Ok(AbortedTxn {
                producer_id: BigEndian::read_i64(&e[PRODUCER_ID_OFFSET..]),
                first_offset: BigEndian::read_i64(&e[FIRST_OFFSET_OFFSET..]),
                last_offset: BigEndian::read_i64(&e[LAST_OFFSET_OFFSET..]),
                last_stable_offset: BigEndian::read_i64(&e[LAST_STABLE_OFFSET_OFFSET..]),
            })
        })
        .collect()
}

/// What a search of one segment's entries found (Kafka's `TxnIndexSearchResult`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// The entries that overlap `[fetch_offset, upper_bound_offset)`.
    pub aborted: Vec<AbortedTxn>,
    /// An entry's last stable offset reached the upper bound: later segments can hold no
    /// transaction that overlaps the range.
    pub complete: bool,
}

/// The entries that overlap a fetch from `fetch_offset` to `upper_bound_offset` (Kafka's
/// `collectAbortedTxns`): those that end at or after the fetch offset and start before the
/// upper bound.
pub fn collect(entries: &[AbortedTxn], fetch_offset: i64, upper_bound_offset: i64) -> SearchResult {
    let mut result = SearchResult::default();
    for e in entries {
        if e.last_offset >= fetch_offset && e.first_offset < upper_bound_offset {
            result.aborted.push(*e);
        }
        if e.last_stable_offset >= upper_bound_offset {
            result.complete = true;
            break;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_have_kafkas_34_byte_layout() {
        let entry = AbortedTxn {
            producer_id: 0x0102_0304_0506_0708,
            first_offset: 17,
            last_offset: 0x1122,
            last_stable_offset: -1,
        };
        let bytes = entry.encode();
        #[rustfmt::skip]
        let expected: [u8; 34] = [
            0x00, 0x00,                                     // version 0
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // producer id
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, // first offset 17
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, 0x22, // last offset
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // last stable offset -1
        ];
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes).unwrap(), vec![entry]);
    }

    #[test]
    fn decode_ignores_a_partial_tail_and_refuses_other_versions() {
        let entry = AbortedTxn {
            producer_id: 3,
            first_offset: 0,
            last_offset: 4,
            last_stable_offset: 5,
        };
        let mut bytes = entry.encode().to_vec();
        bytes.extend_from_slice(&[0; 20]);
        assert_eq!(decode(&bytes).unwrap(), vec![entry]);
        bytes[1] = 1;
        assert!(decode(&bytes).is_err());
    }

    #[test]
    fn collect_finds_overlapping_entries_and_stops_at_the_upper_bound() {
        let e = |pid, first, last, lso| AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        };
        let entries = [
            e(1, 0, 4, 5),
            e(2, 6, 9, 10),
            e(3, 12, 20, 21),
            e(4, 22, 30, 31),
        ];
        let cases = [
            // (fetch offset, upper bound, producer ids found, complete)
            (0, 5, vec![1], true),
            (5, 12, vec![2], true),
            (5, 13, vec![2, 3], true),
            (10, 11, vec![], true),
            (21, 40, vec![4], false),
        ];
        for (fetch, upper, pids, complete) in cases {
            let found = collect(&entries, fetch, upper);
            let got: Vec<i64> = found.aborted.iter().map(|a| a.producer_id).collect();
            assert_eq!(
                (got, found.complete),
                (pids, complete),
                "[{fetch}, {upper})"
            );
        }
    }
}
