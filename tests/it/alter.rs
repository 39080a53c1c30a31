//! The admin APIs that change or describe the cluster, against the real broker: CreatePartitions
//! 0-3, AlterConfigs 0-2, IncrementalAlterConfigs 0-1, DescribeConfigs' sources and synonyms,
//! DescribeCluster 0-1, DescribeLogDirs 0-4, ElectLeaders 0-2, ListPartitionReassignments 0 and
//! OffsetForLeaderEpoch 0-4. Every version is encoded and decoded with the generated codecs; the
//! changes are checked in their effects (new partitions take records, a lowered
//! `max.message.bytes` refuses a batch, a lowered `segment.bytes` rolls segments), in
//! `__cluster_metadata`, and after restarts both clean and after `kill -9`.

use crate::groups::create_topic;
use crate::harness::{Client, TestBroker, plain_batch, produce_batch};

/// Produces `batch` with Produce v9; returns (error code, base offset).
fn produce(client: &mut Client, topic: &str, partition: i32, batch: &[u8]) -> (i16, i64) {
    let (code, offset, _) = produce_batch(client, 9, topic, partition, batch);
    (code, offset)
}
use sprat::metadata::MetadataRecord;
use sprat::protocol::messages::{
    alter_configs as ac, create_partitions as cp, describe_cluster as dcl, describe_configs as dc,
    describe_log_dirs as dld, elect_leaders as el, incremental_alter_configs as iac,
    list_partition_reassignments as lpr, metadata as md, offset_for_leader_epoch as ofle,
};
use sprat::storage::record_batch::{Batches, decode_records};
use std::fs;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_LEADER_EPOCH: i16 = 75;
const ELECTION_NOT_NEEDED: i16 = 84;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT: i8 = 3;
const SOURCE_DEFAULT: i8 = 5;

fn partition_count(client: &mut Client, topic: &str) -> usize {
    let request = md::MetadataRequest {
        topics: Some(vec![md::MetadataRequestTopic {
            name: Some(topic.into()),
            ..Default::default()
        }]),
        allow_auto_topic_creation: false,
        ..Default::default()
    };
    let response = client.call(
        md::API_KEY,
        12,
        |e| request.encode(e, 12),
        md::MetadataResponse::decode,
    );
    response.topics[0].partitions.len()
}

fn create_partitions(
    client: &mut Client,
    version: i16,
    topics: Vec<cp::CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16, Option<String>)> {
    let request = cp::CreatePartitionsRequest {
        topics,
        timeout_ms: 30000,
        validate_only,
    };
    let response = client.call(
        cp::API_KEY,
        version,
        |e| request.encode(e, version),
        cp::CreatePartitionsResponse::decode,
    );
    assert_eq!(response.throttle_time_ms, 0);
    response
        .results
        .into_iter()
        .map(|r| (r.name, r.error_code, r.error_message))
        .collect()
}

fn grow(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> cp::CreatePartitionsTopic {
    cp::CreatePartitionsTopic {
        name: name.into(),
        count,
        assignments: assignments.map(|a| {
            a.into_iter()
                .map(|broker_ids| cp::CreatePartitionsAssignment { broker_ids })
                .collect()
        }),
    }
}

/// An IncrementalAlterConfigs resource: type, name, and (key, operation, value) per change.
type IncrementalResource<'a> = (i8, &'a str, Vec<(&'a str, i8, Option<&'a str>)>);

pub(crate) fn incremental(
    client: &mut Client,
    version: i16,
    resources: Vec<IncrementalResource<'_>>,
    validate_only: bool,
) -> Vec<(String, i16, Option<String>)> {
    let request = iac::IncrementalAlterConfigsRequest {
        resources: resources
            .into_iter()
            .map(|(resource_type, name, configs)| iac::AlterConfigsResource {
                resource_type,
                resource_name: name.into(),
                configs: configs
                    .into_iter()
                    .map(|(name, op, value)| iac::AlterableConfig {
                        name: name.into(),
                        config_operation: op,
                        value: value.map(String::from),
                    })
                    .collect(),
            })
            .collect(),
        validate_only,
    };
    let response = client.call(
        iac::API_KEY,
        version,
        |e| request.encode(e, version),
        iac::IncrementalAlterConfigsResponse::decode,
    );
    response
        .responses
        .into_iter()
        .map(|r| (r.resource_name, r.error_code, r.error_message))
        .collect()
}

