//! Transactional offset commits (KIP-98, KIP-447; Kafka's `GroupMetadataManager`'s
//! `pendingTransactionalOffsetCommits`): TxnOffsetCommit writes the offsets to the group's
//! `__consumer_offsets` partition as a transactional batch of the producer, and they stay
//! pending until the transaction coordinator has written the COMMIT marker there (then they are
//! the group's offsets) or the ABORT marker (then they are dropped).
//!
//! At start-up the group loader hands every transactional batch and control batch of
//! `__consumer_offsets` to [`TxnOffsetsLoad`]: offsets of committed transactions are applied in
//! log order, aborted ones dropped, and those of transactions still open stay pending.
//!
//! A child module of `coordinator`, so that it reaches the group map without widening it.

use super::{GroupCoordinator, OffsetCommit};
use crate::broker::BrokerContext;
use crate::group::offsets::{
    OffsetAndMetadata, OffsetsRecord, decode_record, offset_commit_key, offset_commit_value,
};
use crate::protocol::error_code::ErrorCode;
use crate::server::apis::now_ms;
use crate::storage::log::TopicPartition;
use crate::storage::record_batch::{BatchHeader, BatchView, Record, TRANSACTIONAL_FLAG_MASK};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// Kafka's control record types (`ControlRecordType`).
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// (group, topic, partition) and the offset, or `None` for a deletion.
type PendingOffsets = BTreeMap<(String, String, i32), Option<OffsetAndMetadata>>;

/// The pending transactional offsets of every producer, and the next sequence of each producer
/// on each `__consumer_offsets` partition.
#[derive(Debug, Default)]
pub struct TxnOffsets {
    pending: Mutex<HashMap<i64, PendingOffsets>>,
    sequences: Mutex<HashMap<(i64, i32), (i16, i32)>>,
}

/// TxnOffsetCommit's request, decoded.
pub struct TxnOffsetCommit<'a> {
    pub transactional_id: &'a str,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: OffsetCommit<'a>,
}

impl GroupCoordinator {
    /// TxnOffsetCommit: checks the producer against the transaction (the partition must have
    /// been added by AddOffsetsToTxn), appends the offsets as a transactional batch, and keeps
    /// them pending. One error per offset, in order.
    pub fn commit_txn_offsets(
        &self,
        ctx: &BrokerContext,
        c: TxnOffsetCommit<'_>,
    ) -> Vec<ErrorCode> {
        let all = |code| vec![code; c.commit.offsets.len()];
        if let Err(code) = self.validate_txn_commit(&c.commit) {
            return all(code);
        }
        let tp = match self.offsets_partition(ctx, c.commit.group_id) {
            Ok(tp) => tp,
            Err(code) => return all(code),
        };
        if let Err(code) = ctx.transactions.verify_produce(
            c.transactional_id,
            c.producer_id,
            c.producer_epoch,
            &tp,
        ) {
            return all(code);
        }
        let group_id = c.commit.group_id;
        let mut errors = Vec::with_capacity(c.commit.offsets.len());
        let mut records = Vec::new();
        let mut stored = Vec::new();
        for (topic, partition, offset) in c.commit.offsets {
            if offset.metadata.len() > crate::group::offsets::OFFSET_METADATA_MAX_BYTES {
                errors.push(ErrorCode::OffsetMetadataTooLarge);
                continue;
            }
            errors.push(ErrorCode::None);
            records.push(Record {
                key: Some(offset_commit_key(group_id, &topic, partition)),
                value: Some(offset_commit_value(&offset)),
                ..Record::default()
            });
            stored.push(((group_id.to_string(), topic, partition), Some(offset)));
        }
        if records.is_empty() {
            return errors;
        }
        let header = self.txn_header(&tp, c.producer_id, c.producer_epoch, records.len());
        if let Err(code) = self.append_batch(ctx, tp.clone(), &header, &records) {
            return errors
                .into_iter()
                .map(|e| if e == ErrorCode::None { code } else { e })
                .collect();
        }
        self.txn_offsets
            .advance(c.producer_id, tp.partition, c.producer_epoch, records.len());
        let mut pending = self.txn_offsets.pending.lock();
        pending.entry(c.producer_id).or_default().extend(stored);
        errors
    }

