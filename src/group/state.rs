//! One classic consumer group: Kafka's `GroupMetadata` and the membership half of its
//! `GroupCoordinator`, as a state machine that does no I/O and takes the time as an argument.
//!
//! States and transitions (Kafka's `GroupState`):
//!
//! ```text
//! Empty ──join──▶ PreparingRebalance ──all joined / timer──▶ CompletingRebalance ──leader syncs──▶ Stable
//!   ▲                  ▲    │ (no members left)                    │                               │
//!   └──────────────────┼────┘                                      └─ join, leave, expiry ─────────┤
//!                      └───────────────────────────────────────────────────────────────────────────┘
//! Empty ──DeleteGroups──▶ Dead
//! ```
//!
//! A request that must wait (JoinGroup until the rebalance completes, a follower's SyncGroup
//! until the leader's assignment arrives) gets a [`Ticket`]; whoever completes the step files
//! the answer under that ticket, and the waiting connection thread takes it
//! ([`Group::take_join_result`], [`Group::take_sync_result`]). Delayed operations (Kafka's join,
//! heartbeat and sync purgatories) are deadlines checked by [`Group::tick`];
//! [`Group::next_deadline`] says when the next one falls due.
//!
//! Not thread-safe by itself: the coordinator keeps each group behind its own lock.

