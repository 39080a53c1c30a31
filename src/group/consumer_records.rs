//! The records of a KIP-848 consumer group in `__consumer_offsets`, byte for byte as Kafka 3.9's
//! `GroupCoordinatorRecordHelpers` writes them (specs in `coordinator/ConsumerGroup*.json`).
//!
//! | key version | key                                      | value (flexible, version 0)             |
//! |-------------|------------------------------------------|-----------------------------------------|
//! | 3           | ConsumerGroupMetadataKey: group          | group epoch                             |
//! | 4           | ConsumerGroupPartitionMetadataKey: group | subscribed topics: id, name, partitions |
//! | 5           | ConsumerGroupMemberMetadataKey: group, member | instance, rack, client, subscription, rebalance timeout, assignor |
//! | 6           | ConsumerGroupTargetAssignmentMetadataKey: group | assignment epoch                 |
//! | 7           | ConsumerGroupTargetAssignmentMemberKey: group, member | target partitions          |
//! | 8           | ConsumerGroupCurrentMemberAssignmentKey: group, member | member epoch, previous epoch, state, assigned and pending-revocation partitions |
//!
//! Keys are an int16 version and non-flexible strings; values an int16 version (0) and then a
//! flexible struct (compact strings and arrays, tagged fields). A null value is a tombstone.
//! Everything here is pure.

use super::consumer::Partitions;
use crate::protocol::wire::{DecodeResult, Decoder, Encoder, Uuid};

/// Kafka's `MemberState` values, stored in the current assignment record.
pub const MEMBER_STATE_STABLE: i8 = 0;
pub const MEMBER_STATE_UNREVOKED_PARTITIONS: i8 = 1;
pub const MEMBER_STATE_UNRELEASED_PARTITIONS: i8 = 2;

/// A member's metadata (ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    /// The member's `SubscribedTopicRegex` (KIP-848), if it subscribes by pattern.
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// A member's current assignment (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Partitions,
    pub pending_revocation: Partitions,
}

/// One subscribed topic in the partition metadata record: (id, name, partition count).
pub type TopicMetadata = (Uuid, String, i32);

/// One consumer group record; each `Option` is `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupRecord {
    Metadata {
        group_id: String,
        epoch: Option<i32>,
    },
    PartitionMetadata {
        group_id: String,
        topics: Option<Vec<TopicMetadata>>,
    },
    MemberMetadata {
        group_id: String,
        member_id: String,
        value: Option<MemberMetadata>,
    },
    TargetAssignmentMetadata {
        group_id: String,
        assignment_epoch: Option<i32>,
    },
    TargetAssignmentMember {
        group_id: String,
        member_id: String,
        partitions: Option<Partitions>,
    },
    CurrentMemberAssignment {
        group_id: String,
        member_id: String,
        value: Option<CurrentAssignment>,
    },
}

impl ConsumerGroupRecord {
    pub fn group_id(&self) -> &str {
        match self {
            ConsumerGroupRecord::Metadata { group_id, .. }
            | ConsumerGroupRecord::PartitionMetadata { group_id, .. }
            | ConsumerGroupRecord::MemberMetadata { group_id, .. }
            | ConsumerGroupRecord::TargetAssignmentMetadata { group_id, .. }
            | ConsumerGroupRecord::TargetAssignmentMember { group_id, .. }
            | ConsumerGroupRecord::CurrentMemberAssignment { group_id, .. } => group_id,
        }
    }

    pub fn is_tombstone(&self) -> bool {
        matches!(
            self,
            ConsumerGroupRecord::Metadata { epoch: None, .. }
                | ConsumerGroupRecord::PartitionMetadata { topics: None, .. }
                | ConsumerGroupRecord::MemberMetadata { value: None, .. }
                | ConsumerGroupRecord::TargetAssignmentMetadata {
                    assignment_epoch: None,
                    ..
                }
                | ConsumerGroupRecord::TargetAssignmentMember {
                    partitions: None,
                    ..
                }
                | ConsumerGroupRecord::CurrentMemberAssignment { value: None, .. }
        )
    }

