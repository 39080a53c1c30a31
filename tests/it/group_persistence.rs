//! Group state that survives restarts: the GroupMetadata and KIP-848 records sprat writes to
//! `__consumer_offsets` (checked byte for byte in the segment files against the spec layouts),
//! a classic group's generation and a consumer group's epochs after a clean restart and after
//! kill -9 (also a member subscribed by regex), members expiring after their session, offsets
//! retention, and the tombstones of deleted groups and topics.

use crate::consumer_groups::{beat, heartbeat as cg_heartbeat, join as cg_join, partitions};
use crate::groups::{
    GROUP_PROPERTIES, Join, commit, create_topic, describe, fetch, heartbeat, list_groups, rows,
    stable_member, subscription,
};
use crate::harness::TestBroker;
use sprat::group::offsets::partition_for;
use sprat::protocol::messages::{
    consumer_group_describe as cgd, delete_groups as dlg, delete_topics as dt,
};
use sprat::storage::record_batch::{Batches, decode_records};
use std::path::Path;
use std::time::{Duration, Instant};

const NONE: i16 = 0;
const OFFSETS_PARTITIONS: i32 = 3;

/// Every (key, value) record of the `__consumer_offsets` partition that holds `group`, in log
/// order, read from the segment files.
fn offsets_records(log_dir: &Path, group: &str) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let dir = log_dir.join(format!(
        "__consumer_offsets-{}",
        partition_for(group, OFFSETS_PARTITIONS)
    ));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segments.sort();
    let mut out = Vec::new();
    for segment in segments {
        let bytes = std::fs::read(segment).unwrap();
        for batch in Batches::new(&bytes) {
            for r in decode_records(&batch.unwrap()).unwrap() {
                out.push((r.key.unwrap(), r.value));
            }
        }
    }
    out
}

/// A key as the spec lays it out: int16 version, then int16-length strings.
fn key(version: i16, strings: &[&str]) -> Vec<u8> {
    let mut k = version.to_be_bytes().to_vec();
    for s in strings {
        k.extend((s.len() as i16).to_be_bytes());
        k.extend(s.as_bytes());
    }
    k
}

/// The values written under `key`, in order (`None`: a tombstone).
fn values_of(records: &[(Vec<u8>, Option<Vec<u8>>)], key: &[u8]) -> Vec<Option<Vec<u8>>> {
    records
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn str16(s: &str) -> Vec<u8> {
    let mut v = (s.len() as i16).to_be_bytes().to_vec();
    v.extend(s.as_bytes());
    v
}

fn bytes32(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as i32).to_be_bytes().to_vec();
    v.extend(b);
    v
}

