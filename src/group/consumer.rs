//! KIP-848 consumer groups: the `consumer` group protocol (ConsumerGroupHeartbeat,
//! ConsumerGroupDescribe), with server-side assignors.
//!
//! A group has an epoch that moves whenever its members or their subscriptions (or the
//! partitions of the topics they subscribe to) change; the target assignment is then computed
//! again by the group's assignor (`uniform` or `range`, `group.consumer.assignors`). Each member
//! converges to its target by heartbeats, as in Kafka's `CurrentAssignmentBuilder`: partitions it
//! must give up are revoked first (the member keeps its epoch until it reports them released), and
//! a partition is handed to a member only once no other member holds it, so no partition is ever
//! owned by two members at once. Members that stop heartbeating are removed after the session
//! timeout; members that do not release partitions within their rebalance timeout are fenced.
//!
//! A member may subscribe by `SubscribedTopicRegex` (ConsumerGroupHeartbeat v1) as well as by
//! names. The regex is RE2 syntax, as Kafka's RE2J, matched against whole topic names; it is
//! resolved against the metadata again on the first heartbeat after topics were created or
//! deleted, internal topics excluded, so a matching topic created (or deleted) later changes the
//! subscription metadata and moves the group epoch. With
//! an authorizer, a member's regex resolves only to the topics its principal may Describe, as
//! checked on its last heartbeat.
//!
//! Every change is written to `__consumer_offsets` as Kafka's records (see
//! [`super::consumer_records`]): [`ConsumerGroup::records`] gives the records of the group as it
//! is, the coordinator writes the difference after each heartbeat, and
//! [`ConsumerGroup::replay`] rebuilds the group from them at start-up. Restored members keep their
//! epochs and assignments and must heartbeat within the session timeout after the restart.

use super::consumer_records::{
    ConsumerGroupRecord, CurrentAssignment, MEMBER_STATE_STABLE,
    MEMBER_STATE_UNRELEASED_PARTITIONS, MEMBER_STATE_UNREVOKED_PARTITIONS, MemberMetadata,
};
use crate::metadata::MetadataImage;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::wire::Uuid;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Partitions by topic id.
pub type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// The server-side assignors sprat has, in Kafka's names.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Settings of consumer groups (Kafka's `group.consumer.*` keys).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: i32,
    /// The assignors clients may name; the first is the default.
    pub assignors: Vec<String>,
    pub max_size: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45000,
            assignors: ASSIGNORS.iter().map(|s| s.to_string()).collect(),
            max_size: i32::MAX as usize,
        }
    }
}

impl ConsumerGroupConfig {
    pub fn from_broker(config: &crate::config::BrokerConfig) -> ConsumerGroupConfig {
        let d = ConsumerGroupConfig::default();
        let int = |key: &str, default: i32| {
            config
                .get(key)
                .and_then(|v| v.trim().parse::<i32>().ok())
                .unwrap_or(default)
        };
        // Kafka bounds both by their min and max keys (a min above the max counts as the max,
        // rather than panicking in `clamp`).
        let bounded =
            |key: &str, default: i32, min_key: &str, min: i32, max_key: &str, max: i32| {
                let max = int(max_key, max);
                int(key, default).clamp(int(min_key, min).min(max), max)
            };
        let heartbeat = bounded(
            "group.consumer.heartbeat.interval.ms",
            d.heartbeat_interval_ms,
            "group.consumer.min.heartbeat.interval.ms",
            5000,
            "group.consumer.max.heartbeat.interval.ms",
            15000,
        );
        let session = bounded(
            "group.consumer.session.timeout.ms",
            d.session_timeout_ms,
            "group.consumer.min.session.timeout.ms",
            45000,
            "group.consumer.max.session.timeout.ms",
            60000,
        );
        let assignors: Vec<String> = config
            .get("group.consumer.assignors")
            .map(|v| {
                v.split(',')
                    .map(|a| short_assignor_name(a.trim()).to_string())
                    .filter(|a| ASSIGNORS.contains(&a.as_str()))
                    .collect()
            })
            .filter(|a: &Vec<String>| !a.is_empty())
            .unwrap_or(d.assignors);
        ConsumerGroupConfig {
            heartbeat_interval_ms: heartbeat.max(1),
            session_timeout_ms: session.max(1),
            assignors,
            max_size: config
                .get("group.consumer.max.size")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d.max_size),
        }
    }
}