fn legacy_alter(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let request = ac::AlterConfigsRequest {
        resources: vec![ac::AlterConfigsResource {
            resource_type,
            resource_name: name.into(),
            configs: configs
                .iter()
                .map(|(k, v)| ac::AlterableConfig {
                    name: k.to_string(),
                    value: Some(v.to_string()),
                })
                .collect(),
        }],
        validate_only: false,
    };
    let response = client.call(
        ac::API_KEY,
        version,
        |e| request.encode(e, version),
        ac::AlterConfigsResponse::decode,
    );
    let r = &response.responses[0];
    assert_eq!(
        (r.resource_type, r.resource_name.as_str()),
        (resource_type, name)
    );
    (r.error_code, r.error_message.clone())
}

fn describe(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    synonyms: bool,
) -> dc::DescribeConfigsResult {
    let request = dc::DescribeConfigsRequest {
        resources: vec![dc::DescribeConfigsResource {
            resource_type,
            resource_name: name.into(),
            configuration_keys: None,
        }],
        include_synonyms: synonyms,
        include_documentation: false,
    };
    let response = client.call(
        dc::API_KEY,
        version,
        |e| request.encode(e, version),
        dc::DescribeConfigsResponse::decode,
    );
    response.results.into_iter().next().unwrap()
}

fn config<'a>(
    result: &'a dc::DescribeConfigsResult,
    name: &str,
) -> &'a dc::DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} missing from {:?}", result.configs))
}

/// The ConfigRecords in `__cluster_metadata-0`, in order: (type, resource, key, value).
fn config_records(broker: &TestBroker) -> Vec<(i8, String, String, Option<String>)> {
    let dir = broker.log_dir.join("__cluster_metadata-0");
    let mut out = Vec::new();
    let mut segments: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    for segment in segments {
        let bytes = fs::read(segment).unwrap();
        for batch in Batches::new(&bytes) {
            let batch = batch.unwrap();
            for record in decode_records(&batch).unwrap() {
                if let Ok(MetadataRecord::Config(c)) =
                    MetadataRecord::decode(record.value.as_deref().unwrap_or_default())
                {
                    out.push((c.resource_type, c.resource_name, c.name, c.value));
                }
            }
        }
    }
    out
}