#[test]
fn classic_group_generation_survives_restart_and_kill_9() {
    let mut broker = TestBroker::start_with("group-metadata-restart", |_| {}, GROUP_PROPERTIES);
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    let (member_id, generation) = stable_member(&mut client, "g", b"assigned");
    assert_eq!(generation, 1);
    assert_eq!(
        commit(&mut client, 8, "g", generation, &member_id, "t", &[(0, 5)]),
        [NONE]
    );

    // The GroupMetadata record of generation 1, GroupMetadataValue version 3, as the spec lays
    // it out: protocol type, generation, protocol, leader, current state timestamp, members.
    let records = offsets_records(&broker.log_dir, "g");
    let stored = values_of(&records, &key(2, &["g"]));
    assert_eq!(stored.len(), 1, "one record per generation");
    let value = stored[0].clone().expect("not a tombstone");
    let mut head = vec![0, 3];
    head.extend(str16("consumer"));
    head.extend(1i32.to_be_bytes());
    head.extend(str16("range"));
    head.extend(str16(&member_id));
    assert_eq!(value[..head.len()], head[..]);
    let timestamp = i64::from_be_bytes(value[head.len()..head.len() + 8].try_into().unwrap());
    assert!(timestamp > 1_600_000_000_000, "a wall-clock timestamp");
    let mut member = 1i32.to_be_bytes().to_vec();
    member.extend(str16(&member_id));
    member.extend((-1i16).to_be_bytes()); // no group instance id
    member.extend(str16("sprat-test")); // client id
    let rest = &value[head.len() + 8..];
    assert_eq!(rest[..member.len()], member[..]);
    let mut tail = 10_000i32.to_be_bytes().to_vec(); // rebalance timeout
    tail.extend(10_000i32.to_be_bytes()); // session timeout
    tail.extend(bytes32(&subscription(&["t"])));
    tail.extend(bytes32(b"assigned"));
    assert!(rest.ends_with(&tail), "{rest:?}");

    for kill in [true, false] {
        drop(client);
        if kill {
            broker.kill_and_restart();
        } else {
            assert!(broker.terminate(), "clean shutdown");
            broker.restart();
        }
        client = broker.connect();
        // Right after the restart the group is Stable in generation 1 with its member.
        let described = describe(&mut client, 5, &["g"]);
        let g = &described.groups[0];
        assert_eq!(
            (g.group_state.as_str(), g.protocol_type.as_str()),
            ("Stable", "consumer"),
            "kill -9: {kill}"
        );
        assert_eq!(g.protocol_data, "range");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].member_id, member_id);
        assert_eq!(g.members[0].member_assignment, b"assigned");
        assert_eq!(g.members[0].member_metadata, subscription(&["t"]));
        // The member carries on without a rebalance.
        assert_eq!(heartbeat(&mut client, "g", generation, &member_id), NONE);
        assert_eq!(
            commit(&mut client, 8, "g", generation, &member_id, "t", &[(1, 7)]),
            [NONE]
        );
    }
    assert_eq!(fetch(&mut client, 7, "g", None).len(), 2);
    broker.assert_no_panics();
}

#[test]
fn restored_members_expire_after_their_session() {
    let mut broker = TestBroker::start_with("group-metadata-expiry", |_| {}, GROUP_PROPERTIES);
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let joined = Join {
        session_timeout_ms: 500,
        ..Join::new("short", "")
    }
    .send_with_id(&mut client, 5);
    assert_eq!(joined.error_code, NONE);
    let synced = crate::groups::sync(
        &mut client,
        3,
        "short",
        1,
        &joined.member_id,
        &[(&joined.member_id, b"a")],
    );
    assert_eq!(synced.error_code, NONE);
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    // Nobody heartbeats: the restored member is removed once its session runs out, and the
    // group's new, empty generation is stored.
    wait_until("the member to expire", || {
        describe(&mut client, 5, &["short"]).groups[0].group_state == "Empty"
    });
    let records = offsets_records(&broker.log_dir, "short");
    let stored = values_of(&records, &key(2, &["short"]));
    assert_eq!(stored.len(), 2);
    let empty = stored[1].clone().unwrap();
    let mut expected = vec![0, 3];
    expected.extend(str16("consumer"));
    expected.extend(2i32.to_be_bytes());
    expected.extend([0xff, 0xff, 0xff, 0xff]); // protocol and leader: null
    assert_eq!(empty[..expected.len()], expected[..]);
    assert_eq!(empty[empty.len() - 4..], [0, 0, 0, 0], "no members");
    // After another restart it is still Empty in generation 2.
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(
        list_groups(&mut client, 4, &[]),
        rows(&[("short", "Empty")])
    );
}