    /// Kafka's `validateOffsetCommit` for a transactional commit: a commit that names a member
    /// (KIP-447) must come from a current member of the group, of its generation; one that names
    /// none (older clients) is accepted whatever the group's state. A rebalance in progress does
    /// not stop it.
    fn validate_txn_commit(&self, commit: &OffsetCommit<'_>) -> Result<(), ErrorCode> {
        let from_member = commit.generation_id >= 0
            || !commit.member_id.is_empty()
            || commit.group_instance_id.is_some();
        if !from_member {
            return Ok(());
        }
        if let Some(check) = self.consumer_group_commit(commit) {
            return check;
        }
        let Some(handle) = self.group(commit.group_id) else {
            return Err(ErrorCode::UnknownMemberId);
        };
        let mut group = handle.state.lock();
        let valid = group.validate_offset_commit(
            commit.member_id,
            commit.group_instance_id,
            commit.generation_id,
            std::time::Instant::now(),
        );
        self.changed(&handle, &group);
        match valid {
            Err(ErrorCode::RebalanceInProgress) => Ok(()),
            other => other,
        }
    }

    /// The header of the next transactional batch of a producer on `tp`.
    fn txn_header(
        &self,
        tp: &TopicPartition,
        producer_id: i64,
        epoch: i16,
        _count: usize,
    ) -> BatchHeader {
        let now = now_ms();
        let sequences = self.txn_offsets.sequences.lock();
        let base_sequence = match sequences.get(&(producer_id, tp.partition)) {
            Some(&(e, next)) if e == epoch => next,
            _ => 0,
        };
        BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            attributes: TRANSACTIONAL_FLAG_MASK,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            ..BatchHeader::default()
        }
    }

    /// The partition of `__consumer_offsets` that holds the group (AddOffsetsToTxn adds it to
    /// the transaction), creating the topic on first use.
    pub fn offsets_topic_partition(
        &self,
        ctx: &BrokerContext,
        group_id: &str,
    ) -> Result<TopicPartition, ErrorCode> {
        self.offsets_partition(ctx, group_id)
    }

    /// Called by the transaction coordinator once the markers of `producer_id`'s transaction
    /// are written: its offsets become the groups' offsets (commit) or are dropped (abort).
    pub fn complete_txn_offsets(&self, producer_id: i64, commit: bool) {
        let Some(offsets) = self.txn_offsets.pending.lock().remove(&producer_id) else {
            return;
        };
        if commit {
            self.apply_txn_offsets(offsets);
        }
    }

    fn apply_txn_offsets(&self, offsets: PendingOffsets) {
        for ((group_id, topic, partition), offset) in offsets {
            let handle = self.group_or_create(&group_id);
            let mut group = handle.state.lock();
            match offset {
                Some(o) => {
                    group.offsets.insert((topic, partition), o);
                }
                None => {
                    group.offsets.remove(&(topic, partition));
                }
            }
        }
    }

    /// Whether a transactional commit of this partition's offset is pending (OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let key = (group_id.to_string(), topic.to_string(), partition);
        self.txn_offsets
            .pending
            .lock()
            .values()
            .any(|offsets| offsets.contains_key(&key))
    }

    /// Keeps what the loader left pending (transactions still open at start-up).
    pub(super) fn finish_txn_offsets_load(&self, load: TxnOffsetsLoad) {
        *self.txn_offsets.pending.lock() = load.pending;
        *self.txn_offsets.sequences.lock() = load.sequences;
    }
}

impl TxnOffsets {
    fn advance(&self, producer_id: i64, partition: i32, epoch: i16, count: usize) {
        let mut sequences = self.sequences.lock();
        let entry = sequences
            .entry((producer_id, partition))
            .or_insert((epoch, 0));
        if entry.0 != epoch {
            *entry = (epoch, 0);
        }
        entry.1 = entry.1.wrapping_add(count as i32).max(0);
    }
}

/// The loader's view of transactional batches in `__consumer_offsets`.
#[derive(Debug, Default)]
pub struct TxnOffsetsLoad {
    pending: HashMap<i64, PendingOffsets>,
    sequences: HashMap<(i64, i32), (i16, i32)>,
}

/// What the loader should do with the records of a batch after [`TxnOffsetsLoad::batch`].
pub enum LoadAction {
    /// A non-transactional batch: apply its records.
    Apply,
    /// Handled here (transactional data, or a marker).
    Done,
    /// A COMMIT marker: apply these offsets, in this order.
    ApplyCommitted(PendingOffsets),
}