#[test]
fn create_partitions_grows_topics_at_once_and_for_good() {
    let mut broker = TestBroker::start("create-partitions");
    let mut client = broker.connect();
    create_topic(&mut client, "grow", 1);
    create_topic(&mut client, "other", 2);
    for (version, count) in [(0i16, 2), (1, 3), (2, 4), (3, 5)] {
        let results =
            create_partitions(&mut client, version, vec![grow("grow", count, None)], false);
        assert_eq!(results, [("grow".to_string(), NONE, None)], "v{version}");
        assert_eq!(partition_count(&mut client, "grow"), count as usize);
        // The new partition takes records at once.
        let (code, offset) = produce(&mut client, "grow", count - 1, &plain_batch(0, &[b"x"]));
        assert_eq!((code, offset), (NONE, 0), "v{version}");
        assert!(broker.log_dir.join(format!("grow-{}", count - 1)).is_dir());
    }
    // Kafka's refusals, one topic at a time, duplicates last.
    let results = create_partitions(
        &mut client,
        3,
        vec![
            grow("grow", 3, None),
            grow("grow2", 3, None),
            grow("other", 2, None),
            grow("other", 3, None),
            grow("missing", 3, None),
        ],
        false,
    );
    assert_eq!(
        results,
        [
            (
                "grow".to_string(),
                INVALID_PARTITIONS,
                Some(
                    "The topic grow currently has 5 partition(s); 3 would not be an increase."
                        .to_string()
                )
            ),
            ("grow2".to_string(), UNKNOWN_TOPIC_OR_PARTITION, None),
            ("missing".to_string(), UNKNOWN_TOPIC_OR_PARTITION, None),
            (
                "other".to_string(),
                INVALID_REQUEST,
                Some("Duplicate topic name.".to_string())
            ),
        ]
    );
    let same = create_partitions(&mut client, 1, vec![grow("other", 2, None)], false);
    assert_eq!(
        same,
        [(
            "other".to_string(),
            INVALID_PARTITIONS,
            Some("Topic already has 2 partition(s).".to_string())
        )]
    );
    // Assignments: one per new partition, this node only.
    for (assignments, message) in [
        (
            vec![vec![1]],
            "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.",
        ),
        (
            vec![vec![1], vec![2]],
            "The manual partition assignment includes broker 2, but no such broker is registered.",
        ),
    ] {
        let results = create_partitions(
            &mut client,
            3,
            vec![grow("other", 4, Some(assignments))],
            false,
        );
        assert_eq!(results[0].1, INVALID_REPLICA_ASSIGNMENT);
        assert_eq!(results[0].2.as_deref(), Some(message));
    }
    // validate_only checks and changes nothing.
    let checked = create_partitions(
        &mut client,
        2,
        vec![grow("other", 4, Some(vec![vec![1], vec![1]]))],
        true,
    );
    assert_eq!(checked, [("other".to_string(), NONE, None)]);
    assert_eq!(partition_count(&mut client, "other"), 2);
    assert!(!broker.log_dir.join("other-2").exists());
    let done = create_partitions(
        &mut client,
        2,
        vec![grow("other", 4, Some(vec![vec![1], vec![1]]))],
        false,
    );
    assert_eq!(done, [("other".to_string(), NONE, None)]);

    // The partitions are in the metadata log: they come back after kill -9 and a clean restart.
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(partition_count(&mut client, "grow"), 5);
    assert_eq!(partition_count(&mut client, "other"), 4);
    let (code, offset) = produce(&mut client, "grow", 4, &plain_batch(0, &[b"y"]));
    assert_eq!(
        (code, offset),
        (NONE, 1),
        "the record from before the restart is kept"
    );
    broker.restart();
    let mut client = broker.connect();
    assert_eq!(partition_count(&mut client, "other"), 4);
    broker.assert_no_panics();
}

