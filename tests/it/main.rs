//! Integration tests: each starts the real `sprat` binary on an ephemeral port in its own temporary
//! log directory and speaks the Kafka protocol to it.

mod admin;
mod alter;
mod codecrafters;
mod compaction;
mod consumer_groups;
mod faults;
mod groups;
mod harness;
mod hostile;
mod limits;
mod listeners;
mod metrics;
mod pipelining;
mod quotas;
mod sasl;
mod scale;
mod scripts;
mod storage;
mod txn_log;
