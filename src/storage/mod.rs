//! The storage layer: record batches and the partition logs that hold them, in Kafka's on-disk
//! format: segments with their offset and time indexes, producer snapshots, and the log
//! directory's checkpoint files.

pub mod checkpoint;
pub mod cleaner;
pub mod compression;
pub mod index;
pub mod log;
pub mod open_files;
pub mod producer_state;
pub mod record_batch;
pub mod segment;
pub mod txn_index;