/// Kafka's assignor class names map to their short names.
fn short_assignor_name(name: &str) -> &str {
    match name {
        "org.apache.kafka.coordinator.group.assignor.UniformAssignor"
        | "org.apache.kafka.coordinator.group.api.assignor.UniformAssignor" => "uniform",
        "org.apache.kafka.coordinator.group.assignor.RangeAssignor"
        | "org.apache.kafka.coordinator.group.api.assignor.RangeAssignor" => "range",
        other => other,
    }
}

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub epoch: i32,
    previous_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed: Vec<String>,
    /// `SubscribedTopicRegex`: the member also subscribes to every topic it matches.
    pub subscribed_regex: Option<String>,
    /// `subscribed_regex` compiled once, not on every heartbeat of the group.
    compiled_regex: Option<regex::Regex>,
    /// With an authorizer: the regex's matches the member's principal may Describe, as of its
    /// last heartbeat (Kafka's `filterTopicDescribeAuthorizedTopics`); `None` filters nothing.
    regex_authorized: Option<BTreeSet<String>>,
    pub assignor: Option<String>,
    rebalance_timeout: Duration,
    session_deadline: Instant,
    /// What the member has been told it owns.
    pub assigned: Partitions,
    /// Partitions it was told to give up and has not yet reported released.
    revoking: Partitions,
    revoke_deadline: Option<Instant>,
    /// The assignment last sent, so that an unchanged one is not sent again.
    sent: Option<Partitions>,
}

/// A consumer group.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: HashMap<String, Partitions>,
    /// The subscribed topics' partition counts when the target was computed.
    topic_shape: BTreeMap<String, (Uuid, i32)>,
    /// Each regex in use, resolved: the image's topic names version it was resolved at, and the
    /// topics. A heartbeat resolves a regex again only after topics were created or deleted,
    /// rather than matching every topic for every regex member on every heartbeat.
    resolved_regexes: HashMap<String, (u64, Vec<String>)>,
}

impl ConsumerGroup {
    /// Kafka's state names: Empty, Assigning (target not computed), Reconciling, Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor in use: the one the members ask for most, else the default.
    pub fn assignor(&self, config: &ConsumerGroupConfig) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(a, _)| a.to_string())
            .unwrap_or_else(|| config.assignors[0].clone())
    }

    fn owned_by_others(&self, member_id: &str) -> BTreeSet<(Uuid, i32)> {
        self.members
            .values()
            .filter(|m| m.member_id != member_id)
            .flat_map(|m| flatten(&m.assigned).chain(flatten(&m.revoking)))
            .collect()
    }

    /// Whether a member's session or revocation deadline has passed.
    pub fn has_expired_members(&self, now: Instant) -> bool {
        self.members
            .values()
            .any(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
    }

    /// Removes members whose session or revocation deadline has passed.
    pub fn expire(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            log::info!("consumer group member {id} expired");
            self.members.remove(&id);
            self.target.remove(&id);
            self.epoch += 1;
        }
    }

    /// Every member's topics: the names it subscribes to and the topics its regex resolves to
    /// in the metadata as it is now.
    fn subscriptions(&mut self, image: &MetadataImage) -> BTreeMap<String, Vec<String>> {
        let version = image.topic_names_version();
        let resolved = &mut self.resolved_regexes;
        resolved.retain(|regex, _| {
            self.members
                .values()
                .any(|m| m.subscribed_regex.as_ref() == Some(regex))
        });
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            let mut topics = m.subscribed.clone();
            if let (Some(regex), Some(compiled)) = (&m.subscribed_regex, &m.compiled_regex) {
                let entry = resolved
                    .entry(regex.clone())
                    .or_insert_with(|| (version, resolve_topic_regex(compiled, image)));
                if entry.0 != version {
                    *entry = (version, resolve_topic_regex(compiled, image));
                }
                let allowed =
                    |t: &&String| m.regex_authorized.as_ref().is_none_or(|a| a.contains(*t));
                topics.extend(entry.1.iter().filter(allowed).cloned());
            }
            topics.sort();
            topics.dedup();
            out.insert(m.member_id.clone(), topics);
        }
        out
    }

    /// The subscribed topics as the metadata has them now (Kafka's subscription metadata).
    fn shape(
        subscriptions: &BTreeMap<String, Vec<String>>,
        image: &MetadataImage,
    ) -> BTreeMap<String, (Uuid, i32)> {
        subscriptions
            .values()
            .flatten()
            .filter_map(|t| {
                image
                    .topic(t)
                    .map(|md| (t.clone(), (md.topic_id, md.partitions.len() as i32)))
            })
            .collect()
    }

    /// Computes the target assignment when the group epoch has moved past it.
    /// `bumped`: the epoch already moved for this change, which a new shape then joins.
    fn update_target(&mut self, image: &MetadataImage, config: &ConsumerGroupConfig, bumped: bool) {
        let resolved = self.subscriptions(image);
        let shape = Self::shape(&resolved, image);
        if shape != self.topic_shape {
            self.topic_shape = shape;
            if !bumped {
                self.epoch += 1;
            }
        }
        if self.assignment_epoch >= self.epoch {
            return;
        }
        let assignor = self.assignor(config);
        let subscriptions: BTreeMap<&str, Vec<&str>> = resolved
            .iter()
            .map(|(m, topics)| (m.as_str(), topics.iter().map(String::as_str).collect()))
            .collect();
        let previous: HashMap<&str, &Partitions> =
            self.target.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let target = assign(&assignor, &subscriptions, &self.topic_shape, &previous);
        self.target = target;
        self.assignment_epoch = self.epoch;
    }
}

