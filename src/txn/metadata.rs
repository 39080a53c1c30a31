//! One transactional id's state (Kafka's `TransactionMetadata` and `TransactionState`) and its
//! record in `__transaction_state` (Kafka's `TransactionLog`).
//!
//! Record layouts (big-endian, strings with an int16 length), as Kafka 3.9 writes them:
//!
//! | part  | layout |
//! |-------|--------|
//! | key   | TransactionLogKey v0: version int16 (0), transactional id string |
//! | value | TransactionLogValue v0: version int16 (0), producer id int64, producer epoch int16, timeout int32, state int8, partitions (nullable array of topic string + int32 array), last update int64, start int64 |
//!
//! The value's partitions are null in state Empty. A null value (tombstone) removes the id.
//! Reading also accepts value version 1 (flexible, with tagged fields), which Kafka 4 writes.
//!
//! Everything here is pure.

use crate::protocol::wire::{DecodeResult, Decoder, Encoder};
use crate::storage::log::TopicPartition;
use std::collections::BTreeSet;

/// The internal topic of transaction states.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's `RecordBatch.NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// The value version sprat writes (Kafka 3.9 writes 0).
const VALUE_VERSION: i16 = 0;

/// Kafka's `TransactionState`, with the ids its records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

use TxnState::*;

/// The transitions Kafka allows: each state and the states it may be entered from
/// (`TransactionState.validPreviousStates`).
const VALID_PREVIOUS_STATES: &[(TxnState, &[TxnState])] = &[
    (Empty, &[Empty, CompleteCommit, CompleteAbort]),
    (Ongoing, &[Ongoing, Empty, CompleteCommit, CompleteAbort]),
    (PrepareCommit, &[Ongoing]),
    (PrepareAbort, &[Ongoing, PrepareEpochFence, Empty]),
    (CompleteCommit, &[PrepareCommit]),
    (CompleteAbort, &[PrepareAbort]),
    (Dead, &[Empty, CompleteAbort, CompleteCommit]),
    (PrepareEpochFence, &[Ongoing]),
];

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        Empty,
        Ongoing,
        PrepareCommit,
        PrepareAbort,
        CompleteCommit,
        CompleteAbort,
        Dead,
        PrepareEpochFence,
    ];

    /// The id in TransactionLogValue.
    pub fn id(self) -> i8 {
        match self {
            Empty => 0,
            Ongoing => 1,
            PrepareCommit => 2,
            PrepareAbort => 3,
            CompleteCommit => 4,
            CompleteAbort => 5,
            Dead => 6,
            PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether `self` may be entered from `from`.
    pub fn can_follow(self, from: TxnState) -> bool {
        VALID_PREVIOUS_STATES
            .iter()
            .find(|(to, _)| *to == self)
            .is_some_and(|(_, previous)| previous.contains(&from))
    }

    /// PrepareCommit or PrepareAbort: markers are being written.
    pub fn is_prepare(self) -> bool {
        matches!(self, PrepareCommit | PrepareAbort)
    }
}

/// Kafka's `TransactionMetadata.isEpochExhausted`: the last epoch is kept for fencing.
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (KIP-360), or -1. Not persisted (as in 3.9).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump by the same producer, or -1. Not persisted (as in 3.9).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the current transaction started, or -1.
    pub start_ms: i64,
    pub update_ms: i64,
}

impl TransactionMetadata {
    /// A new id, before its first epoch (Kafka creates it with NO_PRODUCER_EPOCH, then bumps).
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            update_ms: now_ms,
        }
    }

    /// The topics and partitions, grouped by topic in order.
    pub fn partitions_by_topic(&self) -> Vec<(String, Vec<i32>)> {
        let mut out: Vec<(String, Vec<i32>)> = Vec::new();
        for tp in &self.partitions {
            match out.last_mut() {
                Some((topic, ids)) if *topic == tp.topic => ids.push(tp.partition),
                _ => out.push((tp.topic.clone(), vec![tp.partition])),
            }
        }
        out
    }
}

/// The record key of a transactional id.
pub fn record_key(transactional_id: &str) -> Vec<u8> {
    let mut e = Encoder::with_capacity(4 + transactional_id.len());
    e.i16(0);
    e.string(false, transactional_id);
    e.into_inner()
}

