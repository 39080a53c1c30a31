//! Idempotent and transactional producer state of one partition (Kafka's `ProducerStateManager`):
//! for each producer id, its epoch, the sequence ranges and offsets of its last five batches, the
//! epoch of the coordinator that wrote its last marker, and the first offset of its open
//! transaction; for the partition, the set of open transactions, which bounds the last stable
//! offset (LSO).
//!
//! A producer's first transactional batch opens its transaction at that batch's base offset; the
//! COMMIT or ABORT control batch (marker) the coordinator writes closes it (Kafka's
//! `ProducerAppendInfo.appendEndTxnMarker`). The LSO is the smallest first offset of an open
//! transaction, or the high watermark when none is open: read_committed consumers never read
//! past it.
//!
//! The writer thread checks every batch that carries a producer id before appending it: a retry of
//! one of the last five batches is answered with its original offsets and not appended again; a
//! sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an epoch older than the producer's current one is
//! INVALID_PRODUCER_EPOCH.
//!
//! The state survives restarts through Kafka's producer snapshot files (`<offset>.snapshot`,
//! written when a segment rolls and at clean shutdown, see [`ProducerStateManager::write_snapshot`])
//! plus a replay of the batch headers after the snapshot's offset. Kafka's snapshot keeps one
//! entry per producer; sprat writes one entry per remembered batch, oldest first, so that a retry
//! of any of the last five batches is still recognised after a restart. Kafka reading such a file
//! keeps the last entry of each producer, which is the one it would have written itself.