    /// The record's key version (3-8).
    pub fn key_version(&self) -> i16 {
        match self {
            ConsumerGroupRecord::Metadata { .. } => 3,
            ConsumerGroupRecord::PartitionMetadata { .. } => 4,
            ConsumerGroupRecord::MemberMetadata { .. } => 5,
            ConsumerGroupRecord::TargetAssignmentMetadata { .. } => 6,
            ConsumerGroupRecord::TargetAssignmentMember { .. } => 7,
            ConsumerGroupRecord::CurrentMemberAssignment { .. } => 8,
        }
    }

    fn member_id(&self) -> Option<&str> {
        match self {
            ConsumerGroupRecord::MemberMetadata { member_id, .. }
            | ConsumerGroupRecord::TargetAssignmentMember { member_id, .. }
            | ConsumerGroupRecord::CurrentMemberAssignment { member_id, .. } => Some(member_id),
            _ => None,
        }
    }

    pub fn key(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.i16(self.key_version());
        e.string(false, self.group_id());
        if let Some(member_id) = self.member_id() {
            e.string(false, member_id);
        }
        e.into_inner()
    }

    /// The value bytes, or `None` for a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        let mut e = Encoder::new();
        e.i16(0);
        match self {
            ConsumerGroupRecord::Metadata { epoch, .. } => e.i32((*epoch)?),
            ConsumerGroupRecord::PartitionMetadata { topics, .. } => {
                e.array(true, topics.as_ref()?, |e, (id, name, count)| {
                    e.uuid(id);
                    e.string(true, name);
                    e.i32(*count);
                    // No rack information: an empty list, as Kafka stores it then.
                    e.array(true, &[] as &[()], |_, _| {});
                    e.no_tagged_fields();
                })
            }
            ConsumerGroupRecord::MemberMetadata { value, .. } => {
                let m = value.as_ref()?;
                e.nullable_string(true, m.instance_id.as_deref());
                e.nullable_string(true, m.rack_id.as_deref());
                e.string(true, &m.client_id);
                e.string(true, &m.client_host);
                e.array(true, &m.subscribed_topic_names, |e, t| e.string(true, t));
                e.nullable_string(true, m.subscribed_topic_regex.as_deref());
                e.i32(m.rebalance_timeout_ms);
                e.nullable_string(true, m.server_assignor.as_deref());
            }
            ConsumerGroupRecord::TargetAssignmentMetadata {
                assignment_epoch, ..
            } => e.i32((*assignment_epoch)?),
            ConsumerGroupRecord::TargetAssignmentMember { partitions, .. } => {
                encode_partitions(&mut e, partitions.as_ref()?)
            }
            ConsumerGroupRecord::CurrentMemberAssignment { value, .. } => {
                let a = value.as_ref()?;
                e.i32(a.member_epoch);
                e.i32(a.previous_member_epoch);
                e.i8(a.state);
                encode_partitions(&mut e, &a.assigned);
                encode_partitions(&mut e, &a.pending_revocation);
            }
        }
        e.no_tagged_fields();
        Some(e.into_inner())
    }

    /// The same record as a tombstone.
    pub fn tombstone(&self) -> ConsumerGroupRecord {
        let group_id = self.group_id().to_string();
        let member_id = self.member_id().unwrap_or_default().to_string();
        match self {
            ConsumerGroupRecord::Metadata { .. } => ConsumerGroupRecord::Metadata {
                group_id,
                epoch: None,
            },
            ConsumerGroupRecord::PartitionMetadata { .. } => {
                ConsumerGroupRecord::PartitionMetadata {
                    group_id,
                    topics: None,
                }
            }
            ConsumerGroupRecord::MemberMetadata { .. } => ConsumerGroupRecord::MemberMetadata {
                group_id,
                member_id,
                value: None,
            },
            ConsumerGroupRecord::TargetAssignmentMetadata { .. } => {
                ConsumerGroupRecord::TargetAssignmentMetadata {
                    group_id,
                    assignment_epoch: None,
                }
            }
            ConsumerGroupRecord::TargetAssignmentMember { .. } => {
                ConsumerGroupRecord::TargetAssignmentMember {
                    group_id,
                    member_id,
                    partitions: None,
                }
            }
            ConsumerGroupRecord::CurrentMemberAssignment { .. } => {
                ConsumerGroupRecord::CurrentMemberAssignment {
                    group_id,
                    member_id,
                    value: None,
                }
            }
        }
    }
}