#[test]
fn incremental_alter_configs_changes_topics_live_and_durably() {
    let mut broker = TestBroker::start("incremental-alter");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    for version in [0i16, 1] {
        let results = incremental(
            &mut client,
            version,
            vec![(
                RESOURCE_TOPIC,
                "t",
                vec![
                    ("retention.ms", SET, Some("3600000")),
                    ("cleanup.policy", APPEND, Some("compact")),
                ],
            )],
            false,
        );
        assert_eq!(results, [("t".to_string(), NONE, None)], "v{version}");
    }
    let described = describe(&mut client, 4, RESOURCE_TOPIC, "t", false);
    assert_eq!(
        config(&described, "retention.ms").value.as_deref(),
        Some("3600000")
    );
    assert_eq!(
        config(&described, "retention.ms").config_source,
        SOURCE_TOPIC
    );
    assert_eq!(
        config(&described, "cleanup.policy").value.as_deref(),
        Some("delete,compact"),
        "APPEND starts from the key's value and adds each item once"
    );
    let results = incremental(
        &mut client,
        1,
        vec![(
            RESOURCE_TOPIC,
            "t",
            vec![
                ("cleanup.policy", SUBTRACT, Some("compact")),
                ("retention.ms", DELETE, None),
            ],
        )],
        false,
    );
    assert_eq!(results[0].1, NONE);
    let described = describe(&mut client, 4, RESOURCE_TOPIC, "t", false);
    assert_eq!(
        config(&described, "cleanup.policy").value.as_deref(),
        Some("delete")
    );
    assert_eq!(
        config(&described, "retention.ms").config_source,
        SOURCE_DEFAULT
    );

    // Refusals, each for its resource only, with Kafka's codes and messages.
    let results = incremental(
        &mut client,
        1,
        vec![
            (
                RESOURCE_TOPIC,
                "t",
                vec![("retention.ms", APPEND, Some("1"))],
            ),
            (
                RESOURCE_TOPIC,
                "nope",
                vec![("retention.ms", SET, Some("1"))],
            ),
            (
                RESOURCE_BROKER,
                "",
                vec![("log.dirs", SET, Some("/elsewhere"))],
            ),
            (RESOURCE_BROKER, "1", vec![("num.io.threads", 9, Some("4"))]),
        ],
        false,
    );
    assert_eq!(
        results,
        [
            (
                "t".to_string(),
                INVALID_CONFIG,
                Some("Can't APPEND to key retention.ms because its type is not LIST.".to_string())
            ),
            (
                "nope".to_string(),
                UNKNOWN_TOPIC_OR_PARTITION,
                Some("The topic 'nope' does not exist.".to_string())
            ),
            (
                String::new(),
                INVALID_CONFIG,
                Some("Cannot update these configs dynamically: Set(log.dirs)".to_string())
            ),
            (
                "1".to_string(),
                INVALID_REQUEST,
                Some("Unknown operations type 9".to_string())
            ),
        ]
    );
    let bad_value = incremental(
        &mut client,
        0,
        vec![(
            RESOURCE_TOPIC,
            "t",
            vec![("segment.bytes", SET, Some("ten"))],
        )],
        false,
    );
    assert_eq!(bad_value[0].1, INVALID_CONFIG);

    // Live: a smaller max.message.bytes refuses the next batch.
    let batch = plain_batch(0, &[&[7u8; 600]]);
    assert_eq!(produce(&mut client, "t", 0, &batch).0, NONE);
    let validate_only = incremental(
        &mut client,
        1,
        vec![(
            RESOURCE_TOPIC,
            "t",
            vec![("max.message.bytes", SET, Some("500"))],
        )],
        true,
    );
    assert_eq!(validate_only[0].1, NONE);
    assert_eq!(
        produce(&mut client, "t", 0, &batch).0,
        NONE,
        "validate_only changes nothing"
    );
    incremental(
        &mut client,
        1,
        vec![(
            RESOURCE_TOPIC,
            "t",
            vec![("max.message.bytes", SET, Some("500"))],
        )],
        false,
    );
    assert_eq!(produce(&mut client, "t", 0, &batch).0, MESSAGE_TOO_LARGE);

    // Live: a tiny segment.bytes rolls a segment per batch from the next append on.
    incremental(
        &mut client,
        1,
        vec![(
            RESOURCE_TOPIC,
            "t",
            vec![("segment.bytes", SET, Some("100"))],
        )],
        false,
    );
    let small = plain_batch(0, &[b"a"]);
    for _ in 0..3 {
        assert_eq!(produce(&mut client, "t", 0, &small).0, NONE);
    }
    let segments = fs::read_dir(broker.log_dir.join("t-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments >= 3, "{segments} segments");

    // The records are in the metadata log, and the configs outlive both kinds of restart.
    let records = config_records(&broker);
    assert!(
        records.contains(&(2, "t".into(), "retention.ms".into(), None)),
        "{records:?}"
    );
    assert!(records.contains(&(
        2,
        "t".into(),
        "max.message.bytes".into(),
        Some("500".into())
    )));
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(produce(&mut client, "t", 0, &batch).0, MESSAGE_TOO_LARGE);
    broker.restart();
    let mut client = broker.connect();
    let described = describe(&mut client, 4, RESOURCE_TOPIC, "t", false);
    assert_eq!(
        config(&described, "max.message.bytes").value.as_deref(),
        Some("500")
    );
    assert_eq!(
        config(&described, "cleanup.policy").value.as_deref(),
        Some("delete")
    );
    broker.assert_no_panics();
}

#[test]
fn alter_configs_replaces_a_topics_overrides() {
    let broker = TestBroker::start("legacy-alter");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    for version in [0i16, 1, 2] {
        let value = format!("{}", 1000 + version);
        let (code, message) = legacy_alter(
            &mut client,
            version,
            RESOURCE_TOPIC,
            "t",
            &[("retention.ms", &value), ("segment.ms", "60000")],
        );
        assert_eq!((code, message), (NONE, None), "v{version}");
        let described = describe(&mut client, 1, RESOURCE_TOPIC, "t", false);
        assert_eq!(
            config(&described, "retention.ms").value.as_deref(),
            Some(value.as_str())
        );
    }
    // A key left out is deleted.
    legacy_alter(
        &mut client,
        2,
        RESOURCE_TOPIC,
        "t",
        &[("segment.ms", "60000")],
    );
    let described = describe(&mut client, 2, RESOURCE_TOPIC, "t", false);
    assert_eq!(
        config(&described, "retention.ms").config_source,
        SOURCE_DEFAULT
    );
    assert_eq!(config(&described, "segment.ms").config_source, SOURCE_TOPIC);
    let (code, message) =
        legacy_alter(&mut client, 2, RESOURCE_TOPIC, "t", &[("no.such.key", "1")]);
    assert_eq!(code, INVALID_CONFIG);
    assert_eq!(
        message.as_deref(),
        Some("Unknown topic config name: no.such.key")
    );
    broker.assert_no_panics();
}

#[test]
fn dynamic_broker_configs_apply_to_every_topic_with_sources_and_synonyms() {
    let mut broker = TestBroker::start("dynamic-broker");
    let mut client = broker.connect();
    create_topic(&mut client, "plain", 1);
    create_topic(&mut client, "own", 1);
    incremental(
        &mut client,
        1,
        vec![(
            RESOURCE_TOPIC,
            "own",
            vec![("max.message.bytes", SET, Some("100000"))],
        )],
        false,
    );
    let results = incremental(
        &mut client,
        1,
        vec![
            (
                RESOURCE_BROKER,
                "",
                vec![("message.max.bytes", SET, Some("800"))],
            ),
            (
                RESOURCE_BROKER,
                "1",
                vec![("log.retention.ms", SET, Some("7200000"))],
            ),
        ],
        false,
    );
    assert_eq!(results[0].1, NONE, "{results:?}");
    assert_eq!(results[1].1, NONE, "{results:?}");
    let batch = plain_batch(0, &[&[1u8; 1000]]);
    assert_eq!(
        produce(&mut client, "plain", 0, &batch).0,
        MESSAGE_TOO_LARGE,
        "the broker default applies"
    );
    assert_eq!(
        produce(&mut client, "own", 0, &batch).0,
        NONE,
        "the topic override wins"
    );

    let described = describe(&mut client, 4, RESOURCE_TOPIC, "plain", true);
    let max = config(&described, "max.message.bytes");
    assert_eq!(
        (max.value.as_deref(), max.config_source),
        (Some("800"), SOURCE_DYNAMIC_DEFAULT)
    );
    let synonyms: Vec<_> = max
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        [
            ("message.max.bytes", SOURCE_DYNAMIC_DEFAULT),
            ("message.max.bytes", SOURCE_DEFAULT)
        ]
    );
    let retention = config(&described, "retention.ms");
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("7200000"), SOURCE_DYNAMIC_BROKER)
    );
    let own = describe(&mut client, 3, RESOURCE_TOPIC, "own", true);
    let synonyms: Vec<_> = config(&own, "max.message.bytes")
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref().unwrap(), s.source))
        .collect();
    assert_eq!(
        synonyms[..2],
        [
            ("max.message.bytes", "100000", SOURCE_TOPIC),
            ("message.max.bytes", "800", SOURCE_DYNAMIC_DEFAULT)
        ]
    );
    // The broker resource: its dynamic keys are writable, static ones read-only.
    let node = describe(&mut client, 4, RESOURCE_BROKER, "1", true);
    let retention = config(&node, "log.retention.ms");
    assert_eq!(
        (
            retention.value.as_deref(),
            retention.config_source,
            retention.read_only
        ),
        (Some("7200000"), SOURCE_DYNAMIC_BROKER, false)
    );
    assert!(config(&node, "log.dirs").read_only);
    let cluster = describe(&mut client, 4, RESOURCE_BROKER, "", false);
    let names: Vec<_> = cluster.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["message.max.bytes"],
        "the default resource lists the dynamic defaults"
    );

    // Stored in the metadata log under resource type BROKER, kept across restarts.
    let records = config_records(&broker);
    assert!(records.contains(&(
        4,
        String::new(),
        "message.max.bytes".into(),
        Some("800".into())
    )));
    assert!(records.contains(&(
        4,
        "1".into(),
        "log.retention.ms".into(),
        Some("7200000".into())
    )));
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(
        produce(&mut client, "plain", 0, &batch).0,
        MESSAGE_TOO_LARGE
    );
    incremental(
        &mut client,
        0,
        vec![(
            RESOURCE_BROKER,
            "",
            vec![("message.max.bytes", DELETE, None)],
        )],
        false,
    );
    assert_eq!(
        produce(&mut client, "plain", 0, &batch).0,
        NONE,
        "deleting the key restores the static value"
    );
    broker.assert_no_panics();
}