impl ConsumerGroup {
    /// The records that describe the group as it is now, in the order Kafka writes them: member
    /// metadata, subscription metadata and group epoch, target assignment, current assignments.
    pub fn records(&self, group_id: &str) -> Vec<ConsumerGroupRecord> {
        let g = || group_id.to_string();
        let mut out = Vec::with_capacity(3 * self.members.len() + 3);
        for m in self.members.values() {
            out.push(ConsumerGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: m.member_id.clone(),
                value: Some(MemberMetadata {
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed.clone(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128)
                        as i32,
                    server_assignor: m.assignor.clone(),
                }),
            });
        }
        out.push(ConsumerGroupRecord::PartitionMetadata {
            group_id: g(),
            topics: Some(
                self.topic_shape
                    .iter()
                    .map(|(name, (id, count))| (*id, name.clone(), *count))
                    .collect(),
            ),
        });
        out.push(ConsumerGroupRecord::Metadata {
            group_id: g(),
            epoch: Some(self.epoch),
        });
        let mut targets: Vec<(&String, &Partitions)> = self.target.iter().collect();
        targets.sort();
        for (member_id, partitions) in targets {
            out.push(ConsumerGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: member_id.clone(),
                partitions: Some(partitions.clone()),
            });
        }
        out.push(ConsumerGroupRecord::TargetAssignmentMetadata {
            group_id: g(),
            assignment_epoch: Some(self.assignment_epoch),
        });
        for m in self.members.values() {
            let state = if !m.revoking.is_empty() {
                MEMBER_STATE_UNREVOKED_PARTITIONS
            } else if m.epoch != self.assignment_epoch {
                MEMBER_STATE_UNRELEASED_PARTITIONS
            } else {
                MEMBER_STATE_STABLE
            };
            out.push(ConsumerGroupRecord::CurrentMemberAssignment {
                group_id: g(),
                member_id: m.member_id.clone(),
                value: Some(CurrentAssignment {
                    member_epoch: m.epoch,
                    previous_member_epoch: m.previous_epoch,
                    state,
                    assigned: m.assigned.clone(),
                    pending_revocation: m.revoking.clone(),
                }),
            });
        }
        out
    }

    /// Applies one record read back from `__consumer_offsets` at start-up. A restored member
    /// must heartbeat by `session_deadline`; its assignment is sent again on its next heartbeat.
    pub fn replay(&mut self, record: ConsumerGroupRecord, session_deadline: Instant) {
        fn member(
            members: &mut BTreeMap<String, Member>,
            id: String,
            deadline: Instant,
        ) -> &mut Member {
            members
                .entry(id.clone())
                .or_insert_with(|| Member::restored(&id, deadline))
        }
        match record {
            ConsumerGroupRecord::Metadata { epoch, .. } => self.epoch = epoch.unwrap_or(0),
            ConsumerGroupRecord::PartitionMetadata { topics, .. } => {
                self.topic_shape = topics
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(id, name, count)| (name, (id, count)))
                    .collect();
            }
            ConsumerGroupRecord::TargetAssignmentMetadata {
                assignment_epoch, ..
            } => self.assignment_epoch = assignment_epoch.unwrap_or(0),
            ConsumerGroupRecord::TargetAssignmentMember {
                member_id,
                partitions,
                ..
            } => match partitions {
                Some(p) => {
                    self.target.insert(member_id, p);
                }
                None => {
                    self.target.remove(&member_id);
                }
            },
            ConsumerGroupRecord::MemberMetadata {
                member_id,
                value: None,
                ..
            } => {
                self.members.remove(&member_id);
            }
            ConsumerGroupRecord::MemberMetadata {
                member_id,
                value: Some(v),
                ..
            } => {
                let m = member(&mut self.members, member_id, session_deadline);
                m.instance_id = v.instance_id;
                m.rack_id = v.rack_id;
                m.client_id = v.client_id;
                m.client_host = v.client_host;
                m.subscribed = v.subscribed_topic_names;
                m.set_regex(v.subscribed_topic_regex);
                m.rebalance_timeout = Duration::from_millis(v.rebalance_timeout_ms.max(0) as u64);
                m.assignor = v.server_assignor;
            }
            ConsumerGroupRecord::CurrentMemberAssignment {
                member_id,
                value: Some(a),
                ..
            } => {
                let m = member(&mut self.members, member_id, session_deadline);
                m.epoch = a.member_epoch;
                m.previous_epoch = a.previous_member_epoch;
                m.assigned = a.assigned;
                m.revoking = a.pending_revocation;
                // The member gets a new rebalance timeout to finish revoking after the restart.
                m.revoke_deadline = (!m.revoking.is_empty()).then_some(session_deadline);
            }
            // The member metadata tombstone removes the member.
            ConsumerGroupRecord::CurrentMemberAssignment { value: None, .. } => {}
        }
    }
}