use super::record_batch;
use crate::protocol::error_code::ErrorCode;
use byteorder::{BigEndian, ByteOrder};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How many recent batches per producer are remembered for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`, which is also the most in-flight requests an idempotent producer uses).
pub const BATCHES_TO_RETAIN: usize = 5;

/// The producer fields of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
    /// The batch's max timestamp, kept in snapshots as Kafka does.
    pub max_timestamp: i64,
    /// The batch has the transactional attribute: it belongs to the producer's open transaction.
    pub is_transactional: bool,
}

/// Where a remembered batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// The epoch of the coordinator that wrote this producer's last marker (-1: none yet).
    coordinator_epoch: i32,
    /// The first offset of the producer's open transaction (Kafka's `currentTxnFirstOffset`).
    current_txn_first_offset: Option<i64>,
    /// The max timestamp of its last batch or marker (Kafka's `lastTimestamp`); -1 if unknown.
    last_timestamp: i64,
}

impl ProducerEntry {
    fn new(epoch: i16) -> ProducerEntry {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            current_txn_first_offset: None,
            last_timestamp: NO_OFFSET,
        }
    }
}

/// A transaction a marker ended (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// The offset of the transaction's first batch on this partition; the marker's own offset
    /// when the producer had no open transaction here.
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub is_aborted: bool,
    /// The LSO once this transaction is closed: the first offset of the earliest transaction of
    /// another producer that is still open, else the offset after the marker. Kept in the aborted
    /// transaction index.
    pub last_stable_offset: i64,
}

/// One producer as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when no batch of this epoch is remembered.
    pub last_sequence: i32,
    /// -1 when no batch of this epoch is remembered.
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// -1 when no transaction is open.
    pub current_txn_start_offset: i64,
}

/// What to do with a batch from an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// It is a retry of a batch already in the log at these offsets: answer with them.
    Duplicate { first_offset: i64, last_offset: i64 },
}

#[derive(Debug, Default, Clone)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// The open transactions: first offset -> producer id (Kafka's `ongoingTxns`).
    ongoing: BTreeMap<i64, i64>,
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (next == 0 && last == i32::MAX)
}

impl ProducerStateManager {
    /// Checks a batch against the producer's state, as Kafka does for client appends.
    pub fn check(&self, batch: &ProducerBatch) -> Result<SequenceCheck, ErrorCode> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // A producer this partition has never seen (or whose state was removed): any
            // sequence starts it.
            return Ok(SequenceCheck::Append);
        };
        if batch.producer_epoch < entry.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if !batch.is_transactional && entry.current_txn_first_offset.is_some() {
            // Kafka: "Expected transactional write from producer".
            return Err(ErrorCode::InvalidTxnState);
        }
        if batch.producer_epoch > entry.epoch {
            // A new epoch must start again at sequence 0.
            return if batch.first_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return Ok(SequenceCheck::Duplicate {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
            });
        }
        let last = entry.batches.back().map_or(-1, |b| b.last_sequence);
        if in_sequence(last, batch.first_sequence) {
            Ok(SequenceCheck::Append)
        } else {
            Err(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Records an appended (or, at start-up, recovered) batch.
    pub fn update(&mut self, batch: &ProducerBatch, first_offset: i64, last_offset: i64) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry::new(batch.producer_epoch));
        if batch.is_transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, batch.producer_id);
        }
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        entry.last_timestamp = batch.max_timestamp;
        if entry.batches.len() == BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            first_offset,
            last_offset,
            max_timestamp: batch.max_timestamp,
        });
    }

    /// Checks a COMMIT/ABORT marker of `producer_id` against its state (Kafka's
    /// `appendEndTxnMarker`): an epoch older than the producer's is PRODUCER_FENCED, a
    /// coordinator epoch older than the one of the producer's last marker is
    /// TRANSACTION_COORDINATOR_FENCED. A producer this partition has not seen passes.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if producer_epoch < entry.epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ErrorCode::TransactionCoordinatorFenced);
        }
        Ok(())
    }

    /// Records a marker written (or recovered) at `offset` with `timestamp`: the producer's
    /// transaction, if it has one open here, is closed. Returns the completed transaction; a marker with no open
    /// transaction completes an empty one at its own offset, as Kafka's does.
    pub fn apply_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        offset: i64,
        timestamp: i64,
    ) -> CompletedTxn {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry::new(producer_epoch));
        if producer_epoch != entry.epoch {
            // A marker of a bumped epoch (the coordinator fenced the previous instance): the new
            // epoch starts its sequences again at 0.
            entry.epoch = producer_epoch;
            entry.batches.clear();
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        let first_offset = entry.current_txn_first_offset.take();
        if let Some(first) = first_offset {
            self.ongoing.remove(&first);
        }
        CompletedTxn {
            producer_id,
            first_offset: first_offset.unwrap_or(offset),
            last_offset: offset,
            is_aborted: !commit,
            last_stable_offset: self.first_unstable_offset().unwrap_or(offset + 1),
        }
    }

    /// Whether `producer_id` has a transaction open on this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    /// The first offset of the earliest open transaction, if any is open.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// The last stable offset given the high watermark: read_committed readers stop there.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The open transactions, as (first offset, producer id), oldest first.
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.ongoing.iter().map(|(&o, &p)| (o, p)).collect()
    }

    /// Every producer this partition remembers, by producer id, for DescribeProducers.
    pub fn describe(&self) -> Vec<ProducerDescription> {
        let mut out: Vec<ProducerDescription> = self
            .producers
            .iter()
            .map(|(&id, e)| ProducerDescription {
                producer_id: id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_unstable_by_key(|d| d.producer_id);
        out
    }

    /// Forgets the producers without an open transaction whose last batch or marker is
    /// `expiration_ms` or more older than `now_ms` (Kafka's `removeExpiredProducers`, with
    /// `producer.id.expiration.ms`); a later batch of one starts it again as a new producer.
    /// Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// The largest producer id seen, for allocating new ones after a restart.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Encodes the state as a Kafka producer snapshot (version 1):
    ///
    /// | field                  | type  |
    /// |------------------------|-------|
    /// | version                | i16   |
    /// | crc (CRC-32C of the rest) | u32 |
    /// | entry count            | i32   |
    /// | per entry: producer id i64, epoch i16, last sequence i32, last offset i64, offset delta i32, timestamp i64, coordinator epoch i32, current txn first offset i64 | 46 bytes |
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        // A producer with no batch of its epoch (only a marker) still gets one entry.
        let count: usize = self
            .producers
            .values()
            .map(|e| e.batches.len().max(1))
            .sum();
        let mut out = Vec::with_capacity(SNAPSHOT_ENTRIES_OFFSET + 4 + count * SNAPSHOT_ENTRY_SIZE);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(count as i32).to_be_bytes());
        for id in ids {
            let entry = &self.producers[&id];
            let no_batch = BatchMetadata {
                first_sequence: record_batch::NO_SEQUENCE,
                last_sequence: record_batch::NO_SEQUENCE,
                first_offset: NO_OFFSET,
                last_offset: NO_OFFSET,
                max_timestamp: entry.last_timestamp,
            };
            let batches: Vec<&BatchMetadata> = if entry.batches.is_empty() {
                vec![&no_batch]
            } else {
                entry.batches.iter().collect()
            };
            for b in batches {
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&entry.epoch.to_be_bytes());
                out.extend_from_slice(&b.last_sequence.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&((b.last_offset - b.first_offset) as i32).to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
                out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
                out.extend_from_slice(
                    &entry
                        .current_txn_first_offset
                        .unwrap_or(NO_TXN_FIRST_OFFSET)
                        .to_be_bytes(),
                );
            }
        }
        let crc = crc32c::crc32c(&out[SNAPSHOT_ENTRIES_OFFSET..]);
        BigEndian::write_u32(&mut out[SNAPSHOT_CRC_OFFSET..], crc);
        out
    }

    /// Decodes a snapshot written by [`ProducerStateManager::encode_snapshot`] or by Kafka.
    /// Refuses a wrong version, a bad CRC or a truncated file; never trusts the entry count
    /// beyond the bytes present.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<ProducerStateManager, String> {
        if bytes.len() < SNAPSHOT_ENTRIES_OFFSET + 4 {
            return Err(format!("{} bytes are too few for a snapshot", bytes.len()));
        }
        let version = BigEndian::read_i16(bytes);
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown snapshot version {version}"));
        }
        let stored = BigEndian::read_u32(&bytes[SNAPSHOT_CRC_OFFSET..]);
        let computed = crc32c::crc32c(&bytes[SNAPSHOT_ENTRIES_OFFSET..]);
        if stored != computed {
            return Err(format!(
                "snapshot CRC {stored:#010x} does not match {computed:#010x}"
            ));
        }
        let count = BigEndian::read_i32(&bytes[SNAPSHOT_ENTRIES_OFFSET..]);
        let entries = &bytes[SNAPSHOT_ENTRIES_OFFSET + 4..];
        if count < 0 || entries.len() != count as usize * SNAPSHOT_ENTRY_SIZE {
            return Err(format!(
                "snapshot claims {count} entries in {} bytes",
                entries.len()
            ));
        }
        let mut state = ProducerStateManager::default();
        for e in entries.chunks_exact(SNAPSHOT_ENTRY_SIZE) {
            let last_sequence = BigEndian::read_i32(&e[10..]);
            let last_offset = BigEndian::read_i64(&e[14..]);
            let delta = BigEndian::read_i32(&e[22..]);
            if delta < 0 {
                return Err(format!("negative offset delta {delta} in a snapshot entry"));
            }
            let first_sequence = if last_sequence < 0 {
                last_sequence
            } else {
                (i64::from(last_sequence) - i64::from(delta)).rem_euclid(i64::from(i32::MAX) + 1)
                    as i32
            };
            let batch = ProducerBatch {
                producer_id: BigEndian::read_i64(e),
                producer_epoch: BigEndian::read_i16(&e[8..]),
                first_sequence,
                last_sequence,
                max_timestamp: BigEndian::read_i64(&e[26..]),
                is_transactional: false,
            };
            let Some(first_offset) = last_offset.checked_sub(i64::from(delta)) else {
                return Err(format!(
                    "snapshot entry offset {last_offset} minus delta {delta} overflows"
                ));
            };
            let entry = state
                .producers
                .entry(batch.producer_id)
                .or_insert_with(|| ProducerEntry::new(batch.producer_epoch));
            entry.coordinator_epoch = BigEndian::read_i32(&e[34..]);
            let txn_first_offset = BigEndian::read_i64(&e[38..]);
            entry.current_txn_first_offset = (txn_first_offset >= 0).then_some(txn_first_offset);
            if last_offset >= 0 {
                state.update(&batch, first_offset, last_offset);
            } else {
                if entry.epoch != batch.producer_epoch {
                    entry.epoch = batch.producer_epoch;
                    entry.batches.clear();
                }
                entry.last_timestamp = batch.max_timestamp;
            }
        }
        state.ongoing = state
            .producers
            .iter()
            .filter_map(|(&id, e)| e.current_txn_first_offset.map(|first| (first, id)))
            .collect();
        Ok(state)
    }
}

const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_CRC_OFFSET: usize = 2;
const SNAPSHOT_ENTRIES_OFFSET: usize = 6;
const SNAPSHOT_ENTRY_SIZE: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
const NO_COORDINATOR_EPOCH: i32 = -1;
const NO_TXN_FIRST_OFFSET: i64 = -1;
/// The offsets and timestamp of a snapshot entry for a producer with no batch (only a marker).
const NO_OFFSET: i64 = -1;

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            producer_epoch: epoch,
            first_sequence: first,
            last_sequence: last,
            max_timestamp: 1_700_000_000_000,
            is_transactional: false,
        }
    }

    fn txn_batch(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            is_transactional: true,
            ..batch(epoch, first, last)
        }
    }

    #[test]
    fn in_order_batches_append_and_retries_are_duplicates() {
        let mut state = ProducerStateManager::default();
        assert_eq!(state.check(&batch(0, 0, 4)), Ok(SequenceCheck::Append));
        state.update(&batch(0, 0, 4), 10, 14);
        assert_eq!(state.check(&batch(0, 5, 9)), Ok(SequenceCheck::Append));
        state.update(&batch(0, 5, 9), 15, 19);
        assert_eq!(
            state.check(&batch(0, 0, 4)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 10,
                last_offset: 14
            })
        );
        assert_eq!(
            state.check(&batch(0, 11, 12)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            state.check(&batch(0, 3, 6)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut state = ProducerStateManager::default();
        state.update(&batch(1, 0, 0), 0, 0);
        assert_eq!(
            state.check(&batch(0, 1, 1)),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            state.check(&batch(2, 1, 1)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(state.check(&batch(2, 0, 3)), Ok(SequenceCheck::Append));
        state.update(&batch(2, 0, 3), 1, 4);
        assert_eq!(state.check(&batch(2, 4, 4)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut state = ProducerStateManager::default();
        for i in 0..7 {
            state.update(&batch(0, i, i), i64::from(i), i64::from(i));
        }
        assert!(matches!(
            state.check(&batch(0, 2, 2)),
            Ok(SequenceCheck::Duplicate { .. })
        ));
        assert_eq!(
            state.check(&batch(0, 1, 1)),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(state.max_producer_id(), Some(7));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut state = ProducerStateManager::default();
        state.update(&batch(0, i32::MAX - 1, i32::MAX), 0, 1);
        assert_eq!(state.check(&batch(0, 0, 3)), Ok(SequenceCheck::Append));
    }

    #[test]
    fn snapshot_round_trips_the_last_five_batches() {
        let mut state = ProducerStateManager::default();
        for i in 0..7 {
            state.update(
                &batch(3, i * 2, i * 2 + 1),
                i64::from(i) * 10,
                i64::from(i) * 10 + 1,
            );
        }
        let mut other = batch(0, i32::MAX, 2);
        other.producer_id = 9;
        state.update(&other, 100, 103);
        let bytes = state.encode_snapshot();
        assert_eq!(bytes.len(), 6 + 4 + 6 * 46);
        let loaded = ProducerStateManager::decode_snapshot(&bytes).unwrap();
        assert_eq!(loaded.producer_count(), 2);
        for i in 2..7 {
            assert_eq!(
                loaded.check(&batch(3, i * 2, i * 2 + 1)),
                Ok(SequenceCheck::Duplicate {
                    first_offset: i64::from(i) * 10,
                    last_offset: i64::from(i) * 10 + 1
                }),
                "batch {i}"
            );
        }
        assert_eq!(loaded.check(&batch(3, 14, 14)), Ok(SequenceCheck::Append));
        assert_eq!(
            loaded.check(&other),
            Ok(SequenceCheck::Duplicate {
                first_offset: 100,
                last_offset: 103
            }),
            "a sequence range that wraps"
        );
    }

    #[test]
    fn corrupt_snapshots_are_refused() {
        let mut state = ProducerStateManager::default();
        state.update(&batch(0, 0, 4), 0, 4);
        let good = state.encode_snapshot();
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        let mut wrong_version = good.clone();
        wrong_version[1] = 9;
        let mut huge_count = good.clone();
        huge_count[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        let cases: &[(&str, &[u8])] = &[
            ("empty", &[]),
            ("truncated", &good[..good.len() - 1]),
            ("flipped bit", &flipped),
            ("wrong version", &wrong_version),
            ("huge count", &huge_count),
        ];
        for (name, bytes) in cases {
            assert!(
                ProducerStateManager::decode_snapshot(bytes).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn transactions_open_at_their_first_batch_and_close_at_the_marker() {
        let mut state = ProducerStateManager::default();
        assert_eq!(state.last_stable_offset(10), 10);
        state.update(&txn_batch(0, 0, 1), 3, 4);
        state.update(&txn_batch(0, 2, 2), 6, 6);
        let mut other = txn_batch(0, 0, 0);
        other.producer_id = 8;
        state.update(&other, 5, 5);
        assert_eq!(state.ongoing_transactions(), vec![(3, 7), (5, 8)]);
        assert_eq!(state.last_stable_offset(10), 3);
        assert_eq!(
            state.last_stable_offset(2),
            2,
            "never past the high watermark"
        );
        assert_eq!(
            state.check(&batch(0, 3, 3)),
            Err(ErrorCode::InvalidTxnState),
            "a plain batch inside an open transaction"
        );
        assert_eq!(state.check_marker(7, 0, 0), Ok(()));
        let done = state.apply_marker(7, 0, false, 4, 7, 1_000);
        assert_eq!(
            done,
            CompletedTxn {
                producer_id: 7,
                first_offset: 3,
                last_offset: 7,
                is_aborted: true,
                last_stable_offset: 5,
            }
        );
        assert_eq!(state.last_stable_offset(10), 5);
        assert_eq!(state.check(&batch(0, 3, 3)), Ok(SequenceCheck::Append));
        assert_eq!(
            state.check_marker(7, 0, 3),
            Err(ErrorCode::TransactionCoordinatorFenced)
        );
        let last = state.apply_marker(8, 0, true, 4, 8, 1_000);
        assert_eq!((last.first_offset, last.last_stable_offset), (5, 9));
        assert_eq!(state.last_stable_offset(10), 10);
    }

    #[test]
    fn markers_fence_older_epochs_and_start_new_ones() {
        let mut state = ProducerStateManager::default();
        state.update(&txn_batch(2, 0, 0), 0, 0);
        assert_eq!(state.check_marker(7, 1, 0), Err(ErrorCode::ProducerFenced));
        // The coordinator fences the producer: an abort with the bumped epoch.
        let done = state.apply_marker(7, 3, false, 0, 1, 1_000);
        assert_eq!((done.first_offset, done.is_aborted), (0, true));
        assert_eq!(
            state.check(&txn_batch(2, 1, 1)),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(state.check(&txn_batch(3, 0, 0)), Ok(SequenceCheck::Append));
        // A marker with no transaction open completes an empty one at its own offset.
        let empty = state.apply_marker(9, 0, true, 0, 5, 1_000);
        assert_eq!((empty.first_offset, empty.last_offset), (5, 5));
    }

    #[test]
    fn snapshots_keep_open_transactions_and_coordinator_epochs() {
        let mut state = ProducerStateManager::default();
        state.update(&txn_batch(0, 0, 1), 3, 4);
        state.apply_marker(5, 2, true, 6, 9, 1_000);
        let bytes = state.encode_snapshot();
        assert_eq!(bytes.len(), 6 + 4 + 2 * 46);
        // Producer 5 has no batch: one entry with sequence and offsets -1.
        let entry5 = &bytes[10..56];
        assert_eq!(&entry5[0..8], &5i64.to_be_bytes());
        assert_eq!(&entry5[10..14], &(-1i32).to_be_bytes());
        assert_eq!(&entry5[14..22], &(-1i64).to_be_bytes());
        assert_eq!(&entry5[34..38], &6i32.to_be_bytes());
        assert_eq!(&entry5[38..46], &(-1i64).to_be_bytes());
        // Producer 7: CurrentTxnFirstOffset 3.
        let entry7 = &bytes[56..102];
        assert_eq!(&entry7[38..46], &3i64.to_be_bytes());
        let loaded = ProducerStateManager::decode_snapshot(&bytes).unwrap();
        assert_eq!(loaded.ongoing_transactions(), vec![(3, 7)]);
        assert_eq!(loaded.describe(), state.describe());
        assert_eq!(
            loaded.check(&txn_batch(0, 0, 1)),
            Ok(SequenceCheck::Duplicate {
                first_offset: 3,
                last_offset: 4
            })
        );
        assert_eq!(
            loaded.check_marker(5, 2, 5),
            Err(ErrorCode::TransactionCoordinatorFenced)
        );
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut state = ProducerStateManager::default();
        let batch = |producer_id: i64, max_timestamp: i64, is_transactional: bool| ProducerBatch {
            producer_id,
            producer_epoch: 0,
            first_sequence: 0,
            last_sequence: 0,
            max_timestamp,
            is_transactional,
        };
        state.update(&batch(1, 1_000, false), 0, 0);
        state.update(&batch(2, 5_000, false), 1, 1);
        state.update(&batch(3, 1_000, true), 2, 2);
        // Producer 4 is known from a marker only: the marker's time counts.
        state.apply_marker(4, 0, true, 0, 3, 4_000);
        assert_eq!(state.remove_expired(10_500, 10_000), 0);
        assert_eq!(state.remove_expired(11_000, 10_000), 1, "producer 1");
        assert_eq!(
            state.remove_expired(100_000, 10_000),
            2,
            "producers 2 and 4"
        );
        // An open transaction keeps its producer whatever its age.
        assert_eq!(state.producer_count(), 1);
        assert!(state.has_open_txn(3));
        state.apply_marker(3, 0, true, 0, 4, 100_000);
        assert_eq!(state.remove_expired(109_999, 10_000), 0);
        assert_eq!(state.remove_expired(110_000, 10_000), 1);
        assert_eq!(state.producer_count(), 0);
    }

    #[test]
    fn a_marker_only_producer_keeps_its_timestamp_through_a_snapshot() {
        let mut state = ProducerStateManager::default();
        state.apply_marker(9, 2, false, 5, 10, 123_456);
        let restored = ProducerStateManager::decode_snapshot(&state.encode_snapshot()).unwrap();
        assert_eq!(restored.describe()[0].last_timestamp, 123_456);
        assert_eq!(restored.describe()[0].producer_epoch, 2);
    }
}
