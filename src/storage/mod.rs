//! The storage layer: record batches and the partition logs that hold them, in Kafka's on-disk
//! format.

pub mod log;
pub mod producer_state;
pub mod record_batch;