use crate::group::offsets::{GroupMetadataValue, MemberMetadataValue, OffsetAndMetadata};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::consumer_protocol_subscription::{
    self as subscription, ConsumerProtocolSubscription,
};
use crate::protocol::wire::Decoder;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`: how long a new member may wait in a
/// rebalance before it is dropped. Its session timeout does not apply yet, because it cannot
/// heartbeat before it knows its generation.
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// When a rebalance cannot complete because no member rejoined (only static members that did not
/// come back), Kafka waits another rebalance timeout. sprat waits at least this long, so that a
/// zero rebalance timeout cannot make the timer fire in a loop.
const MIN_REBALANCE_RETRY: Duration = Duration::from_millis(100);

/// The protocol type of Kafka consumers, whose member metadata sprat reads to know the topics a
/// group subscribes to.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The group settings of the broker configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
}

/// Kafka's group states, with the names ListGroups and DescribeGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Identifies one waiting JoinGroup or SyncGroup request.
pub type Ticket = u64;

/// What a request gets: an answer now, or a ticket to wait on.
#[derive(Debug, PartialEq)]
pub enum Reply<T> {
    Ready(T),
    Pending(Ticket),
}

/// A JoinGroup request, as the coordinator sees it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty for a member that has no id yet.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and an id.
    pub require_known_member_id: bool,
    /// The id this member gets if it has none yet (`<client_id>-<uuid>` or
    /// `<group_instance_id>-<uuid>`); made by the caller so that this module stays deterministic.
    pub new_member_id: String,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Vec<u8>,
}

/// The answer to a JoinGroup request.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    /// Every member with its metadata for the chosen protocol, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// Kafka's `joinError`: no generation, protocol or leader.
    pub fn error(member_id: &str, error: ErrorCode) -> JoinResult {
        JoinResult {
            error,
            member_id: member_id.to_string(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup request, as the coordinator sees it.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment, (member id, assignment bytes); empty for followers.
    pub assignments: Vec<(String, Vec<u8>)>,
}

/// The answer to a SyncGroup request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Vec<u8>,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> SyncResult {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Vec::new(),
        }
    }
}

/// One member named in a LeaveGroup request.
#[derive(Debug, Clone, PartialEq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// One member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// A group as DescribeGroups reports it (Kafka's `GroupSummary`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSummary {
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol; empty unless the group is Stable.
    pub protocol_name: String,
    pub members: Vec<MemberSummary>,
}

impl GroupSummary {
    /// What DescribeGroups says about a group that does not exist.
    pub fn dead() -> GroupSummary {
        GroupSummary {
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        }
    }
}

/// Kafka's `MemberMetadata`.
#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
    /// Joined during the current rebalance and not yet part of a generation.
    is_new: bool,
    awaiting_join: Option<Ticket>,
    awaiting_sync: Option<Ticket>,
    /// When the member is dropped unless it heartbeats (or is waiting in a rebalance).
    heartbeat_deadline: Instant,
}

impl Member {
    /// Kafka's `MemberMetadata.matches`: the same protocols with the same metadata, in order.
    fn matches(&self, protocols: &[(String, Vec<u8>)]) -> bool {
        self.protocols == protocols
    }

    fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    fn metadata(&self, protocol: &str) -> &[u8] {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map_or(&[][..], |(_, m)| m.as_slice())
    }

    /// Whether the heartbeat deadline, once passed, removes the member (Kafka's
    /// `hasSatisfiedHeartbeat` negated): a member waiting in a rebalance is kept alive by its
    /// pending request, unless it is new and has waited too long.
    fn can_expire(&self) -> bool {
        self.is_new || (self.awaiting_join.is_none() && self.awaiting_sync.is_none())
    }

    fn heartbeat(&mut self, now: Instant) {
        self.heartbeat_deadline = now + millis(self.session_timeout_ms);
    }
}

/// The delayed operation that ends the PreparingRebalance state.
#[derive(Debug, Clone, Copy)]
enum RebalanceTimer {
    /// Kafka's `InitialDelayedJoin`: a group that starts from Empty waits
    /// `group.initial.rebalance.delay.ms`, again each time a new member arrived meanwhile, until
    /// the rebalance timeout is used up. It never completes early.
    InitialDelay {
        deadline: Instant,
        delay_ms: i64,
        remaining_ms: i64,
    },
    /// Kafka's `DelayedJoin`: completes when every member has rejoined, or at the deadline.
    Join { deadline: Instant },
}

impl RebalanceTimer {
    fn deadline(&self) -> Instant {
        match *self {
            RebalanceTimer::InitialDelay { deadline, .. } | RebalanceTimer::Join { deadline } => {
                deadline
            }
        }
    }
}

/// One consumer group: membership, generation, and committed offsets.
#[derive(Debug)]
pub struct Group {
    pub group_id: String,
    config: GroupConfig,
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    /// In the order they joined.
    members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, each with the deadline to use it by.
    pending_members: HashMap<String, Instant>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    /// When members still in `pending_sync` are removed (Kafka's `DelayedSync`).
    sync_deadline: Option<Instant>,
    rebalance_timer: Option<RebalanceTimer>,
    /// A new member joined while the initial delay ran (Kafka's `newMemberAdded`).
    new_member_added: bool,
    /// Topics the members subscribe to, when the group uses the consumer protocol and every
    /// member's subscription could be read.
    subscribed_topics: Option<HashSet<String>>,
    next_ticket: Ticket,
    join_results: HashMap<Ticket, JoinResult>,
    sync_results: HashMap<Ticket, SyncResult>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), OffsetAndMetadata>,
    /// The group reached a point where Kafka stores its metadata (a leader's assignment, the
    /// group became Empty); the coordinator writes a GroupMetadata record and clears it.
    store_due: bool,
    /// Wall-clock ms at which the group became Empty, when known: offsets retention of an Empty
    /// group counts from then (Kafka's `currentStateTimestamp`). Kept by the coordinator.
    pub empty_since_ms: Option<i64>,
}

fn millis(ms: impl Into<i64>) -> Duration {
    Duration::from_millis(ms.into().max(0) as u64)
}

impl Group {
    /// A new group in state Empty at generation 0.
    pub fn new(group_id: impl Into<String>, config: GroupConfig) -> Group {
        Group {
            group_id: group_id.into(),
            config,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: Vec::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline: None,
            rebalance_timer: None,
            new_member_added: false,
            subscribed_topics: None,
            next_ticket: 1,
            join_results: HashMap::new(),
            sync_results: HashMap::new(),
            offsets: BTreeMap::new(),
            store_due: false,
            empty_since_ms: None,
        }
    }

    /// A group rebuilt from its last GroupMetadata record, as Kafka's `GroupMetadata.loadGroup`
    /// does: Empty without members, else Stable in the stored generation. Every member must
    /// heartbeat within its session timeout from `now`, or it is removed.
    pub fn restore(
        group_id: impl Into<String>,
        config: GroupConfig,
        value: &GroupMetadataValue,
        now: Instant,
    ) -> Group {
        let mut group = Group::new(group_id, config);
        group.generation_id = value.generation;
        group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        group.protocol_name = value.protocol.clone();
        group.leader_id = value.leader.clone();
        let protocol = value.protocol.clone().unwrap_or_default();
        for m in &value.members {
            if let Some(instance) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            group.members.push(Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: if m.rebalance_timeout_ms < 0 {
                    m.session_timeout_ms
                } else {
                    m.rebalance_timeout_ms
                },
                session_timeout_ms: m.session_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription.clone())],
                assignment: m.assignment.clone(),
                is_new: false,
                awaiting_join: None,
                awaiting_sync: None,
                heartbeat_deadline: now + millis(m.session_timeout_ms),
            });
        }
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.leader_id = None;
            group.empty_since_ms = Some(value.current_state_timestamp_ms).filter(|&ts| ts >= 0);
        } else {
            group.state = GroupState::Stable;
            if group
                .leader_id
                .as_deref()
                .is_none_or(|l| !group.has_member(l))
            {
                group.leader_id = Some(group.members[0].member_id.clone());
            }
        }
        group.subscribed_topics = group.compute_subscribed_topics();
        group
    }

    pub fn is_store_due(&self) -> bool {
        self.store_due
    }

    /// Whether a GroupMetadata record is due; clears the flag.
    pub fn take_store_due(&mut self) -> bool {
        std::mem::take(&mut self.store_due)
    }

    /// The group's GroupMetadata record value, stamped `now_ms` (Kafka's `storeGroup`).
    pub fn metadata_value(&self, now_ms: i64) -> GroupMetadataValue {
        let protocol = self.protocol_name.clone();
        let chosen = protocol.as_deref().unwrap_or("");
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: protocol.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms: now_ms,
            members: self
                .members
                .iter()
                .map(|m| MemberMetadataValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(chosen).to_vec(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Kafka's `GroupMetadata.removeExpiredOffsets` (2.1+), deciding only: the offsets whose
    /// retention has run out at `now_ms`. An Empty group's offsets count from when it became
    /// Empty (else from their commit); a group without a protocol (standalone commits) counts
    /// from each commit; a Stable consumer group expires only offsets of topics it no longer
    /// subscribes to. `consumer_group_topics`: the group id belongs to a KIP-848 group, with
    /// these subscribed topics, whose offsets expire by commit time unless subscribed.
    pub fn expired_offsets(
        &self,
        now_ms: i64,
        retention_ms: i64,
        consumer_group_topics: Option<&HashSet<String>>,
    ) -> Vec<(String, i32)> {
        let expired = |base: i64| now_ms.saturating_sub(base) >= retention_ms;
        let pick = |f: &dyn Fn(&(String, i32), &OffsetAndMetadata) -> bool| {
            self.offsets
                .iter()
                .filter(|(k, o)| f(k, o))
                .map(|(k, _)| k.clone())
                .collect()
        };
        if let Some(topics) = consumer_group_topics {
            return pick(&|(t, _), o| !topics.contains(t) && expired(o.commit_timestamp_ms));
        }
        match (&self.protocol_type, self.state) {
            (Some(_), GroupState::Empty) => {
                pick(&|_, o| expired(self.empty_since_ms.unwrap_or(o.commit_timestamp_ms)))
            }
            (Some(_), GroupState::Stable) if self.is_consumer_group() => {
                match &self.subscribed_topics {
                    Some(topics) => {
                        pick(&|(t, _), o| !topics.contains(t) && expired(o.commit_timestamp_ms))
                    }
                    None => Vec::new(),
                }
            }
            (None, _) => pick(&|_, o| expired(o.commit_timestamp_ms)),
            _ => Vec::new(),
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn member_ids(&self) -> Vec<String> {
        self.members.iter().map(|m| m.member_id.clone()).collect()
    }

    pub fn has_member(&self, member_id: &str) -> bool {
        self.member_index(member_id).is_some()
    }

    /// The largest rebalance timeout of the members (Kafka's `GroupMetadata.rebalanceTimeoutMs`).
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    /// Whether the members use Kafka's consumer protocol.
    pub fn is_consumer_group(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Whether a member of the current generation subscribes to `topic`.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_some_and(|t| t.contains(topic))
    }

    /// Marks the group deleted. Only an Empty group is deleted, so no request waits on it.
    pub fn mark_dead(&mut self) {
        assert!(
            self.members.is_empty(),
            "only an empty group can be deleted"
        );
        self.state = GroupState::Dead;
        self.rebalance_timer = None;
        self.sync_deadline = None;
        self.pending_members.clear();
    }

    fn member_index(&self, member_id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.member_id == member_id)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// Kafka's `isStaticMemberFenced`: the instance id belongs to another member id.
    fn is_static_member_fenced(&self, member_id: &str, group_instance_id: Option<&str>) -> bool {
        group_instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|owner| owner != member_id)
    }

    fn ticket(&mut self) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// Kafka's `supportsProtocols`: the first member sets the protocol type; later members must
    /// share it and support at least one protocol that every current member supports.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Vec<u8>)]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.iter().all(|m| m.supports(name)))
    }

    // ---- JoinGroup ----------------------------------------------------------------------------

    /// Handles a JoinGroup request whose group id and session timeout were already validated.
    pub fn join(&mut self, request: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let reply = if request.member_id.is_empty() {
            self.join_new_member(request, now)
        } else {
            self.join_known_member(request, now)
        };
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(now);
        }
        reply
    }

    /// Kafka's `doNewMemberJoinGroup`.
    fn join_new_member(&mut self, request: JoinRequest, now: Instant) -> Reply<JoinResult> {
        if self.state == GroupState::Dead {
            return Reply::Ready(JoinResult::error("", ErrorCode::CoordinatorNotAvailable));
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return Reply::Ready(JoinResult::error("", ErrorCode::InconsistentGroupProtocol));
        }
        let new_member_id = request.new_member_id.clone();
        if let Some(instance) = &request.group_instance_id {
            if let Some(old_member_id) = self.static_members.get(instance).cloned() {
                return self.rejoin_static_member(&old_member_id, request, now);
            }
            return Reply::Pending(self.add_member_and_rebalance(new_member_id, request, now));
        }
        if request.require_known_member_id {
            let deadline = now + millis(request.session_timeout_ms);
            self.pending_members.insert(new_member_id.clone(), deadline);
            return Reply::Ready(JoinResult::error(
                &new_member_id,
                ErrorCode::MemberIdRequired,
            ));
        }
        Reply::Pending(self.add_member_and_rebalance(new_member_id, request, now))
    }

    /// Kafka's `doCurrentMemberJoinGroup`.
    fn join_known_member(&mut self, request: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let member_id = request.member_id.clone();
        let error = |code| Reply::Ready(JoinResult::error(&member_id, code));
        if self.state == GroupState::Dead {
            return error(ErrorCode::CoordinatorNotAvailable);
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return error(ErrorCode::InconsistentGroupProtocol);
        }
        if self.pending_members.contains_key(&member_id) {
            return Reply::Pending(self.add_member_and_rebalance(member_id, request, now));
        }
        let instance = request.group_instance_id.as_deref();
        if self.is_static_member_fenced(&member_id, instance) {
            return error(ErrorCode::FencedInstanceId);
        }
        let instance_unknown = instance.is_some_and(|i| !self.static_members.contains_key(i));
        let Some(index) = self.member_index(&member_id).filter(|_| !instance_unknown) else {
            return error(ErrorCode::UnknownMemberId);
        };
        let unchanged = self.members[index].matches(&request.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                Reply::Pending(self.update_member_and_rebalance(index, request, now))
            }
            // The member did not get its JoinGroup answer: give it the current generation again.
            GroupState::CompletingRebalance if unchanged => {
                Reply::Ready(self.current_generation_result(&member_id, true))
            }
            GroupState::Stable if unchanged && !self.is_leader(&member_id) => {
                Reply::Ready(self.current_generation_result(&member_id, false))
            }
            // Changed metadata, or a leader asking for a new assignment.
            GroupState::CompletingRebalance | GroupState::Stable => {
                Reply::Pending(self.update_member_and_rebalance(index, request, now))
            }
            GroupState::Empty | GroupState::Dead => error(ErrorCode::UnknownMemberId),
        }
    }

    /// A known static member (group.instance.id) comes back with no member id: it takes over the
    /// old member's place under a new id, and the old id is fenced (Kafka's
    /// `updateStaticMemberAndRebalance`).
    fn rejoin_static_member(
        &mut self,
        old_member_id: &str,
        request: JoinRequest,
        now: Instant,
    ) -> Reply<JoinResult> {
        let new_member_id = request.new_member_id.clone();
        let current_leader = self.leader_id.clone().unwrap_or_default();
        let Some(index) = self.member_index(old_member_id) else {
            // The static mapping outlived its member: treat the member as new.
            self.static_members
                .retain(|_, member| member != old_member_id);
            return Reply::Pending(self.add_member_and_rebalance(new_member_id, request, now));
        };
        let fenced = JoinResult::error(old_member_id, ErrorCode::FencedInstanceId);
        let member = &mut self.members[index];
        if let Some(t) = member.awaiting_join.take() {
            self.join_results.insert(t, fenced);
        }
        if let Some(t) = member.awaiting_sync.take() {
            self.sync_results
                .insert(t, SyncResult::error(ErrorCode::FencedInstanceId));
        }
        member.member_id = new_member_id.clone();
        member.heartbeat(now);
        if self.is_leader(old_member_id) {
            self.leader_id = Some(new_member_id.clone());
        }
        if self.pending_sync.remove(old_member_id) {
            self.pending_sync.insert(new_member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), new_member_id.clone());
        }
        let protocols_unchanged = self.members[index].matches(&request.protocols);
        match self.state {
            GroupState::Stable if protocols_unchanged => {
                let member = &mut self.members[index];
                member.rebalance_timeout_ms = request.rebalance_timeout_ms;
                member.session_timeout_ms = request.session_timeout_ms;
                // The new member id replaces the old one in the stored group, as in Kafka.
                self.store_due = true;
                // The old leader id is returned so that the new member does not compute an
                // assignment that a Stable group would not distribute.
                Reply::Ready(JoinResult {
                    leader_id: current_leader,
                    ..self.current_generation_result(&new_member_id, false)
                })
            }
            _ => Reply::Pending(self.update_member_and_rebalance(index, request, now)),
        }
    }

    /// The answer for a member of the current generation; the leader gets the member list.
    fn current_generation_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: ErrorCode::None,
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            members: if with_members && self.is_leader(member_id) {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).to_vec(),
            })
            .collect()
    }

    /// Kafka's `addMemberAndRebalance`. Returns the ticket the join waits on.
    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        request: JoinRequest,
        now: Instant,
    ) -> Ticket {
        let ticket = self.ticket();
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        match &request.group_instance_id {
            Some(instance) => {
                self.static_members
                    .insert(instance.clone(), member_id.clone());
            }
            None => {
                self.pending_members.remove(&member_id);
            }
        }
        self.members.push(Member {
            member_id,
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocols: request.protocols,
            assignment: Vec::new(),
            is_new: true,
            awaiting_join: Some(ticket),
            awaiting_sync: None,
            heartbeat_deadline: now + NEW_MEMBER_JOIN_TIMEOUT,
        });
        self.maybe_prepare_rebalance(now);
        ticket
    }

    /// Kafka's `updateMemberAndRebalance`. Returns the ticket the join waits on.
    fn update_member_and_rebalance(
        &mut self,
        index: usize,
        request: JoinRequest,
        now: Instant,
    ) -> Ticket {
        let ticket = self.ticket();
        let member = &mut self.members[index];
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        // A JoinGroup sent again while the first still waits replaces it; the first is told to
        // retry.
        if let Some(old) = member.awaiting_join.replace(ticket) {
            let id = member.member_id.clone();
            self.join_results
                .insert(old, JoinResult::error(&id, ErrorCode::RebalanceInProgress));
        }
        self.maybe_prepare_rebalance(now);
        ticket
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now);
        }
    }

    /// Kafka's `prepareRebalance`: followers waiting for an assignment are told to rejoin, and
    /// the join timer starts.
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(ErrorCode::RebalanceInProgress, now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let rebalance_timeout_ms = i64::from(self.rebalance_timeout_ms());
        self.rebalance_timer = Some(if self.state == GroupState::Empty {
            let delay_ms = i64::from(self.config.initial_rebalance_delay_ms);
            RebalanceTimer::InitialDelay {
                deadline: now + millis(delay_ms),
                delay_ms,
                remaining_ms: (rebalance_timeout_ms - delay_ms).max(0),
            }
        } else {
            RebalanceTimer::Join {
                deadline: now + millis(rebalance_timeout_ms),
            }
        });
        log::info!(
            "preparing to rebalance group {} in state {} with old generation {}",
            self.group_id,
            self.state.as_str(),
            self.generation_id
        );
        self.state = GroupState::PreparingRebalance;
        self.try_complete_join(now);
    }

    /// Kafka's `hasAllMembersJoined`.
    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// Completes the rebalance early when every member has rejoined (not during the initial
    /// delay, which always runs to its end).
    fn try_complete_join(&mut self, now: Instant) {
        if self.state == GroupState::PreparingRebalance
            && matches!(self.rebalance_timer, Some(RebalanceTimer::Join { .. }))
            && self.all_members_joined()
        {
            self.rebalance_timer = None;
            self.complete_join(now);
        }
    }

    /// Kafka's `onCompleteJoin`: drops dynamic members that did not rejoin, starts the next
    /// generation, and answers every waiting JoinGroup.
    fn complete_join(&mut self, now: Instant) {
        let not_rejoined: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove(&member_id);
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait for them to rejoin or
            // expire.
            let retry = millis(self.rebalance_timeout_ms()).max(MIN_REBALANCE_RETRY);
            self.rebalance_timer = Some(RebalanceTimer::Join {
                deadline: now + retry,
            });
            return;
        }
        self.init_next_generation();
        if self.state == GroupState::Empty {
            log::info!(
                "group {} with generation {} is now empty",
                self.group_id,
                self.generation_id
            );
            return;
        }
        log::info!(
            "stabilized group {} generation {} with {} members (protocol {})",
            self.group_id,
            self.generation_id,
            self.members.len(),
            self.protocol_name.as_deref().unwrap_or("")
        );
        let members = self.current_member_metadata();
        let leader_id = self.leader_id.clone().unwrap_or_default();
        for member in &mut self.members {
            let result = JoinResult {
                error: ErrorCode::None,
                member_id: member.member_id.clone(),
                generation_id: self.generation_id,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                leader_id: leader_id.clone(),
                members: if member.member_id == leader_id {
                    members.clone()
                } else {
                    Vec::new()
                },
            };
            if let Some(t) = member.awaiting_join.take() {
                self.join_results.insert(t, result);
            }
            member.heartbeat(now);
            member.is_new = false;
            self.pending_sync.insert(member.member_id.clone());
        }
        self.sync_deadline = Some(now + millis(self.rebalance_timeout_ms()));
    }

    /// Kafka's `maybeElectNewJoinedLeader`: if the leader did not rejoin, any member that did
    /// becomes leader. Returns false when no member rejoined.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.as_deref() else {
            return true;
        };
        if self
            .members
            .iter()
            .any(|m| m.member_id == leader && m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's `initNextGeneration`.
    fn init_next_generation(&mut self) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.state = GroupState::Empty;
            // Kafka stores an Empty group's new generation at once.
            self.store_due = true;
        } else {
            self.protocol_name = Some(self.select_protocol());
            self.state = GroupState::CompletingRebalance;
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        self.pending_sync.clear();
        self.rebalance_timer = None;
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes for
    /// the first in its own order; the most votes win, and a tie goes to the leader's preference.
    fn select_protocol(&self) -> String {
        let leader = self
            .leader_id
            .as_deref()
            .and_then(|id| self.member_index(id))
            .map_or(&self.members[0], |i| &self.members[i]);
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.iter().all(|m| m.supports(name)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in &self.members {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        candidates
            .iter()
            .find(|name| votes.get(*name).copied().unwrap_or(0) == best)
            // Unreachable while joins are checked with supports_protocols; never panic on it.
            .or(candidates.first())
            .map_or_else(
                || leader.protocols.first().map_or("", |(n, _)| n).to_string(),
                |n| n.to_string(),
            )
    }

    /// Kafka's `computeSubscribedTopics`, from the consumer protocol subscriptions.
    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if !self.is_consumer_group() {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for member in &self.members {
            topics.extend(parse_subscription(member.metadata(protocol))?.topics);
        }
        Some(topics)
    }

    /// Kafka's `GroupMetadata.remove` plus the static mapping: takes a member out, answers any
    /// request it still waits on, and moves leadership to the next member.
    fn remove(&mut self, member_id: &str) {
        let Some(index) = self.member_index(member_id) else {
            return;
        };
        let member = self.members.remove(index);
        if let Some(t) = member.awaiting_join {
            self.join_results
                .insert(t, JoinResult::error("", ErrorCode::UnknownMemberId));
        }
        if let Some(t) = member.awaiting_sync {
            self.sync_results
                .insert(t, SyncResult::error(ErrorCode::UnknownMemberId));
        }
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance) == Some(&member.member_id)
        {
            self.static_members.remove(instance);
        }
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
        if self.is_leader(member_id) {
            self.leader_id = self.members.first().map(|m| m.member_id.clone());
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    fn remove_member_and_update(&mut self, member_id: &str, now: Instant) {
        self.remove(member_id);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
        }
    }

    // ---- SyncGroup ----------------------------------------------------------------------------

    /// Handles a SyncGroup request whose group id was already validated.
    pub fn sync(&mut self, request: SyncRequest, now: Instant) -> Reply<SyncResult> {
        let error = |code| Reply::Ready(SyncResult::error(code));
        let member_id = request.member_id.as_str();
        if self.state == GroupState::Dead {
            return error(ErrorCode::CoordinatorNotAvailable);
        }
        if self.is_static_member_fenced(member_id, request.group_instance_id.as_deref()) {
            return error(ErrorCode::FencedInstanceId);
        }
        let Some(index) = self.member_index(member_id) else {
            return error(ErrorCode::UnknownMemberId);
        };
        if request.generation_id != self.generation_id {
            return error(ErrorCode::IllegalGeneration);
        }
        let type_differs = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| self.protocol_type.as_ref() != Some(t));
        let name_differs = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| self.protocol_name.as_ref() != Some(n));
        if type_differs || name_differs {
            return error(ErrorCode::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => error(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => error(ErrorCode::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                let ticket = self.ticket();
                if let Some(old) = self.members[index].awaiting_sync.replace(ticket) {
                    self.sync_results
                        .insert(old, SyncResult::error(ErrorCode::RebalanceInProgress));
                }
                self.remove_pending_sync(member_id);
                if self.is_leader(member_id) {
                    self.set_and_propagate_assignment(&request.assignments, now);
                    self.state = GroupState::Stable;
                }
                Reply::Pending(ticket)
            }
            GroupState::Stable => {
                self.remove_pending_sync(member_id);
                let member = &mut self.members[index];
                member.heartbeat(now);
                Reply::Ready(SyncResult {
                    error: ErrorCode::None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                })
            }
        }
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline = None;
        }
    }

    /// Kafka's `setAndPropagateAssignment`: members the leader left out get an empty assignment.
    fn set_and_propagate_assignment(&mut self, assignments: &[(String, Vec<u8>)], now: Instant) {
        for member in &mut self.members {
            member.assignment = assignments
                .iter()
                .rev()
                .find(|(id, _)| *id == member.member_id)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
        }
        self.store_due = true;
        self.propagate_assignment(ErrorCode::None, now);
    }

    /// Kafka's `resetAndPropagateAssignmentError`.
    fn reset_and_propagate_assignment_error(&mut self, error: ErrorCode, now: Instant) {
        for member in &mut self.members {
            member.assignment.clear();
        }
        self.propagate_assignment(error, now);
    }

    fn propagate_assignment(&mut self, error: ErrorCode, now: Instant) {
        for member in &mut self.members {
            let Some(t) = member.awaiting_sync.take() else {
                continue;
            };
            let result = if error == ErrorCode::None {
                SyncResult {
                    error,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                }
            } else {
                SyncResult::error(error)
            };
            self.sync_results.insert(t, result);
            // The member waited instead of heartbeating; its session starts again now.
            member.heartbeat(now);
        }
    }

    // ---- Heartbeat, LeaveGroup, OffsetCommit checks -------------------------------------------

    /// Handles a Heartbeat request whose group id was already validated.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> ErrorCode {
        if self.state == GroupState::Dead {
            return ErrorCode::CoordinatorNotAvailable;
        }
        if self.is_static_member_fenced(member_id, group_instance_id) {
            return ErrorCode::FencedInstanceId;
        }
        let Some(index) = self.member_index(member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if generation_id != self.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => ErrorCode::UnknownMemberId,
            // A member may heartbeat as soon as it has its JoinGroup answer.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members[index].heartbeat(now);
                ErrorCode::None
            }
            GroupState::PreparingRebalance => {
                self.members[index].heartbeat(now);
                ErrorCode::RebalanceInProgress
            }
        }
    }

    /// Handles a LeaveGroup request: one error per member, or an error for the whole group.
    pub fn leave(
        &mut self,
        leaving: &[LeavingMember],
        now: Instant,
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        Ok(leaving.iter().map(|m| self.leave_one(m, now)).collect())
    }

    fn leave_one(&mut self, leaving: &LeavingMember, now: Instant) -> ErrorCode {
        let member_id = leaving.member_id.as_str();
        let instance = leaving.group_instance_id.as_deref();
        if !member_id.is_empty() && self.is_static_member_fenced(member_id, instance) {
            return ErrorCode::FencedInstanceId;
        }
        if self.pending_members.remove(member_id).is_some() {
            self.try_complete_join(now);
            return ErrorCode::None;
        }
        let static_member = instance.and_then(|i| self.static_members.get(i)).cloned();
        match static_member {
            Some(id) => self.remove_member_and_update(&id, now),
            None if self.has_member(member_id) => self.remove_member_and_update(member_id, now),
            None => return ErrorCode::UnknownMemberId,
        }
        ErrorCode::None
    }

    /// Kafka's `validateOffsetCommit` and the state check of `doCommitOffsets`. Generation -1
    /// with no member id is a standalone commit, allowed only while the group is Empty.
    pub fn validate_offset_commit(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: Instant,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let from_member =
            generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some();
        if from_member {
            if self.is_static_member_fenced(member_id, group_instance_id) {
                return Err(ErrorCode::FencedInstanceId);
            }
            if !self.has_member(member_id) {
                return Err(ErrorCode::UnknownMemberId);
            }
            if generation_id != self.generation_id {
                return Err(ErrorCode::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(ErrorCode::UnknownMemberId);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(ErrorCode::RebalanceInProgress),
            GroupState::Stable | GroupState::PreparingRebalance => {
                // A commit counts as a sign of life, as in Kafka.
                if let Some(i) = self.member_index(member_id) {
                    self.members[i].heartbeat(now);
                }
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Ok(()),
        }
    }

    // ---- Waiting requests ---------------------------------------------------------------------

    /// The answer filed for a waiting JoinGroup, if it is there.
    pub fn take_join_result(&mut self, ticket: Ticket) -> Option<JoinResult> {
        self.join_results.remove(&ticket)
    }

    /// Gives up a waiting JoinGroup (its connection thread waited as long as it may). The member
    /// stays; if the rebalance completes without it, it is dropped like any member that did not
    /// rejoin.
    pub fn abandon_join(&mut self, ticket: Ticket) -> JoinResult {
        if let Some(result) = self.join_results.remove(&ticket) {
            return result;
        }
        let mut member_id = String::new();
        for m in &mut self.members {
            if m.awaiting_join == Some(ticket) {
                m.awaiting_join = None;
                member_id = m.member_id.clone();
            }
        }
        JoinResult::error(&member_id, ErrorCode::RebalanceInProgress)
    }

    pub fn take_sync_result(&mut self, ticket: Ticket) -> Option<SyncResult> {
        self.sync_results.remove(&ticket)
    }

    /// Gives up a waiting SyncGroup.
    pub fn abandon_sync(&mut self, ticket: Ticket) -> SyncResult {
        if let Some(result) = self.sync_results.remove(&ticket) {
            return result;
        }
        for m in &mut self.members {
            if m.awaiting_sync == Some(ticket) {
                m.awaiting_sync = None;
            }
        }
        SyncResult::error(ErrorCode::RebalanceInProgress)
    }

    // ---- Timers -------------------------------------------------------------------------------

    /// The earliest deadline at which [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self
            .members
            .iter()
            .filter(|m| m.can_expire())
            .map(|m| m.heartbeat_deadline);
        let rebalance = self
            .rebalance_timer
            .filter(|_| self.state == GroupState::PreparingRebalance)
            .map(|t| t.deadline());
        members
            .chain(self.pending_members.values().copied())
            .chain(rebalance)
            .chain(self.sync_deadline)
            .min()
    }

    /// Runs every delayed operation that is due at `now`: expired pending members and sessions,
    /// the rebalance timer and the sync timer. Returns whether anything changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let mut changed = false;
        // Each pass consumes at least one due deadline, and new deadlines lie in the future
        // (or are a zero initial delay, which is consumed without re-arming), so this ends.
        while self.tick_once(now) {
            changed = true;
        }
        changed
    }

    fn tick_once(&mut self, now: Instant) -> bool {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired_pending {
            self.pending_members.remove(id);
        }
        if !expired_pending.is_empty() {
            self.try_complete_join(now);
            return true;
        }
        if let Some(id) = self
            .members
            .iter()
            .find(|m| m.can_expire() && m.heartbeat_deadline <= now)
            .map(|m| m.member_id.clone())
        {
            log::info!(
                "member {id} in group {} has failed (session timeout), removing it",
                self.group_id
            );
            self.remove_member_and_update(&id, now);
            return true;
        }
        if self.state == GroupState::PreparingRebalance
            && let Some(timer) = self.rebalance_timer
            && timer.deadline() <= now
        {
            self.on_rebalance_timer(timer, now);
            return true;
        }
        if let Some(deadline) = self.sync_deadline
            && deadline <= now
        {
            self.on_sync_timeout(now);
            return true;
        }
        false
    }

    /// The rebalance timer fired: extend the initial delay if members keep arriving, else
    /// complete the join.
    fn on_rebalance_timer(&mut self, timer: RebalanceTimer, now: Instant) {
        if let RebalanceTimer::InitialDelay {
            delay_ms,
            remaining_ms,
            ..
        } = timer
            && self.new_member_added
            && remaining_ms != 0
        {
            self.new_member_added = false;
            let configured = i64::from(self.config.initial_rebalance_delay_ms);
            let delay = configured.min(remaining_ms);
            self.rebalance_timer = Some(RebalanceTimer::InitialDelay {
                deadline: now + millis(delay),
                delay_ms: delay,
                remaining_ms: (remaining_ms - delay_ms).max(0),
            });
            return;
        }
        self.rebalance_timer = None;
        self.complete_join(now);
    }

    /// Kafka's `onExpirePendingSync`: members that never sent SyncGroup are removed and the
    /// group rebalances without them.
    fn on_sync_timeout(&mut self, now: Instant) {
        self.sync_deadline = None;
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) || self.pending_sync.is_empty()
        {
            return;
        }
        let missing: Vec<String> = self.pending_sync.drain().collect();
        log::info!(
            "group {}: members {missing:?} did not sync in time, removing them",
            self.group_id
        );
        for id in &missing {
            self.remove(id);
        }
        self.prepare_rebalance(now);
    }

    // ---- Describe -----------------------------------------------------------------------------

    /// Kafka's `GroupMetadata.summary`: member metadata and assignments only when Stable.
    pub fn summary(&self) -> GroupSummary {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupSummary {
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            members: self
                .members
                .iter()
                .map(|m| MemberSummary {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).to_vec()
                    } else {
                        Vec::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            protocol_name: protocol,
        }
    }
}

/// Reads a `ConsumerProtocolSubscription` (an int16 version, then the struct). Versions newer
/// than sprat knows are read as the newest, as Kafka's `ConsumerProtocol` does.
pub fn parse_subscription(bytes: &[u8]) -> Option<ConsumerProtocolSubscription> {
    let mut d = Decoder::new(bytes);
    let version = d.i16().ok()?;
    if version < 0 {
        return None;
    }
    ConsumerProtocolSubscription::decode(&mut d, version.min(subscription::MAX_VERSION)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: GroupConfig = GroupConfig {
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms: 0,
    };

    fn join_request(member_id: &str, new_id: &str) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            group_instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 5000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), vec![1]), ("roundrobin".into(), vec![2])],
            require_known_member_id: false,
            new_member_id: new_id.into(),
        }
    }

    fn ready<T: std::fmt::Debug>(reply: Reply<T>) -> T {
        match reply {
            Reply::Ready(r) => r,
            Reply::Pending(t) => panic!("expected an answer, got ticket {t}"),
        }
    }

    fn pending<T: std::fmt::Debug>(reply: Reply<T>) -> Ticket {
        match reply {
            Reply::Pending(t) => t,
            Reply::Ready(r) => panic!("expected a ticket, got {r:?}"),
        }
    }

    /// Joins one member and lets the (zero) initial delay run out: generation 1, CompletingRebalance.
    fn group_with_leader(now: Instant) -> (Group, JoinResult) {
        let mut g = Group::new("g", CONFIG);
        let t = pending(g.join(join_request("", "a"), now));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert!(
            g.take_join_result(t).is_none(),
            "the initial delay runs first"
        );
        assert!(g.tick(now));
        let result = g.take_join_result(t).expect("join completed");
        (g, result)
    }

    #[test]
    fn single_member_join_sync_heartbeat_leave() {
        let now = Instant::now();
        let (mut g, joined) = group_with_leader(now);
        assert_eq!(joined.error, ErrorCode::None);
        assert_eq!(joined.generation_id, 1);
        assert_eq!(joined.leader_id, "a");
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        assert_eq!(joined.members.len(), 1);
        assert_eq!(joined.members[0].metadata, vec![1]);
        assert_eq!(g.state(), GroupState::CompletingRebalance);

        let sync = SyncRequest {
            member_id: "a".into(),
            generation_id: 1,
            assignments: vec![("a".into(), vec![9, 9])],
            ..SyncRequest::default()
        };
        let t = pending(g.sync(sync, now));
        let synced = g.take_sync_result(t).unwrap();
        assert_eq!(synced.error, ErrorCode::None);
        assert_eq!(synced.assignment, vec![9, 9]);
        assert_eq!(g.state(), GroupState::Stable);

        assert_eq!(g.heartbeat("a", None, 1, now), ErrorCode::None);
        assert_eq!(g.heartbeat("a", None, 2, now), ErrorCode::IllegalGeneration);
        assert_eq!(g.heartbeat("x", None, 1, now), ErrorCode::UnknownMemberId);

        let left = g.leave(
            &[LeavingMember {
                member_id: "a".into(),
                group_instance_id: None,
            }],
            now,
        );
        assert_eq!(left, Ok(vec![ErrorCode::None]));
        assert_eq!(g.state(), GroupState::Empty);
        assert_eq!(g.generation_id(), 2);
        assert_eq!(g.protocol_type(), Some("consumer"));
    }

    #[test]
    fn member_id_required_then_join() {
        let now = Instant::now();
        let mut g = Group::new("g", CONFIG);
        let first = JoinRequest {
            require_known_member_id: true,
            ..join_request("", "client-1")
        };
        let result = ready(g.join(first, now));
        assert_eq!(result.error, ErrorCode::MemberIdRequired);
        assert_eq!(result.member_id, "client-1");
        assert_eq!(g.state(), GroupState::Empty);
        let t = pending(g.join(join_request("client-1", "unused"), now));
        g.tick(now);
        let result = g.take_join_result(t).unwrap();
        assert_eq!(result.error, ErrorCode::None);
        assert_eq!(result.member_id, "client-1");
    }

    #[test]
    fn unused_pending_member_id_expires() {
        let now = Instant::now();
        let mut g = Group::new("g", CONFIG);
        let first = JoinRequest {
            require_known_member_id: true,
            ..join_request("", "client-1")
        };
        ready(g.join(first, now));
        assert_eq!(g.next_deadline(), Some(now + Duration::from_millis(5000)));
        assert!(g.tick(now + Duration::from_millis(5000)));
        assert_eq!(g.next_deadline(), None);
        let result = ready(g.join(join_request("client-1", "x"), now));
        assert_eq!(result.error, ErrorCode::UnknownMemberId);
    }

    #[test]
    fn second_member_triggers_rebalance_and_both_get_the_new_generation() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        let sync = SyncRequest {
            member_id: "a".into(),
            generation_id: 1,
            ..SyncRequest::default()
        };
        let t = pending(g.sync(sync, now));
        g.take_sync_result(t).unwrap();

        let tb = pending(g.join(join_request("", "b"), now));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(
            g.heartbeat("a", None, 1, now),
            ErrorCode::RebalanceInProgress
        );
        let ta = pending(g.join(join_request("a", "unused"), now));
        let a = g.take_join_result(ta).expect("all members joined");
        let b = g.take_join_result(tb).unwrap();
        assert_eq!(a.generation_id, 2);
        assert_eq!(b.generation_id, 2);
        assert_eq!(a.leader_id, "a");
        assert_eq!(b.leader_id, "a");
        assert_eq!(a.members.len(), 2);
        assert!(b.members.is_empty());

        // The follower syncs first and waits; the leader's assignment answers it.
        let follower = SyncRequest {
            member_id: "b".into(),
            generation_id: 2,
            ..SyncRequest::default()
        };
        let tf = pending(g.sync(follower, now));
        assert!(g.take_sync_result(tf).is_none());
        let leader = SyncRequest {
            member_id: "a".into(),
            generation_id: 2,
            assignments: vec![("a".into(), vec![1]), ("b".into(), vec![2])],
            ..SyncRequest::default()
        };
        let tl = pending(g.sync(leader, now));
        assert_eq!(g.take_sync_result(tl).unwrap().assignment, vec![1]);
        assert_eq!(g.take_sync_result(tf).unwrap().assignment, vec![2]);
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        let later = now + Duration::from_millis(100);
        let tb = pending(g.join(join_request("", "b"), later));
        assert!(g.take_join_result(tb).is_none());
        // "a" never rejoins; after the rebalance timeout (1000 ms) "b" alone forms generation 2.
        g.heartbeat("a", None, 1, later);
        let deadline = later + Duration::from_millis(1000);
        assert!(g.next_deadline().unwrap() <= deadline);
        g.tick(deadline);
        let b = g.take_join_result(tb).unwrap();
        assert_eq!(b.generation_id, 2);
        assert_eq!(b.leader_id, "b");
        assert_eq!(g.member_ids(), vec!["b".to_string()]);
    }

    #[test]
    fn session_expiry_removes_a_member() {
        let now = Instant::now();
        let mut g = Group::new("g", CONFIG);
        let short = JoinRequest {
            session_timeout_ms: 500,
            ..join_request("", "a")
        };
        let t = pending(g.join(short, now));
        g.tick(now);
        g.take_join_result(t).unwrap();
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        assert_eq!(g.next_deadline(), Some(now + Duration::from_millis(500)));
        assert!(!g.tick(now + Duration::from_millis(499)));
        assert!(g.tick(now + Duration::from_millis(500)));
        assert_eq!(g.state(), GroupState::Empty);
        assert!(g.member_ids().is_empty());
        assert_eq!(g.heartbeat("a", None, 1, now), ErrorCode::UnknownMemberId);
    }

    #[test]
    fn leader_that_never_syncs_is_removed_and_the_follower_told_to_rejoin() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        let tb = pending(g.join(join_request("", "b"), now));
        let ta = pending(g.join(join_request("a", ""), now));
        g.take_join_result(ta).unwrap();
        g.take_join_result(tb).unwrap();
        let tf = pending(g.sync(
            SyncRequest {
                member_id: "b".into(),
                generation_id: 2,
                ..SyncRequest::default()
            },
            now,
        ));
        // The sync timer is the rebalance timeout; the leader never synced.
        g.tick(now + Duration::from_millis(1000));
        let follower = g.take_sync_result(tf).unwrap();
        assert_eq!(follower.error, ErrorCode::RebalanceInProgress);
        assert_eq!(g.member_ids(), vec!["b".to_string()]);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn sync_errors() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        let sync = |member: &str, generation| SyncRequest {
            member_id: member.into(),
            generation_id: generation,
            ..SyncRequest::default()
        };
        assert_eq!(
            ready(g.sync(sync("x", 1), now)).error,
            ErrorCode::UnknownMemberId
        );
        assert_eq!(
            ready(g.sync(sync("a", 7), now)).error,
            ErrorCode::IllegalGeneration
        );
        let wrong_type = SyncRequest {
            protocol_type: Some("connect".into()),
            ..sync("a", 1)
        };
        assert_eq!(
            ready(g.sync(wrong_type, now)).error,
            ErrorCode::InconsistentGroupProtocol
        );
        let wrong_name = SyncRequest {
            protocol_name: Some("roundrobin".into()),
            ..sync("a", 1)
        };
        assert_eq!(
            ready(g.sync(wrong_name, now)).error,
            ErrorCode::InconsistentGroupProtocol
        );
        // A new member puts the group back in PreparingRebalance.
        pending(g.join(join_request("", "b"), now));
        assert_eq!(
            ready(g.sync(sync("a", 1), now)).error,
            ErrorCode::RebalanceInProgress
        );
    }

    #[test]
    fn inconsistent_protocols_are_refused() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        let other_type = JoinRequest {
            protocol_type: "connect".into(),
            ..join_request("", "b")
        };
        assert_eq!(
            ready(g.join(other_type, now)).error,
            ErrorCode::InconsistentGroupProtocol
        );
        let no_common = JoinRequest {
            protocols: vec![("sticky".into(), vec![])],
            ..join_request("", "b")
        };
        assert_eq!(
            ready(g.join(no_common, now)).error,
            ErrorCode::InconsistentGroupProtocol
        );
        let mut empty = Group::new("e", CONFIG);
        let no_protocols = JoinRequest {
            protocols: vec![],
            ..join_request("", "b")
        };
        assert_eq!(
            ready(empty.join(no_protocols, now)).error,
            ErrorCode::InconsistentGroupProtocol
        );
    }

    #[test]
    fn protocol_vote_prefers_majority_then_leader_order() {
        let now = Instant::now();
        let mut g = Group::new("g", CONFIG);
        let a = JoinRequest {
            protocols: vec![("range".into(), vec![]), ("sticky".into(), vec![])],
            ..join_request("", "a")
        };
        let b = JoinRequest {
            protocols: vec![("sticky".into(), vec![]), ("range".into(), vec![])],
            ..join_request("", "b")
        };
        let c = JoinRequest {
            protocols: vec![("sticky".into(), vec![]), ("range".into(), vec![])],
            ..join_request("", "c")
        };
        let ta = pending(g.join(a, now));
        let tb = pending(g.join(b, now));
        g.tick(now);
        assert_eq!(
            g.take_join_result(ta).unwrap().protocol_name.as_deref(),
            Some("range"),
            "a tie goes to the leader's preference"
        );
        g.take_join_result(tb).unwrap();
        let tc = pending(g.join(c, now));
        let ta = pending(g.join(
            JoinRequest {
                protocols: vec![("range".into(), vec![]), ("sticky".into(), vec![])],
                ..join_request("a", "")
            },
            now,
        ));
        let tb = pending(g.join(
            JoinRequest {
                protocols: vec![("sticky".into(), vec![]), ("range".into(), vec![])],
                ..join_request("b", "")
            },
            now,
        ));
        for t in [ta, tb, tc] {
            assert_eq!(
                g.take_join_result(t).unwrap().protocol_name.as_deref(),
                Some("sticky"),
                "two votes against one"
            );
        }
    }

    #[test]
    fn initial_delay_waits_and_extends_for_new_members() {
        let config = GroupConfig {
            initial_rebalance_delay_ms: 100,
            ..CONFIG
        };
        let now = Instant::now();
        let mut g = Group::new("g", config);
        let ta = pending(g.join(join_request("", "a"), now));
        assert_eq!(g.next_deadline(), Some(now + Duration::from_millis(100)));
        let tb = pending(g.join(join_request("", "b"), now + Duration::from_millis(50)));
        // Every member joined, but the initial delay never completes early.
        assert!(g.take_join_result(ta).is_none());
        g.tick(now + Duration::from_millis(100));
        assert!(g.take_join_result(ta).is_none(), "delay extended for b");
        g.tick(now + Duration::from_millis(200));
        assert_eq!(g.take_join_result(ta).unwrap().members.len(), 2);
        assert_eq!(g.take_join_result(tb).unwrap().generation_id, 1);
    }

    #[test]
    fn offset_commit_validation() {
        let now = Instant::now();
        let mut empty = Group::new("g", CONFIG);
        assert_eq!(empty.validate_offset_commit("", None, -1, now), Ok(()));
        assert_eq!(
            empty.validate_offset_commit("m", None, 1, now),
            Err(ErrorCode::UnknownMemberId)
        );
        let (mut g, _) = group_with_leader(now);
        assert_eq!(
            g.validate_offset_commit("a", None, 1, now),
            Err(ErrorCode::RebalanceInProgress)
        );
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        assert_eq!(g.validate_offset_commit("a", None, 1, now), Ok(()));
        assert_eq!(
            g.validate_offset_commit("a", None, 0, now),
            Err(ErrorCode::IllegalGeneration)
        );
        assert_eq!(
            g.validate_offset_commit("", None, -1, now),
            Err(ErrorCode::UnknownMemberId),
            "only members commit to a non-empty group"
        );
    }

    /// A Stable group of one at generation 1, its assignment stored.
    fn stable_group(now: Instant) -> Group {
        let (mut g, _) = group_with_leader(now);
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                assignments: vec![("a".into(), vec![7])],
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        g
    }

    #[test]
    fn generations_are_stored_and_restored() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        assert!(
            !g.take_store_due(),
            "nothing to store before the leader syncs"
        );
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                assignments: vec![("a".into(), vec![7])],
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        assert!(g.take_store_due(), "the leader's assignment is stored");
        assert!(!g.take_store_due());
        let value = g.metadata_value(42);
        assert_eq!(
            (
                value.generation,
                value.protocol.as_deref(),
                value.leader.as_deref()
            ),
            (1, Some("range"), Some("a"))
        );
        assert_eq!(
            value.members[0].subscription,
            vec![1],
            "the chosen protocol's metadata"
        );
        assert_eq!(value.members[0].assignment, vec![7]);

        let later = now + Duration::from_secs(1);
        let mut restored = Group::restore("g", CONFIG, &value, later);
        assert_eq!(restored.state(), GroupState::Stable);
        assert_eq!(restored.generation_id(), 1);
        assert_eq!(restored.summary(), g.summary());
        assert_eq!(
            restored.next_deadline(),
            Some(later + Duration::from_millis(5000)),
            "the member must heartbeat within its session timeout"
        );
        assert_eq!(restored.heartbeat("a", None, 1, later), ErrorCode::None);
        // Without heartbeats it expires; the group's Empty generation is then stored.
        assert!(restored.tick(later + Duration::from_secs(10)));
        assert_eq!(restored.state(), GroupState::Empty);
        assert!(restored.take_store_due());
        let empty = restored.metadata_value(43);
        assert_eq!((empty.generation, empty.members.len()), (2, 0));
        let again = Group::restore("g", CONFIG, &empty, later);
        assert_eq!(again.state(), GroupState::Empty);
        assert_eq!(again.empty_since_ms, Some(43));
    }

    #[test]
    fn expired_offsets_follow_kafkas_rules() {
        let now = Instant::now();
        let offset = |commit_timestamp_ms| OffsetAndMetadata {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms,
        };
        let with_offsets = |mut g: Group| {
            g.offsets.insert(("t".into(), 0), offset(100));
            g.offsets.insert(("other".into(), 0), offset(900));
            g
        };
        let t0 = ("t".to_string(), 0);
        let other = ("other".to_string(), 0);
        // No protocol (standalone commits): from each commit.
        let standalone = with_offsets(Group::new("g", CONFIG));
        assert_eq!(
            standalone.expired_offsets(1000, 500, None),
            std::slice::from_ref(&t0)
        );
        assert_eq!(
            standalone.expired_offsets(1400, 500, None),
            [other.clone(), t0.clone()]
        );
        // Stable consumer group subscribed to t: only the other topic's offsets, by commit.
        let mut stable = with_offsets(stable_group(now));
        stable.subscribed_topics = Some(["t".to_string()].into_iter().collect());
        assert!(stable.expired_offsets(1000, 500, None).is_empty());
        assert_eq!(
            stable.expired_offsets(1400, 500, None),
            std::slice::from_ref(&other)
        );
        // Empty with a protocol: from when it became Empty, whatever the commits.
        let mut empty = with_offsets(stable_group(now));
        assert!(empty.tick(now + Duration::from_secs(60)));
        assert_eq!(empty.state(), GroupState::Empty);
        empty.empty_since_ms = Some(2000);
        assert!(empty.expired_offsets(2400, 500, None).is_empty());
        assert_eq!(empty.expired_offsets(2500, 500, None).len(), 2);
        // A KIP-848 group: unsubscribed topics, by commit.
        let topics: HashSet<String> = ["other".to_string()].into_iter().collect();
        assert_eq!(standalone.expired_offsets(1400, 500, Some(&topics)), [t0]);
    }

    #[test]
    fn static_member_rejoin_keeps_its_place() {
        let now = Instant::now();
        let mut g = Group::new("g", CONFIG);
        let first = JoinRequest {
            group_instance_id: Some("i1".into()),
            require_known_member_id: true,
            ..join_request("", "i1-old")
        };
        let t = pending(g.join(first, now));
        g.tick(now);
        assert_eq!(g.take_join_result(t).unwrap().member_id, "i1-old");
        let t = pending(g.sync(
            SyncRequest {
                member_id: "i1-old".into(),
                generation_id: 1,
                assignments: vec![("i1-old".into(), vec![5])],
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        // The instance restarts and comes back without its member id.
        let again = JoinRequest {
            group_instance_id: Some("i1".into()),
            ..join_request("", "i1-new")
        };
        let result = ready(g.join(again, now));
        assert_eq!(result.member_id, "i1-new");
        assert_eq!(result.generation_id, 1);
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(
            g.heartbeat("i1-old", Some("i1"), 1, now),
            ErrorCode::FencedInstanceId
        );
        assert_eq!(g.heartbeat("i1-new", Some("i1"), 1, now), ErrorCode::None);
        let synced = ready(g.sync(
            SyncRequest {
                member_id: "i1-new".into(),
                group_instance_id: Some("i1".into()),
                generation_id: 1,
                ..SyncRequest::default()
            },
            now,
        ));
        assert_eq!(synced.assignment, vec![5]);
    }

    #[test]
    fn describe_shows_metadata_only_when_stable() {
        let now = Instant::now();
        let (mut g, _) = group_with_leader(now);
        let summary = g.summary();
        assert_eq!(summary.state, GroupState::CompletingRebalance);
        assert_eq!(summary.protocol_name, "");
        assert!(summary.members[0].metadata.is_empty());
        let t = pending(g.sync(
            SyncRequest {
                member_id: "a".into(),
                generation_id: 1,
                assignments: vec![("a".into(), vec![7])],
                ..SyncRequest::default()
            },
            now,
        ));
        g.take_sync_result(t).unwrap();
        let summary = g.summary();
        assert_eq!(summary.state, GroupState::Stable);
        assert_eq!(summary.protocol_name, "range");
        assert_eq!(summary.members[0].metadata, vec![1]);
        assert_eq!(summary.members[0].assignment, vec![7]);
        assert_eq!(summary.members[0].client_host, "/127.0.0.1");
    }

    #[test]
    fn subscribed_topics_come_from_consumer_metadata() {
        let mut e = crate::protocol::wire::Encoder::new();
        e.i16(1);
        ConsumerProtocolSubscription {
            topics: vec!["orders".into()],
            ..ConsumerProtocolSubscription::default()
        }
        .encode(&mut e, 1);
        let metadata = e.into_inner();
        let now = Instant::now();
        let mut g = Group::new("g", CONFIG);
        let t = pending(g.join(
            JoinRequest {
                protocols: vec![("range".into(), metadata)],
                ..join_request("", "a")
            },
            now,
        ));
        g.tick(now);
        g.take_join_result(t).unwrap();
        assert!(g.is_consumer_group());
        assert!(g.is_subscribed_to("orders"));
        assert!(!g.is_subscribed_to("payments"));
        assert!(parse_subscription(&[0xff, 0xff]).is_none());
    }

    #[test]
    fn abandoned_join_leaves_the_member_to_the_rebalance() {
        let now = Instant::now();
        let mut g = Group::new(
            "g",
            GroupConfig {
                initial_rebalance_delay_ms: 1000,
                ..CONFIG
            },
        );
        let t = pending(g.join(join_request("", "a"), now));
        let result = g.abandon_join(t);
        assert_eq!(result.error, ErrorCode::RebalanceInProgress);
        g.tick(now + Duration::from_millis(1000));
        // The member had not rejoined when the delay ended, so it is gone.
        assert_eq!(g.state(), GroupState::Empty);
        assert!(g.take_join_result(t).is_none());
    }
}
