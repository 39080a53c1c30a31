//! Transactions (KIP-98, KIP-360, KIP-447): the transaction coordinator of every transactional id,
//! with this node as the coordinator, and the interface between it and the partitions.
//!
//! The coordinator keeps its state in `__transaction_state` and writes COMMIT/ABORT control
//! batches through the `log-writer` ([`crate::writer::WriterCommand::WriteTxnMarkers`]); it
//! never writes a log itself.
//!
//! - [`metadata`]: one id's state, the transition table and the `__transaction_state` records.
//! - [`coordinator`]: the coordinator, its APIs' logic, start-up load and timers.

pub mod coordinator;
pub mod metadata;

pub use coordinator::TransactionCoordinator;

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
