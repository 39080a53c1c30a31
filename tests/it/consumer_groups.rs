//! KIP-848 consumer groups on the wire: ConsumerGroupHeartbeat v0 (the broker names the member)
//! and v1 (the member names itself, Kafka 4.0), the request checks, reconciliation without a
//! partition owned twice, leaving, commits checked against member epochs, and
//! ConsumerGroupDescribe v0.

use crate::groups::create_topic;
use crate::harness::{Client, TestBroker};
use sprat::protocol::messages::{
    consumer_group_describe as cgd, consumer_group_heartbeat as cgh, list_groups as lg,
    offset_commit as oc,
};
use std::collections::BTreeSet;

const NONE: i16 = 0;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;

pub(crate) fn heartbeat(
    client: &mut Client,
    version: i16,
    request: &cgh::ConsumerGroupHeartbeatRequest,
) -> cgh::ConsumerGroupHeartbeatResponse {
    client.call(
        cgh::API_KEY,
        version,
        |e| request.encode(e, version),
        cgh::ConsumerGroupHeartbeatResponse::decode,
    )
}

pub(crate) fn join(member_id: &str) -> cgh::ConsumerGroupHeartbeatRequest {
    cgh::ConsumerGroupHeartbeatRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30000,
        subscribed_topic_names: Some(vec!["t".into()]),
        topic_partitions: Some(Vec::new()),
        ..Default::default()
    }
}

pub(crate) fn beat(
    member_id: &str,
    epoch: i32,
    owned: Option<&cgh::Assignment>,
) -> cgh::ConsumerGroupHeartbeatRequest {
    cgh::ConsumerGroupHeartbeatRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        member_epoch: epoch,
        topic_partitions: owned.map(|a| a.topic_partitions.clone()),
        ..Default::default()
    }
}

pub(crate) fn partitions(a: &cgh::Assignment) -> BTreeSet<i32> {
    a.topic_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().copied())
        .collect()
}

fn commit(client: &mut Client, member: &str, epoch: i32) -> i16 {
    let request = oc::OffsetCommitRequest {
        group_id: "g".into(),
        generation_id_or_member_epoch: epoch,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![oc::OffsetCommitRequestTopic {
            name: "t".into(),
            partitions: vec![oc::OffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: 0,
                committed_leader_epoch: -1,
                commit_timestamp: -1,
                committed_metadata: None,
            }],
        }],
    };
    let r = client.call(
        oc::API_KEY,
        9,
        |e| request.encode(e, 9),
        oc::OffsetCommitResponse::decode,
    );
    r.topics[0].partitions[0].error_code
}