impl TxnOffsetsLoad {
    /// Looks at one batch of `tp` with its decoded records.
    pub fn batch(
        &mut self,
        tp: &TopicPartition,
        batch: &BatchView<'_>,
        records: &[Record],
    ) -> LoadAction {
        let producer_id = batch.producer_id();
        if batch.is_control() {
            let kind = records
                .first()
                .and_then(|r| r.key.as_deref())
                .filter(|k| k.len() >= 4)
                .map(|k| i16::from_be_bytes([k[2], k[3]]));
            let offsets = self.pending.remove(&producer_id);
            return match (kind, offsets) {
                (Some(CONTROL_COMMIT), Some(offsets)) => LoadAction::ApplyCommitted(offsets),
                (Some(CONTROL_ABORT), _) | (_, None) | (_, Some(_)) => LoadAction::Done,
            };
        }
        if !batch.is_transactional() {
            return LoadAction::Apply;
        }
        if batch.base_sequence() >= 0 {
            let next = batch
                .base_sequence()
                .wrapping_add(batch.last_offset_delta() + 1);
            self.sequences
                .insert((producer_id, tp.partition), (batch.producer_epoch(), next));
        }
        let pending = self.pending.entry(producer_id).or_default();
        for r in records {
            let Some(key) = &r.key else { continue };
            if let Ok(OffsetsRecord::OffsetCommit {
                group_id,
                topic,
                partition,
                offset,
            }) = decode_record(key, r.value.as_deref())
            {
                pending.insert((group_id, topic, partition), offset);
            }
        }
        LoadAction::Done
    }
}

/// Applies committed offsets to the loader's map of offsets by group.
pub fn apply_loaded(
    offsets: PendingOffsets,
    loaded: &mut HashMap<String, BTreeMap<(String, i32), OffsetAndMetadata>>,
) {
    for ((group_id, topic, partition), offset) in offsets {
        let group = loaded.entry(group_id).or_default();
        match offset {
            Some(o) => {
                group.insert((topic, partition), o);
            }
            None => {
                group.remove(&(topic, partition));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record_batch::{Batches, CONTROL_FLAG_MASK, build_batch, decode_records};

    fn offsets_batch(producer_id: i64, offset: i64) -> Vec<u8> {
        let header = BatchHeader {
            attributes: TRANSACTIONAL_FLAG_MASK,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            ..BatchHeader::default()
        };
        let value = OffsetAndMetadata {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
        };
        build_batch(
            &header,
            &[Record {
                key: Some(offset_commit_key("g", "t", 0)),
                value: Some(offset_commit_value(&value)),
                ..Record::default()
            }],
        )
    }

    fn marker(producer_id: i64, kind: i16) -> Vec<u8> {
        let header = BatchHeader {
            attributes: TRANSACTIONAL_FLAG_MASK | CONTROL_FLAG_MASK,
            producer_id,
            producer_epoch: 0,
            ..BatchHeader::default()
        };
        let mut key = 0i16.to_be_bytes().to_vec();
        key.extend(kind.to_be_bytes());
        build_batch(
            &header,
            &[Record {
                key: Some(key),
                value: Some(vec![0, 0, 0, 0, 0, 0]),
                ..Record::default()
            }],
        )
    }

    /// The loader applies a committed transaction's offsets at its COMMIT marker, drops an
    /// aborted one's, and keeps an open one's pending.
    #[test]
    fn loader_applies_committed_and_drops_aborted_offsets() {
        let tp = TopicPartition::new("__consumer_offsets", 3);
        let log = [
            offsets_batch(7, 10),
            offsets_batch(8, 20),
            marker(8, CONTROL_ABORT),
            marker(7, CONTROL_COMMIT),
            offsets_batch(9, 30),
        ]
        .concat();
        let mut load = TxnOffsetsLoad::default();
        let mut committed = Vec::new();
        for batch in Batches::new(&log) {
            let batch = batch.unwrap();
            let records = decode_records(&batch).unwrap();
            match load.batch(&tp, &batch, &records) {
                LoadAction::ApplyCommitted(offsets) => committed.push(offsets),
                LoadAction::Apply => panic!("every batch here is transactional"),
                LoadAction::Done => {}
            }
        }
        assert_eq!(committed.len(), 1);
        let (key, offset) = committed[0].iter().next().unwrap();
        assert_eq!(key, &("g".to_string(), "t".to_string(), 0));
        assert_eq!(offset.as_ref().unwrap().offset, 10);
        assert_eq!(load.pending.keys().collect::<Vec<_>>(), [&9]);
        assert_eq!(load.sequences.get(&(7, 3)), Some(&(0, 1)));
    }
}