#[test]
fn describe_cluster_names_this_node() {
    let broker = TestBroker::start("describe-cluster");
    let mut client = broker.connect();
    for version in [0i16, 1] {
        let request = dcl::DescribeClusterRequest {
            include_cluster_authorized_operations: true,
            endpoint_type: 1,
        };
        let response = client.call(
            dcl::API_KEY,
            version,
            |e| request.encode(e, version),
            dcl::DescribeClusterResponse::decode,
        );
        assert_eq!(response.error_code, NONE);
        assert_eq!(response.controller_id, 1);
        assert_eq!(response.brokers.len(), 1);
        assert_eq!(response.brokers[0].broker_id, 1);
        assert_eq!(response.brokers[0].port, i32::from(broker.addr.port()));
        assert!(!response.cluster_id.is_empty());
        assert_ne!(response.cluster_authorized_operations, i32::MIN);
    }
    let request = dcl::DescribeClusterRequest {
        include_cluster_authorized_operations: false,
        endpoint_type: 2,
    };
    let response = client.call(
        dcl::API_KEY,
        1,
        |e| request.encode(e, 1),
        dcl::DescribeClusterResponse::decode,
    );
    assert_eq!(response.error_code, UNSUPPORTED_ENDPOINT_TYPE);
    assert!(response.brokers.is_empty());
    assert_eq!(response.cluster_authorized_operations, i32::MIN);
}