#[test]
fn members_converge_without_sharing_a_partition() {
    let broker = TestBroker::start("kip848");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 4);

    // v0: the broker names the member.
    let a = heartbeat(&mut client, 0, &join(""));
    assert_eq!((a.error_code, a.member_epoch), (NONE, 1), "{a:?}");
    let a_id = a.member_id.clone().unwrap();
    assert!(!a_id.is_empty());
    assert!(a.heartbeat_interval_ms > 0);
    let a_assigned = a.assignment.clone().unwrap();
    assert_eq!(partitions(&a_assigned), BTreeSet::from([0, 1, 2, 3]));

    // v1: the member names itself and waits for the partitions a still holds.
    let b = heartbeat(&mut client, 1, &join("member-b"));
    assert_eq!(
        (b.error_code, b.member_id.as_deref(), b.member_epoch),
        (NONE, Some("member-b"), 2)
    );
    assert_eq!(b.assignment.as_ref().map(partitions), Some(BTreeSet::new()));

    // a keeps epoch 1 while it gives two partitions up, then moves to epoch 2.
    let a2 = heartbeat(&mut client, 0, &beat(&a_id, 1, None));
    assert_eq!(a2.member_epoch, 1);
    let kept = a2.assignment.clone().unwrap();
    assert_eq!(partitions(&kept).len(), 2);
    let a3 = heartbeat(&mut client, 0, &beat(&a_id, 1, Some(&kept)));
    assert_eq!((a3.error_code, a3.member_epoch), (NONE, 2));
    let b2 = heartbeat(
        &mut client,
        1,
        &beat("member-b", 2, Some(&cgh::Assignment::default())),
    );
    let got = partitions(&b2.assignment.unwrap());
    assert_eq!(got.len(), 2);
    assert!(got.is_disjoint(&partitions(&kept)), "{got:?} and {kept:?}");

    // Describe: both members at the group's epoch, Stable.
    let request = cgd::ConsumerGroupDescribeRequest {
        group_ids: vec!["g".into(), "nope".into()],
        include_authorized_operations: false,
    };
    let d = client.call(
        cgd::API_KEY,
        0,
        |e| request.encode(e, 0),
        cgd::ConsumerGroupDescribeResponse::decode,
    );
    let g = &d.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.group_epoch,
            g.assignment_epoch
        ),
        (NONE, "Stable", 2, 2)
    );
    assert_eq!(g.assignor_name, "uniform");
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        assert_eq!(m.member_epoch, 2);
        assert_eq!(m.subscribed_topic_names, ["t"]);
        assert_eq!(m.assignment.topic_partitions[0].topic_name, "t");
        assert_eq!(m.client_id, "sprat-test");
    }
    assert_eq!(d.groups[1].error_code, GROUP_ID_NOT_FOUND);
    let request = lg::ListGroupsRequest {
        states_filter: Vec::new(),
        types_filter: vec!["consumer".into()],
    };
    let listed = client.call(
        lg::API_KEY,
        5,
        |e| request.encode(e, 5),
        lg::ListGroupsResponse::decode,
    );
    let listed: Vec<_> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.as_str(),
                g.group_state.as_str(),
                g.group_type.as_str(),
            )
        })
        .collect();
    assert_eq!(listed, [("g", "Stable", "consumer")]);

    // Commits are checked against member epochs.
    assert_eq!(commit(&mut client, &a_id, 2), NONE);
    assert_eq!(commit(&mut client, &a_id, 1), STALE_MEMBER_EPOCH);
    assert_eq!(commit(&mut client, "stranger", 2), UNKNOWN_MEMBER_ID);

    // Stale epochs are fenced; unknown members refused; a leave frees the partitions.
    assert_eq!(
        heartbeat(&mut client, 0, &beat(&a_id, 7, None)).error_code,
        FENCED_MEMBER_EPOCH
    );
    assert_eq!(
        heartbeat(&mut client, 0, &beat("ghost", 3, None)).error_code,
        UNKNOWN_MEMBER_ID
    );
    let left = heartbeat(&mut client, 1, &beat("member-b", -1, None));
    assert_eq!((left.error_code, left.member_epoch), (NONE, -1));
    let a4 = heartbeat(&mut client, 0, &beat(&a_id, 2, None));
    assert_eq!(a4.member_epoch, 3);
    assert_eq!(
        partitions(&a4.assignment.unwrap()),
        BTreeSet::from([0, 1, 2, 3])
    );
    broker.assert_no_panics();
}

#[test]
fn heartbeat_requests_are_checked() {
    let broker = TestBroker::start("kip848-checks");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let mut no_timeout = join("m");
    no_timeout.rebalance_timeout_ms = -1;
    let mut no_topics = join("m");
    no_topics.subscribed_topic_names = None;
    let mut bad_assignor = join("m");
    bad_assignor.server_assignor = Some("sticky".into());
    let mut regex = join("m");
    regex.subscribed_topic_regex = Some("t.*".into());
    for (version, request, code) in [
        (1, join(""), INVALID_REQUEST),
        (0, no_timeout, INVALID_REQUEST),
        (0, no_topics, INVALID_REQUEST),
        (0, beat("", 1, None), INVALID_REQUEST),
        (0, beat("m", -3, None), INVALID_REQUEST),
        (1, regex, INVALID_REQUEST),
        (0, bad_assignor, UNSUPPORTED_ASSIGNOR),
    ] {
        let r = heartbeat(&mut client, version, &request);
        assert_eq!(r.error_code, code, "{request:?}: {r:?}");
        assert!(r.error_message.is_some());
    }
    let mut range = join("m");
    range.server_assignor = Some("range".into());
    assert_eq!(heartbeat(&mut client, 1, &range).error_code, NONE);
}