#[test]
fn consumer_group_epochs_survive_kill_9() {
    let mut broker = TestBroker::start_with("consumer-group-restart", |_| {}, GROUP_PROPERTIES);
    let mut client = broker.connect();
    create_topic(&mut client, "t", 4);
    let a = cg_heartbeat(&mut client, 1, &cg_join("member-a"));
    assert_eq!((a.error_code, a.member_epoch), (NONE, 1));
    let owned = a.assignment.clone().unwrap();
    assert_eq!(partitions(&owned).len(), 4);
    let a = cg_heartbeat(&mut client, 1, &beat("member-a", 1, Some(&owned)));
    assert_eq!(a.error_code, NONE);

    // The records Kafka writes, with its key versions: member metadata (5), subscription
    // metadata (4), group epoch (3), target assignment (7, 6), current assignment (8).
    let records = offsets_records(&broker.log_dir, "g");
    let epoch = values_of(&records, &key(3, &["g"]));
    assert_eq!(
        epoch.last().unwrap().as_deref(),
        Some(&[0, 0, 0, 0, 0, 1, 0][..])
    );
    let target_epoch = values_of(&records, &key(6, &["g"]));
    assert_eq!(
        target_epoch.last().unwrap().as_deref(),
        Some(&[0, 0, 0, 0, 0, 1, 0][..])
    );
    let member = values_of(&records, &key(5, &["g", "member-a"]));
    let m = member.last().unwrap().clone().unwrap();
    // Version 0; instance and rack null; compact client id "sprat-test".
    assert_eq!(m[..4], [0, 0, 0, 0]);
    assert_eq!(m[4], 11);
    assert_eq!(&m[5..15], b"sprat-test");
    let partition_metadata = values_of(&records, &key(4, &["g"]));
    let pm = partition_metadata.last().unwrap().clone().unwrap();
    assert_eq!(pm[..3], [0, 0, 2], "one topic");
    assert_eq!(pm[19..21], [2, b't']);
    assert_eq!(pm[21..25], [0, 0, 0, 4], "four partitions");
    let current = values_of(&records, &key(8, &["g", "member-a"]));
    let c = current.last().unwrap().clone().unwrap();
    // Member epoch 1, previous epoch 0, state STABLE (0).
    assert_eq!(c[..11], [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert!(!values_of(&records, &key(7, &["g", "member-a"])).is_empty());

    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    // The member keeps its epoch and its partitions: no rejoin, no rebalance.
    let again = cg_heartbeat(&mut client, 1, &beat("member-a", 1, Some(&owned)));
    assert_eq!(
        (again.error_code, again.member_epoch),
        (NONE, 1),
        "{again:?}"
    );
    if let Some(assignment) = &again.assignment {
        assert_eq!(partitions(assignment), partitions(&owned));
    }
    let request = cgd::ConsumerGroupDescribeRequest {
        group_ids: vec!["g".into()],
        include_authorized_operations: false,
    };
    let described = client.call(
        cgd::API_KEY,
        0,
        |e| request.encode(e, 0),
        cgd::ConsumerGroupDescribeResponse::decode,
    );
    let g = &described.groups[0];
    assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
    assert_eq!(g.members.len(), 1);
    // DescribeGroups (the classic API) answers Dead for a consumer group, as Kafka does.
    assert_eq!(
        describe(&mut client, 5, &["g"]).groups[0].group_state,
        "Dead"
    );

    // Leaving writes tombstones for the member's records.
    let mut leave = beat("member-a", -1, None);
    leave.member_epoch = -1;
    assert_eq!(cg_heartbeat(&mut client, 1, &leave).error_code, NONE);
    let records = offsets_records(&broker.log_dir, "g");
    for k in [
        key(5, &["g", "member-a"]),
        key(7, &["g", "member-a"]),
        key(8, &["g", "member-a"]),
    ] {
        assert_eq!(values_of(&records, &k).last(), Some(&None), "{k:?}");
    }
    // Deleting the empty group tombstones its group-level records too.
    let request = dlg::DeleteGroupsRequest {
        groups_names: vec!["g".into()],
    };
    let deleted = client.call(
        dlg::API_KEY,
        2,
        |e| request.encode(e, 2),
        dlg::DeleteGroupsResponse::decode,
    );
    assert_eq!(deleted.results[0].error_code, NONE);
    let records = offsets_records(&broker.log_dir, "g");
    for k in [key(3, &["g"]), key(4, &["g"]), key(6, &["g"])] {
        assert_eq!(values_of(&records, &k).last(), Some(&None), "{k:?}");
    }
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert!(list_groups(&mut client, 4, &[]).is_empty());
}

#[test]
fn a_regex_subscription_survives_kill_9() {
    let mut broker = TestBroker::start_with("consumer-group-regex", |_| {}, GROUP_PROPERTIES);
    let mut client = broker.connect();
    create_topic(&mut client, "orders.eu", 1);
    create_topic(&mut client, "orders.us", 1);
    create_topic(&mut client, "payments", 1);
    let mut join = cg_join("member-r");
    join.subscribed_topic_names = Some(Vec::new());
    join.subscribed_topic_regex = Some(r"orders\..*".into());
    let a = cg_heartbeat(&mut client, 1, &join);
    assert_eq!((a.error_code, a.member_epoch), (NONE, 1), "{a:?}");
    let owned = a.assignment.clone().unwrap();
    assert_eq!(owned.topic_partitions.len(), 2, "both orders topics");

    // The member record holds the regex after the (empty) names; the subscription metadata
    // holds the two topics it resolved to.
    let records = offsets_records(&broker.log_dir, "g");
    let member = values_of(&records, &key(5, &["g", "member-r"]));
    let m = member.last().unwrap().clone().unwrap();
    let regex = [&[11u8][..], br"orders\..*"].concat();
    // After the client id: client host "/127.0.0.1", no topic names, the regex.
    let expected = [&[11u8][..], b"/127.0.0.1", &[1], &regex].concat();
    assert_eq!(m[15..15 + expected.len()], expected[..]);
    let pm = values_of(&records, &key(4, &["g"]));
    let pm = pm.last().unwrap().clone().unwrap();
    assert_eq!(pm[..3], [0, 0, 3], "two topics");

    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    let again = cg_heartbeat(&mut client, 1, &beat("member-r", 1, Some(&owned)));
    assert_eq!(
        (again.error_code, again.member_epoch),
        (NONE, 1),
        "{again:?}"
    );
    let request = cgd::ConsumerGroupDescribeRequest {
        group_ids: vec!["g".into()],
        include_authorized_operations: false,
    };
    let described = client.call(
        cgd::API_KEY,
        0,
        |e| request.encode(e, 0),
        cgd::ConsumerGroupDescribeResponse::decode,
    );
    let member = &described.groups[0].members[0];
    assert_eq!(
        member.subscribed_topic_regex.as_deref(),
        Some(r"orders\..*")
    );
    // The restored regex still follows new topics.
    create_topic(&mut client, "orders.asia", 1);
    let later = cg_heartbeat(&mut client, 1, &beat("member-r", 1, Some(&owned)));
    assert_eq!(
        (later.error_code, later.member_epoch),
        (NONE, 2),
        "{later:?}"
    );
    assert_eq!(later.assignment.unwrap().topic_partitions.len(), 3);
}

#[test]
fn retention_expires_offsets_with_tombstones() {
    let mut properties = GROUP_PROPERTIES.to_vec();
    properties.extend([
        "sprat.offsets.retention.ms=200",
        "offsets.retention.check.interval.ms=100",
    ]);
    let broker = TestBroker::start_with("offsets-retention", |_| {}, &properties);
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    // A standalone commit (no protocol): retention counts from the commit.
    assert_eq!(
        commit(&mut client, 2, "standalone", -1, "", "t", &[(0, 3)]),
        [NONE]
    );
    // A Stable consumer group subscribed to t keeps its offsets however old.
    let (member_id, generation) = stable_member(&mut client, "active", b"a");
    assert_eq!(
        commit(
            &mut client,
            8,
            "active",
            generation,
            &member_id,
            "t",
            &[(0, 9)]
        ),
        [NONE]
    );
    wait_until("the standalone offsets to expire", || {
        fetch(&mut client, 1, "standalone", Some(&[("t", &[0])]))[0].2 == -1
    });
    let mut tombstone_key = key(1, &["standalone", "t"]);
    tombstone_key.extend(0i32.to_be_bytes());
    wait_until("an offset tombstone", || {
        let records = offsets_records(&broker.log_dir, "standalone");
        values_of(&records, &tombstone_key).last() == Some(&None)
    });
    // The member keeps heartbeating; its group's offsets stay.
    for _ in 0..5 {
        assert_eq!(
            heartbeat(&mut client, "active", generation, &member_id),
            NONE
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(fetch(&mut client, 7, "active", None)[0].2, 9);
    // The standalone group, left without offsets, is removed.
    wait_until("the standalone group to go", || {
        list_groups(&mut client, 4, &[]) == rows(&[("active", "Stable")])
    });
}

#[test]
fn deleted_topic_offsets_are_tombstoned() {
    let mut broker = TestBroker::start_with("deleted-topic-offsets", |_| {}, GROUP_PROPERTIES);
    let mut client = broker.connect();
    create_topic(&mut client, "gone", 2);
    create_topic(&mut client, "kept", 1);
    assert_eq!(
        commit(&mut client, 2, "g", -1, "", "gone", &[(0, 1), (1, 2)]),
        [NONE, NONE]
    );
    assert_eq!(
        commit(&mut client, 2, "g", -1, "", "kept", &[(0, 3)]),
        [NONE]
    );
    let request = dt::DeleteTopicsRequest {
        topic_names: vec!["gone".into()],
        timeout_ms: 30000,
        ..dt::DeleteTopicsRequest::default()
    };
    let deleted = client.call(
        dt::API_KEY,
        4,
        |e| request.encode(e, 4),
        dt::DeleteTopicsResponse::decode,
    );
    assert_eq!(deleted.responses[0].error_code, NONE);
    wait_until("the deleted topic's offsets to go", || {
        fetch(&mut client, 7, "g", None).len() == 1
    });
    // The tombstones follow the removal from memory.
    wait_until("the tombstones", || {
        let records = offsets_records(&broker.log_dir, "g");
        [0i32, 1].iter().all(|p| {
            let mut k = key(1, &["g", "gone"]);
            k.extend(p.to_be_bytes());
            values_of(&records, &k).last() == Some(&None)
        })
    });
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(
        fetch(&mut client, 7, "g", None),
        [("kept".into(), 0, 3, Some("meta-0".into()), NONE)]
    );
}

#[test]
fn delete_groups_and_offset_delete_write_tombstones() {
    use sprat::protocol::messages::offset_delete as od;

    let mut broker = TestBroker::start_with("group-tombstones", |_| {}, GROUP_PROPERTIES);
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    let (member_id, generation) = stable_member(&mut client, "g", b"a");
    assert_eq!(
        commit(
            &mut client,
            8,
            "g",
            generation,
            &member_id,
            "t",
            &[(0, 1), (1, 2)]
        ),
        [NONE, NONE]
    );
    assert_eq!(
        crate::groups::leave(&mut client, 3, "g", &member_id).error_code,
        NONE
    );
    // OffsetDelete of an Empty group: a tombstone for the offset.
    let request = od::OffsetDeleteRequest {
        group_id: "g".into(),
        topics: vec![od::OffsetDeleteRequestTopic {
            name: "t".into(),
            partitions: vec![od::OffsetDeleteRequestPartition { partition_index: 0 }],
        }],
    };
    let response = client.call(
        od::API_KEY,
        0,
        |e| request.encode(e, 0),
        od::OffsetDeleteResponse::decode,
    );
    assert_eq!(response.topics[0].partitions[0].error_code, NONE);
    let offset_key = |p: i32| {
        let mut k = key(1, &["g", "t"]);
        k.extend(p.to_be_bytes());
        k
    };
    let records = offsets_records(&broker.log_dir, "g");
    assert_eq!(values_of(&records, &offset_key(0)).last(), Some(&None));
    assert!(
        values_of(&records, &offset_key(1))
            .last()
            .unwrap()
            .is_some()
    );
    // The Empty generation (2) was stored when the member left.
    let stored = values_of(&records, &key(2, &["g"]));
    assert_eq!(
        stored.last().unwrap().as_ref().unwrap()[12..16],
        [0, 0, 0, 2]
    );

    // DeleteGroups: tombstones for the other offset and for the group's metadata.
    let request = dlg::DeleteGroupsRequest {
        groups_names: vec!["g".into()],
    };
    let deleted = client.call(
        dlg::API_KEY,
        2,
        |e| request.encode(e, 2),
        dlg::DeleteGroupsResponse::decode,
    );
    assert_eq!(deleted.results[0].error_code, NONE);
    let records = offsets_records(&broker.log_dir, "g");
    assert_eq!(values_of(&records, &offset_key(1)).last(), Some(&None));
    assert_eq!(values_of(&records, &key(2, &["g"])).last(), Some(&None));
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert!(list_groups(&mut client, 4, &[]).is_empty());
    assert_eq!(
        describe(&mut client, 5, &["g"]).groups[0].group_state,
        "Dead"
    );
}
