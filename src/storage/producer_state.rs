//! Idempotent-producer state of one partition (Kafka's `ProducerStateManager`): for each producer
//! id, its epoch and the sequence ranges and offsets of its last five batches.
//!
//! The writer thread checks every batch that carries a producer id before appending it: a retry of
//! one of the last five batches is answered with its original offsets and not appended again; a
//! sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an epoch older than the producer's current one is
//! INVALID_PRODUCER_EPOCH. The state is rebuilt from the log at start-up, so it survives restarts.

use crate::protocol::error_code::ErrorCode;
use std::collections::{HashMap, VecDeque};

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
}

/// Where a remembered batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: i32,
    last_sequence: i32,
    first_offset: i64,
    last_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
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
            .or_insert_with(|| ProducerEntry {
                epoch: batch.producer_epoch,
                batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
            });
        if batch.producer_epoch != entry.epoch {
            entry.epoch = batch.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_TO_RETAIN {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            first_offset,
            last_offset,
        });
    }

    /// The largest producer id seen, for allocating new ones after a restart.
    pub fn max_producer_id(&self) -> Option<i64> {
        self.producers.keys().copied().max()
    }

    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            producer_epoch: epoch,
            first_sequence: first,
            last_sequence: last,
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
}
