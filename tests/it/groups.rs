//! Consumer groups over the wire: FindCoordinator, the JoinGroup/SyncGroup/Heartbeat/LeaveGroup
//! protocol, committed offsets (and their recovery after kill -9), ListGroups, DescribeGroups,
//! DeleteGroups and OffsetDelete.

use crate::harness::{Client, TestBroker};
use sprat::protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use sprat::protocol::messages::{
    create_topics as ct, delete_groups as dlg, describe_groups as dg, find_coordinator as fc,
    heartbeat as hb, join_group as jg, leave_group as lg, list_groups as lsg, metadata as md,
    offset_commit as oc, offset_delete as od, offset_fetch as of, sync_group as sg,
};
use sprat::protocol::wire::Encoder;
use std::time::{Duration, Instant};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// Group timings short enough for tests: no initial rebalance delay, sessions down to 100 ms,
/// and a small offsets topic.
pub(crate) const GROUP_PROPERTIES: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=100",
    "offsets.topic.num.partitions=3",
];

pub(crate) fn start(name: &str) -> TestBroker {
    TestBroker::start_with(name, |_| {}, GROUP_PROPERTIES)
}

pub(crate) fn create_topic(client: &mut Client, name: &str, partitions: i32) {
    let request = ct::CreateTopicsRequest {
        topics: vec![ct::CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..ct::CreatableTopic::default()
        }],
        timeout_ms: 5000,
        ..ct::CreateTopicsRequest::default()
    };
    let response = client.call(
        ct::API_KEY,
        5,
        |e| request.encode(e, 5),
        ct::CreateTopicsResponse::decode,
    );
    assert_eq!(response.topics[0].error_code, NONE, "create {name}");
}

/// A consumer-protocol subscription (version 1) to `topics`, as member metadata.
pub(crate) fn subscription(topics: &[&str]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.i16(1);
    ConsumerProtocolSubscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..ConsumerProtocolSubscription::default()
    }
    .encode(&mut e, 1);
    e.into_inner()
}

pub(crate) struct Join<'a> {
    pub(crate) group: &'a str,
    pub(crate) member_id: &'a str,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocols: Vec<(&'a str, Vec<u8>)>,
}

impl<'a> Join<'a> {
    pub(crate) fn new(group: &'a str, member_id: &'a str) -> Join<'a> {
        Join {
            group,
            member_id,
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: vec![("range", subscription(&["t"]))],
        }
    }

    pub(crate) fn send(&self, client: &mut Client, version: i16) -> jg::JoinGroupResponse {
        let request = jg::JoinGroupRequest {
            group_id: self.group.into(),
            session_timeout_ms: self.session_timeout_ms,
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            member_id: self.member_id.into(),
            protocol_type: "consumer".into(),
            protocols: self
                .protocols
                .iter()
                .map(|(name, metadata)| jg::JoinGroupRequestProtocol {
                    name: name.to_string(),
                    metadata: metadata.clone(),
                })
                .collect(),
            ..jg::JoinGroupRequest::default()
        };
        client.call(
            jg::API_KEY,
            version,
            |e| request.encode(e, version),
            jg::JoinGroupResponse::decode,
        )
    }

    /// Joins, answering MEMBER_ID_REQUIRED (v4+) with a second JoinGroup as clients do.
    pub(crate) fn send_with_id(&self, client: &mut Client, version: i16) -> jg::JoinGroupResponse {
        let first = self.send(client, version);
        if first.error_code != MEMBER_ID_REQUIRED {
            return first;
        }
        Join {
            member_id: &first.member_id,
            protocols: self.protocols.clone(),
            ..*self
        }
        .send(client, version)
    }
}

