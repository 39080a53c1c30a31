//! Committed offsets as records of the internal topic `__consumer_offsets`, byte for byte as
//! Kafka's `GroupMetadataManager` writes them, and which partition of that topic holds a group.
//!
//! Record layouts (all big-endian, strings with an int16 length):
//!
//! | record              | key                                                        | value |
//! |---------------------|------------------------------------------------------------|-------|
//! | offset commit       | OffsetCommitKey v0/v1: version, group, topic, partition    | OffsetCommitValue v0-v4, or null (tombstone) |
//! | group metadata      | GroupMetadataKey v2: version, group                        | GroupMetadataValue (sprat does not write or read it) |
//!
//! sprat writes key version 1 and value version 3 (offset int64, leader epoch int32, metadata
//! string, commit timestamp int64), as Kafka 3.9 does. A null value deletes the offset. Reading
//! accepts every version Kafka ever wrote, so that a log directory written by Kafka loads too.
//!
//! Everything here is pure.

use crate::protocol::wire::{DecodeResult, Decoder, Encoder};

/// Kafka's `offsets.topic.segment.bytes` default (100 MiB), given to `__consumer_offsets`.
pub const OFFSETS_TOPIC_SEGMENT_BYTES: &str = "104857600";

/// Kafka's `offset.metadata.max.bytes` default: longer commit metadata is refused with
/// OFFSET_METADATA_TOO_LARGE.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// The key version sprat writes for offset commits.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// The value version sprat writes for offset commits.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// The key version of group metadata records.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;

/// One committed offset (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping
/// at 32 bits.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// Kafka's `Utils.abs`: like `Math.abs`, except that `Integer.MIN_VALUE` maps to 0 instead of
/// staying negative.
pub fn kafka_abs(n: i32) -> i32 {
    if n == i32::MIN { 0 } else { n.abs() }
}

/// The `__consumer_offsets` partition that holds `group_id`, as Kafka's
/// `GroupMetadataManager.partitionFor` computes it.
pub fn partition_for(group_id: &str, partition_count: i32) -> i32 {
    assert!(partition_count > 0, "the offsets topic has partitions");
    kafka_abs(java_string_hash_code(group_id)) % partition_count
}

/// The key of an offset commit record (OffsetCommitKey version 1).
pub fn offset_commit_key(group_id: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut e = Encoder::with_capacity(10 + group_id.len() + topic.len());
    e.i16(OFFSET_COMMIT_KEY_VERSION);
    e.string(false, group_id);
    e.string(false, topic);
    e.i32(partition);
    e.into_inner()
}

/// The value of an offset commit record (OffsetCommitValue version 3).
pub fn offset_commit_value(offset: &OffsetAndMetadata) -> Vec<u8> {
    let mut e = Encoder::with_capacity(24 + offset.metadata.len());
    e.i16(OFFSET_COMMIT_VALUE_VERSION);
    e.i64(offset.offset);
    e.i32(offset.leader_epoch);
    e.string(false, &offset.metadata);
    e.i64(offset.commit_timestamp_ms);
    e.into_inner()
}

/// A record of `__consumer_offsets`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum OffsetsRecord {
    /// An offset commit; `None` is a tombstone that deletes it.
    OffsetCommit {
        group_id: String,
        topic: String,
        partition: i32,
        offset: Option<OffsetAndMetadata>,
    },
    /// Group membership metadata, which sprat keeps in memory only.
    GroupMetadata { group_id: String },
    /// A key version no Kafka release writes.
    Unknown { key_version: i16 },
}

/// Decodes one record's key and value.
pub fn decode_record(key: &[u8], value: Option<&[u8]>) -> DecodeResult<OffsetsRecord> {
    let mut d = Decoder::new(key);
    let key_version = d.i16()?;
    match key_version {
        0 | 1 => {
            let group_id = d.string(false)?;
            let topic = d.string(false)?;
            let partition = d.i32()?;
            let offset = value.map(decode_offset_commit_value).transpose()?;
            Ok(OffsetsRecord::OffsetCommit {
                group_id,
                topic,
                partition,
                offset,
            })
        }
        GROUP_METADATA_KEY_VERSION => Ok(OffsetsRecord::GroupMetadata {
            group_id: d.string(false)?,
        }),
        other => Ok(OffsetsRecord::Unknown { key_version: other }),
    }
}

