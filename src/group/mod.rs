//! Kafka's classic consumer group protocol: membership (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) and committed offsets (OffsetCommit, OffsetFetch, OffsetDelete), with this node as
//! the coordinator of every group.
//!
//! - [`state`]: one group's state machine (Kafka's `GroupMetadata` and the membership logic of
//!   `GroupCoordinator`), pure and driven by the time it is given.
//! - [`offsets`]: the records of `__consumer_offsets`, and which partition holds a group.
//! - [`consumer`]: KIP-848 consumer groups (the `consumer` protocol), side by side with the
//!   classic ones; [`consumer_records`]: their records in `__consumer_offsets`.
//! - [`coordinator`]: locking, blocking waits, the `group-coordinator` timer thread, and offset
//!   storage through the `log-writer` thread.

pub mod consumer;
pub mod consumer_records;
pub mod coordinator;
pub mod offsets;
pub mod state;

pub use coordinator::txn_offsets::TxnOffsetCommit;
pub use coordinator::{FetchedOffsets, GroupCoordinator, GroupOverview, OffsetCommit};
pub use offsets::OffsetAndMetadata;
pub use state::{
    GroupState, GroupSummary, JoinRequest, JoinResult, LeavingMember, SyncRequest, SyncResult,
};