pub(crate) fn sync(
    client: &mut Client,
    version: i16,
    group: &str,
    generation_id: i32,
    member_id: &str,
    assignments: &[(&str, &[u8])],
) -> sg::SyncGroupResponse {
    let request = sg::SyncGroupRequest {
        group_id: group.into(),
        generation_id,
        member_id: member_id.into(),
        protocol_type: (version >= 5).then(|| "consumer".to_string()),
        protocol_name: (version >= 5).then(|| "range".to_string()),
        assignments: assignments
            .iter()
            .map(|(m, a)| sg::SyncGroupRequestAssignment {
                member_id: m.to_string(),
                assignment: a.to_vec(),
            })
            .collect(),
        ..sg::SyncGroupRequest::default()
    };
    client.call(
        sg::API_KEY,
        version,
        |e| request.encode(e, version),
        sg::SyncGroupResponse::decode,
    )
}

pub(crate) fn heartbeat(
    client: &mut Client,
    group: &str,
    generation_id: i32,
    member_id: &str,
) -> i16 {
    let request = hb::HeartbeatRequest {
        group_id: group.into(),
        generation_id,
        member_id: member_id.into(),
        ..hb::HeartbeatRequest::default()
    };
    client
        .call(
            hb::API_KEY,
            3,
            |e| request.encode(e, 3),
            hb::HeartbeatResponse::decode,
        )
        .error_code
}

pub(crate) fn leave(
    client: &mut Client,
    version: i16,
    group: &str,
    member_id: &str,
) -> lg::LeaveGroupResponse {
    let request = lg::LeaveGroupRequest {
        group_id: group.into(),
        member_id: member_id.into(),
        members: vec![lg::MemberIdentity {
            member_id: member_id.into(),
            ..lg::MemberIdentity::default()
        }],
    };
    client.call(
        lg::API_KEY,
        version,
        |e| request.encode(e, version),
        lg::LeaveGroupResponse::decode,
    )
}