fn encode_partitions(e: &mut Encoder, partitions: &Partitions) {
    let topics: Vec<(&Uuid, Vec<i32>)> = partitions
        .iter()
        .map(|(id, ps)| (id, ps.iter().copied().collect()))
        .collect();
    e.array(true, &topics, |e, (id, ps)| {
        e.uuid(id);
        e.array(true, ps, |e, p| e.i32(*p));
        e.no_tagged_fields();
    });
}

fn decode_partitions(d: &mut Decoder<'_>) -> DecodeResult<Partitions> {
    let topics = d.array(true, |d| {
        let id = d.uuid()?;
        let partitions = d.array(true, |d| d.i32())?;
        d.skip_tagged_fields()?;
        Ok((id, partitions))
    })?;
    let mut out = Partitions::new();
    for (id, partitions) in topics {
        out.entry(id).or_default().extend(partitions);
    }
    Ok(out)
}

/// Decodes a record whose key version (3-8) was read; `d` is past the version.
pub fn decode(
    key_version: i16,
    d: &mut Decoder<'_>,
    value: Option<&[u8]>,
) -> DecodeResult<ConsumerGroupRecord> {
    let group_id = d.string(false)?;
    let member_id = if matches!(key_version, 5 | 7 | 8) {
        d.string(false)?
    } else {
        String::new()
    };
    // Values start with their version; every version so far is 0, and later ones only add
    // tagged fields, so the body is read the same way.
    let mut v = value.map(Decoder::new);
    if let Some(v) = v.as_mut() {
        v.i16()?;
    }
    let record = match key_version {
        3 => ConsumerGroupRecord::Metadata {
            group_id,
            epoch: v.as_mut().map(|v| v.i32()).transpose()?,
        },
        4 => ConsumerGroupRecord::PartitionMetadata {
            group_id,
            topics: v.as_mut().map(decode_topic_metadata).transpose()?,
        },
        5 => ConsumerGroupRecord::MemberMetadata {
            group_id,
            member_id,
            value: v.as_mut().map(decode_member_metadata).transpose()?,
        },
        6 => ConsumerGroupRecord::TargetAssignmentMetadata {
            group_id,
            assignment_epoch: v.as_mut().map(|v| v.i32()).transpose()?,
        },
        7 => ConsumerGroupRecord::TargetAssignmentMember {
            group_id,
            member_id,
            partitions: v.as_mut().map(decode_partitions).transpose()?,
        },
        _ => ConsumerGroupRecord::CurrentMemberAssignment {
            group_id,
            member_id,
            value: v.as_mut().map(decode_current_assignment).transpose()?,
        },
    };
    if let Some(v) = v.as_mut() {
        v.skip_tagged_fields()?;
    }
    Ok(record)
}

fn decode_topic_metadata(d: &mut Decoder<'_>) -> DecodeResult<Vec<TopicMetadata>> {
    d.array(true, |d| {
        let id = d.uuid()?;
        let name = d.string(true)?;
        let count = d.i32()?;
        d.array(true, |d| {
            d.i32()?;
            d.array(true, |d| d.string(true))?;
            d.skip_tagged_fields()
        })?;
        d.skip_tagged_fields()?;
        Ok((id, name, count))
    })
}