#[test]
fn describe_log_dirs_reports_sizes_and_space() {
    let broker = TestBroker::start("describe-log-dirs");
    let mut client = broker.connect();
    create_topic(&mut client, "sized", 2);
    create_topic(&mut client, "unasked", 1);
    let batch = plain_batch(0, &[b"hello", b"world"]);
    assert_eq!(produce(&mut client, "sized", 1, &batch).0, NONE);
    let on_disk = fs::metadata(broker.log_dir.join("sized-1/00000000000000000000.log"))
        .unwrap()
        .len() as i64;
    assert_eq!(on_disk, batch.len() as i64);
    for version in 0i16..=4 {
        for topics in [
            None,
            Some(vec![dld::DescribableLogDirTopic {
                topic: "sized".into(),
                partitions: vec![0, 1, 7],
            }]),
        ] {
            let all = topics.is_none();
            let request = dld::DescribeLogDirsRequest { topics };
            let response = client.call(
                dld::API_KEY,
                version,
                |e| request.encode(e, version),
                dld::DescribeLogDirsResponse::decode,
            );
            assert_eq!(response.results.len(), 1);
            let dir = &response.results[0];
            assert_eq!(dir.error_code, NONE);
            assert_eq!(
                fs::canonicalize(&dir.log_dir).unwrap(),
                fs::canonicalize(&broker.log_dir).unwrap()
            );
            let sized = dir.topics.iter().find(|t| t.name == "sized").unwrap();
            let partitions: Vec<_> = sized
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.partition_size, p.offset_lag))
                .collect();
            assert_eq!(partitions, [(0, 0, 0), (1, on_disk, 0)], "v{version}");
            assert_eq!(
                dir.topics.len() > 1,
                all,
                "v{version}: only what was asked for"
            );
            if version >= 4 {
                assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
                assert!(dir.usable_bytes <= dir.total_bytes);
            }
        }
    }
}

