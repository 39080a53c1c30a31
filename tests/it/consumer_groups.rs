//! KIP-848 consumer groups on the wire: ConsumerGroupHeartbeat v0 (the broker names the member)
//! and v1 (the member names itself, Kafka 4.0), the request checks, reconciliation without a
//! partition owned twice, leaving, commits checked against member epochs, regex subscriptions
//! (SubscribedTopicRegex, v1), and ConsumerGroupDescribe v0.

use crate::groups::create_topic;
use crate::harness::{Client, TestBroker};
use sprat::protocol::messages::{
    consumer_group_describe as cgd, consumer_group_heartbeat as cgh, delete_topics as dt,
    list_groups as lg, metadata as md, offset_commit as oc,
};
use std::collections::BTreeSet;

const NONE: i16 = 0;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

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
    let mut bad_regex = join("m");
    bad_regex.subscribed_topic_regex = Some("t[".into());
    for (version, request, code) in [
        (1, join(""), INVALID_REQUEST),
        (0, no_timeout, INVALID_REQUEST),
        (0, no_topics, INVALID_REQUEST),
        (0, beat("", 1, None), INVALID_REQUEST),
        (0, beat("m", -3, None), INVALID_REQUEST),
        (1, bad_regex, INVALID_REGULAR_EXPRESSION),
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

/// Each topic's id, from Metadata v12.
fn topic_ids(client: &mut Client, names: &[&str]) -> Vec<(String, sprat::protocol::wire::Uuid)> {
    let request = md::MetadataRequest {
        topics: Some(
            names
                .iter()
                .map(|n| md::MetadataRequestTopic {
                    name: Some(n.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    let r = client.call(
        md::API_KEY,
        12,
        |e| request.encode(e, 12),
        md::MetadataResponse::decode,
    );
    r.topics
        .into_iter()
        .filter(|t| t.error_code == NONE)
        .map(|t| (t.name.unwrap_or_default(), t.topic_id))
        .collect()
}

/// The topic names of an assignment, by the ids the metadata gives them.
fn assigned_topics(
    client: &mut Client,
    assignment: &cgh::Assignment,
    names: &[&str],
) -> BTreeSet<(String, i32)> {
    let ids = topic_ids(client, names);
    assignment
        .topic_partitions
        .iter()
        .flat_map(|t| {
            let name = ids
                .iter()
                .find(|(_, id)| *id == t.topic_id)
                .map(|(n, _)| n.clone())
                .unwrap_or_else(|| format!("{:?}", t.topic_id));
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect()
}

#[test]
fn a_regex_subscription_gets_matching_topics_and_later_ones() {
    let broker = TestBroker::start("kip848-regex");
    let mut client = broker.connect();
    for (name, partitions) in [("orders.eu", 2), ("orders.us", 1), ("payments", 1)] {
        create_topic(&mut client, name, partitions);
    }
    // ConsumerGroupHeartbeat v1 as bytes: a member that names itself and subscribes by regex only.
    #[rustfmt::skip]
    let body: Vec<u8> = [
        &[2u8, b'g'][..],               // group id
        &[3, b'm', b'1'],               // member id
        &[0, 0, 0, 0],                  // member epoch 0: joining
        &[0],                           // instance id: null
        &[0],                           // rack id: null
        &[0, 0, 0x75, 0x30],            // rebalance timeout 30000 ms
        &[0],                           // subscribed topic names: null
        &[11], br"orders\..*",          // subscribed topic regex
        &[0],                           // server assignor: null
        &[1],                           // owned partitions: none
        &[0],                           // tagged fields
    ]
    .concat();
    let frame = crate::harness::request_frame(cgh::API_KEY, 1, 7, |e| e.raw(&body));
    let response = client.round_trip(&frame);
    let r = crate::harness::decode_response(
        &response[4..],
        7,
        true,
        1,
        cgh::ConsumerGroupHeartbeatResponse::decode,
    );
    assert_eq!(r.error_code, NONE, "{r:?}");
    assert_eq!(r.member_id.as_deref(), Some("m1"));
    assert_eq!(r.member_epoch, 1);
    let names = ["orders.eu", "orders.us", "payments", "orders.asia"];
    let expected = |topics: &[(&str, i32)]| -> BTreeSet<(String, i32)> {
        topics.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    };
    assert_eq!(
        assigned_topics(&mut client, r.assignment.as_ref().unwrap(), &names),
        expected(&[("orders.eu", 0), ("orders.eu", 1), ("orders.us", 0)])
    );

    // A topic created later that matches is assigned on a later heartbeat, with a new epoch.
    create_topic(&mut client, "orders.asia", 1);
    create_topic(&mut client, "ordersXasia", 1);
    let r2 = heartbeat(&mut client, 1, &beat("m1", 1, r.assignment.as_ref()));
    assert_eq!(r2.error_code, NONE, "{r2:?}");
    assert_eq!(r2.member_epoch, 2);
    assert_eq!(
        assigned_topics(&mut client, r2.assignment.as_ref().unwrap(), &names),
        expected(&[
            ("orders.asia", 0),
            ("orders.eu", 0),
            ("orders.eu", 1),
            ("orders.us", 0)
        ])
    );

    // ConsumerGroupDescribe shows the regex.
    let request = cgd::ConsumerGroupDescribeRequest {
        group_ids: vec!["g".into()],
        include_authorized_operations: false,
    };
    let d = client.call(
        cgd::API_KEY,
        0,
        |e| request.encode(e, 0),
        cgd::ConsumerGroupDescribeResponse::decode,
    );
    let member = &d.groups[0].members[0];
    assert_eq!(
        member.subscribed_topic_regex.as_deref(),
        Some(r"orders\..*")
    );
    assert!(member.subscribed_topic_names.is_empty());

    // A bad regex from the member is refused and leaves its subscription as it was.
    let mut bad = beat("m1", 2, r2.assignment.as_ref());
    bad.subscribed_topic_regex = Some("orders(".into());
    let refused = heartbeat(&mut client, 1, &bad);
    assert_eq!(refused.error_code, INVALID_REGULAR_EXPRESSION);
    assert_eq!(
        refused.error_message.as_deref(),
        Some("SubscribedTopicRegex `orders(` is not a valid regular expression: unclosed group.")
    );
    let r3 = heartbeat(&mut client, 1, &beat("m1", 2, r2.assignment.as_ref()));
    assert_eq!((r3.error_code, r3.member_epoch), (NONE, 2));

    // A matching topic deleted leaves the assignment on the next heartbeat.
    let request = dt::DeleteTopicsRequest {
        topic_names: vec!["orders.us".into()],
        timeout_ms: 30000,
        ..Default::default()
    };
    let deleted = client.call(
        dt::API_KEY,
        5,
        |e| request.encode(e, 5),
        dt::DeleteTopicsResponse::decode,
    );
    assert_eq!(deleted.responses[0].error_code, NONE);
    // The member is first told to give up orders.us, at its epoch; once it has, it moves on.
    let r4 = heartbeat(&mut client, 1, &beat("m1", 2, r2.assignment.as_ref()));
    assert_eq!((r4.error_code, r4.member_epoch), (NONE, 2), "{r4:?}");
    assert_eq!(
        assigned_topics(&mut client, r4.assignment.as_ref().unwrap(), &names),
        expected(&[("orders.asia", 0), ("orders.eu", 0), ("orders.eu", 1)])
    );
    let r5 = heartbeat(&mut client, 1, &beat("m1", 2, r4.assignment.as_ref()));
    assert_eq!((r5.error_code, r5.member_epoch), (NONE, 3), "{r5:?}");
    broker.assert_no_panics();
}