/// Decodes OffsetCommitValue versions 0-4. v1 adds an expire timestamp (ignored), v3 the leader
/// epoch, v4 is the first flexible version (compact strings and tagged fields).
fn decode_offset_commit_value(value: &[u8]) -> DecodeResult<OffsetAndMetadata> {
    let mut d = Decoder::new(value);
    let version = d.i16()?;
    let flexible = version >= 4;
    let offset = d.i64()?;
    let leader_epoch = if version >= 3 { d.i32()? } else { -1 };
    let metadata = d.string(flexible)?;
    let commit_timestamp_ms = d.i64()?;
    if version == 1 {
        let _expire_timestamp_ms = d.i64()?;
    }
    if flexible {
        d.skip_tagged_fields()?;
    }
    Ok(OffsetAndMetadata {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_codes() {
        // Values printed by Java 17's "...".hashCode().
        let cases: &[(&str, i32)] = &[
            ("", 0),
            ("a", 97),
            ("hello", 99_162_322),
            ("my-group", -1_906_497_762),
            ("console-consumer-12345", 158_455_506),
            // Wraps around 32 bits.
            ("polygenelubricants", i32::MIN),
            // UTF-16 code units, not bytes or chars: U+1F600 is a surrogate pair.
            ("é", 233),
            ("\u{1F600}", 1_772_899),
        ];
        for (s, hash) in cases {
            assert_eq!(java_string_hash_code(s), *hash, "{s:?}");
        }
    }

    #[test]
    fn partition_for_matches_kafka() {
        // Printed by Java: Utils.abs("my-group".hashCode()) % 50.
        assert_eq!(partition_for("my-group", 50), 12);
        // abs(MIN_VALUE) is 0 in Kafka's Utils.abs, not a negative number.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("console-consumer-12345", 50), 6);
        assert_eq!(partition_for("\u{1F600}", 50), 49);
        assert_eq!(partition_for("anything", 1), 0);
    }

    #[test]
    fn offset_commit_record_bytes() {
        let key = offset_commit_key("g", "t", 7);
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7]);
        let value = offset_commit_value(&OffsetAndMetadata {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 0x0102,
        });
        assert_eq!(
            value,
            [
                0, 3, // version
                0, 0, 0, 0, 0, 0, 0, 42, // offset
                0, 0, 0, 3, // leader epoch
                0, 1, b'm', // metadata
                0, 0, 0, 0, 0, 0, 1, 2, // commit timestamp
            ]
        );
        let decoded = decode_record(&key, Some(&value)).unwrap();
        assert_eq!(
            decoded,
            OffsetsRecord::OffsetCommit {
                group_id: "g".into(),
                topic: "t".into(),
                partition: 7,
                offset: Some(OffsetAndMetadata {
                    offset: 42,
                    leader_epoch: 3,
                    metadata: "m".into(),
                    commit_timestamp_ms: 0x0102,
                }),
            }
        );
        assert!(matches!(
            decode_record(&key, None).unwrap(),
            OffsetsRecord::OffsetCommit { offset: None, .. }
        ));
    }

    #[test]
    fn older_and_flexible_values_decode() {
        let key = offset_commit_key("g", "t", 0);
        // v1: offset, metadata, commit timestamp, expire timestamp.
        let v1 = [
            0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 10,
        ];
        let OffsetsRecord::OffsetCommit {
            offset: Some(o), ..
        } = decode_record(&key, Some(&v1)).unwrap()
        else {
            panic!("not an offset commit");
        };
        assert_eq!(
            (o.offset, o.leader_epoch, o.commit_timestamp_ms),
            (5, -1, 9)
        );
        // v4: compact metadata string and an empty tag section.
        let v4 = [
            0, 4, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 1, 2, b'x', 0, 0, 0, 0, 0, 0, 0, 8, 0,
        ];
        let OffsetsRecord::OffsetCommit {
            offset: Some(o), ..
        } = decode_record(&key, Some(&v4)).unwrap()
        else {
            panic!("not an offset commit");
        };
        assert_eq!((o.offset, o.leader_epoch, o.metadata.as_str()), (6, 1, "x"));
        // Truncated values are errors, not panics.
        assert!(decode_record(&key, Some(&v4[..9])).is_err());
        assert!(decode_record(&[0], None).is_err());
    }

    #[test]
    fn group_metadata_and_unknown_keys() {
        let mut e = Encoder::new();
        e.i16(2);
        e.string(false, "g");
        assert_eq!(
            decode_record(&e.buf, Some(&[1, 2, 3])).unwrap(),
            OffsetsRecord::GroupMetadata {
                group_id: "g".into()
            }
        );
        assert_eq!(
            decode_record(&[0, 9], None).unwrap(),
            OffsetsRecord::Unknown { key_version: 9 }
        );
    }
}