/// Commits offsets of topic `topic`; returns the error of each partition.
pub(crate) fn commit(
    client: &mut Client,
    version: i16,
    group: &str,
    generation_id: i32,
    member_id: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Vec<i16> {
    let request = oc::OffsetCommitRequest {
        group_id: group.into(),
        generation_id_or_member_epoch: generation_id,
        member_id: member_id.into(),
        topics: vec![oc::OffsetCommitRequestTopic {
            name: topic.into(),
            partitions: offsets
                .iter()
                .map(|&(p, offset)| oc::OffsetCommitRequestPartition {
                    partition_index: p,
                    committed_offset: offset,
                    committed_leader_epoch: 4,
                    committed_metadata: Some(format!("meta-{p}")),
                    ..oc::OffsetCommitRequestPartition::default()
                })
                .collect(),
        }],
        ..oc::OffsetCommitRequest::default()
    };
    let response = client.call(
        oc::API_KEY,
        version,
        |e| request.encode(e, version),
        oc::OffsetCommitResponse::decode,
    );
    assert_eq!(response.topics.len(), 1);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect()
}

/// Fetches committed offsets of one group (v0-7 layout); `None` asks for every partition (v2+).
/// Returns (topic, partition, offset, metadata, error) rows.
pub(crate) fn fetch(
    client: &mut Client,
    version: i16,
    group: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Vec<(String, i32, i64, Option<String>, i16)> {
    assert!(version <= 7);
    let request = of::OffsetFetchRequest {
        group_id: group.into(),
        topics: topics.map(|ts| {
            ts.iter()
                .map(|(name, partitions)| of::OffsetFetchRequestTopic {
                    name: name.to_string(),
                    partition_indexes: partitions.to_vec(),
                })
                .collect()
        }),
        ..of::OffsetFetchRequest::default()
    };
    let response = client.call(
        of::API_KEY,
        version,
        |e| request.encode(e, version),
        of::OffsetFetchResponse::decode,
    );
    assert_eq!(response.error_code, NONE);
    response
        .topics
        .into_iter()
        .flat_map(|t| {
            t.partitions.into_iter().map(move |p| {
                (
                    t.name.clone(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata,
                    p.error_code,
                )
            })
        })
        .collect()
}

pub(crate) fn describe(
    client: &mut Client,
    version: i16,
    groups: &[&str],
) -> dg::DescribeGroupsResponse {
    let request = dg::DescribeGroupsRequest {
        groups: groups.iter().map(|g| g.to_string()).collect(),
        include_authorized_operations: version >= 3,
    };
    client.call(
        dg::API_KEY,
        version,
        |e| request.encode(e, version),
        dg::DescribeGroupsResponse::decode,
    )
}

/// Joins `group` alone and syncs with `assignment`: a Stable group of one at generation 1.
pub(crate) fn stable_member(client: &mut Client, group: &str, assignment: &[u8]) -> (String, i32) {
    let joined = Join::new(group, "").send_with_id(client, 5);
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.leader, joined.member_id);
    let synced = sync(
        client,
        3,
        group,
        joined.generation_id,
        &joined.member_id,
        &[(&joined.member_id, assignment)],
    );
    assert_eq!(synced.error_code, NONE);
    (joined.member_id, joined.generation_id)
}

#[test]
fn find_coordinator_answers_this_node() {
    let broker = start("find-coordinator");
    let mut client = broker.connect();
    for version in 0..=3 {
        let request = fc::FindCoordinatorRequest {
            key: "my-group".into(),
            ..fc::FindCoordinatorRequest::default()
        };
        let response = client.call(
            fc::API_KEY,
            version,
            |e| request.encode(e, version),
            fc::FindCoordinatorResponse::decode,
        );
        assert_eq!(response.error_code, NONE, "v{version}");
        assert_eq!(response.node_id, 1);
        assert_eq!(response.host, "127.0.0.1");
    }
    // v4+: several keys at once; a transactional id (key type 1) is coordinated here too.
    for (version, key_type) in [(4, 0), (6, 1)] {
        let request = fc::FindCoordinatorRequest {
            key_type,
            coordinator_keys: vec!["a".into(), "b".into()],
            ..fc::FindCoordinatorRequest::default()
        };
        let response = client.call(
            fc::API_KEY,
            version,
            |e| request.encode(e, version),
            fc::FindCoordinatorResponse::decode,
        );
        let keys: Vec<_> = response
            .coordinators
            .iter()
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert!(
            response
                .coordinators
                .iter()
                .all(|c| c.error_code == NONE && c.node_id == 1)
        );
    }
}

#[test]
fn single_member_join_sync_heartbeat_commit_fetch_leave() {
    let broker = start("single-member");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);

    let first = Join::new("g", "").send(&mut client, 5);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(
        first.member_id.starts_with("sprat-test-"),
        "{}",
        first.member_id
    );
    assert_eq!(first.generation_id, -1);
    let member_id = first.member_id;
    let joined = Join::new("g", &member_id).send(&mut client, 5);
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.member_id, member_id);
    assert_eq!(joined.leader, member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, subscription(&["t"]));

    let synced = sync(&mut client, 5, "g", 1, &member_id, &[(&member_id, b"all")]);
    assert_eq!(synced.error_code, NONE);
    assert_eq!(synced.assignment, b"all");
    assert_eq!(synced.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(synced.protocol_name.as_deref(), Some("range"));
    assert_eq!(heartbeat(&mut client, "g", 1, &member_id), NONE);

    let errors = commit(&mut client, 8, "g", 1, &member_id, "t", &[(0, 5), (1, 7)]);
    assert_eq!(errors, [NONE, NONE]);
    // An unknown partition, an unknown topic.
    assert_eq!(
        commit(&mut client, 8, "g", 1, &member_id, "t", &[(2, 1)]),
        [UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(
        commit(&mut client, 8, "g", 1, &member_id, "nope", &[(0, 1)]),
        [UNKNOWN_TOPIC_OR_PARTITION]
    );

    let rows = fetch(&mut client, 5, "g", Some(&[("t", &[0, 1, 2])]));
    assert_eq!(
        rows,
        [
            ("t".into(), 0, 5, Some("meta-0".into()), NONE),
            ("t".into(), 1, 7, Some("meta-1".into()), NONE),
            ("t".into(), 2, -1, Some(String::new()), NONE),
        ]
    );
    assert_eq!(
        fetch(&mut client, 3, "g", None).len(),
        2,
        "null topics: all"
    );

    // v8+: several groups in one request, one of them unknown.
    let request = of::OffsetFetchRequest {
        groups: vec![
            of::OffsetFetchRequestGroup {
                group_id: "g".into(),
                topics: None,
                ..of::OffsetFetchRequestGroup::default()
            },
            of::OffsetFetchRequestGroup {
                group_id: "other".into(),
                topics: Some(vec![of::OffsetFetchRequestTopics {
                    name: "t".into(),
                    partition_indexes: vec![0],
                }]),
                ..of::OffsetFetchRequestGroup::default()
            },
        ],
        require_stable: true,
        ..of::OffsetFetchRequest::default()
    };
    let response = client.call(
        of::API_KEY,
        9,
        |e| request.encode(e, 9),
        of::OffsetFetchResponse::decode,
    );
    assert_eq!(response.groups.len(), 2);
    let g = &response.groups[0];
    assert_eq!(g.topics[0].partitions[1].committed_offset, 7);
    assert_eq!(g.topics[0].partitions[1].committed_leader_epoch, 4);
    assert_eq!(
        response.groups[1].topics[0].partitions[0].committed_offset,
        -1
    );

    let left = leave(&mut client, 5, "g", &member_id);
    assert_eq!(left.error_code, NONE);
    assert_eq!(left.members[0].error_code, NONE);
    let described = describe(&mut client, 5, &["g"]);
    assert_eq!(described.groups[0].group_state, "Empty");
    assert!(described.groups[0].members.is_empty());
    // The offsets stay with the empty group.
    assert_eq!(fetch(&mut client, 1, "g", Some(&[("t", &[1])]))[0].2, 7);
}

#[test]
fn two_members_rebalance_and_get_their_assignments() {
    let broker = start("two-members");
    let mut a = broker.connect();
    create_topic(&mut a, "t", 2);
    let (a_id, generation) = stable_member(&mut a, "g", b"a-gen1");
    assert_eq!(generation, 1);

    let addr = broker.addr;
    let follower = std::thread::spawn(move || {
        let mut b = Client::connect(addr);
        // Blocks until the first member rejoins.
        let joined = Join::new("g", "").send_with_id(&mut b, 7);
        assert_eq!(joined.error_code, NONE);
        assert!(joined.members.is_empty(), "a follower gets no member list");
        // Blocks until the leader has sent the assignment.
        let synced = sync(&mut b, 5, "g", joined.generation_id, &joined.member_id, &[]);
        (joined, synced)
    });

    // The leader hears about the rebalance from its heartbeat, then rejoins.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match heartbeat(&mut a, "g", 1, &a_id) {
            REBALANCE_IN_PROGRESS => break,
            NONE => assert!(Instant::now() < deadline, "no rebalance started"),
            other => panic!("heartbeat error {other}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rejoined = Join::new("g", &a_id).send(&mut a, 5);
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(rejoined.leader, a_id);
    assert_eq!(rejoined.members.len(), 2);
    let b_id = rejoined
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .find(|id| *id != a_id)
        .unwrap();
    // Give the follower time to send its SyncGroup, so that it waits for the leader's.
    std::thread::sleep(Duration::from_millis(300));
    let synced = sync(
        &mut a,
        3,
        "g",
        2,
        &a_id,
        &[(&a_id, b"for-a"), (&b_id, b"for-b")],
    );
    assert_eq!(synced.assignment, b"for-a");
    let (b_joined, b_synced) = follower.join().unwrap();
    assert_eq!(b_joined.member_id, b_id);
    assert_eq!(b_joined.generation_id, 2);
    assert_eq!(b_joined.leader, a_id);
    assert_eq!(b_synced.error_code, NONE);
    assert_eq!(b_synced.assignment, b"for-b");
    assert_eq!(heartbeat(&mut a, "g", 2, &a_id), NONE);
    assert_eq!(describe(&mut a, 0, &["g"]).groups[0].members.len(), 2);
}

#[test]
fn member_id_required_round_trip() {
    let broker = start("member-id-required");
    let mut client = broker.connect();
    // v3 and older have no MEMBER_ID_REQUIRED: the member joins at once.
    let old = Join::new("old", "").send(&mut client, 3);
    assert_eq!(old.error_code, NONE);
    assert!(!old.member_id.is_empty());
    let first = Join::new("new", "").send(&mut client, 4);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(first.members.is_empty());
    let second = Join::new("new", &first.member_id).send(&mut client, 4);
    assert_eq!(second.error_code, NONE);
    assert_eq!(second.member_id, first.member_id);
    assert_eq!(second.generation_id, 1);
}

#[test]
fn illegal_generation_and_unknown_member() {
    let broker = start("generation-errors");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let (member_id, generation) = stable_member(&mut client, "g", b"x");
    assert_eq!(
        heartbeat(&mut client, "g", generation + 1, &member_id),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut client, "g", generation, "nobody"),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        heartbeat(&mut client, "no-such-group", 1, &member_id),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(heartbeat(&mut client, "", 1, &member_id), INVALID_GROUP_ID);
    assert_eq!(
        sync(&mut client, 3, "g", generation + 1, &member_id, &[]).error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        sync(&mut client, 3, "g", generation, "nobody", &[]).error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(
            &mut client,
            3,
            "g",
            generation + 1,
            &member_id,
            "t",
            &[(0, 1)]
        ),
        [ILLEGAL_GENERATION]
    );
    assert_eq!(
        commit(&mut client, 3, "g", generation, "nobody", "t", &[(0, 1)]),
        [UNKNOWN_MEMBER_ID]
    );
    // A standalone commit (generation -1) is refused while the group has members.
    assert_eq!(
        commit(&mut client, 3, "g", -1, "", "t", &[(0, 1)]),
        [UNKNOWN_MEMBER_ID]
    );
    // A member that changes its protocols to ones the group does not share.
    let other = Join {
        protocols: vec![("sticky", vec![])],
        ..Join::new("g", "")
    };
    assert_eq!(
        other.send(&mut client, 3).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let bad_session = Join {
        session_timeout_ms: 50,
        ..Join::new("g", "")
    };
    assert_eq!(
        bad_session.send(&mut client, 5).error_code,
        INVALID_SESSION_TIMEOUT
    );
    let left = leave(&mut client, 1, "g", "nobody");
    assert_eq!(left.error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn session_expiry_removes_a_member() {
    let broker = start("session-expiry");
    let mut client = broker.connect();
    let joined = Join {
        session_timeout_ms: 300,
        ..Join::new("g", "")
    }
    .send_with_id(&mut client, 5);
    assert_eq!(joined.error_code, NONE);
    let member_id = joined.member_id;
    let synced = sync(&mut client, 3, "g", 1, &member_id, &[(&member_id, b"x")]);
    assert_eq!(synced.error_code, NONE);
    // No heartbeat: the session ends and the member is removed, without any request arriving.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let group = describe(&mut client, 1, &["g"]).groups.remove(0);
        if group.members.is_empty() {
            assert_eq!(group.group_state, "Empty");
            break;
        }
        assert!(Instant::now() < deadline, "member never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        heartbeat(&mut client, "g", 1, &member_id),
        UNKNOWN_MEMBER_ID
    );
}

#[test]
fn committed_offsets_survive_kill_9() {
    let mut broker = start("offsets-recovery");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 3);
    // A standalone consumer (no group membership) and a group member.
    assert_eq!(
        commit(
            &mut client,
            2,
            "standalone",
            -1,
            "",
            "t",
            &[(0, 10), (2, 30)]
        ),
        [NONE, NONE]
    );
    assert_eq!(
        commit(&mut client, 2, "standalone", -1, "", "t", &[(0, 11)]),
        [NONE]
    );
    let (member_id, generation) = stable_member(&mut client, "members", b"x");
    assert_eq!(
        commit(
            &mut client,
            9,
            "members",
            generation,
            &member_id,
            "t",
            &[(1, 99)]
        ),
        [NONE]
    );
    // A deleted group must stay deleted.
    assert_eq!(
        commit(&mut client, 2, "deleted", -1, "", "t", &[(0, 1)]),
        [NONE]
    );
    let request = dlg::DeleteGroupsRequest {
        groups_names: vec!["deleted".into()],
    };
    let deleted = client.call(
        dlg::API_KEY,
        2,
        |e| request.encode(e, 2),
        dlg::DeleteGroupsResponse::decode,
    );
    assert_eq!(deleted.results[0].error_code, NONE);
    drop(client);

    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(
        fetch(&mut client, 1, "standalone", Some(&[("t", &[0, 1, 2])])),
        [
            ("t".into(), 0, 11, Some("meta-0".into()), NONE),
            ("t".into(), 1, -1, Some(String::new()), NONE),
            ("t".into(), 2, 30, Some("meta-2".into()), NONE),
        ]
    );
    assert_eq!(fetch(&mut client, 7, "members", None)[0].2, 99);
    assert!(fetch(&mut client, 7, "deleted", None).is_empty());
    // The member's group comes back in its generation, until the member's session times out.
    assert_eq!(
        list_groups(&mut client, 4, &[]),
        rows(&[("members", "Stable"), ("standalone", "Empty")])
    );

    // The offsets live in the internal topic __consumer_offsets.
    let request = md::MetadataRequest {
        topics: None,
        ..md::MetadataRequest::default()
    };
    let metadata = client.call(
        md::API_KEY,
        12,
        |e| request.encode(e, 12),
        md::MetadataResponse::decode,
    );
    let offsets_topic = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some("__consumer_offsets"))
        .expect("__consumer_offsets exists");
    assert!(offsets_topic.is_internal);
    assert_eq!(offsets_topic.partitions.len(), 3);
}

/// ListGroups; returns (group id, state) pairs.
pub(crate) fn list_groups(
    client: &mut Client,
    version: i16,
    states: &[&str],
) -> Vec<(String, String)> {
    let request = lsg::ListGroupsRequest {
        states_filter: states.iter().map(|s| s.to_string()).collect(),
        ..lsg::ListGroupsRequest::default()
    };
    let response = client.call(
        lsg::API_KEY,
        version,
        |e| request.encode(e, version),
        lsg::ListGroupsResponse::decode,
    );
    assert_eq!(response.error_code, NONE);
    response
        .groups
        .into_iter()
        .map(|g| (g.group_id, g.group_state))
        .collect()
}

/// Owned copies of (group id, state) rows, to compare with [`list_groups`].
pub(crate) fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn list_and_describe_groups() {
    let broker = start("list-describe");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let (member_id, _) = stable_member(&mut client, "stable-group", b"assigned");
    assert_eq!(
        commit(&mut client, 2, "offsets-only", -1, "", "t", &[(0, 3)]),
        [NONE]
    );

    assert_eq!(
        list_groups(&mut client, 0, &[]),
        rows(&[("offsets-only", ""), ("stable-group", "")]),
        "v0-3 carry no state"
    );
    assert_eq!(
        list_groups(&mut client, 4, &[]),
        rows(&[("offsets-only", "Empty"), ("stable-group", "Stable")])
    );
    assert_eq!(
        list_groups(&mut client, 4, &["stable"]),
        rows(&[("stable-group", "Stable")])
    );
    let request = lsg::ListGroupsRequest {
        types_filter: vec!["consumer".into()],
        ..lsg::ListGroupsRequest::default()
    };
    let by_type = client.call(
        lsg::API_KEY,
        5,
        |e| request.encode(e, 5),
        lsg::ListGroupsResponse::decode,
    );
    assert!(by_type.groups.is_empty(), "all groups are classic");
    let request = lsg::ListGroupsRequest::default();
    let all = client.call(
        lsg::API_KEY,
        5,
        |e| request.encode(e, 5),
        lsg::ListGroupsResponse::decode,
    );
    assert!(all.groups.iter().all(|g| g.group_type == "classic"));
    assert_eq!(all.groups[1].protocol_type, "consumer");
    assert_eq!(all.groups[0].protocol_type, "");

    let described = describe(&mut client, 5, &["stable-group", "offsets-only", "missing"]);
    let [stable, offsets_only, missing] = &described.groups[..] else {
        panic!("three groups expected");
    };
    assert_eq!(stable.error_code, NONE);
    assert_eq!(stable.group_state, "Stable");
    assert_eq!(stable.protocol_type, "consumer");
    assert_eq!(stable.protocol_data, "range");
    assert_eq!(stable.authorized_operations, 328);
    let member = &stable.members[0];
    assert_eq!(member.member_id, member_id);
    assert_eq!(member.client_id, "sprat-test");
    assert_eq!(member.client_host, "/127.0.0.1");
    assert_eq!(member.member_metadata, subscription(&["t"]));
    assert_eq!(member.member_assignment, b"assigned");
    assert_eq!(offsets_only.group_state, "Empty");
    assert_eq!(offsets_only.protocol_type, "");
    assert_eq!(missing.error_code, NONE);
    assert_eq!(missing.group_state, "Dead");
    assert!(missing.members.is_empty());
}

#[test]
fn delete_groups_and_offsets() {
    let broker = start("delete-groups");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    create_topic(&mut client, "u", 1);
    assert_eq!(
        commit(&mut client, 2, "empty", -1, "", "t", &[(0, 1), (1, 2)]),
        [NONE, NONE]
    );
    let (member_id, generation) = stable_member(&mut client, "busy", b"x");
    assert_eq!(
        commit(
            &mut client,
            8,
            "busy",
            generation,
            &member_id,
            "u",
            &[(0, 4)]
        ),
        [NONE]
    );

    // OffsetDelete: a consumer group keeps the offsets of topics it subscribes to ("t").
    let request = od::OffsetDeleteRequest {
        group_id: "busy".into(),
        topics: ["t", "u", "nope"]
            .iter()
            .map(|name| od::OffsetDeleteRequestTopic {
                name: name.to_string(),
                partitions: vec![od::OffsetDeleteRequestPartition { partition_index: 0 }],
            })
            .collect(),
    };
    let response = client.call(
        od::API_KEY,
        0,
        |e| request.encode(e, 0),
        od::OffsetDeleteResponse::decode,
    );
    assert_eq!(response.error_code, NONE);
    let errors: Vec<i16> = response
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(
        errors,
        [GROUP_SUBSCRIBED_TO_TOPIC, NONE, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(fetch(&mut client, 2, "busy", Some(&[("u", &[0])]))[0].2, -1);

    let request = dlg::DeleteGroupsRequest {
        groups_names: vec!["empty".into(), "busy".into(), "missing".into()],
    };
    for version in [0, 2] {
        let response = client.call(
            dlg::API_KEY,
            version,
            |e| request.encode(e, version),
            dlg::DeleteGroupsResponse::decode,
        );
        let results: Vec<(&str, i16)> = response
            .results
            .iter()
            .map(|r| (r.group_id.as_str(), r.error_code))
            .collect();
        let empty_error = if version == 0 {
            NONE
        } else {
            GROUP_ID_NOT_FOUND
        };
        assert_eq!(
            results,
            [
                ("empty", empty_error),
                ("busy", NON_EMPTY_GROUP),
                ("missing", GROUP_ID_NOT_FOUND)
            ]
        );
    }
    assert_eq!(
        fetch(&mut client, 2, "empty", Some(&[("t", &[0, 1])]))
            .iter()
            .map(|r| r.2)
            .collect::<Vec<_>>(),
        [-1, -1]
    );
    assert_eq!(
        list_groups(&mut client, 4, &[]),
        rows(&[("busy", "Stable")])
    );
}

#[test]
fn every_group_api_version_round_trips() {
    let broker = start("all-versions");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    for version in 0..=9i16 {
        let group = format!("group-v{version}");
        let joined = Join::new(&group, "").send_with_id(&mut client, version);
        assert_eq!(joined.error_code, NONE, "JoinGroup v{version}");
        let member_id = joined.member_id.clone();
        let synced = sync(
            &mut client,
            version.min(5),
            &group,
            joined.generation_id,
            &member_id,
            &[(&member_id, b"a")],
        );
        assert_eq!(synced.error_code, NONE, "SyncGroup v{}", version.min(5));
        let request = hb::HeartbeatRequest {
            group_id: group.clone(),
            generation_id: joined.generation_id,
            member_id: member_id.clone(),
            ..hb::HeartbeatRequest::default()
        };
        let hb_version = version.min(4);
        let beat = client.call(
            hb::API_KEY,
            hb_version,
            |e| request.encode(e, hb_version),
            hb::HeartbeatResponse::decode,
        );
        assert_eq!(beat.error_code, NONE, "Heartbeat v{hb_version}");
        // OffsetCommit v0 has no generation: it is a standalone commit, refused while the
        // group has members.
        let expected = if version == 0 {
            UNKNOWN_MEMBER_ID
        } else {
            NONE
        };
        assert_eq!(
            commit(
                &mut client,
                version,
                &group,
                joined.generation_id,
                &member_id,
                "t",
                &[(0, i64::from(version))]
            ),
            [expected],
            "OffsetCommit v{version}"
        );
        if version <= 7 {
            let rows = fetch(&mut client, version, &group, Some(&[("t", &[0])]));
            let offset = if version == 0 { -1 } else { i64::from(version) };
            assert_eq!(rows[0].2, offset, "OffsetFetch v{version}");
        }
        let lg_version = version.min(5);
        let left = leave(&mut client, lg_version, &group, &member_id);
        assert_eq!(left.error_code, NONE, "LeaveGroup v{lg_version}");
        let described = describe(&mut client, version.min(5), &[&group]);
        assert_eq!(described.groups[0].group_state, "Empty");
    }
}

/// A member that asks for a rebalance timeout of i32::MAX, keeps heartbeating and never rejoins
/// used to hold every other member's JoinGroup for 24 days. Kafka's selector would expire those
/// connections after `connections.max.idle.ms`; sprat answers the waiting join then with
/// REBALANCE_IN_PROGRESS, so the client rejoins and no thread waits longer.
#[test]
fn join_waits_no_longer_than_the_idle_timeout() {
    let mut properties = GROUP_PROPERTIES.to_vec();
    properties.push("connections.max.idle.ms=2000");
    let broker = TestBroker::start_with("join-idle-cap", |_| {}, &properties);
    let mut a = broker.connect();
    create_topic(&mut a, "t", 1);
    let joined = Join {
        rebalance_timeout_ms: i32::MAX,
        ..Join::new("g", "")
    }
    .send_with_id(&mut a, 5);
    let a_id = joined.member_id.clone();
    let synced = sync(
        &mut a,
        3,
        "g",
        joined.generation_id,
        &a_id,
        &[(&a_id, b"a")],
    );
    assert_eq!(synced.error_code, NONE);

    let addr = broker.addr;
    let started = Instant::now();
    let waiter = std::thread::spawn(move || {
        let mut b = Client::connect(addr);
        Join::new("g", "").send_with_id(&mut b, 5).error_code
    });
    // The first member stays alive (and its connection active) without rejoining.
    while !waiter.is_finished() {
        let code = heartbeat(&mut a, "g", joined.generation_id, &a_id);
        assert!(matches!(code, NONE | REBALANCE_IN_PROGRESS), "{code}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the join is still waiting"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(waiter.join().unwrap(), REBALANCE_IN_PROGRESS);
    assert!(started.elapsed() < Duration::from_secs(10));
}
