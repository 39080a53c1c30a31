//! Committed offsets as records of the internal topic `__consumer_offsets`, byte for byte as
//! Kafka's `GroupMetadataManager` writes them, and which partition of that topic holds a group.
//!
//! Record layouts (all big-endian, strings with an int16 length):
//!
//! | record              | key                                                        | value |
//! |---------------------|------------------------------------------------------------|-------|
//! | offset commit       | OffsetCommitKey v0/v1: version, group, topic, partition    | OffsetCommitValue v0-v4, or null (tombstone) |
//! | group metadata      | GroupMetadataKey v2: version, group                        | GroupMetadataValue v0-v4, or null (the group was deleted) |
//! | consumer group      | ConsumerGroup*Key v3-v8 (see [`crate::group::consumer_records`]) | flexible v0 values |
//!
//! For offsets sprat writes key version 1 and value version 3 (offset int64, leader epoch int32,
//! metadata string, commit timestamp int64), as Kafka 3.9 does. A null value deletes the offset.
//! For a classic group's metadata it writes value version 3 (protocol type, generation, protocol,
//! leader, current state timestamp, then each member with its group instance id, client id and
//! host, rebalance and session timeouts, subscription and assignment bytes), as Kafka 3.9 does.
//! Reading accepts every version Kafka ever wrote, so that a log directory written by Kafka
//! loads too.
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
/// The value version sprat writes for group metadata (Kafka 3.9's
/// `MetadataVersion.groupMetadataValueVersion`).
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// A classic group's metadata as Kafka stores it at each generation (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (-1: unknown, before value version 2).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// One member in a [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// -1 before value version 1.
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's protocol.
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// The key of a classic group's metadata record (GroupMetadataKey version 2).
pub fn group_metadata_key(group_id: &str) -> Vec<u8> {
    let mut e = Encoder::with_capacity(4 + group_id.len());
    e.i16(GROUP_METADATA_KEY_VERSION);
    e.string(false, group_id);
    e.into_inner()
}

/// The value of a classic group's metadata record (GroupMetadataValue version 3).
pub fn group_metadata_value(value: &GroupMetadataValue) -> Vec<u8> {
    let mut e = Encoder::new();
    e.i16(GROUP_METADATA_VALUE_VERSION);
    e.string(false, &value.protocol_type);
    e.i32(value.generation);
    e.nullable_string(false, value.protocol.as_deref());
    e.nullable_string(false, value.leader.as_deref());
    e.i64(value.current_state_timestamp_ms);
    e.array(false, &value.members, |e, m| {
        e.string(false, &m.member_id);
        e.nullable_string(false, m.group_instance_id.as_deref());
        e.string(false, &m.client_id);
        e.string(false, &m.client_host);
        e.i32(m.rebalance_timeout_ms);
        e.i32(m.session_timeout_ms);
        e.bytes(false, &m.subscription);
        e.bytes(false, &m.assignment);
    });
    e.into_inner()
}

/// Decodes GroupMetadataValue versions 0-4 (v4 is the first flexible one).
fn decode_group_metadata_value(value: &[u8]) -> DecodeResult<GroupMetadataValue> {
    let mut d = Decoder::new(value);
    let version = d.i16()?;
    let flexible = version >= 4;
    let protocol_type = d.string(flexible)?;
    let generation = d.i32()?;
    let protocol = d.nullable_string(flexible)?;
    let leader = d.nullable_string(flexible)?;
    let current_state_timestamp_ms = if version >= 2 { d.i64()? } else { -1 };
    let members = d.array(flexible, |d| {
        let member_id = d.string(flexible)?;
        let group_instance_id = if version >= 3 {
            d.nullable_string(flexible)?
        } else {
            None
        };
        let client_id = d.string(flexible)?;
        let client_host = d.string(flexible)?;
        let rebalance_timeout_ms = if version >= 1 { d.i32()? } else { -1 };
        let session_timeout_ms = d.i32()?;
        let subscription = d.bytes(flexible)?;
        let assignment = d.bytes(flexible)?;
        if flexible {
            d.skip_tagged_fields()?;
        }
        Ok(MemberMetadataValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        })
    })?;
    if flexible {
        d.skip_tagged_fields()?;
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

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
    /// A classic group's metadata; `None` is a tombstone (the group was deleted).
    GroupMetadata {
        group_id: String,
        value: Option<GroupMetadataValue>,
    },
    /// A KIP-848 consumer group record (key versions 3-8).
    ConsumerGroup(super::consumer_records::ConsumerGroupRecord),
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
            value: value.map(decode_group_metadata_value).transpose()?,
        }),
        3..=8 => Ok(OffsetsRecord::ConsumerGroup(
            super::consumer_records::decode(key_version, &mut d, value)?,
        )),
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
    fn group_metadata_record_bytes() {
        let key = group_metadata_key("g");
        assert_eq!(key, [0, 2, 0, 1, b'g']);
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m".into()),
            current_state_timestamp_ms: 0x0a0b,
            members: vec![MemberMetadataValue {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 300,
                session_timeout_ms: 45,
                subscription: vec![9],
                assignment: vec![8, 7],
            }],
        };
        let bytes = group_metadata_value(&value);
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[0u8, 3][..],                                      // version 3
            &[0, 8], b"consumer",                               // protocol type
            &[0, 0, 0, 5],                                      // generation
            &[0, 5], b"range",                                  // protocol
            &[0, 1], b"m",                                      // leader
            &[0, 0, 0, 0, 0, 0, 0x0a, 0x0b],                    // current state timestamp
            &[0, 0, 0, 1],                                      // one member
            &[0, 1], b"m",                                      // member id
            &[0xff, 0xff],                                      // group instance id: null
            &[0, 1], b"c",                                      // client id
            &[0, 2], b"/h",                                     // client host
            &[0, 0, 1, 44],                                     // rebalance timeout
            &[0, 0, 0, 45],                                     // session timeout
            &[0, 0, 0, 1, 9],                                   // subscription
            &[0, 0, 0, 2, 8, 7],                                // assignment
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(
            decode_record(&key, Some(&bytes)).unwrap(),
            OffsetsRecord::GroupMetadata {
                group_id: "g".into(),
                value: Some(value.clone()),
            }
        );
        assert_eq!(
            decode_record(&key, None).unwrap(),
            OffsetsRecord::GroupMetadata {
                group_id: "g".into(),
                value: None,
            }
        );
        // Version 0: no state timestamp, instance id or rebalance timeout.
        #[rustfmt::skip]
        let v0: Vec<u8> = [
            &[0u8, 0][..], &[0, 1], b"x", &[0, 0, 0, 2], &[0xff, 0xff], &[0xff, 0xff],
            &[0, 0, 0, 1], &[0, 1], b"m", &[0, 1], b"c", &[0, 1], b"h", &[0, 0, 0, 10],
            &[0, 0, 0, 0], &[0, 0, 0, 0],
        ]
        .concat();
        let OffsetsRecord::GroupMetadata { value: Some(v), .. } =
            decode_record(&key, Some(&v0)).unwrap()
        else {
            panic!("not group metadata");
        };
        assert_eq!((v.generation, v.current_state_timestamp_ms), (2, -1));
        assert_eq!(v.members[0].rebalance_timeout_ms, -1);
        assert!(decode_record(&key, Some(&bytes[..20])).is_err());
        assert_eq!(
            decode_record(&[0, 9], None).unwrap(),
            OffsetsRecord::Unknown { key_version: 9 }
        );
    }
}
