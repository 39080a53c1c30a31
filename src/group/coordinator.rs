//! The group coordinator (Kafka's `GroupCoordinator` with its `GroupMetadataManager`): this node
//! coordinates every group.
//!
//! Each group lives behind its own lock ([`GroupHandle`]), with a condition variable that is
//! signalled after every change. A JoinGroup or SyncGroup that must wait blocks its connection
//! thread on that condition variable until its answer is filed, a timer of the group falls due (the
//! waiting thread then runs the timers itself), or its own deadline passes; it never polls. The
//! `group-coordinator` thread runs the timers of groups nobody waits on (session expiry, rebalance
//! and sync timeouts), sleeping until the earliest deadline of all groups or until a request
//! brings one forward.
//!
//! Committed offsets are records in the internal topic `__consumer_offsets` (created by the first
//! FindCoordinator or append through the `log-writer` thread, like any topic). A commit is answered only after the
//! writer has appended its batch, and the in-memory offsets change only then. A classic group's
//! metadata (GroupMetadata) is written at each generation: when the leader's assignment is
//! stored, before the leader is answered, and when the group becomes Empty; a KIP-848 group's
//! records are written after every heartbeat that changed them, before it is answered. At
//! start-up [`GroupCoordinator::load`] replays every partition of that topic, so groups come back
//! with their generation (or epochs) and members, who must heartbeat within their session
//! timeout.
//!
//! Every `offsets.retention.check.interval.ms` the `group-coordinator` thread expires offsets
//! past `offsets.retention.minutes` (Kafka's `cleanupGroupMetadata`) with tombstones, and removes
//! Empty groups left without offsets (a GroupMetadata tombstone). Offsets of deleted topics are
//! tombstoned as soon as the `log-writer` reports the deletion ([`GroupCoordinator::on_topic_deleted`]).
//!
//! Lock order: a group's `commit_lock`, then the map of groups, then a group's state. The map lock
//! is never held while waiting or doing I/O; a group's state lock is never held across an append.
//! KIP-848 groups: `consumer_log` (held across a change and its append), then the metadata
//! image's read lock, then the map of consumer groups; only `consumer_log` is held across the
//! append, because creating `__consumer_offsets` takes the metadata write lock.

use super::consumer::{ConsumerGroup, ConsumerGroupConfig, Heartbeat, HeartbeatResult};
use super::consumer_records::ConsumerGroupRecord;
use super::offsets::{
    GroupMetadataValue, OFFSET_METADATA_MAX_BYTES, OFFSETS_TOPIC_SEGMENT_BYTES, OffsetAndMetadata,
    OffsetsRecord, decode_record, group_metadata_key, group_metadata_value, offset_commit_key,
    offset_commit_value, partition_for,
};
use super::state::{
    Group, GroupConfig, GroupState, GroupSummary, JoinRequest, JoinResult, LeavingMember, Reply,
    SyncRequest, SyncResult, Ticket,
};
use crate::broker::{BrokerContext, random_uuid};
use crate::config::BrokerConfig;
use crate::controller::NewTopic;
use crate::metadata::CONSUMER_OFFSETS_TOPIC;
use crate::protocol::error_code::ErrorCode;
use crate::server::apis::now_ms;
use crate::storage::log::{Partition, TopicPartition};
use crate::storage::record_batch::{BatchHeader, Batches, Record, build_batch, decode_records};
use crate::writer::{PartitionAppend, WriterCommand};
use log::{error, info, warn};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[path = "txn_offsets.rs"]
pub mod txn_offsets;

/// How long a waiting JoinGroup or SyncGroup may outlast the group's own timers before its
/// connection thread gives up (those timers normally answer it first).
const WAIT_SLACK: Duration = Duration::from_secs(5);

/// The `group-coordinator` thread wakes at least this often, whatever the deadlines.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Kafka's `offsets.retention.check.interval.ms` default: how often offsets expire and Empty
/// groups without offsets are removed.
const DEFAULT_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;

/// How many bytes of `__consumer_offsets` are read at a time at start-up (Kafka's
/// `offsets.load.buffer.size` default).
const LOAD_BUFFER_BYTES: usize = 5 * 1024 * 1024;

/// One group, its lock, and what waiting requests sleep on.
pub struct GroupHandle {
    state: Mutex<Group>,
    /// Signalled after every change of `state`.
    changed: Condvar,
    /// Held across a commit's validation, append and cache update, and by deletions, so that
    /// the log and the in-memory offsets see a group's commits in the same order.
    commit_lock: Mutex<()>,
}

impl GroupHandle {
    fn new(group: Group) -> GroupHandle {
        GroupHandle {
            state: Mutex::new(group),
            changed: Condvar::new(),
            commit_lock: Mutex::new(()),
        }
    }
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupOverview {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// An OffsetCommit request for partitions of topics that exist.
pub struct OffsetCommit<'a> {
    pub group_id: &'a str,
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    /// -1 for a standalone commit (no group membership).
    pub generation_id: i32,
    /// (topic, partition, offset)
    pub offsets: Vec<(String, i32, OffsetAndMetadata)>,
}

/// Committed offsets by topic, each with its partitions (`None`: nothing committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<OffsetAndMetadata>)>)>;

/// Wakes the `group-coordinator` thread early when a deadline comes before the one it sleeps
/// until. The sequence number closes the race between computing deadlines and going to sleep.
#[derive(Default)]
struct Wakeup {
    state: Mutex<WakeupState>,
    condvar: Condvar,
}

#[derive(Default)]
struct WakeupState {
    sequence: u64,
    /// When the thread plans to wake; `None` while it is running.
    planned: Option<Instant>,
}

impl Wakeup {
    fn poke_if_before(&self, deadline: Instant) {
        let mut state = self.state.lock();
        if state.planned.is_none_or(|planned| deadline < planned) {
            state.sequence += 1;
            self.condvar.notify_one();
        }
    }

    fn sequence(&self) -> u64 {
        self.state.lock().sequence
    }

