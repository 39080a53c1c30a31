//! ACLs from raw bytes: CreateAcls, DescribeAcls and DeleteAcls v0-3 (byte fixtures for v0 and
//! the first flexible version, round trips for every version), SECURITY_DISABLED without an
//! authorizer, Kafka's validation, the AccessControlEntryRecord / RemoveAccessControlEntryRecord
//! in `__cluster_metadata`, ACLs kept across a clean restart and a kill -9, and the checks the
//! other APIs make for a SASL PLAIN user (a regex subscription resolves to describable topics).

use crate::harness::{
    Client, TestBroker, decode_response, plain_batch, produce_batch, request_frame,
};
use sprat::metadata::MetadataRecord;
use sprat::protocol::messages::create_acls as ca;
use sprat::protocol::messages::delete_acls as da;
use sprat::protocol::messages::describe_acls as dsa;
use sprat::protocol::messages::{
    add_offsets_to_txn as aot, add_partitions_to_txn as apt, describe_producers as dp,
    describe_transactions as dt, end_txn as et, list_transactions as lt, txn_offset_commit as toc,
};
use sprat::protocol::messages::{
    create_topics as ct, fetch, find_coordinator as fc, init_producer_id as ipi, join_group as jg,
    metadata as md, sasl_authenticate as sa, sasl_handshake as sh,
};
use sprat::storage::record_batch::{Batches, decode_records};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

const JAAS: &str = r#"listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#;
const AUTHORIZER: &str =
    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";

// Kafka's codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const TRANSACTIONAL_ID: i8 = 5;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const ALL: i8 = 2;
const CREATE: i8 = 5;
const MATCH: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

/// Bytes written as hex digits, grouped by field with spaces.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A response frame: the size prefix, then `text` as [`hex`].
fn framed(text: &str) -> Vec<u8> {
    let body = hex(text);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker with the authorizer on, `User:admin` as super user, and a SASL_PLAINTEXT listener
/// (returned) next to the harness's PLAINTEXT one.
pub(crate) fn secured_broker(name: &str) -> (TestBroker, SocketAddr) {
    let port = free_port();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}");
    let lines = [
        listeners.as_str(),
        "sasl.enabled.mechanisms=PLAIN",
        JAAS,
        AUTHORIZER,
        "super.users=User:admin",
    ];
    let broker = TestBroker::start_with(name, |_| {}, &lines);
    (broker, format!("127.0.0.1:{port}").parse().unwrap())
}

/// A connection authenticated with SASL PLAIN as `user`.
pub(crate) fn login(addr: SocketAddr, user: &str) -> Client {
    let mut client = Client::connect(addr);
    let request = sh::SaslHandshakeRequest {
        mechanism: "PLAIN".into(),
    };
    let response = client.call(
        sh::API_KEY,
        1,
        |e| request.encode(e, 1),
        sh::SaslHandshakeResponse::decode,
    );
    assert_eq!(response.error_code, 0);
    let request = sa::SaslAuthenticateRequest {
        auth_bytes: format!("\0{user}\0{user}-secret").into_bytes(),
    };
    let response = client.call(
        sa::API_KEY,
        2,
        |e| request.encode(e, 2),
        sa::SaslAuthenticateResponse::decode,
    );
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    client
}

fn creation(
    resource_type: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    operation: i8,
    permission: i8,
) -> ca::AclCreation {
    ca::AclCreation {
        resource_type,
        resource_name: name.into(),
        resource_pattern_type: pattern,
        principal: principal.into(),
        host: "*".into(),
        operation,
        permission_type: permission,
    }
}

fn create_acls(client: &mut Client, version: i16, creations: Vec<ca::AclCreation>) -> Vec<i16> {
    let request = ca::CreateAclsRequest { creations };
    let response = client.call(
        ca::API_KEY,
        version,
        |e| request.encode(e, version),
        ca::CreateAclsResponse::decode,
    );
    response.results.iter().map(|r| r.error_code).collect()
}

fn any_filter() -> dsa::DescribeAclsRequest {
    dsa::DescribeAclsRequest {
        resource_type_filter: ANY,
        resource_name_filter: None,
        pattern_type_filter: ANY,
        principal_filter: None,
        host_filter: None,
        operation: ANY,
        permission_type: ANY,
    }
}

fn describe_acls(
    client: &mut Client,
    version: i16,
    request: &dsa::DescribeAclsRequest,
) -> dsa::DescribeAclsResponse {
    client.call(
        dsa::API_KEY,
        version,
        |e| request.encode(e, version),
        dsa::DescribeAclsResponse::decode,
    )
}