fn decode_member_metadata(d: &mut Decoder<'_>) -> DecodeResult<MemberMetadata> {
    let instance_id = d.nullable_string(true)?;
    let rack_id = d.nullable_string(true)?;
    let client_id = d.string(true)?;
    let client_host = d.string(true)?;
    let subscribed_topic_names = d.array(true, |d| d.string(true))?;
    let subscribed_topic_regex = d.nullable_string(true)?;
    let rebalance_timeout_ms = d.i32()?;
    let server_assignor = d.nullable_string(true)?;
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

fn decode_current_assignment(d: &mut Decoder<'_>) -> DecodeResult<CurrentAssignment> {
    Ok(CurrentAssignment {
        member_epoch: d.i32()?,
        previous_member_epoch: d.i32()?,
        state: d.i8()?,
        assigned: decode_partitions(d)?,
        pending_revocation: decode_partitions(d)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offsets::{OffsetsRecord, decode_record};

    fn round_trip(record: ConsumerGroupRecord) -> (Vec<u8>, Vec<u8>) {
        let key = record.key();
        let value = record.value().expect("not a tombstone");
        assert_eq!(
            decode_record(&key, Some(&value)).unwrap(),
            OffsetsRecord::ConsumerGroup(record.clone())
        );
        let tombstone = record.tombstone();
        assert_eq!(tombstone.key(), key);
        assert!(tombstone.value().is_none());
        assert_eq!(
            decode_record(&key, None).unwrap(),
            OffsetsRecord::ConsumerGroup(tombstone)
        );
        (key, value)
    }

    #[test]
    fn group_and_assignment_epochs() {
        let (key, value) = round_trip(ConsumerGroupRecord::Metadata {
            group_id: "g".into(),
            epoch: Some(7),
        });
        assert_eq!(key, [0, 3, 0, 1, b'g']);
        assert_eq!(value, [0, 0, 0, 0, 0, 7, 0]);
        let (key, value) = round_trip(ConsumerGroupRecord::TargetAssignmentMetadata {
            group_id: "g".into(),
            assignment_epoch: Some(258),
        });
        assert_eq!(key, [0, 6, 0, 1, b'g']);
        assert_eq!(value, [0, 0, 0, 0, 1, 2, 0]);
    }

    #[test]
    fn member_records() {
        let (key, value) = round_trip(ConsumerGroupRecord::MemberMetadata {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(MemberMetadata {
                instance_id: None,
                rack_id: Some("r".into()),
                client_id: "c".into(),
                client_host: "/h".into(),
                subscribed_topic_names: vec!["t".into()],
                subscribed_topic_regex: None,
                rebalance_timeout_ms: 300,
                server_assignor: Some("uniform".into()),
            }),
        });
        assert_eq!(key, [0, 5, 0, 1, b'g', 0, 1, b'm']);
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[0u8, 0][..],            // value version 0
            &[0],                     // instance id: null
            &[2, b'r'],               // rack id
            &[2, b'c'],               // client id
            &[3, b'/', b'h'],         // client host
            &[2, 2, b't'],            // one subscribed topic
            &[0],                     // regex: null
            &[0, 0, 1, 44],           // rebalance timeout
            &[8], b"uniform",         // server assignor
            &[0],                     // tagged fields
        ]
        .concat();
        assert_eq!(value, expected);
        // A member subscribed by regex: the pattern follows the (empty) topic names.
        let (_, value) = round_trip(ConsumerGroupRecord::MemberMetadata {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(MemberMetadata {
                instance_id: None,
                rack_id: None,
                client_id: String::new(),
                client_host: String::new(),
                subscribed_topic_names: Vec::new(),
                subscribed_topic_regex: Some("o.*".into()),
                rebalance_timeout_ms: 300,
                server_assignor: None,
            }),
        });
        assert_eq!(value[..11], [0, 0, 0, 0, 1, 1, 1, 4, b'o', b'.', b'*']);

        let id = Uuid([5; 16]);
        let partitions: Partitions = [(id, [0, 2].into_iter().collect())].into_iter().collect();
        let (key, value) = round_trip(ConsumerGroupRecord::TargetAssignmentMember {
            group_id: "g".into(),
            member_id: "m".into(),
            partitions: Some(partitions.clone()),
        });
        assert_eq!(key[..2], [0, 7]);
        let mut expected = vec![0, 0, 2];
        expected.extend([5; 16]);
        expected.extend([3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]);
        assert_eq!(value, expected);

        let (key, value) = round_trip(ConsumerGroupRecord::CurrentMemberAssignment {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(CurrentAssignment {
                member_epoch: 3,
                previous_member_epoch: 2,
                state: MEMBER_STATE_UNREVOKED_PARTITIONS,
                assigned: partitions,
                pending_revocation: Partitions::new(),
            }),
        });
        assert_eq!(key[..2], [0, 8]);
        assert_eq!(value[..11], [0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 1]);
        assert_eq!(value[value.len() - 2..], [1, 0], "no pending revocation");
    }

    #[test]
    fn partition_metadata() {
        let (key, value) = round_trip(ConsumerGroupRecord::PartitionMetadata {
            group_id: "g".into(),
            topics: Some(vec![(Uuid([1; 16]), "t".into(), 3)]),
        });
        assert_eq!(key, [0, 4, 0, 1, b'g']);
        let mut expected = vec![0, 0, 2];
        expected.extend([1; 16]);
        expected.extend([2, b't', 0, 0, 0, 3, 1, 0, 0]);
        assert_eq!(value, expected);
        // Truncated values are errors, not panics.
        assert!(decode_record(&key, Some(&value[..10])).is_err());
    }
}