/// The record value of a state.
pub fn record_value(m: &TransactionMetadata) -> Vec<u8> {
    let mut e = Encoder::with_capacity(64);
    e.i16(VALUE_VERSION);
    e.i64(m.producer_id);
    e.i16(m.producer_epoch);
    e.i32(m.timeout_ms);
    e.i8(m.state.id());
    if m.state == Empty {
        e.i32(-1);
    } else {
        let topics = m.partitions_by_topic();
        e.i32(topics.len() as i32);
        for (topic, ids) in &topics {
            e.string(false, topic);
            e.i32(ids.len() as i32);
            ids.iter().for_each(|&p| e.i32(p));
        }
    }
    e.i64(m.update_ms);
    e.i64(m.start_ms);
    e.into_inner()
}

/// Decodes a record: the transactional id and its state (`None` for a tombstone).
pub fn decode_record(
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(String, Option<TransactionMetadata>), String> {
    let mut d = Decoder::new(key);
    let key_version = d.i16().map_err(|e| e.to_string())?;
    if key_version != 0 {
        return Err(format!("unknown TransactionLogKey version {key_version}"));
    }
    let id = d.string(false).map_err(|e| e.to_string())?;
    let Some(value) = value else {
        return Ok((id, None));
    };
    let mut d = Decoder::new(value);
    let version = d.i16().map_err(|e| e.to_string())?;
    if !(0..=1).contains(&version) {
        return Err(format!("unknown TransactionLogValue version {version}"));
    }
    let m = decode_value(&mut d, &id, version >= 1).map_err(|e| e.to_string())?;
    let state =
        TxnState::from_id(m.1).ok_or_else(|| format!("unknown transaction state {}", m.1))?;
    let mut m = m.0;
    m.state = state;
    Ok((id, Some(m)))
}

/// The value's fields after its version; the state id is returned raw.
fn decode_value(
    d: &mut Decoder<'_>,
    id: &str,
    flexible: bool,
) -> DecodeResult<(TransactionMetadata, i8)> {
    let producer_id = d.i64()?;
    let producer_epoch = d.i16()?;
    let timeout_ms = d.i32()?;
    let state_id = d.i8()?;
    let topics = d.nullable_array(flexible, |d| {
        let topic = d.string(flexible)?;
        let ids = d.array(flexible, |d| d.i32())?;
        if flexible {
            d.skip_tagged_fields()?;
        }
        Ok((topic, ids))
    })?;
    let update_ms = d.i64()?;
    let start_ms = d.i64()?;
    let mut m = TransactionMetadata::new(id, producer_id, timeout_ms, update_ms);
    m.producer_epoch = producer_epoch;
    m.start_ms = start_ms;
    for (topic, ids) in topics.unwrap_or_default() {
        for p in ids {
            m.partitions.insert(TopicPartition::new(topic.clone(), p));
        }
    }
    Ok((m, state_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_kafkas_table() {
        assert!(Ongoing.can_follow(Empty));
        assert!(PrepareCommit.can_follow(Ongoing));
        assert!(!PrepareCommit.can_follow(Empty));
        assert!(!CompleteAbort.can_follow(PrepareCommit));
        assert!(Empty.can_follow(CompleteCommit));
        assert!(PrepareAbort.can_follow(PrepareEpochFence));
    }

    #[test]
    fn record_round_trip_and_bytes() {
        let mut m = TransactionMetadata::new("t", 7, 60_000, 1_000);
        m.producer_epoch = 2;
        m.state = Ongoing;
        m.start_ms = 900;
        m.partitions.insert(TopicPartition::new("a", 1));
        m.partitions.insert(TopicPartition::new("a", 0));
        let key = record_key("t");
        assert_eq!(key, [0, 0, 0, 1, b't']);
        let value = record_value(&m);
        let mut expected = vec![0, 0];
        expected.extend(7i64.to_be_bytes());
        expected.extend(2i16.to_be_bytes());
        expected.extend(60_000i32.to_be_bytes());
        expected.push(1);
        expected.extend(1i32.to_be_bytes());
        expected.extend([0, 1, b'a']);
        expected.extend(2i32.to_be_bytes());
        expected.extend(0i32.to_be_bytes());
        expected.extend(1i32.to_be_bytes());
        expected.extend(1_000i64.to_be_bytes());
        expected.extend(900i64.to_be_bytes());
        assert_eq!(value, expected);
        let (id, back) = decode_record(&key, Some(&value)).unwrap();
        assert_eq!(id, "t");
        assert_eq!(back.unwrap(), m);
        assert_eq!(decode_record(&key, None).unwrap().1, None);
    }

    #[test]
    fn empty_state_writes_null_partitions() {
        let m = TransactionMetadata::new("t", 7, 10, 5);
        let value = record_value(&m);
        assert_eq!(&value[17..21], &(-1i32).to_be_bytes());
        assert_eq!(
            decode_record(&record_key("t"), Some(&value))
                .unwrap()
                .1
                .unwrap(),
            m
        );
    }
}