/// Every described binding as (type, name, pattern, principal, operation, permission).
fn flatten(response: &dsa::DescribeAclsResponse) -> Vec<(i8, String, i8, String, i8, i8)> {
    let mut out = Vec::new();
    for r in &response.resources {
        for a in &r.acls {
            out.push((
                r.resource_type,
                r.resource_name.clone(),
                r.pattern_type,
                a.principal.clone(),
                a.operation,
                a.permission_type,
            ));
        }
    }
    out
}

fn delete_filter(name: Option<&str>, pattern: i8) -> da::DeleteAclsFilter {
    da::DeleteAclsFilter {
        resource_type_filter: ANY,
        resource_name_filter: name.map(str::to_string),
        pattern_type_filter: pattern,
        principal_filter: None,
        host_filter: None,
        operation: ANY,
        permission_type: ANY,
    }
}

fn delete_acls(
    client: &mut Client,
    version: i16,
    filters: Vec<da::DeleteAclsFilter>,
) -> da::DeleteAclsResponse {
    let request = da::DeleteAclsRequest { filters };
    client.call(
        da::API_KEY,
        version,
        |e| request.encode(e, version),
        da::DeleteAclsResponse::decode,
    )
}

fn metadata(client: &mut Client, topics: Option<&[&str]>) -> md::MetadataResponse {
    let request = md::MetadataRequest {
        topics: topics.map(|t| {
            t.iter()
                .map(|n| md::MetadataRequestTopic {
                    name: Some(n.to_string()),
                    ..Default::default()
                })
                .collect()
        }),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    client.call(
        md::API_KEY,
        12,
        |e| request.encode(e, 12),
        md::MetadataResponse::decode,
    )
}

fn create_topic(client: &mut Client, name: &str) -> i16 {
    let request = ct::CreateTopicsRequest {
        topics: vec![ct::CreatableTopic {
            name: name.into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let response = client.call(
        ct::API_KEY,
        7,
        |e| request.encode(e, 7),
        ct::CreateTopicsResponse::decode,
    );
    response.topics[0].error_code
}

/// The ACL records of the metadata log, in order.
fn acl_records(log_dir: &Path) -> Vec<MetadataRecord> {
    let bytes = fs::read(
        log_dir
            .join("__cluster_metadata-0")
            .join("00000000000000000000.log"),
    )
    .unwrap();
    let mut records = Vec::new();
    for batch in Batches::new(&bytes) {
        let batch = batch.expect("a complete batch");
        batch.validate().expect("a valid CRC-32C");
        for record in decode_records(&batch).unwrap() {
            let record = MetadataRecord::decode(&record.value.unwrap()).unwrap();
            if matches!(
                record,
                MetadataRecord::AccessControlEntry(_) | MetadataRecord::RemoveAccessControlEntry(_)
            ) {
                records.push(record);
            }
        }
    }
    records
}

#[test]
fn acl_apis_without_an_authorizer_are_security_disabled() {
    let broker = TestBroker::start("acls_disabled");
    let mut client = broker.connect();
    for version in 0..=3 {
        let codes = create_acls(
            &mut client,
            version,
            vec![creation(TOPIC, "t", LITERAL, "User:a", READ, ALLOW)],
        );
        assert_eq!(codes, [54], "CreateAcls v{version}");
        let mut filter = any_filter();
        if version == 0 {
            filter.pattern_type_filter = LITERAL;
        }
        let response = describe_acls(&mut client, version, &filter);
        assert_eq!(response.error_code, 54, "DescribeAcls v{version}");
        assert_eq!(
            response.error_message.as_deref(),
            Some("No Authorizer is configured.")
        );
        let response = delete_acls(&mut client, version, vec![delete_filter(None, LITERAL)]);
        assert_eq!(response.filter_results[0].error_code, 54);
    }
}

#[test]
fn acl_apis_from_raw_bytes() {
    let (_broker, addr) = secured_broker("acls_raw");
    let mut admin = login(addr, "admin");
    // v0: creations [Topic "t" User:alice * Read Allow]; no pattern type on the wire.
    let body = hex("00000001 02 0001 74 000a 557365723a616c696365 0001 2a 03 03");
    let frame = request_frame(ca::API_KEY, 0, 7, |e| e.raw(&body));
    let reply = admin.round_trip(&frame);
    assert_eq!(reply, framed("00000007 00000000 00000001 0000 ffff"));
    // v2 (flexible): the same for "u", PREFIXED, with compact strings and tag buffers.
    let body = hex("02 02 0275 04 0b557365723a616c696365 022a 03 03 00 00");
    let frame = request_frame(ca::API_KEY, 2, 8, |e| e.raw(&body));
    let reply = admin.round_trip(&frame);
    assert_eq!(reply, framed("00000008 00 00000000 02 0000 00 00 00"));
    // DescribeAcls v0 (LITERAL only): Topic "t" with alice's Read; the prefixed "u" is left out.
    let body = hex("02 ffff ffff ffff 01 01");
    let frame = request_frame(dsa::API_KEY, 0, 9, |e| e.raw(&body));
    let reply = admin.round_trip(&frame);
    let expected = "00000009 00000000 0000 ffff 00000001 02 0001 74 \
                    00000001 000a 557365723a616c696365 0001 2a 03 03";
    assert_eq!(reply, framed(expected));
    let response = decode_response(&reply[4..], 9, false, 0, dsa::DescribeAclsResponse::decode);
    assert_eq!(response.resources.len(), 1);
    // DeleteAcls v3: the PREFIXED "u", any principal, host, operation and permission.
    let body = hex("02 02 0275 04 00 00 01 01 00 00");
    let frame = request_frame(da::API_KEY, 3, 10, |e| e.raw(&body));
    let reply = admin.round_trip(&frame);
    let expected = "0000000a 00 00000000 02 0000 00 02 0000 00 02 0275 04 \
                    0b557365723a616c696365 022a 03 03 00 00 00";
    assert_eq!(reply, framed(expected));
    // DescribeAcls v1 (pattern type on the wire, ANY): only the literal "t" is left.
    let body = hex("01 ffff 01 ffff ffff 01 01");
    let frame = request_frame(dsa::API_KEY, 1, 11, |e| e.raw(&body));
    let reply = admin.round_trip(&frame);
    let expected = "0000000b 00000000 0000 ffff 00000001 02 0001 74 03 \
                    00000001 000a 557365723a616c696365 0001 2a 03 03";
    assert_eq!(reply, framed(expected));
}

#[test]
fn acl_round_trip_in_every_version_and_records_in_the_metadata_log() {
    let (broker, addr) = secured_broker("acls_versions");
    let mut admin = login(addr, "admin");
    for version in 0..=3i16 {
        let name = format!("topic-v{version}");
        let pattern = if version == 0 { LITERAL } else { PREFIXED };
        let codes = create_acls(
            &mut admin,
            version,
            vec![
                creation(TOPIC, &name, pattern, "User:alice", WRITE, ALLOW),
                creation(TOPIC, &name, pattern, "User:alice", WRITE, ALLOW),
            ],
        );
        assert_eq!(codes, [0, 0], "v{version}: a duplicate is a success");
        let mut filter = any_filter();
        filter.resource_name_filter = Some(name.clone());
        if version == 0 {
            filter.pattern_type_filter = LITERAL;
        }
        let response = describe_acls(&mut admin, version, &filter);
        assert_eq!(response.error_code, 0);
        assert_eq!(
            flatten(&response),
            [(
                TOPIC,
                name.clone(),
                pattern,
                "User:alice".into(),
                WRITE,
                ALLOW
            )],
            "v{version}"
        );
        let response = delete_acls(
            &mut admin,
            version,
            vec![delete_filter(Some(&name), pattern)],
        );
        let result = &response.filter_results[0];
        assert_eq!(result.error_code, 0);
        assert_eq!(result.matching_acls.len(), 1);
        assert_eq!(result.matching_acls[0].resource_name, name);
        assert_eq!(result.matching_acls[0].pattern_type, pattern);
        assert!(flatten(&describe_acls(&mut admin, version, &filter)).is_empty());
    }
    let records = acl_records(&broker.log_dir);
    assert_eq!(records.len(), 8, "one create and one remove per version");
    let (MetadataRecord::AccessControlEntry(first), MetadataRecord::RemoveAccessControlEntry(gone)) =
        (&records[0], &records[1])
    else {
        panic!("{records:?}");
    };
    assert_eq!(gone.id, first.id);
    assert_eq!(
        (
            first.resource_type,
            first.resource_name.as_str(),
            first.pattern_type,
            first.principal.as_str(),
            first.host.as_str(),
            first.operation,
            first.permission_type
        ),
        (TOPIC, "topic-v0", LITERAL, "User:alice", "*", WRITE, ALLOW)
    );
}

#[test]
fn bad_acls_and_filters_are_invalid_request() {
    let (_broker, addr) = secured_broker("acls_invalid");
    let mut admin = login(addr, "admin");
    let codes = create_acls(
        &mut admin,
        3,
        vec![
            creation(TOPIC, "t", MATCH, "User:a", READ, ALLOW),
            creation(TOPIC, "t", ANY, "User:a", READ, ALLOW),
            creation(ANY, "t", LITERAL, "User:a", READ, ALLOW),
            creation(TOPIC, "t", LITERAL, "User:a", ANY, ALLOW),
            creation(TOPIC, "t", LITERAL, "User:a", READ, ANY),
            creation(TOPIC, "", LITERAL, "User:a", READ, ALLOW),
            creation(TOPIC, "t", LITERAL, "alice", READ, ALLOW),
            creation(CLUSTER, "not-the-cluster", LITERAL, "User:a", READ, ALLOW),
            creation(0, "t", LITERAL, "User:a", READ, ALLOW),
            creation(TOPIC, "ok", LITERAL, "User:a", READ, ALLOW),
        ],
    );
    assert_eq!(codes, [42, 42, 42, 42, 42, 42, 42, 42, 42, 0]);
    let mut filter = any_filter();
    filter.operation = 0;
    let response = describe_acls(&mut admin, 3, &filter);
    assert_eq!(response.error_code, 42);
    let mut bad = delete_filter(None, ANY);
    bad.pattern_type_filter = 0;
    let response = delete_acls(&mut admin, 3, vec![bad, delete_filter(Some("none"), ANY)]);
    assert_eq!(response.filter_results[0].error_code, 42);
    assert_eq!(response.filter_results[1].error_code, 0);
    assert!(response.filter_results[1].matching_acls.is_empty());
}

#[test]
fn acls_survive_a_clean_restart_and_kill_9() {
    let (mut broker, addr) = secured_broker("acls_restart");
    let mut admin = login(addr, "admin");
    let codes = create_acls(
        &mut admin,
        3,
        vec![
            creation(TOPIC, "keep", LITERAL, "User:alice", READ, ALLOW),
            creation(TOPIC, "drop", PREFIXED, "User:alice", READ, DENY),
        ],
    );
    assert_eq!(codes, [0, 0]);
    drop(admin);
    assert!(broker.terminate(), "clean shutdown");
    broker.restart();
    let mut admin = login(addr, "admin");
    assert_eq!(
        flatten(&describe_acls(&mut admin, 3, &any_filter())).len(),
        2
    );
    let response = delete_acls(&mut admin, 3, vec![delete_filter(Some("drop"), PREFIXED)]);
    assert_eq!(response.filter_results[0].matching_acls.len(), 1);
    drop(admin);
    broker.kill_and_restart();
    let mut admin = login(addr, "admin");
    assert_eq!(
        flatten(&describe_acls(&mut admin, 3, &any_filter())),
        [(
            TOPIC,
            "keep".into(),
            LITERAL,
            "User:alice".into(),
            READ,
            ALLOW
        )]
    );
    broker.assert_no_panics();
}

#[test]
fn apis_check_acls_for_a_sasl_user() {
    let (broker, addr) = secured_broker("acls_checks");
    let mut admin = login(addr, "admin");
    assert_eq!(create_topic(&mut admin, "payments"), 0);
    assert_eq!(create_topic(&mut admin, "payroll"), 0);
    assert_eq!(create_topic(&mut admin, "other"), 0);
    let mut alice = login(addr, "alice");
    // No ACL: nothing to see, and asking by name is TOPIC_AUTHORIZATION_FAILED.
    assert!(metadata(&mut alice, None).topics.is_empty());
    let named = metadata(&mut alice, Some(&["payments"]));
    assert_eq!(named.topics[0].error_code, 29);
    assert_eq!(create_topic(&mut alice, "mine"), 29);
    let codes = create_acls(
        &mut alice,
        3,
        vec![creation(TOPIC, "x", LITERAL, "User:alice", READ, ALLOW)],
    );
    assert_eq!(codes, [31], "a non-admin may not create ACLs");
    assert_eq!(describe_acls(&mut alice, 3, &any_filter()).error_code, 31);
    // InitProducerId without a transactional id: IdempotentWrite or Write on some topic.
    let init = |client: &mut Client| {
        let request = ipi::InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        client
            .call(
                ipi::API_KEY,
                4,
                |e| request.encode(e, 4),
                ipi::InitProducerIdResponse::decode,
            )
            .error_code
    };
    assert_eq!(init(&mut alice), 31);
    // A prefixed allow, and a literal deny that beats it.
    let codes = create_acls(
        &mut admin,
        3,
        vec![
            creation(TOPIC, "pay", PREFIXED, "User:alice", WRITE, ALLOW),
            creation(TOPIC, "payroll", LITERAL, "User:alice", DESCRIBE, DENY),
        ],
    );
    assert_eq!(codes, [0, 0]);
    let listed: Vec<_> = metadata(&mut alice, None)
        .topics
        .into_iter()
        .map(|t| t.name.unwrap())
        .collect();
    assert_eq!(
        listed,
        ["payments"],
        "Write implies Describe; the deny wins"
    );
    let named = metadata(&mut alice, Some(&["payroll", "payments"]));
    let codes: Vec<_> = named.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [29, 0]);
    assert_eq!(init(&mut alice), 0);
    // The super user sees everything.
    assert_eq!(metadata(&mut admin, None).topics.len(), 3);
    broker.assert_no_panics();
}

/// One Fetch v12 of partition 0 of each topic, waiting up to 5 s for 1 byte; the partitions'
/// error codes.
fn fetch_errors(client: &mut Client, topics: &[&str]) -> Vec<i16> {
    let mut request = crate::storage::fetch_request(topics[0], 0, 1 << 20);
    request.max_wait_ms = 5000;
    request.min_bytes = 1;
    let template = request.topics[0].clone();
    request.topics = topics
        .iter()
        .map(|t| fetch::FetchTopic {
            topic: t.to_string(),
            ..template.clone()
        })
        .collect();
    let response = client.call(
        fetch::API_KEY,
        12,
        |e| request.encode(e, 12),
        fetch::FetchResponse::decode,
    );
    response
        .responses
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect()
}

#[test]
fn produce_fetch_groups_and_create_topics_are_checked() {
    let (broker, addr) = secured_broker("acls_data");
    let mut admin = login(addr, "admin");
    for topic in ["orders.eu", "orders.audit", "other"] {
        assert_eq!(create_topic(&mut admin, topic), 0);
    }
    let codes = create_acls(
        &mut admin,
        3,
        vec![
            creation(TOPIC, "orders.", PREFIXED, "User:alice", ALL, ALLOW),
            creation(TOPIC, "orders.audit", LITERAL, "User:alice", WRITE, DENY),
            creation(TOPIC, "alice-", PREFIXED, "User:alice", CREATE, ALLOW),
        ],
    );
    assert_eq!(codes, [0, 0, 0]);
    let mut alice = login(addr, "alice");
    let batch = plain_batch(0, &[b"v"]);
    assert_eq!(produce_batch(&mut alice, 9, "orders.eu", 0, &batch).0, 0);
    assert_eq!(
        produce_batch(&mut alice, 9, "orders.audit", 0, &batch).0,
        29
    );
    assert_eq!(produce_batch(&mut alice, 9, "other", 0, &batch).0, 29);
    assert_eq!(
        produce_batch(&mut alice, 9, "no-such-topic", 0, &batch).0,
        29
    );
    // A refused partition is TOPIC_AUTHORIZATION_FAILED next to a readable one.
    assert_eq!(fetch_errors(&mut alice, &["other"]), [29]);
    assert_eq!(fetch_errors(&mut alice, &["other", "orders.eu"]), [29, 0]);
    // Create on a prefix: the topic is made, its configuration is not shown.
    let request = ct::CreateTopicsRequest {
        topics: vec![ct::CreatableTopic {
            name: "alice-1".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let response = alice.call(
        ct::API_KEY,
        7,
        |e| request.encode(e, 7),
        ct::CreateTopicsResponse::decode,
    );
    let created = &response.topics[0];
    assert_eq!(
        (created.error_code, created.topic_config_error_code),
        (0, 29)
    );
    assert_eq!(created.configs.as_deref(), Some(&[][..]));
    // Groups: no ACL on the group, so joining and committing are GROUP_AUTHORIZATION_FAILED.
    let request = jg::JoinGroupRequest {
        group_id: "g1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![jg::JoinGroupRequestProtocol {
            name: "range".into(),
            metadata: Vec::new(),
        }],
        ..Default::default()
    };
    let response = alice.call(
        jg::API_KEY,
        9,
        |e| request.encode(e, 9),
        jg::JoinGroupResponse::decode,
    );
    assert_eq!((response.error_code, response.generation_id), (30, -1));
    let request = fc::FindCoordinatorRequest {
        key_type: 0,
        coordinator_keys: vec!["g1".into()],
        ..Default::default()
    };
    let response = alice.call(
        fc::API_KEY,
        4,
        |e| request.encode(e, 4),
        fc::FindCoordinatorResponse::decode,
    );
    assert_eq!(response.coordinators[0].error_code, 30);
    assert_eq!(response.coordinators[0].node_id, -1);
    broker.assert_no_panics();
}

#[test]
fn authorized_operations_follow_the_acls() {
    let (_broker, addr) = secured_broker("acls_operations");
    let mut admin = login(addr, "admin");
    assert_eq!(create_topic(&mut admin, "t"), 0);
    let codes = create_acls(
        &mut admin,
        3,
        vec![
            creation(TOPIC, "t", LITERAL, "User:alice", READ, ALLOW),
            creation(
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:alice",
                CREATE,
                ALLOW,
            ),
        ],
    );
    assert_eq!(codes, [0, 0]);
    let ask = |client: &mut Client| {
        let request = md::MetadataRequest {
            topics: Some(vec![md::MetadataRequestTopic {
                name: Some("t".into()),
                ..Default::default()
            }]),
            include_topic_authorized_operations: true,
            ..Default::default()
        };
        let response = client.call(
            md::API_KEY,
            10,
            |e| request.encode(e, 10),
            md::MetadataResponse::decode,
        );
        let request = sprat::protocol::messages::describe_cluster::DescribeClusterRequest {
            include_cluster_authorized_operations: true,
            ..Default::default()
        };
        let cluster = client.call(
            sprat::protocol::messages::describe_cluster::API_KEY,
            1,
            |e| request.encode(e, 1),
            sprat::protocol::messages::describe_cluster::DescribeClusterResponse::decode,
        );
        (
            response.topics[0].topic_authorized_operations,
            cluster.cluster_authorized_operations,
        )
    };
    let mut alice = login(addr, "alice");
    // Read, and the Describe it implies; Create on the cluster is not shown without Describe.
    let topic_ops = (1 << READ) | (1 << DESCRIBE);
    assert_eq!(ask(&mut alice), (topic_ops, 0));
    let allow = creation(
        CLUSTER,
        "kafka-cluster",
        LITERAL,
        "User:alice",
        DESCRIBE,
        ALLOW,
    );
    assert_eq!(create_acls(&mut admin, 3, vec![allow]), [0]);
    let cluster_ops = (1 << CREATE) | (1 << DESCRIBE);
    assert_eq!(ask(&mut alice), (topic_ops, cluster_ops));
    // A super user: every topic operation (Read, Write, Create, Delete, Alter, Describe,
    // DescribeConfigs, AlterConfigs) and every cluster one (Create, Alter, Describe,
    // ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite).
    assert_eq!(ask(&mut admin), (0x0df8, 0x1fa0));
}

#[test]
fn create_acls_over_the_batch_limit_is_policy_violation() {
    let (_broker, addr) = secured_broker("acls_limit");
    let mut admin = login(addr, "admin");
    let many: Vec<_> = (0..10_001)
        .map(|i| creation(TOPIC, &format!("t{i}"), LITERAL, "User:a", READ, ALLOW))
        .collect();
    let codes = create_acls(&mut admin, 3, many);
    assert_eq!(codes.len(), 10_001);
    assert!(
        codes.iter().all(|&c| c == 44),
        "POLICY_VIOLATION for every entry"
    );
    assert!(flatten(&describe_acls(&mut admin, 3, &any_filter())).is_empty());
}

#[test]
fn transaction_apis_check_acls() {
    let (broker, addr) = secured_broker("acls_transactions");
    let mut admin = login(addr, "admin");
    assert_eq!(create_topic(&mut admin, "payments"), 0);
    assert_eq!(create_topic(&mut admin, "other"), 0);
    let mut alice = login(addr, "alice");
    let init = |client: &mut Client| {
        let request = ipi::InitProducerIdRequest {
            transactional_id: Some("t1".into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
        };
        client.call(
            ipi::API_KEY,
            4,
            |e| request.encode(e, 4),
            ipi::InitProducerIdResponse::decode,
        )
    };
    let list = |client: &mut Client| -> Vec<String> {
        let request = lt::ListTransactionsRequest {
            duration_filter: -1,
            ..Default::default()
        };
        let response = client.call(
            lt::API_KEY,
            1,
            |e| request.encode(e, 1),
            lt::ListTransactionsResponse::decode,
        );
        response
            .transaction_states
            .into_iter()
            .map(|t| t.transactional_id)
            .collect()
    };
    assert_eq!(init(&mut alice).error_code, 53, "no Write on the id");
    let codes = create_acls(
        &mut admin,
        3,
        vec![
            creation(TRANSACTIONAL_ID, "t1", LITERAL, "User:alice", WRITE, ALLOW),
            creation(TOPIC, "payments", LITERAL, "User:alice", WRITE, ALLOW),
        ],
    );
    assert_eq!(codes, [0, 0]);
    let producer = init(&mut alice);
    assert_eq!(producer.error_code, 0);
    let (pid, epoch) = (producer.producer_id, producer.producer_epoch);

    // Clients' AddPartitionsToTxn: Write on each topic; the others are not attempted.
    let request = apt::AddPartitionsToTxnRequest {
        v3_and_below_transactional_id: "t1".into(),
        v3_and_below_producer_id: pid,
        v3_and_below_producer_epoch: epoch,
        v3_and_below_topics: ["payments", "other"]
            .iter()
            .map(|name| apt::AddPartitionsToTxnTopic {
                name: name.to_string(),
                partitions: vec![0],
            })
            .collect(),
        ..Default::default()
    };
    let response = alice.call(
        apt::API_KEY,
        3,
        |e| request.encode(e, 3),
        apt::AddPartitionsToTxnResponse::decode,
    );
    let codes: Vec<(String, i16)> = response
        .results_by_topic_v3_and_below
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.results_by_partition[0].partition_error_code,
            )
        })
        .collect();
    assert_eq!(
        codes,
        [("payments".to_string(), 55), ("other".to_string(), 29)]
    );
    // Brokers' version needs ClusterAction.
    let batched = apt::AddPartitionsToTxnRequest {
        transactions: vec![apt::AddPartitionsToTxnTransaction {
            transactional_id: "t1".into(),
            producer_id: pid,
            producer_epoch: epoch,
            verify_only: true,
            topics: Vec::new(),
        }],
        ..Default::default()
    };
    let response = alice.call(
        apt::API_KEY,
        4,
        |e| batched.encode(e, 4),
        apt::AddPartitionsToTxnResponse::decode,
    );
    assert_eq!(response.error_code, 31);

    // AddOffsetsToTxn and TxnOffsetCommit: Write on the id, then Read on the group.
    let request = aot::AddOffsetsToTxnRequest {
        transactional_id: "t1".into(),
        producer_id: pid,
        producer_epoch: epoch,
        group_id: "g".into(),
    };
    let response = alice.call(
        aot::API_KEY,
        3,
        |e| request.encode(e, 3),
        aot::AddOffsetsToTxnResponse::decode,
    );
    assert_eq!(response.error_code, 30);
    let commit = |client: &mut Client, id: &str| -> Vec<i16> {
        let request = toc::TxnOffsetCommitRequest {
            transactional_id: id.into(),
            group_id: "g".into(),
            producer_id: pid,
            producer_epoch: epoch,
            generation_id: -1,
            topics: vec![toc::TxnOffsetCommitRequestTopic {
                name: "payments".into(),
                partitions: vec![toc::TxnOffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: 1,
                    committed_leader_epoch: -1,
                    committed_metadata: None,
                }],
            }],
            ..Default::default()
        };
        let response = client.call(
            toc::API_KEY,
            3,
            |e| request.encode(e, 3),
            toc::TxnOffsetCommitResponse::decode,
        );
        response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    };
    assert_eq!(commit(&mut alice, "t2"), [53]);
    assert_eq!(commit(&mut alice, "t1"), [30]);
    let codes = create_acls(
        &mut admin,
        3,
        vec![creation(GROUP, "g", LITERAL, "User:alice", READ, ALLOW)],
    );
    assert_eq!(codes, [0]);
    assert_eq!(commit(&mut alice, "t1"), [29], "no Read on the topic");

    // EndTxn: Write on the id.
    let end = |client: &mut Client, id: &str| {
        let request = et::EndTxnRequest {
            transactional_id: id.into(),
            producer_id: pid,
            producer_epoch: epoch,
            committed: false,
        };
        client
            .call(
                et::API_KEY,
                3,
                |e| request.encode(e, 3),
                et::EndTxnResponse::decode,
            )
            .error_code
    };
    assert_eq!(end(&mut alice, "t2"), 53);

    // Describing: Describe on the id (implied by Write), Read on topics for producers.
    assert_eq!(list(&mut alice), ["t1"]);
    let describe = |client: &mut Client| {
        let request = dt::DescribeTransactionsRequest {
            transactional_ids: vec!["t1".into(), "t2".into()],
        };
        let response = client.call(
            dt::API_KEY,
            0,
            |e| request.encode(e, 0),
            dt::DescribeTransactionsResponse::decode,
        );
        response
            .transaction_states
            .iter()
            .map(|t| t.error_code)
            .collect::<Vec<_>>()
    };
    assert_eq!(describe(&mut alice), [0, 53]);
    assert_eq!(describe(&mut admin), [0, 105]);
    let request = dp::DescribeProducersRequest {
        topics: vec![dp::TopicRequest {
            name: "payments".into(),
            partition_indexes: vec![0],
        }],
    };
    let producers = |client: &mut Client| {
        client
            .call(
                dp::API_KEY,
                0,
                |e| request.encode(e, 0),
                dp::DescribeProducersResponse::decode,
            )
            .topics[0]
            .partitions[0]
            .error_code
    };
    assert_eq!(producers(&mut alice), 29);
    assert_eq!(producers(&mut admin), 0);
    broker.assert_no_panics();
}

/// A regex subscription resolves only to the topics the member's principal may Describe, as
/// Kafka's `filterTopicDescribeAuthorizedTopics` does; an ACL granted later lets the next
/// heartbeat take the topic in.
#[test]
fn a_regex_subscription_gets_only_describable_topics() {
    use sprat::protocol::messages::consumer_group_heartbeat as cgh;
    let (_broker, addr) = secured_broker("acls_regex");
    let mut admin = login(addr, "admin");
    for t in ["orders.open", "orders.secret"] {
        assert_eq!(create_topic(&mut admin, t), 0);
    }
    let alice = "User:alice";
    let grants = vec![
        creation(GROUP, "g", LITERAL, alice, READ, ALLOW),
        creation(TOPIC, "orders.open", LITERAL, alice, DESCRIBE, ALLOW),
    ];
    assert_eq!(create_acls(&mut admin, 3, grants), [0, 0]);
    let ids = metadata(&mut admin, Some(&["orders.open", "orders.secret"])).topics;
    let id_of = |name: &str| {
        ids.iter()
            .find(|t| t.name.as_deref() == Some(name))
            .unwrap()
            .topic_id
    };
    let mut client = login(addr, "alice");
    let join = cgh::ConsumerGroupHeartbeatRequest {
        group_id: "g".into(),
        member_id: "alice-1".into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30000,
        subscribed_topic_regex: Some(r"orders\..*".into()),
        topic_partitions: Some(Vec::new()),
        ..Default::default()
    };
    let heartbeat = |client: &mut Client, request: &cgh::ConsumerGroupHeartbeatRequest| {
        client.call(
            cgh::API_KEY,
            1,
            |e| request.encode(e, 1),
            cgh::ConsumerGroupHeartbeatResponse::decode,
        )
    };
    let r = heartbeat(&mut client, &join);
    assert_eq!(r.error_code, 0, "{r:?}");
    let topics: Vec<_> = r
        .assignment
        .as_ref()
        .unwrap()
        .topic_partitions
        .iter()
        .map(|t| t.topic_id)
        .collect();
    assert_eq!(topics, [id_of("orders.open")]);

    let grant = creation(TOPIC, "orders.secret", LITERAL, alice, DESCRIBE, ALLOW);
    assert_eq!(create_acls(&mut admin, 3, vec![grant]), [0]);
    let beat = cgh::ConsumerGroupHeartbeatRequest {
        group_id: "g".into(),
        member_id: "alice-1".into(),
        member_epoch: r.member_epoch,
        topic_partitions: r.assignment.map(|a| a.topic_partitions),
        ..Default::default()
    };
    let r2 = heartbeat(&mut client, &beat);
    assert_eq!((r2.error_code, r2.member_epoch), (0, 2), "{r2:?}");
    let mut topics: Vec<_> = r2
        .assignment
        .unwrap()
        .topic_partitions
        .iter()
        .map(|t| t.topic_id)
        .collect();
    topics.sort();
    let mut expected = vec![id_of("orders.open"), id_of("orders.secret")];
    expected.sort();
    assert_eq!(topics, expected);
}