#[test]
fn elect_leaders_and_reassignments_are_trivially_right() {
    let broker = TestBroker::start("elect-leaders");
    let mut client = broker.connect();
    create_topic(&mut client, "e", 2);
    for version in [0i16, 1, 2] {
        let request = el::ElectLeadersRequest {
            election_type: 0,
            topic_partitions: Some(vec![el::TopicPartitions {
                topic: "e".into(),
                partitions: vec![0, 1, 5],
            }]),
            timeout_ms: 1000,
        };
        let response = client.call(
            el::API_KEY,
            version,
            |e| request.encode(e, version),
            el::ElectLeadersResponse::decode,
        );
        assert_eq!(response.error_code, NONE);
        let codes: Vec<_> = response.replica_election_results[0]
            .partition_result
            .iter()
            .map(|p| (p.partition_id, p.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                (0, ELECTION_NOT_NEEDED),
                (1, ELECTION_NOT_NEEDED),
                (5, UNKNOWN_TOPIC_OR_PARTITION)
            ]
        );
        let all = el::ElectLeadersRequest {
            election_type: 0,
            topic_partitions: None,
            timeout_ms: 1000,
        };
        let response = client.call(
            el::API_KEY,
            version,
            |e| all.encode(e, version),
            el::ElectLeadersResponse::decode,
        );
        assert!(response.replica_election_results.is_empty());
    }
    let request = lpr::ListPartitionReassignmentsRequest {
        timeout_ms: 1000,
        topics: None,
    };
    let response = client.call(
        lpr::API_KEY,
        0,
        |e| request.encode(e, 0),
        lpr::ListPartitionReassignmentsResponse::decode,
    );
    assert_eq!((response.error_code, response.topics.len()), (NONE, 0));
}

#[test]
fn offset_for_leader_epoch_gives_the_end_of_the_current_epoch() {
    let broker = TestBroker::start("offset-for-leader-epoch");
    let mut client = broker.connect();
    create_topic(&mut client, "o", 1);
    for _ in 0..3 {
        assert_eq!(
            produce(&mut client, "o", 0, &plain_batch(0, &[b"r", b"s"])).0,
            NONE
        );
    }
    for version in 0i16..=4 {
        let ask = |partition: i32, current: i32, epoch: i32| ofle::OffsetForLeaderPartition {
            partition,
            current_leader_epoch: current,
            leader_epoch: epoch,
        };
        let request = ofle::OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![
                ofle::OffsetForLeaderTopic {
                    topic: "o".into(),
                    partitions: vec![ask(0, -1, 0), ask(0, 0, 3), ask(0, 2, 0), ask(3, -1, 0)],
                },
                ofle::OffsetForLeaderTopic {
                    topic: "absent".into(),
                    partitions: vec![ask(0, -1, 0)],
                },
            ],
        };
        let response = client.call(
            ofle::API_KEY,
            version,
            |e| request.encode(e, version),
            ofle::OffsetForLeaderEpochResponse::decode,
        );
        let answers: Vec<_> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.error_code, p.leader_epoch, p.end_offset))
            })
            .collect();
        // The current leader epoch is only checked from v2 on (it is not sent before), and v0
        // answers carry no epoch (the codec reads -1).
        let epoch = |e: i32| if version >= 1 { e } else { -1 };
        let expected_third = if version >= 2 {
            (UNKNOWN_LEADER_EPOCH, -1, -1)
        } else {
            (NONE, epoch(0), 6)
        };
        assert_eq!(
            answers,
            [
                (NONE, epoch(0), 6),
                (NONE, -1, -1),
                expected_third,
                (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
                (UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            ],
            "v{version}"
        );
    }
}