/// Compiles a `SubscribedTopicRegex` as Kafka's RE2J `Pattern` does, matched against a whole
/// topic name (`Matcher.matches`), so `orders\..*` names the topics that start with `orders.`.
/// The error is Kafka's message for `INVALID_REGULAR_EXPRESSION`.
pub fn compile_topic_regex(regex: &str) -> Result<regex::Regex, String> {
    let build = |pattern: &str| {
        // A limit on the compiled program: a pattern is untrusted input.
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
    };
    // The pattern is checked on its own first: wrapped in the anchors, an unbalanced one such
    // as `a)|(b` would otherwise compile to something else.
    build(regex)
        .and_then(|_| build(&format!("^(?:{regex})$")))
        .map_err(|e| {
            let reason = match e {
                // The last line of the syntax error says what is wrong, without the caret
                // drawing.
                regex::Error::Syntax(s) => {
                    let last = s.lines().last().unwrap_or_default();
                    last.trim_start_matches("error: ").to_string()
                }
                other => other.to_string(),
            };
            format!("SubscribedTopicRegex `{regex}` is not a valid regular expression: {reason}.")
        })
}

/// The topics a regex resolves to: every topic it matches but the internal ones, as in Kafka's
/// `GroupMetadataManager` regex refresh.
pub fn resolve_topic_regex(regex: &regex::Regex, image: &MetadataImage) -> Vec<String> {
    image
        .topics()
        .filter(|t| !t.is_internal() && regex.is_match(&t.name))
        .map(|t| t.name.clone())
        .collect()
}

impl Member {
    /// Sets the member's regex. It was checked when it arrived; a stored one that does not
    /// compile (written by another broker version) matches nothing.
    fn set_regex(&mut self, regex: Option<String>) {
        self.compiled_regex = regex.as_deref().and_then(|r| compile_topic_regex(r).ok());
        self.subscribed_regex = regex;
    }

    /// A member rebuilt from records, before its fields are applied.
    fn restored(member_id: &str, session_deadline: Instant) -> Member {
        Member {
            member_id: member_id.to_string(),
            instance_id: None,
            rack_id: None,
            epoch: 0,
            previous_epoch: 0,
            client_id: String::new(),
            client_host: String::new(),
            subscribed: Vec::new(),
            subscribed_regex: None,
            compiled_regex: None,
            regex_authorized: None,
            assignor: None,
            rebalance_timeout: Duration::ZERO,
            session_deadline,
            assigned: Partitions::new(),
            revoking: Partitions::new(),
            revoke_deadline: None,
            sent: None,
        }
    }
}

fn flatten(p: &Partitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    p.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |&p| (*t, p)))
}

fn unflatten(items: impl IntoIterator<Item = (Uuid, i32)>) -> Partitions {
    let mut out = Partitions::new();
    for (t, p) in items {
        out.entry(t).or_default().insert(p);
    }
    out
}