    /// Sleeps until `wake`, or until a poke newer than `seen`.
    fn sleep_until(&self, seen: u64, wake: Instant) {
        let mut state = self.state.lock();
        state.planned = Some(wake);
        while state.sequence == seen {
            if self.condvar.wait_until(&mut state, wake).timed_out() {
                break;
            }
        }
        state.planned = None;
    }
}

/// The coordinator of every group. Shared by all connection threads.
pub struct GroupCoordinator {
    config: GroupConfig,
    /// The longest a JoinGroup or SyncGroup waits (`connections.max.idle.ms`): Kafka's selector
    /// expires a connection that long without activity, whatever rebalance timeout a member
    /// asked for, so no connection thread waits longer.
    max_request_wait: Duration,
    offsets_topic_num_partitions: i32,
    groups: Mutex<HashMap<String, Arc<GroupHandle>>>,
    /// KIP-848 consumer groups, by id (a group id is either classic or consumer).
    consumer_groups: Mutex<HashMap<String, ConsumerGroup>>,
    consumer_config: ConsumerGroupConfig,
    /// Held across a KIP-848 heartbeat's change and the append of its records, so that the log
    /// sees the changes of consumer groups in the order they were made.
    consumer_log: Mutex<()>,
    timer: Wakeup,
    last_cleanup: Mutex<Instant>,
    /// Offsets of transactions not yet ended (see [`txn_offsets`]).
    txn_offsets: txn_offsets::TxnOffsets,
    /// `offsets.retention.minutes` in ms (`sprat.offsets.retention.ms`, for tests, wins).
    offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    retention_check_interval: Duration,
    /// Topics the `log-writer` deleted whose offsets still need tombstones.
    deleted_topics: Mutex<Vec<String>>,
    /// The broker, for appends made outside a request (timers, retention); set once it exists.
    context: OnceLock<Weak<BrokerContext>>,
}

impl GroupCoordinator {
    pub fn new(config: &BrokerConfig) -> GroupCoordinator {
        GroupCoordinator {
            config: GroupConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            },
            max_request_wait: Duration::from_millis(config.connections_max_idle_ms),
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            groups: Mutex::new(HashMap::new()),
            consumer_groups: Mutex::new(HashMap::new()),
            consumer_config: ConsumerGroupConfig::from_broker(config),
            consumer_log: Mutex::new(()),
            timer: Wakeup::default(),
            last_cleanup: Mutex::new(Instant::now()),
            txn_offsets: txn_offsets::TxnOffsets::default(),
            offsets_retention_ms: config
                .get("sprat.offsets.retention.ms")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|&ms| ms > 0)
                .unwrap_or(
                    config
                        .offsets_retention_minutes
                        .max(1)
                        .saturating_mul(60_000),
                ),
            retention_check_interval: Duration::from_millis(
                config
                    .get("offsets.retention.check.interval.ms")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|&ms| ms > 0)
                    .unwrap_or(DEFAULT_RETENTION_CHECK_INTERVAL_MS),
            ),
            deleted_topics: Mutex::new(Vec::new()),
            context: OnceLock::new(),
        }
    }

    /// Gives the coordinator the broker it writes through outside requests (timers, retention,
    /// deleted topics). Called once, when the broker context exists.
    pub fn attach(&self, ctx: &Arc<BrokerContext>) {
        let _ = self.context.set(Arc::downgrade(ctx));
    }

    fn context(&self) -> Option<Arc<BrokerContext>> {
        self.context.get().and_then(Weak::upgrade)
    }

    /// Kafka's `onPartitionsDeleted`, called by the `log-writer` thread after it deleted a topic:
    /// the topic's committed offsets get tombstones, written by the `group-coordinator` thread
    /// (the writer cannot wait on its own appends).
    pub fn on_topic_deleted(&self, topic: &str) {
        self.deleted_topics.lock().push(topic.to_string());
        self.timer.poke_if_before(Instant::now());
    }

    /// Writes a classic group's GroupMetadata record if one is due (see [`Group::take_store_due`]).
    /// Taken under the group's `commit_lock`, so that records reach the log in the order of the
    /// states they describe. A failed append is logged: the group stays as it is in memory.
    fn persist(&self, handle: &GroupHandle) {
        let Some(ctx) = self.context() else {
            return;
        };
        let _commits = handle.commit_lock.lock();
        let (group_id, value) = {
            let mut group = handle.state.lock();
            if !group.take_store_due() {
                return;
            }
            let now = now_ms();
            if group.state() == GroupState::Empty {
                group.empty_since_ms = Some(now);
            }
            (group.group_id.clone(), group.metadata_value(now))
        };
        let record = Record {
            key: Some(group_metadata_key(&group_id)),
            value: Some(group_metadata_value(&value)),
            ..Record::default()
        };
        if let Err(code) = self.append(&ctx, &group_id, &[record]) {
            error!(
                "could not store generation {} of group {group_id}: {code:?}",
                value.generation
            );
        }
    }

    /// Starts the `group-coordinator` thread, which ends once the coordinator is dropped.
    pub fn start_expiration_thread(self: &Arc<Self>) -> io::Result<JoinHandle<()>> {
        let coordinator = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("group-coordinator".into())
            .spawn(move || run_expiration(coordinator))
    }

    fn group(&self, group_id: &str) -> Option<Arc<GroupHandle>> {
        self.groups.lock().get(group_id).cloned()
    }

    fn group_or_create(&self, group_id: &str) -> Arc<GroupHandle> {
        self.groups
            .lock()
            .entry(group_id.to_string())
            .or_insert_with(|| Arc::new(GroupHandle::new(Group::new(group_id, self.config))))
            .clone()
    }

    /// Wakes the waiters of a group after a change, and the timer thread if the group's next
    /// deadline comes sooner than it planned.
    fn changed(&self, handle: &GroupHandle, group: &Group) {
        handle.changed.notify_all();
        if let Some(deadline) = group.next_deadline() {
            self.timer.poke_if_before(deadline);
        }
    }

    /// Blocks until the answer for `ticket` is filed or `cap` passes, running the group's timers
    /// whenever one falls due.
    fn wait<T>(
        &self,
        handle: &GroupHandle,
        mut group: MutexGuard<'_, Group>,
        ticket: Ticket,
        cap: Instant,
        take: fn(&mut Group, Ticket) -> Option<T>,
        abandon: fn(&mut Group, Ticket) -> T,
    ) -> T {
        loop {
            if let Some(result) = take(&mut group, ticket) {
                return result;
            }
            let now = Instant::now();
            if now >= cap {
                warn!(
                    "group {}: a request waited {WAIT_SLACK:?} past the group's timers, or \
                     connections.max.idle.ms; giving up",
                    group.group_id
                );
                let result = abandon(&mut group, ticket);
                self.changed(handle, &group);
                return result;
            }
            let wake = group.next_deadline().map_or(cap, |d| d.min(cap));
            if wake > now {
                handle.changed.wait_until(&mut group, wake);
            }
            if group.tick(Instant::now()) {
                self.changed(handle, &group);
            }
        }
    }

    // ---- Membership ---------------------------------------------------------------------------

    /// JoinGroup: blocks until the rebalance this member takes part in completes.
    pub fn join_group(&self, group_id: &str, mut request: JoinRequest) -> JoinResult {
        if group_id.is_empty() {
            return JoinResult::error(&request.member_id, ErrorCode::InvalidGroupId);
        }
        if request.session_timeout_ms < self.config.min_session_timeout_ms
            || request.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return JoinResult::error(&request.member_id, ErrorCode::InvalidSessionTimeout);
        }
        let handle = if request.member_id.is_empty() {
            self.group_or_create(group_id)
        } else {
            match self.group(group_id) {
                Some(h) => h,
                None => return JoinResult::error(&request.member_id, ErrorCode::UnknownMemberId),
            }
        };
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&request.client_id);
        request.new_member_id = format!("{prefix}-{}", java_uuid_string());
        let rebalance_timeout_ms = request.rebalance_timeout_ms;
        let mut group = handle.state.lock();
        let now = Instant::now();
        let reply = group.join(request, now);
        self.changed(&handle, &group);
        let result = match reply {
            Reply::Ready(result) => {
                drop(group);
                result
            }
            Reply::Pending(ticket) => {
                let longest = rebalance_timeout_ms.max(group.rebalance_timeout_ms());
                let cap = (now
                    + millis(longest)
                    + millis(self.config.initial_rebalance_delay_ms)
                    + WAIT_SLACK)
                    .min(now + self.max_request_wait);
                self.wait(
                    &handle,
                    group,
                    ticket,
                    cap,
                    Group::take_join_result,
                    Group::abandon_join,
                )
            }
        };
        self.persist(&handle);
        result
    }

    /// SyncGroup: a follower blocks until the leader's assignment arrives.
    pub fn sync_group(&self, group_id: &str, request: SyncRequest) -> SyncResult {
        if group_id.is_empty() {
            return SyncResult::error(ErrorCode::InvalidGroupId);
        }
        let Some(handle) = self.group(group_id) else {
            return SyncResult::error(ErrorCode::UnknownMemberId);
        };
        let mut group = handle.state.lock();
        let now = Instant::now();
        let reply = group.sync(request, now);
        self.changed(&handle, &group);
        let result = match reply {
            Reply::Ready(result) => {
                drop(group);
                result
            }
            Reply::Pending(ticket) => {
                let cap = (now + millis(group.rebalance_timeout_ms()) + WAIT_SLACK)
                    .min(now + self.max_request_wait);
                self.wait(
                    &handle,
                    group,
                    ticket,
                    cap,
                    Group::take_sync_result,
                    Group::abandon_sync,
                )
            }
        };
        // The leader is answered once its assignment is stored, as in Kafka.
        self.persist(&handle);
        result
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> ErrorCode {
        if group_id.is_empty() {
            return ErrorCode::InvalidGroupId;
        }
        let Some(handle) = self.group(group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        let mut group = handle.state.lock();
        let error = group.heartbeat(member_id, group_instance_id, generation_id, Instant::now());
        self.changed(&handle, &group);
        error
    }

    /// LeaveGroup: one error per member, or an error for the whole request.
    pub fn leave_group(
        &self,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let Some(handle) = self.group(group_id) else {
            return Ok(vec![ErrorCode::UnknownMemberId; members.len()]);
        };
        let result = {
            let mut group = handle.state.lock();
            let result = group.leave(members, Instant::now());
            self.changed(&handle, &group);
            result
        };
        self.persist(&handle);
        result
    }

    /// Every group, sorted by id.
    pub fn list_groups(&self) -> Vec<GroupOverview> {
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let mut groups: Vec<GroupOverview> = handles
            .iter()
            .map(|h| {
                let g = h.state.lock();
                GroupOverview {
                    group_id: g.group_id.clone(),
                    protocol_type: g.protocol_type().unwrap_or("").to_string(),
                    state: g.state(),
                }
            })
            .filter(|g| g.state != GroupState::Dead)
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups
    }

    /// ConsumerGroupHeartbeat: refused for a group id that a classic group with members uses.
    /// The group's records are appended before the answer, with no lock but `consumer_log`
    /// held (creating `__consumer_offsets` needs the metadata lock).
    pub fn consumer_heartbeat(&self, ctx: &BrokerContext, h: Heartbeat) -> HeartbeatResult {
        if let Some(classic) = self.group(&h.group_id)
            && !matches!(
                classic.state.lock().state(),
                GroupState::Empty | GroupState::Dead
            )
        {
            return HeartbeatResult {
                error: Some((
                    ErrorCode::GroupIdNotFound,
                    format!("Group {} is not a consumer group.", h.group_id),
                )),
                ..HeartbeatResult::default()
            };
        }
        let _log = self.consumer_log.lock();
        let group_id = h.group_id.clone();
        let (result, records) = {
            let image = ctx.metadata.read();
            let mut groups = self.consumer_groups.lock();
            let group = groups.entry(group_id.clone()).or_default();
            let before = group.records(&group_id);
            let mut h = h;
            if ctx.authorizer.enabled() {
                h.regex_authorized = describable_regex_topics(ctx, &image, group, &h);
            }
            let result = group.heartbeat(
                h,
                &image,
                &self.consumer_config,
                || random_uuid().to_string(),
                Instant::now(),
            );
            (result, changed_records(&before, &group.records(&group_id)))
        };
        if records.is_empty() {
            return result;
        }
        match self.append(ctx, &group_id, &records) {
            Ok(()) => result,
            // Kafka answers with the append's error; the change stays in memory, and is
            // written again with the next one.
            Err(code) => HeartbeatResult {
                error: Some((code, String::new())),
                ..HeartbeatResult::default()
            },
        }
    }

    /// Removes KIP-848 members whose session ran out, writing their tombstones.
    fn expire_consumer_groups(&self, now: Instant) {
        let _log = self.consumer_log.lock();
        let mut writes: Vec<(String, Vec<Record>)> = Vec::new();
        {
            let mut groups = self.consumer_groups.lock();
            for (group_id, group) in groups.iter_mut() {
                if !group.has_expired_members(now) {
                    continue;
                }
                let before = group.records(group_id);
                group.expire(now);
                let records = changed_records(&before, &group.records(group_id));
                if !records.is_empty() {
                    writes.push((group_id.clone(), records));
                }
            }
        }
        let Some(ctx) = self.context() else {
            return;
        };
        for (group_id, records) in writes {
            if let Err(code) = self.append(&ctx, &group_id, &records) {
                error!("could not write expired members of group {group_id}: {code:?}");
            }
        }
    }

    /// Every KIP-848 consumer group: (id, state).
    pub fn list_consumer_groups(&self) -> Vec<(String, &'static str)> {
        let mut groups: Vec<_> = self
            .consumer_groups
            .lock()
            .iter()
            .map(|(id, g)| (id.clone(), g.state()))
            .collect();
        groups.sort();
        groups
    }

    /// Runs `f` on a consumer group, if there is one with this id.
    pub fn with_consumer_group<T>(
        &self,
        group_id: &str,
        f: impl FnOnce(&ConsumerGroup) -> T,
    ) -> Option<T> {
        self.consumer_groups.lock().get(group_id).map(f)
    }

    /// Whether `group_id` is a KIP-848 consumer group.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        self.consumer_groups.lock().contains_key(group_id)
    }

    pub fn consumer_group_config(&self) -> &ConsumerGroupConfig {
        &self.consumer_config
    }

    /// DescribeGroups: a group that does not exist is reported Dead, as Kafka does.
    pub fn describe_group(&self, group_id: &str) -> GroupSummary {
        match self.group(group_id) {
            Some(handle) => handle.state.lock().summary(),
            None => GroupSummary::dead(),
        }
    }

    /// DeleteGroups: only Empty groups can be deleted; their offsets are removed with tombstones.
    pub fn delete_groups(&self, ctx: &BrokerContext, group_ids: &[String]) -> Vec<ErrorCode> {
        group_ids
            .iter()
            .map(|id| self.delete_group(ctx, id))
            .collect()
    }

    fn delete_group(&self, ctx: &BrokerContext, group_id: &str) -> ErrorCode {
        match self.delete_consumer_group(ctx, group_id) {
            // Its offsets are kept by a classic group of the same id, if it committed any.
            Ok(true) if self.group(group_id).is_none() => return ErrorCode::None,
            Ok(_) => {}
            Err(code) => return code,
        }
        let Some(handle) = self.group(group_id) else {
            return ErrorCode::GroupIdNotFound;
        };
        let _commits = handle.commit_lock.lock();
        let offsets = {
            let mut groups = self.groups.lock();
            let mut group = handle.state.lock();
            match group.state() {
                GroupState::Dead => return ErrorCode::GroupIdNotFound,
                GroupState::Empty => {}
                _ => return ErrorCode::NonEmptyGroup,
            }
            group.mark_dead();
            if groups
                .get(group_id)
                .is_some_and(|h| Arc::ptr_eq(h, &handle))
            {
                groups.remove(group_id);
            }
            handle.changed.notify_all();
            std::mem::take(&mut group.offsets)
        };
        let removed: Vec<(String, i32)> = offsets.into_keys().collect();
        // The answer waits for the tombstones: a deletion that is answered stays deleted.
        if let Err(code) = self.write_tombstones(ctx, group_id, &removed, true) {
            return code;
        }
        info!(
            "deleted group {group_id} and its {} committed offsets",
            removed.len()
        );
        ErrorCode::None
    }

    /// Deletes a KIP-848 group without members, with tombstones for all its records. Ok(false):
    /// there is no such group; NON_EMPTY_GROUP while it has members.
    fn delete_consumer_group(
        &self,
        ctx: &BrokerContext,
        group_id: &str,
    ) -> Result<bool, ErrorCode> {
        let _log = self.consumer_log.lock();
        let records = {
            let mut groups = self.consumer_groups.lock();
            let Some(group) = groups.get(group_id) else {
                return Ok(false);
            };
            if !group.members.is_empty() {
                return Err(ErrorCode::NonEmptyGroup);
            }
            let records = changed_records(&group.records(group_id), &[]);
            groups.remove(group_id);
            records
        };
        if let Err(code) = self.append(ctx, group_id, &records) {
            error!("could not write the tombstones of consumer group {group_id}: {code:?}");
        }
        Ok(true)
    }

    // ---- Offsets ------------------------------------------------------------------------------

    /// OffsetCommit: checks membership, appends the offsets to `__consumer_offsets`, and only
    /// then makes them visible. One error per offset, in order.
    pub fn commit_offsets(&self, ctx: &BrokerContext, commit: OffsetCommit<'_>) -> Vec<ErrorCode> {
        let all = |code| vec![code; commit.offsets.len()];
        if let Some(check) = self.consumer_group_commit(&commit) {
            return match check {
                Ok(()) => self.store_offsets(ctx, &self.group_or_create(commit.group_id), commit),
                Err(code) => all(code),
            };
        }
        let handle = match self.group(commit.group_id) {
            Some(h) => h,
            // A standalone consumer commits to a group that exists only for its offsets.
            None if commit.generation_id < 0 => self.group_or_create(commit.group_id),
            // Or a member of a group the coordinator no longer knows.
            None => return all(ErrorCode::IllegalGeneration),
        };
        {
            let mut group = handle.state.lock();
            let valid = group.validate_offset_commit(
                commit.member_id,
                commit.group_instance_id,
                commit.generation_id,
                Instant::now(),
            );
            self.changed(&handle, &group);
            if let Err(code) = valid {
                return all(code);
            }
        }
        self.store_offsets(ctx, &handle, commit)
    }

    /// A commit to a KIP-848 consumer group: `None` when the group is not one; otherwise whether
    /// the member and its epoch allow it (Kafka: UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH). A commit
    /// without membership (generation -1, no member id) is allowed, as for an admin.
    fn consumer_group_commit(&self, commit: &OffsetCommit<'_>) -> Option<Result<(), ErrorCode>> {
        let groups = self.consumer_groups.lock();
        let group = groups.get(commit.group_id)?;
        if commit.generation_id < 0 && commit.member_id.is_empty() {
            return Some(if group.members.is_empty() {
                Ok(())
            } else {
                Err(ErrorCode::UnknownMemberId)
            });
        }
        Some(match group.members.get(commit.member_id) {
            None => Err(ErrorCode::UnknownMemberId),
            Some(m) if m.epoch != commit.generation_id => Err(ErrorCode::StaleMemberEpoch),
            Some(_) => Ok(()),
        })
    }

    /// Writes validated offsets to `__consumer_offsets` and keeps them in the group.
    fn store_offsets(
        &self,
        ctx: &BrokerContext,
        handle: &Arc<GroupHandle>,
        commit: OffsetCommit<'_>,
    ) -> Vec<ErrorCode> {
        let _commits = handle.commit_lock.lock();
        let mut errors = Vec::with_capacity(commit.offsets.len());
        let mut records = Vec::new();
        for (topic, partition, offset) in &commit.offsets {
            if offset.metadata.len() > OFFSET_METADATA_MAX_BYTES {
                errors.push(ErrorCode::OffsetMetadataTooLarge);
                continue;
            }
            errors.push(ErrorCode::None);
            records.push(Record {
                key: Some(offset_commit_key(commit.group_id, topic, *partition)),
                value: Some(offset_commit_value(offset)),
                ..Record::default()
            });
        }
        if records.is_empty() {
            return errors;
        }
        if let Err(code) = self.append(ctx, commit.group_id, &records) {
            return errors
                .into_iter()
                .map(|e| if e == ErrorCode::None { code } else { e })
                .collect();
        }
        let mut group = handle.state.lock();
        for ((topic, partition, offset), error) in commit.offsets.into_iter().zip(&errors) {
            if *error == ErrorCode::None {
                group.offsets.insert((topic, partition), offset);
            }
        }
        errors
    }

    /// OffsetFetch for one group: the requested partitions, or every committed one when
    /// `topics` is `None`. Offsets are returned whatever the group's state, as Kafka does.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> FetchedOffsets {
        let handle = self.group(group_id);
        let group = handle.as_ref().map(|h| h.state.lock());
        let committed = |topic: &str, partition: i32| {
            group
                .as_ref()
                .and_then(|g| g.offsets.get(&(topic.to_string(), partition)).cloned())
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .iter()
                        .map(|&p| (p, committed(topic, p)))
                        .collect();
                    (topic.clone(), found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<OffsetAndMetadata>)>> =
                    BTreeMap::new();
                for ((topic, partition), offset) in group.iter().flat_map(|g| g.offsets.iter()) {
                    by_topic
                        .entry(topic.clone())
                        .or_default()
                        .push((*partition, Some(offset.clone())));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// OffsetDelete: removes committed offsets of an Empty group, or of topics a consumer group
    /// does not subscribe to. One error per partition, or an error for the whole group.
    pub fn delete_offsets(
        &self,
        ctx: &BrokerContext,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let Some(handle) = self.group(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        let _commits = handle.commit_lock.lock();
        let (errors, removed) = {
            let mut group = handle.state.lock();
            let errors: Vec<ErrorCode> = match group.state() {
                GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
                GroupState::Empty => vec![ErrorCode::None; partitions.len()],
                _ if group.is_consumer_group() => partitions
                    .iter()
                    .map(|(topic, _)| {
                        if group.is_subscribed_to(topic) {
                            ErrorCode::GroupSubscribedToTopic
                        } else {
                            ErrorCode::None
                        }
                    })
                    .collect(),
                _ => return Err(ErrorCode::NonEmptyGroup),
            };
            let mut removed = Vec::new();
            for ((topic, partition), error) in partitions.iter().zip(&errors) {
                let key = (topic.clone(), *partition);
                if *error == ErrorCode::None && group.offsets.remove(&key).is_some() {
                    removed.push(key);
                }
            }
            (errors, removed)
        };
        // The answer waits for the tombstones: offsets deleted in an answer stay deleted.
        self.write_tombstones(ctx, group_id, &removed, false)?;
        Ok(errors)
    }

    /// Appends tombstones for removed offsets, and for the group's metadata when `group_too`
    /// (the group is gone). As in Kafka, a failure is logged and not reported: the offsets are
    /// already gone from memory, and would come back only on restart.
    fn write_tombstones(
        &self,
        ctx: &BrokerContext,
        group_id: &str,
        removed: &[(String, i32)],
        group_too: bool,
    ) -> Result<(), ErrorCode> {
        let mut records: Vec<Record> = removed
            .iter()
            .map(|(topic, partition)| Record {
                key: Some(offset_commit_key(group_id, topic, *partition)),
                value: None,
                ..Record::default()
            })
            .collect();
        if group_too {
            records.push(Record {
                key: Some(group_metadata_key(group_id)),
                value: None,
                ..Record::default()
            });
        }
        if records.is_empty() {
            return Ok(());
        }
        self.append(ctx, group_id, &records).inspect_err(|code| {
            error!(
                "could not write {} offset tombstones of group {group_id}: {code:?}",
                records.len()
            );
        })
    }

    /// Appends records to the group's partition of `__consumer_offsets` and waits for the writer,
    /// mapping its errors as Kafka's `GroupMetadataManager.storeOffsets` does.
    fn append(
        &self,
        ctx: &BrokerContext,
        group_id: &str,
        records: &[Record],
    ) -> Result<(), ErrorCode> {
        let topic_partition = self.offsets_partition(ctx, group_id)?;
        let now = now_ms();
        let header = BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            ..BatchHeader::default()
        };
        self.append_batch(ctx, topic_partition, &header, records)
    }

    /// Appends one batch to a partition of `__consumer_offsets` and waits for the writer.
    fn append_batch(
        &self,
        ctx: &BrokerContext,
        topic_partition: TopicPartition,
        header: &BatchHeader,
        records: &[Record],
    ) -> Result<(), ErrorCode> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let command = WriterCommand::Append {
            partitions: vec![PartitionAppend {
                topic_partition,
                batches: build_batch(header, records),
            }],
            reply: tx,
        };
        ctx.writer
            .send(command)
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        let results = rx.recv().map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err(code)) => Err(match code {
                ErrorCode::UnknownTopicOrPartition
                | ErrorCode::NotEnoughReplicas
                | ErrorCode::NotEnoughReplicasAfterAppend => ErrorCode::CoordinatorNotAvailable,
                ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => {
                    ErrorCode::NotCoordinator
                }
                ErrorCode::MessageTooLarge
                | ErrorCode::RecordListTooLarge
                | ErrorCode::InvalidFetchSize => ErrorCode::InvalidCommitOffsetSize,
                other => other,
            }),
            None => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet (Kafka's FindCoordinator does). A
    /// failure is logged; the first append tries again.
    pub fn ensure_offsets_topic(&self, ctx: &BrokerContext) {
        if ctx.topic(CONSUMER_OFFSETS_TOPIC).is_none() {
            let _ = self.create_offsets_topic(ctx);
        }
    }

    /// The partition of `__consumer_offsets` that holds `group_id`, creating the topic first if
    /// needed. An existing topic's partition count wins over `offsets.topic.num.partitions`, as
    /// in Kafka, so that groups do not move if the setting changes.
    fn offsets_partition(
        &self,
        ctx: &BrokerContext,
        group_id: &str,
    ) -> Result<TopicPartition, ErrorCode> {
        let count = match ctx.topic(CONSUMER_OFFSETS_TOPIC) {
            Some(topic) => topic.partitions.len() as i32,
            None => self.create_offsets_topic(ctx)?,
        };
        if count <= 0 {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        Ok(TopicPartition::new(
            CONSUMER_OFFSETS_TOPIC,
            partition_for(group_id, count),
        ))
    }

    /// Creates `__consumer_offsets` with Kafka's settings for it: compacted, producer
    /// compression, `offsets.topic.segment.bytes` (100 MiB) segments. Returns its partition
    /// count.
    fn create_offsets_topic(&self, ctx: &BrokerContext) -> Result<i32, ErrorCode> {
        let segment_bytes = ctx
            .config
            .get("offsets.topic.segment.bytes")
            .map(str::trim)
            .filter(|v| v.parse::<i32>().is_ok_and(|b| b >= 14))
            .unwrap_or(OFFSETS_TOPIC_SEGMENT_BYTES);
        let configs = [
            ("cleanup.policy", "compact"),
            ("compression.type", "producer"),
            ("segment.bytes", segment_bytes),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let topic = NewTopic {
            name: CONSUMER_OFFSETS_TOPIC.to_string(),
            num_partitions: self.offsets_topic_num_partitions,
            configs,
        };
        crate::writer::create_internal_topic(ctx, topic)
    }

    // ---- Start-up and timers ------------------------------------------------------------------

    /// Rebuilds groups from every partition of `__consumer_offsets`, before the broker accepts
    /// connections: committed offsets, each classic group's last GroupMetadata (generation,
    /// protocol, leader, members) and each KIP-848 group's records. Restored members must
    /// heartbeat within their session timeout, as after Kafka loads a group.
    pub fn load(&self, partitions: &HashMap<TopicPartition, Arc<Partition>>) -> io::Result<()> {
        let mut logs: Vec<&Arc<Partition>> = partitions
            .iter()
            .filter(|(tp, _)| tp.topic == CONSUMER_OFFSETS_TOPIC)
            .map(|(_, p)| p)
            .collect();
        logs.sort_by_key(|p| p.topic_partition.partition);
        let mut txn_load = txn_offsets::TxnOffsetsLoad::default();
        let now = Instant::now();
        let mut loaded = Loaded {
            consumer_session_deadline: Some(now + millis(self.consumer_config.session_timeout_ms)),
            ..Loaded::default()
        };
        for log in &logs {
            replay_partition(log, &mut loaded, &mut txn_load)?;
        }
        self.finish_txn_offsets_load(txn_load);
        let Loaded {
            offsets,
            metadata,
            consumer_groups,
            ..
        } = loaded;
        let mut groups = self.groups.lock();
        let mut offset_count = 0;
        let mut ids: HashSet<&String> = offsets.keys().collect();
        ids.extend(
            metadata
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(id, _)| id),
        );
        for group_id in ids {
            let no_offsets = offsets.get(group_id).is_none_or(BTreeMap::is_empty);
            if no_offsets && metadata.get(group_id).is_none_or(Option::is_none) {
                continue;
            }
            let mut group = match metadata.get(group_id).and_then(Option::as_ref) {
                Some(value) => Group::restore(group_id.clone(), self.config, value, now),
                None => Group::new(group_id.clone(), self.config),
            };
            group.offsets = offsets.get(group_id).cloned().unwrap_or_default();
            offset_count += group.offsets.len();
            groups.insert(group_id.clone(), Arc::new(GroupHandle::new(group)));
        }
        let consumer_count = consumer_groups.len();
        *self.consumer_groups.lock() = consumer_groups;
        if !logs.is_empty() {
            info!(
                "loaded {offset_count} committed offsets, {} classic groups and {consumer_count} \
                 consumer groups from {} partitions of {CONSUMER_OFFSETS_TOPIC}",
                groups.len(),
                logs.len()
            );
        }
        Ok(())
    }

    /// Runs every group's due timers, the retention check when it is due, and the tombstones of
    /// deleted topics. Returns the earliest deadline still ahead.
    pub fn expire(&self, now: Instant) -> Option<Instant> {
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let mut next: Option<Instant> = None;
        for handle in &handles {
            {
                let mut group = handle.state.lock();
                if group.tick(now) {
                    handle.changed.notify_all();
                }
                if let Some(d) = group.next_deadline() {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
            if handle.state.lock().is_store_due() {
                self.persist(handle);
            }
        }
        // Forgetting a group needs to be its only holder.
        drop(handles);
        self.expire_consumer_groups(now);
        self.tombstone_deleted_topics();
        self.cleanup_group_metadata(now);
        next
    }

    /// Kafka's `onPartitionsDeleted`: tombstones for the committed offsets of deleted topics.
    fn tombstone_deleted_topics(&self) {
        let topics: HashSet<String> = std::mem::take(&mut *self.deleted_topics.lock())
            .into_iter()
            .collect();
        if topics.is_empty() {
            return;
        }
        self.remove_offsets(|group| {
            let keys = group.offsets.keys();
            keys.filter(|(topic, _)| topics.contains(topic))
                .cloned()
                .collect()
        });
    }

    /// Kafka's `cleanupGroupMetadata`, every `offsets.retention.check.interval.ms`: expires
    /// offsets past their retention, then removes Empty groups left without offsets.
    fn cleanup_group_metadata(&self, now: Instant) {
        {
            let mut last = self.last_cleanup.lock();
            if now.duration_since(*last) < self.retention_check_interval {
                return;
            }
            *last = now;
        }
        let wall_ms = now_ms();
        let consumer_topics: HashMap<String, HashSet<String>> = self
            .consumer_groups
            .lock()
            .iter()
            .map(|(id, g)| {
                let topics = g.members.values().flat_map(|m| m.subscribed.clone());
                (id.clone(), topics.collect())
            })
            .collect();
        let retention_ms = self.offsets_retention_ms;
        let expired = self.remove_offsets(|group| {
            group.expired_offsets(wall_ms, retention_ms, consumer_topics.get(&group.group_id))
        });
        if expired > 0 {
            info!("removed {expired} expired offsets");
        }
        self.forget_empty_groups();
    }

    /// Removes offsets from every group and writes their tombstones; `select` picks a group's
    /// offsets to remove. Returns how many were removed.
    fn remove_offsets(&self, select: impl Fn(&Group) -> Vec<(String, i32)>) -> usize {
        let Some(ctx) = self.context() else {
            return 0;
        };
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let mut count = 0;
        for handle in handles {
            let _commits = handle.commit_lock.lock();
            let (group_id, removed) = {
                let mut group = handle.state.lock();
                let keys = select(&group);
                for key in &keys {
                    group.offsets.remove(key);
                }
                (group.group_id.clone(), keys)
            };
            count += removed.len();
            let _ = self.write_tombstones(&ctx, &group_id, &removed, false);
        }
        count
    }

    /// Forgets groups that are Empty, hold no offsets and expect no member, with a
    /// GroupMetadata tombstone for those that had stored one; and KIP-848 groups without
    /// members or offsets, with tombstones for their records (Kafka makes both Dead).
    fn forget_empty_groups(&self) {
        let mut gone: Vec<(String, bool)> = Vec::new();
        self.groups.lock().retain(|group_id, handle| {
            // A group a request is working with right now is kept; the next round will see it.
            // Requests take their handle under the map lock, which is held here.
            if Arc::strong_count(handle) > 1 {
                return true;
            }
            let Some(group) = handle.state.try_lock() else {
                return true;
            };
            let idle = group.state() == GroupState::Empty
                && group.offsets.is_empty()
                && group.next_deadline().is_none();
            if idle {
                gone.push((group_id.clone(), group.generation_id() > 0));
            }
            !idle
        });
        let Some(ctx) = self.context() else {
            return;
        };
        for (group_id, stored) in &gone {
            if *stored {
                let _ = self.write_tombstones(&ctx, group_id, &[], true);
            }
        }
        let empty_consumer_groups: Vec<String> = self
            .consumer_groups
            .lock()
            .iter()
            .filter(|(id, g)| g.members.is_empty() && self.group(id).is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for group_id in empty_consumer_groups {
            let _ = self.delete_consumer_group(&ctx, &group_id);
        }
    }
}

/// The records to write to get from the group as `before` describes it to `after`: new or
/// changed values in `after`'s order, then tombstones for what `after` no longer has.
fn changed_records(before: &[ConsumerGroupRecord], after: &[ConsumerGroupRecord]) -> Vec<Record> {
    let old: HashMap<Vec<u8>, Option<Vec<u8>>> =
        before.iter().map(|r| (r.key(), r.value())).collect();
    let new_keys: HashSet<Vec<u8>> = after.iter().map(ConsumerGroupRecord::key).collect();
    let mut out = Vec::new();
    for record in after {
        let (key, value) = (record.key(), record.value());
        if old.get(&key) != Some(&value) {
            out.push(Record {
                key: Some(key),
                value,
                ..Record::default()
            });
        }
    }
    // Kafka's tombstone order: each member's assignment, target and metadata, then the group's
    // target epoch, subscription metadata and epoch, so that the epoch's tombstone comes last.
    let rank = |r: &ConsumerGroupRecord| match r.key_version() {
        8 => 0,
        7 => 1,
        5 => 2,
        6 => 3,
        4 => 4,
        _ => 5,
    };
    let mut gone: Vec<&ConsumerGroupRecord> = before
        .iter()
        .filter(|r| !new_keys.contains(&r.key()))
        .collect();
    gone.sort_by_key(|r| rank(r));
    out.extend(gone.into_iter().map(|r| Record {
        key: Some(r.key()),
        value: None,
        ..Record::default()
    }));
    out
}

/// The `group-coordinator` thread's loop.
fn run_expiration(coordinator: Weak<GroupCoordinator>) {
    loop {
        let Some(c) = coordinator.upgrade() else {
            return;
        };
        let seen = c.timer.sequence();
        let now = Instant::now();
        let limit = now + MAX_IDLE;
        let wake = c.expire(now).map_or(limit, |d| d.min(limit));
        c.timer.sleep_until(seen, wake);
    }
}

/// What start-up reads from `__consumer_offsets`, the latest record of each key winning.
#[derive(Default)]
struct Loaded {
    offsets: HashMap<String, BTreeMap<(String, i32), OffsetAndMetadata>>,
    /// Each classic group's last GroupMetadata value; `None` after a tombstone.
    metadata: HashMap<String, Option<GroupMetadataValue>>,
    consumer_groups: HashMap<String, ConsumerGroup>,
    /// When restored KIP-848 members must have heartbeated by.
    consumer_session_deadline: Option<Instant>,
}

/// Applies the records of one `__consumer_offsets` partition, from its log start to its high
/// watermark.
fn replay_partition(
    log: &Partition,
    loaded: &mut Loaded,
    txn_load: &mut txn_offsets::TxnOffsetsLoad,
) -> io::Result<()> {
    let tp = &log.topic_partition;
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = match log.read(offset, LOAD_BUFFER_BYTES, true)? {
            Ok(read) if !read.records.is_empty() => read,
            _ => {
                warn!("{tp}: nothing to read at offset {offset} below the high watermark {end}");
                break;
            }
        };
        let mut next = offset;
        for batch in Batches::new(&read.records) {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    warn!("{tp}: stopped loading at offset {next}: {e}");
                    break;
                }
            };
            next = next.max(batch.last_offset() + 1);
            if batch.compression_codec() != 0 {
                warn!(
                    "{tp}: skipping compressed batch at offset {}",
                    batch.base_offset()
                );
                continue;
            }
            match decode_records(&batch) {
                Ok(records) => match txn_load.batch(tp, &batch, &records) {
                    txn_offsets::LoadAction::Apply => {
                        records.iter().for_each(|r| apply(tp, r, loaded))
                    }
                    txn_offsets::LoadAction::ApplyCommitted(offsets) => {
                        txn_offsets::apply_loaded(offsets, &mut loaded.offsets)
                    }
                    txn_offsets::LoadAction::Done => {}
                },
                Err(e) => warn!(
                    "{tp}: skipping undecodable batch at offset {}: {e}",
                    batch.base_offset()
                ),
            }
        }
        if next <= offset {
            warn!("{tp}: no progress at offset {offset}; stopped loading");
            break;
        }
        offset = next;
    }
    Ok(())
}

fn apply(tp: &TopicPartition, record: &Record, loaded: &mut Loaded) {
    let Some(key) = &record.key else {
        return;
    };
    match decode_record(key, record.value.as_deref()) {
        Ok(OffsetsRecord::OffsetCommit {
            group_id,
            topic,
            partition,
            offset,
        }) => {
            let offsets = loaded.offsets.entry(group_id).or_default();
            match offset {
                Some(o) => {
                    offsets.insert((topic, partition), o);
                }
                None => {
                    offsets.remove(&(topic, partition));
                }
            }
        }
        Ok(OffsetsRecord::GroupMetadata { group_id, value }) => {
            loaded.metadata.insert(group_id, value);
        }
        Ok(OffsetsRecord::ConsumerGroup(record)) => {
            let group_id = record.group_id().to_string();
            // The group epoch's tombstone is the last record of a deleted group.
            if matches!(record, ConsumerGroupRecord::Metadata { epoch: None, .. }) {
                loaded.consumer_groups.remove(&group_id);
                return;
            }
            // Other tombstones of a group that is gone do not bring it back.
            if record.is_tombstone() && !loaded.consumer_groups.contains_key(&group_id) {
                return;
            }
            let deadline = loaded
                .consumer_session_deadline
                .unwrap_or_else(Instant::now);
            loaded
                .consumer_groups
                .entry(group_id)
                .or_default()
                .replay(record, deadline);
        }
        Ok(OffsetsRecord::Unknown { key_version }) => {
            warn!("{tp}: skipping a record with unknown key version {key_version}")
        }
        Err(e) => warn!("{tp}: skipping an undecodable record: {e}"),
    }
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// A random UUID in `java.util.UUID.toString` form, as Kafka puts in member ids.
fn java_uuid_string() -> String {
    let b = random_uuid().0;
    let hex = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// The topics a heartbeat's member regex matches that the caller's principal may Describe (none
/// without a regex): Kafka
/// resolves a regex with the authorizer of the member's request context, so a member never gets
/// partitions of a topic it could not name.
fn describable_regex_topics(
    ctx: &BrokerContext,
    image: &crate::metadata::MetadataImage,
    group: &crate::group::consumer::ConsumerGroup,
    h: &Heartbeat,
) -> Option<std::collections::BTreeSet<String>> {
    use crate::security::acl::{AclOperation, ResourceType, authorized};
    // A member without a regex has nothing to filter (and a restored one no reason to move).
    let regex = crate::group::consumer::compile_topic_regex(&group.regex_of(h)?).ok()?;
    let topics = crate::group::consumer::resolve_topic_regex(&regex, image);
    Some(
        topics
            .into_iter()
            .filter(|t| authorized(ctx, AclOperation::Describe, ResourceType::Topic, t))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator() -> Arc<GroupCoordinator> {
        let config = BrokerConfig {
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 10,
            ..BrokerConfig::default()
        };
        Arc::new(GroupCoordinator::new(&config))
    }

    fn join(member_id: &str, client_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: client_id.into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 5000,
            session_timeout_ms: 10_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), vec![])],
            require_known_member_id: true,
            new_member_id: String::new(),
        }
    }

    #[test]
    fn member_ids_look_like_kafkas() {
        let c = coordinator();
        let result = c.join_group("g", join("", "my-client"));
        assert_eq!(result.error, ErrorCode::MemberIdRequired);
        let (prefix, uuid) = result.member_id.split_at("my-client-".len());
        assert_eq!(prefix, "my-client-");
        assert_eq!(uuid.len(), 36);
        assert_eq!(
            uuid.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
    }

    #[test]
    fn join_validation() {
        let c = coordinator();
        assert_eq!(
            c.join_group("", join("", "c")).error,
            ErrorCode::InvalidGroupId
        );
        let short = JoinRequest {
            session_timeout_ms: 1,
            ..join("", "c")
        };
        assert_eq!(
            c.join_group("g", short).error,
            ErrorCode::InvalidSessionTimeout
        );
        assert_eq!(
            c.join_group("unknown", join("m-1", "c")).error,
            ErrorCode::UnknownMemberId
        );
    }

    #[test]
    fn two_threads_rebalance_together() {
        let c = coordinator();
        let first = c.join_group("g", join("", "a"));
        let a_id = first.member_id;
        let a = c.join_group("g", join(&a_id, "a"));
        assert_eq!(a.generation_id, 1);
        let sync = SyncRequest {
            member_id: a_id.clone(),
            generation_id: 1,
            ..SyncRequest::default()
        };
        assert_eq!(c.sync_group("g", sync).error, ErrorCode::None);

        let b_id = c.join_group("g", join("", "b")).member_id;
        let joiner = {
            let c = c.clone();
            let b_id = b_id.clone();
            std::thread::spawn(move || c.join_group("g", join(&b_id, "b")))
        };
        // The first member learns of the rebalance from its heartbeat and rejoins.
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.heartbeat("g", &a_id, None, 1) != ErrorCode::RebalanceInProgress {
            assert!(Instant::now() < deadline, "no rebalance started");
            std::thread::sleep(Duration::from_millis(5));
        }
        let a = c.join_group("g", join(&a_id, "a"));
        let b = joiner.join().unwrap();
        assert_eq!((a.generation_id, b.generation_id), (2, 2));
        assert_eq!(a.members.len(), 2);
        assert_eq!(b.leader_id, a_id);
    }

    #[test]
    fn fetch_offsets_of_unknown_groups_and_partitions() {
        let c = coordinator();
        let wanted = [("t".to_string(), vec![0, 1])];
        assert_eq!(
            c.fetch_offsets("nobody", Some(&wanted)),
            vec![("t".to_string(), vec![(0, None), (1, None)])]
        );
        assert!(c.fetch_offsets("nobody", None).is_empty());
        assert_eq!(c.describe_group("nobody"), GroupSummary::dead());
        assert!(c.list_groups().is_empty());
    }

    #[test]
    fn wakeup_is_not_lost() {
        let w = Wakeup::default();
        let seen = w.sequence();
        w.poke_if_before(Instant::now());
        let start = Instant::now();
        w.sleep_until(seen, start + Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