/// Computes every member's target: `range` gives each member a contiguous range of each topic
/// it subscribes to; `uniform` spreads all partitions evenly, keeping each member's previous
/// partitions where the balance allows.
pub fn assign(
    assignor: &str,
    subscriptions: &BTreeMap<&str, Vec<&str>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
    previous: &HashMap<&str, &Partitions>,
) -> HashMap<String, Partitions> {
    let mut out: HashMap<String, Partitions> = subscriptions
        .keys()
        .map(|m| (m.to_string(), Partitions::new()))
        .collect();
    let subscribers = |topic: &str| -> Vec<&str> {
        subscriptions
            .iter()
            .filter(|(_, t)| t.contains(&topic))
            .map(|(m, _)| *m)
            .collect()
    };
    if assignor == "range" {
        for (topic, (id, count)) in topics {
            let members = subscribers(topic);
            if members.is_empty() {
                continue;
            }
            let n = members.len() as i32;
            let (per, extra) = (count / n, count % n);
            let mut next = 0;
            for (i, m) in members.iter().enumerate() {
                let take = per + i32::from((i as i32) < extra);
                let range: BTreeSet<i32> = (next..next + take).collect();
                next += take;
                if !range.is_empty() {
                    out.get_mut(*m).unwrap().insert(*id, range);
                }
            }
        }
        return out;
    }
    // Uniform: each partition goes to one of its topic's subscribers; first every member keeps
    // what it had, up to its fair share, then the rest go to whoever has fewest.
    let all: Vec<(Uuid, i32, &str)> = topics
        .iter()
        .flat_map(|(name, (id, count))| (0..*count).map(move |p| (*id, p, name.as_str())))
        .collect();
    let total_for = |m: &str| {
        all.iter()
            .filter(|(_, _, t)| subscriptions[m].contains(t))
            .count()
    };
    let share: HashMap<&str, usize> = subscriptions
        .keys()
        .map(|m| {
            let candidates = total_for(m);
            let sharing = subscriptions.len().max(1);
            (*m, candidates.div_ceil(sharing))
        })
        .collect();
    let mut counts: HashMap<&str, usize> = subscriptions.keys().map(|m| (*m, 0)).collect();
    let mut unassigned = Vec::new();
    for &(id, p, topic) in &all {
        let keeper = previous.iter().find(|(m, parts)| {
            subscriptions.get(**m).is_some_and(|t| t.contains(&topic))
                && parts.get(&id).is_some_and(|ps| ps.contains(&p))
        });
        match keeper {
            Some((m, _)) if counts[*m] < share[*m] => {
                *counts.get_mut(*m).unwrap() += 1;
                out.get_mut(*m).unwrap().entry(id).or_default().insert(p);
            }
            _ => unassigned.push((id, p, topic)),
        }
    }
    for (id, p, topic) in unassigned {
        let Some(m) = subscribers(topic)
            .into_iter()
            .min_by_key(|m| (counts[*m], *m))
        else {
            continue;
        };
        *counts.get_mut(m).unwrap() += 1;
        out.get_mut(m).unwrap().entry(id).or_default().insert(p);
    }
    out
}

/// What a ConsumerGroupHeartbeat asks.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    /// `SubscribedTopicRegex`: null if unchanged, empty to stop subscribing by regex.
    pub subscribed_regex: Option<String>,
    /// With an authorizer, the topics the member's regex matches that its principal may
    /// Describe (see [`ConsumerGroup::regex_of`]); `None` without one.
    pub regex_authorized: Option<BTreeSet<String>>,
    pub assignor: Option<String>,
    pub owned: Option<Partitions>,
    pub client_id: String,
    pub client_host: String,
}

/// A ConsumerGroupHeartbeat's answer.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatResult {
    pub error: Option<(ErrorCode, String)>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Partitions>,
}

fn refused(code: ErrorCode, message: impl Into<String>) -> HeartbeatResult {
    HeartbeatResult {
        error: Some((code, message.into())),
        ..HeartbeatResult::default()
    }
}

/// Kafka's checks of a heartbeat's fields (`ConsumerGroupHeartbeatRequest` validation).
pub fn validate(h: &Heartbeat) -> Result<(), String> {
    if h.group_id.is_empty() {
        return Err("GroupId can't be empty.".into());
    }
    if h.instance_id.as_deref() == Some("") {
        return Err("InstanceId can't be empty.".into());
    }
    match h.member_epoch {
        0 => {
            if h.rebalance_timeout_ms == -1 {
                return Err("RebalanceTimeoutMs must be provided in first request.".into());
            }
            if h.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return Err("TopicPartitions must be empty when (re-)joining.".into());
            }
            let regex_set = h.subscribed_regex.as_deref().is_some_and(|r| !r.is_empty());
            if h.subscribed.as_ref().is_none_or(Vec::is_empty) && !regex_set {
                return Err(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request."
                        .into(),
                );
            }
        }
        -2 | -1 | 1.. if h.member_id.is_empty() => {
            return Err("MemberId can't be empty.".into());
        }
        -2 | -1 | 1.. => {}
        _ => return Err(format!("MemberEpoch is invalid: {}.", h.member_epoch)),
    }
    Ok(())
}

impl ConsumerGroup {
    /// The regex a heartbeat's member subscribes with once the heartbeat is applied: the one it
    /// sends, else the one it has.
    pub fn regex_of(&self, h: &Heartbeat) -> Option<String> {
        match &h.subscribed_regex {
            Some(r) => (!r.is_empty()).then(|| r.clone()),
            None if h.member_epoch == 0 => None,
            None => self.members.get(&h.member_id)?.subscribed_regex.clone(),
        }
    }

    /// Handles one heartbeat (already validated) at `now`.
    pub fn heartbeat(
        &mut self,
        h: Heartbeat,
        image: &MetadataImage,
        config: &ConsumerGroupConfig,
        new_member_id: impl FnOnce() -> String,
        now: Instant,
    ) -> HeartbeatResult {
        self.expire(now);
        if let Some(a) = &h.assignor
            && !config.assignors.contains(a)
        {
            return refused(
                ErrorCode::UnsupportedAssignor,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    config.assignors.join(", ")
                ),
            );
        }
        if h.member_epoch < 0 {
            // Leaving (-1), or a static member leaving for now (-2): its partitions are free.
            if self.members.remove(&h.member_id).is_some() {
                self.target.remove(&h.member_id);
                self.epoch += 1;
                self.update_target(image, config, true);
            }
            return HeartbeatResult {
                member_id: Some(h.member_id),
                member_epoch: h.member_epoch,
                heartbeat_interval_ms: 0,
                ..HeartbeatResult::default()
            };
        }
        let session = Duration::from_millis(config.session_timeout_ms as u64);
        let member_id = if h.member_epoch == 0 {
            if self.members.len() >= config.max_size && !self.members.contains_key(&h.member_id) {
                return refused(
                    ErrorCode::GroupMaxSizeReached,
                    format!(
                        "The consumer group has reached its maximum capacity of {} members.",
                        config.max_size
                    ),
                );
            }
            let id = if h.member_id.is_empty() {
                new_member_id()
            } else {
                h.member_id.clone()
            };
            // A member rejoining with epoch 0 starts again with nothing.
            self.members.remove(&id);
            self.members.insert(
                id.clone(),
                Member {
                    member_id: id.clone(),
                    instance_id: h.instance_id.clone(),
                    rack_id: h.rack_id.clone(),
                    epoch: 0,
                    previous_epoch: 0,
                    client_id: h.client_id.clone(),
                    client_host: h.client_host.clone(),
                    subscribed: Vec::new(),
                    subscribed_regex: None,
                    compiled_regex: None,
                    regex_authorized: None,
                    assignor: None,
                    rebalance_timeout: Duration::from_millis(h.rebalance_timeout_ms.max(0) as u64),
                    session_deadline: now + session,
                    assigned: Partitions::new(),
                    revoking: Partitions::new(),
                    revoke_deadline: None,
                    sent: None,
                },
            );
            id
        } else {
            let Some(member) = self.members.get(&h.member_id) else {
                return refused(
                    ErrorCode::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        h.member_id, h.group_id
                    ),
                );
            };
            let owned_ok = h
                .owned
                .as_ref()
                .is_none_or(|o| flatten(o).all(|tp| flatten(&member.assigned).any(|a| a == tp)));
            let lost_response = h.member_epoch == member.previous_epoch && owned_ok;
            if h.member_epoch != member.epoch && !lost_response {
                return refused(
                    ErrorCode::FencedMemberEpoch,
                    format!(
                        "The consumer group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        h.member_epoch, member.epoch
                    ),
                );
            }
            h.member_id.clone()
        };
        let joined = h.member_epoch == 0;
        let member = self.members.get_mut(&member_id).expect("present");
        member.session_deadline = now + session;
        let mut changed = joined;
        if let Some(subscribed) = &h.subscribed {
            let mut sorted = subscribed.clone();
            sorted.sort();
            sorted.dedup();
            if sorted != member.subscribed {
                member.subscribed = sorted;
                changed = true;
            }
        }
        if let Some(regex) = &h.subscribed_regex {
            let regex = (!regex.is_empty()).then(|| regex.clone());
            if regex != member.subscribed_regex {
                member.set_regex(regex);
                changed = true;
            }
        }
        if h.regex_authorized != member.regex_authorized {
            // What the member may see changed (an ACL, a topic): its subscription did too.
            member.regex_authorized = h.regex_authorized.clone();
            changed = true;
        }
        if h.assignor.is_some() && h.assignor != member.assignor {
            member.assignor = h.assignor.clone();
            changed = true;
        }
        if changed {
            self.epoch += 1;
        }
        if let Some(owned) = &h.owned {
            // What it still holds of what it was told to give up.
            let held: BTreeSet<(Uuid, i32)> = flatten(owned).collect();
            member.revoking = unflatten(flatten(&member.revoking).filter(|tp| held.contains(tp)));
            if member.revoking.is_empty() {
                member.revoke_deadline = None;
            }
        }
        self.update_target(image, config, changed);
        self.reconcile(&member_id, now);
        let member = self.members.get_mut(&member_id).expect("present");
        let assignment = (member.sent.as_ref() != Some(&member.assigned)).then(|| {
            member.sent = Some(member.assigned.clone());
            member.assigned.clone()
        });
        HeartbeatResult {
            error: None,
            member_id: Some(member_id),
            member_epoch: member.epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment,
        }
    }

    /// Moves one member towards its target: first what it must give up, then what is free.
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let others = self.owned_by_others(member_id);
        let epoch = self.assignment_epoch;
        let member = self.members.get_mut(member_id).expect("present");
        let target_set: BTreeSet<(Uuid, i32)> = flatten(&target).collect();
        let to_revoke: Vec<(Uuid, i32)> = flatten(&member.assigned)
            .filter(|tp| !target_set.contains(tp))
            .collect();
        if !to_revoke.is_empty() {
            member.assigned =
                unflatten(flatten(&member.assigned).filter(|tp| target_set.contains(tp)));
            member.revoking = unflatten(flatten(&member.revoking).chain(to_revoke));
            member.revoke_deadline = Some(now + member.rebalance_timeout);
            return;
        }
        if !member.revoking.is_empty() {
            return;
        }
        member.assigned = unflatten(target_set.into_iter().filter(|tp| !others.contains(tp)));
        if member.epoch != epoch {
            member.previous_epoch = member.epoch;
            member.epoch = epoch;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(specs: &[(&str, u8, i32)]) -> BTreeMap<String, (Uuid, i32)> {
        specs
            .iter()
            .map(|(n, id, c)| (n.to_string(), (Uuid([*id; 16]), *c)))
            .collect()
    }

    fn counts(a: &HashMap<String, Partitions>) -> Vec<(String, usize)> {
        let mut v: Vec<_> = a
            .iter()
            .map(|(m, p)| (m.clone(), flatten(p).count()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn heartbeat_and_session_keys_are_bounded() {
        let config = |props: &[(&str, &str)]| {
            let props: Vec<(String, String)> = props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ConsumerGroupConfig::from_broker(
                &crate::config::BrokerConfig::from_properties(&props).unwrap(),
            )
        };
        let d = config(&[]);
        assert_eq!(
            (d.heartbeat_interval_ms, d.session_timeout_ms),
            (5000, 45000)
        );
        let low = config(&[("group.consumer.heartbeat.interval.ms", "100")]);
        assert_eq!(low.heartbeat_interval_ms, 5000, "below the default minimum");
        let allowed = config(&[
            ("group.consumer.heartbeat.interval.ms", "500"),
            ("group.consumer.min.heartbeat.interval.ms", "500"),
        ]);
        assert_eq!(allowed.heartbeat_interval_ms, 500);
        let crossed = config(&[("group.consumer.min.session.timeout.ms", "90000")]);
        assert_eq!(
            crossed.session_timeout_ms, 60000,
            "a minimum above the maximum"
        );
    }

    #[test]
    fn topic_regexes_match_whole_names_and_skip_internal_topics() {
        let mut image = MetadataImage::default();
        for (i, name) in ["orders.eu", "orders", "xorders.eu", "__consumer_offsets"]
            .into_iter()
            .enumerate()
        {
            image.apply(&crate::metadata::MetadataRecord::Topic(
                crate::metadata::records::topic_record::TopicRecord {
                    name: name.into(),
                    topic_id: Uuid([i as u8 + 1; 16]),
                },
            ));
        }
        let resolve = |r: &str| resolve_topic_regex(&compile_topic_regex(r).unwrap(), &image);
        assert_eq!(resolve(r"orders\..*"), ["orders.eu"]);
        assert_eq!(resolve("orders|xorders.eu"), ["orders", "xorders.eu"]);
        assert_eq!(resolve(".*"), ["orders", "orders.eu", "xorders.eu"]);
        // A pattern whose program would be huge is refused rather than built.
        let huge = compile_topic_regex("((a{100}){100}){100}").unwrap_err();
        assert!(huge.contains("is not a valid regular expression"), "{huge}");
        for bad in ["orders(", "[a-", "(?<=a)b", r"(a)\1", "a)|(b", "a)|(?:b"] {
            let e = compile_topic_regex(bad).unwrap_err();
            assert!(e.starts_with(&format!("SubscribedTopicRegex `{bad}` is not a valid")));
        }
    }

    #[test]
    fn assignors_spread_partitions() {
        let t = topics(&[("a", 1, 5), ("b", 2, 3)]);
        let subs: BTreeMap<&str, Vec<&str>> = [("m1", vec!["a", "b"]), ("m2", vec!["a", "b"])]
            .into_iter()
            .collect();
        let uniform = assign("uniform", &subs, &t, &HashMap::new());
        assert_eq!(counts(&uniform), [("m1".into(), 4), ("m2".into(), 4)]);
        let range = assign("range", &subs, &t, &HashMap::new());
        assert_eq!(
            range["m1"][&Uuid([1; 16])]
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(counts(&range), [("m1".into(), 5), ("m2".into(), 3)]);
        // Uniform is sticky: a third member takes from both without moving the rest.
        let subs3: BTreeMap<&str, Vec<&str>> = [
            ("m1", vec!["a", "b"]),
            ("m2", vec!["a", "b"]),
            ("m3", vec!["a", "b"]),
        ]
        .into_iter()
        .collect();
        let prev: HashMap<&str, &Partitions> =
            uniform.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let next = assign("uniform", &subs3, &t, &prev);
        assert_eq!(counts(&next).iter().map(|c| c.1).sum::<usize>(), 8);
        for m in ["m1", "m2"] {
            assert!(flatten(&next[m]).all(|tp| flatten(&uniform[m]).any(|p| p == tp)));
        }
    }

    #[test]
    fn no_partition_is_owned_twice_while_members_reconcile() {
        let mut image = MetadataImage::default();
        image.apply(&crate::metadata::MetadataRecord::Topic(
            crate::metadata::records::topic_record::TopicRecord {
                name: "t".into(),
                topic_id: Uuid([7; 16]),
            },
        ));
        for p in 0..4 {
            image.apply(&crate::controller::partition_record(1, Uuid([7; 16]), p));
        }
        let config = ConsumerGroupConfig::default();
        let mut group = ConsumerGroup::default();
        let now = Instant::now();
        let join = |id: &str| Heartbeat {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: 0,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30000,
            subscribed: Some(vec!["t".into()]),
            subscribed_regex: None,
            regex_authorized: None,
            assignor: None,
            owned: Some(Partitions::new()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        };
        let a = group.heartbeat(join("a"), &image, &config, || unreachable!(), now);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(flatten(a.assignment.as_ref().unwrap()).count(), 4);
        let b = group.heartbeat(join("b"), &image, &config, || unreachable!(), now);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(
            b.assignment.as_ref().map(|p| flatten(p).count()),
            Some(0),
            "a still holds them"
        );
        // a is told to give up two partitions and keeps its epoch until it has.
        let mut beat = join("a");
        beat.member_epoch = 1;
        beat.subscribed = None;
        beat.owned = None;
        let a2 = group.heartbeat(beat.clone(), &image, &config, || unreachable!(), now);
        assert_eq!(a2.member_epoch, 1);
        let kept = a2.assignment.unwrap();
        assert_eq!(flatten(&kept).count(), 2);
        beat.owned = Some(kept.clone());
        let a3 = group.heartbeat(beat, &image, &config, || unreachable!(), now);
        assert_eq!(a3.member_epoch, 2);
        let mut bbeat = join("b");
        bbeat.member_epoch = 2;
        bbeat.owned = Some(Partitions::new());
        bbeat.subscribed = None;
        let b2 = group.heartbeat(bbeat, &image, &config, || unreachable!(), now);
        let got = b2.assignment.unwrap();
        assert_eq!(flatten(&got).count(), 2);
        assert!(flatten(&got).all(|tp| !flatten(&kept).any(|k| k == tp)));
        assert_eq!(group.state(), "Stable");
    }

    #[test]
    fn records_replay_to_the_same_group() {
        let mut image = MetadataImage::default();
        image.apply(&crate::metadata::MetadataRecord::Topic(
            crate::metadata::records::topic_record::TopicRecord {
                name: "t".into(),
                topic_id: Uuid([7; 16]),
            },
        ));
        for p in 0..4 {
            image.apply(&crate::controller::partition_record(1, Uuid([7; 16]), p));
        }
        let config = ConsumerGroupConfig::default();
        let mut group = ConsumerGroup::default();
        let now = Instant::now();
        let join = |id: &str| Heartbeat {
            group_id: "g".into(),
            member_id: id.into(),
            member_epoch: 0,
            instance_id: Some(format!("{id}-instance")),
            rack_id: None,
            rebalance_timeout_ms: 30000,
            subscribed: Some(vec!["t".into()]),
            subscribed_regex: None,
            regex_authorized: None,
            assignor: Some("range".into()),
            owned: Some(Partitions::new()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        };
        group.heartbeat(join("a"), &image, &config, || unreachable!(), now);
        // b joins: a must revoke, so the records hold a pending revocation too.
        group.heartbeat(join("b"), &image, &config, || unreachable!(), now);
        let mut beat = join("a");
        beat.member_epoch = 1;
        beat.subscribed = None;
        beat.owned = None;
        group.heartbeat(beat, &image, &config, || unreachable!(), now);
        let records = group.records("g");
        assert!(records.iter().any(|r| matches!(
            r,
            ConsumerGroupRecord::CurrentMemberAssignment { value: Some(a), .. }
                if a.state == MEMBER_STATE_UNREVOKED_PARTITIONS && !a.pending_revocation.is_empty()
        )));
        let mut restored = ConsumerGroup::default();
        let later = now + Duration::from_secs(5);
        for r in records.clone() {
            restored.replay(r, later);
        }
        assert_eq!(restored.records("g"), records);
        assert_eq!((restored.epoch, restored.assignment_epoch), (2, 2));
        assert_eq!(restored.state(), group.state());
        assert_eq!(restored.members["a"].session_deadline, later);
        // A member tombstone removes it.
        restored.replay(
            ConsumerGroupRecord::MemberMetadata {
                group_id: "g".into(),
                member_id: "b".into(),
                value: None,
            },
            later,
        );
        assert!(!restored.members.contains_key("b"));
    }
}
