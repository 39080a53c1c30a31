//! Admin and bookkeeping APIs against the real broker, compared with what Apache Kafka 3.9 answers:
//! Metadata, CreateTopics, DeleteTopics, ListOffsets, InitProducerId (with the idempotent produce
//! path it enables), DescribeConfigs, and LogAppendTime topics.
//!
//! Every test starts its own broker in its own directory, builds requests with the generated codecs
//! and decodes the answers with them (`Client::call`). The versions exercised are the ones real
//! clients send (`../shared/kafka-protocol/CLIENTS.md`): Metadata 0/1/4/9/12, CreateTopics 0/3/4/7,
//! DeleteTopics 1/4/6, ListOffsets 0/2/3/7/9, InitProducerId 0/1/4, DescribeConfigs 0/1/4. Where a
//! test checks state that must outlive the process (topics, deletions, producer ids, producer
//! state), it restarts the broker both after `kill -9` and after a clean SIGTERM, and it reads the
//! files themselves: partition logs, `partition.metadata` and `__cluster_metadata-0`.

use crate::harness::{Client, TestBroker, read_partition_log};
use sprat::metadata::MetadataRecord;
use sprat::metadata::records::{partition_record::PartitionRecord, topic_record::TopicRecord};
use sprat::protocol::messages::{
    create_topics as ct, delete_topics as dt, describe_configs as dc, init_producer_id as ipi,
    list_offsets as lo, metadata as md, produce,
};
use sprat::protocol::wire::Uuid;
use sprat::storage::record_batch::{
    BatchHeader, Batches, Record, TIMESTAMP_TYPE_MASK, build_batch, decode_records,
    set_base_offset, set_log_append_time, set_partition_leader_epoch,
};
use std::fs;
use std::path::Path;

/// The broker's node id in the harness's `server.properties`.
const NODE_ID: i32 = 1;

/// Kafka error codes used below (`Errors.java`).
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// ListOffsets special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// DescribeConfigs: resource type TOPIC, config sources and types (`DescribeConfigsResponse.java`).
const RESOURCE_TOPIC: i8 = 2;
const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;
const SOURCE_DEFAULT_CONFIG: i8 = 5;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// Kafka's topic authorized-operations bitfield without an authorizer: READ, WRITE, CREATE,
/// DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const ALL_TOPIC_OPERATIONS: i32 = 0x0df8;

const METADATA_VERSIONS: [i16; 5] = [0, 1, 4, 9, 12];

// ---------------------------------------------------------------------------------------------
// Request helpers
// ---------------------------------------------------------------------------------------------

/// A Metadata request: `None` asks for every topic (v0 sends an empty list instead).
fn metadata_request(
    topics: Option<&[&str]>,
    allow_auto_topic_creation: bool,
) -> md::MetadataRequest {
    md::MetadataRequest {
        topics: topics.map(|names| {
            names
                .iter()
                .map(|n| md::MetadataRequestTopic {
                    topic_id: Uuid::ZERO,
                    name: Some(n.to_string()),
                })
                .collect()
        }),
        allow_auto_topic_creation,
        ..md::MetadataRequest::default()
    }
}

fn metadata_with(
    client: &mut Client,
    version: i16,
    request: &md::MetadataRequest,
) -> md::MetadataResponse {
    client.call(
        md::API_KEY,
        version,
        |e| request.encode(e, version),
        md::MetadataResponse::decode,
    )
}

fn metadata(
    client: &mut Client,
    version: i16,
    topics: Option<&[&str]>,
    allow_auto_topic_creation: bool,
) -> md::MetadataResponse {
    metadata_with(
        client,
        version,
        &metadata_request(topics, allow_auto_topic_creation),
    )
}

/// The one topic a single-topic Metadata response describes.
fn metadata_topic(
    client: &mut Client,
    version: i16,
    name: &str,
    allow_auto_topic_creation: bool,
) -> md::MetadataResponseTopic {
    let response = metadata(client, version, Some(&[name]), allow_auto_topic_creation);
    assert_eq!(response.topics.len(), 1, "v{version}: {response:?}");
    response.topics.into_iter().next().unwrap()
}

/// Topic names listed by an all-topics Metadata v12 request.
fn listed_topics(client: &mut Client) -> Vec<(String, Uuid, usize)> {
    metadata(client, 12, None, false)
        .topics
        .into_iter()
        .map(|t| (t.name.unwrap(), t.topic_id, t.partitions.len()))
        .collect()
}

fn new_topic(name: &str, num_partitions: i32, replication_factor: i16) -> ct::CreatableTopic {
    ct::CreatableTopic {
        name: name.into(),
        num_partitions,
        replication_factor,
        ..ct::CreatableTopic::default()
    }
}

fn with_configs(mut topic: ct::CreatableTopic, configs: &[(&str, &str)]) -> ct::CreatableTopic {
    topic.configs = configs
        .iter()
        .map(|(k, v)| ct::CreatableTopicConfig {
            name: k.to_string(),
            value: Some(v.to_string()),
        })
        .collect();
    topic
}

fn create_topics(
    client: &mut Client,
    version: i16,
    topics: Vec<ct::CreatableTopic>,
    validate_only: bool,
) -> ct::CreateTopicsResponse {
    let request = ct::CreateTopicsRequest {
        topics,
        timeout_ms: 30000,
        validate_only,
    };
    client.call(
        ct::API_KEY,
        version,
        |e| request.encode(e, version),
        ct::CreateTopicsResponse::decode,
    )
}

/// Creates one topic with CreateTopics v7 and returns its id.
fn create_topic(client: &mut Client, topic: ct::CreatableTopic) -> Uuid {
    let name = topic.name.clone();
    let response = create_topics(client, 7, vec![topic], false);
    let result = &response.topics[0];
    assert_eq!(
        (result.name.as_str(), result.error_code),
        (name.as_str(), NONE),
        "{result:?}"
    );
    assert!(!result.topic_id.is_zero());
    result.topic_id
}

fn delete_topics_by_name(
    client: &mut Client,
    version: i16,
    names: &[&str],
) -> dt::DeleteTopicsResponse {
    let request = dt::DeleteTopicsRequest {
        topic_names: names.iter().map(|n| n.to_string()).collect(),
        timeout_ms: 30000,
        ..dt::DeleteTopicsRequest::default()
    };
    client.call(
        dt::API_KEY,
        version,
        |e| request.encode(e, version),
        dt::DeleteTopicsResponse::decode,
    )
}

/// DeleteTopics v6 with (name, id) pairs: a name with a zero id, or an id with no name.
fn delete_topics_v6(
    client: &mut Client,
    topics: &[(Option<&str>, Uuid)],
) -> dt::DeleteTopicsResponse {
    let request = dt::DeleteTopicsRequest {
        topics: topics
            .iter()
            .map(|(name, id)| dt::DeleteTopicState {
                name: name.map(str::to_string),
                topic_id: *id,
            })
            .collect(),
        timeout_ms: 30000,
        ..dt::DeleteTopicsRequest::default()
    };
    client.call(
        dt::API_KEY,
        6,
        |e| request.encode(e, 6),
        dt::DeleteTopicsResponse::decode,
    )
}

fn list_offsets(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> lo::ListOffsetsPartitionResponse {
    let request = lo::ListOffsetsRequest {
        replica_id: -1,
        isolation_level: 0,
        topics: vec![lo::ListOffsetsTopic {
            name: topic.into(),
            partitions: vec![lo::ListOffsetsPartition {
                partition_index: partition,
                current_leader_epoch: -1,
                timestamp,
                max_num_offsets: 1,
            }],
        }],
    };
    let response = client.call(
        lo::API_KEY,
        version,
        |e| request.encode(e, version),
        lo::ListOffsetsResponse::decode,
    );
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(response.topics.len(), 1);
    assert_eq!(response.topics[0].name, topic);
    assert_eq!(response.topics[0].partitions.len(), 1);
    let p = response.topics[0].partitions[0].clone();
    assert_eq!(p.partition_index, partition);
    p
}

/// (error, offset, timestamp) as a version shows them: v0 has only the old-style offset list.
fn offset_and_timestamp(p: &lo::ListOffsetsPartitionResponse, version: i16) -> (i16, i64, i64) {
    if version == 0 {
        assert!(p.old_style_offsets.len() <= 1, "{p:?}");
        let offset = p.old_style_offsets.first().copied().unwrap_or(-1);
        (p.error_code, offset, -1)
    } else {
        (p.error_code, p.offset, p.timestamp)
    }
}

fn init_producer_id(
    client: &mut Client,
    version: i16,
    transactional_id: Option<&str>,
) -> ipi::InitProducerIdResponse {
    let request = ipi::InitProducerIdRequest {
        transactional_id: transactional_id.map(str::to_string),
        transaction_timeout_ms: if transactional_id.is_some() {
            60000
        } else {
            -1
        },
        producer_id: -1,
        producer_epoch: -1,
    };
    client.call(
        ipi::API_KEY,
        version,
        |e| request.encode(e, version),
        ipi::InitProducerIdResponse::decode,
    )
}

/// A fresh producer id (InitProducerId v4, no transactional id).
fn new_producer_id(client: &mut Client) -> i64 {
    let response = init_producer_id(client, 4, None);
    assert_eq!(
        (response.error_code, response.producer_epoch),
        (NONE, 0),
        "{response:?}"
    );
    response.producer_id
}

fn describe_configs(
    client: &mut Client,
    version: i16,
    topic: &str,
    keys: Option<&[&str]>,
) -> dc::DescribeConfigsResult {
    let request = dc::DescribeConfigsRequest {
        resources: vec![dc::DescribeConfigsResource {
            resource_type: RESOURCE_TOPIC,
            resource_name: topic.into(),
            configuration_keys: keys.map(|k| k.iter().map(|s| s.to_string()).collect()),
        }],
        include_synonyms: false,
        include_documentation: false,
    };
    let response = client.call(
        dc::API_KEY,
        version,
        |e| request.encode(e, version),
        dc::DescribeConfigsResponse::decode,
    );
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(response.results.len(), 1);
    let result = response.results.into_iter().next().unwrap();
    assert_eq!(
        (result.resource_type, result.resource_name.as_str()),
        (RESOURCE_TOPIC, topic)
    );
    result
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

/// Produces one batch to one partition with acks=-1 and returns that partition's answer.
fn produce(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    batch: &[u8],
) -> produce::PartitionProduceResponse {
    let request = produce::ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30000,
        topic_data: vec![produce::TopicProduceData {
            name: topic.into(),
            partition_data: vec![produce::PartitionProduceData {
                index: partition,
                records: Some(batch.to_vec()),
            }],
        }],
    };
    let response = client.call(
        produce::API_KEY,
        version,
        |e| request.encode(e, version),
        produce::ProduceResponse::decode,
    );
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partition_responses.len(), 1);
    response.responses[0].partition_responses[0].clone()
}

/// Produces and asserts success at `base_offset`; returns the log append time field.
fn produce_ok(client: &mut Client, topic: &str, batch: &[u8], base_offset: i64) -> i64 {
    let p = produce(client, 9, topic, 0, batch);
    assert_eq!(
        (p.error_code, p.base_offset),
        (NONE, base_offset),
        "produce to {topic}: {p:?}"
    );
    p.log_append_time_ms
}

// ---------------------------------------------------------------------------------------------
// Batch and file helpers
// ---------------------------------------------------------------------------------------------

/// A CreateTime batch from a plain producer whose records carry these timestamps.
fn timed_batch(timestamps: &[i64]) -> Vec<u8> {
    let base = timestamps[0];
    let header = BatchHeader {
        base_timestamp: base,
        max_timestamp: *timestamps.iter().max().unwrap(),
        ..BatchHeader::default()
    };
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| Record {
            timestamp_delta: ts - base,
            value: Some(format!("record-{i}").into_bytes()),
            ..Record::default()
        })
        .collect();
    build_batch(&header, &records)
}

/// A batch from an idempotent producer: `values.len()` records from `base_sequence` on.
fn idempotent_batch(producer_id: i64, epoch: i16, base_sequence: i32, values: &[&str]) -> Vec<u8> {
    let header = BatchHeader {
        base_timestamp: 1_726_045_973_899,
        max_timestamp: 1_726_045_973_899,
        producer_id,
        producer_epoch: epoch,
        base_sequence,
        ..BatchHeader::default()
    };
    let records: Vec<Record> = values
        .iter()
        .map(|v| Record {
            value: Some(v.as_bytes().to_vec()),
            ..Record::default()
        })
        .collect();
    build_batch(&header, &records)
}

/// A copy of `batch` as the log stores it: the base offset assigned, and the leader's epoch (0)
/// stamped as partition leader epoch, as Kafka's leader does. Neither is covered by the CRC.
fn at_offset(batch: &[u8], offset: i64) -> Vec<u8> {
    let mut copy = batch.to_vec();
    set_base_offset(&mut copy, offset);
    set_partition_leader_epoch(&mut copy, 0);
    copy
}

/// `cluster.id` from the log directory's `meta.properties`.
fn meta_properties_cluster_id(log_dir: &Path) -> String {
    let text = fs::read_to_string(log_dir.join("meta.properties")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("meta.properties has a cluster.id")
        .trim()
        .to_string()
}

/// Checks that `<topic>-<p>/` holds a first segment and Kafka's `partition.metadata` for each
/// partition, and that no directory exists for the partition after the last.
fn assert_partition_dirs(log_dir: &Path, topic: &str, partitions: i32, topic_id: Uuid) {
    for p in 0..partitions {
        let dir = log_dir.join(format!("{topic}-{p}"));
        assert!(
            dir.join("00000000000000000000.log").is_file(),
            "{} has no first segment",
            dir.display()
        );
        let text = fs::read_to_string(dir.join("partition.metadata")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            ["version: 0".to_string(), format!("topic_id: {topic_id}")],
            "{}/partition.metadata",
            dir.display()
        );
    }
    assert!(
        !log_dir.join(format!("{topic}-{partitions}")).exists(),
        "no directory past the last partition"
    );
}

fn assert_no_partition_dirs(log_dir: &Path, topic: &str) {
    let prefix = format!("{topic}-");
    let left: Vec<String> = fs::read_dir(log_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    assert!(left.is_empty(), "directories of {topic} remain: {left:?}");
}

/// Every record of `__cluster_metadata-0`'s first segment, after checking that the file is a
/// sequence of complete, valid v2 batches with consecutive offsets.
fn metadata_log_records(log_dir: &Path) -> Vec<MetadataRecord> {
    let bytes = fs::read(
        log_dir
            .join("__cluster_metadata-0")
            .join("00000000000000000000.log"),
    )
    .unwrap();
    let mut batches = Batches::new(&bytes);
    let mut records = Vec::new();
    let mut next_offset = None;
    for batch in batches.by_ref() {
        let batch = batch.expect("a complete batch");
        batch.validate().expect("magic 2 and a valid CRC-32C");
        if let Some(next) = next_offset {
            assert_eq!(
                batch.base_offset(),
                next,
                "metadata offsets are consecutive"
            );
        }
        next_offset = Some(batch.last_offset() + 1);
        assert_eq!(batch.compression_codec(), 0);
        for record in decode_records(&batch).unwrap() {
            let value = record.value.expect("metadata records have a value");
            records.push(MetadataRecord::decode(&value).unwrap());
        }
    }
    assert!(batches.remaining().is_empty(), "no trailing bytes");
    records
}

/// Checks that the metadata log holds the TopicRecord of `name` with `id` and one PartitionRecord
/// per partition, led by this node with epoch 0, in that order.
fn assert_topic_in_metadata_log(log_dir: &Path, name: &str, id: Uuid, partitions: i32) {
    let records = metadata_log_records(log_dir);
    let at = records
        .iter()
        .position(|r| {
            *r == MetadataRecord::Topic(TopicRecord {
                name: name.into(),
                topic_id: id,
            })
        })
        .unwrap_or_else(|| panic!("no TopicRecord for {name} ({id}) in {records:?}"));
    let partition_records: Vec<&PartitionRecord> = records[at..]
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::Partition(p) if p.topic_id == id => Some(p),
            _ => None,
        })
        .collect();
    let indexes: Vec<i32> = partition_records.iter().map(|p| p.partition_id).collect();
    assert_eq!(indexes, (0..partitions).collect::<Vec<_>>(), "{name}");
    for p in partition_records {
        assert_eq!(
            (
                &p.replicas,
                &p.isr,
                p.leader,
                p.leader_epoch,
                p.partition_epoch
            ),
            (&vec![NODE_ID], &vec![NODE_ID], NODE_ID, 0, 0),
            "{name}-{}",
            p.partition_id
        );
        assert!(p.removing_replicas.is_empty() && p.adding_replicas.is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

/// Every version lists this broker (node 1 at the listener's host and bound port, no rack), the
/// cluster id of `meta.properties` (v2+), and node 1 as the controller (v1+), as a single-node
/// KRaft Kafka does. The harness's listener asks for port 0: Kafka then advertises the port it
/// actually bound, since a client told "port 0" cannot connect.
#[test]
fn metadata_lists_the_broker_cluster_id_and_controller() {
    let broker = TestBroker::start("md-broker");
    let cluster_id = meta_properties_cluster_id(&broker.log_dir);
    let mut client = broker.connect();
    for version in METADATA_VERSIONS {
        let response = metadata(&mut client, version, None, false);
        assert_eq!(response.throttle_time_ms, 0, "v{version}");
        assert_eq!(
            response
                .brokers
                .iter()
                .map(|b| (b.node_id, b.host.as_str(), b.port, b.rack.clone()))
                .collect::<Vec<_>>(),
            [(NODE_ID, "127.0.0.1", i32::from(broker.addr.port()), None)],
            "v{version}: brokers"
        );
        let expected_cluster_id = (version >= 2).then(|| cluster_id.clone());
        assert_eq!(response.cluster_id, expected_cluster_id, "v{version}");
        let expected_controller = if version >= 1 { NODE_ID } else { -1 };
        assert_eq!(response.controller_id, expected_controller, "v{version}");
        assert!(response.topics.is_empty(), "v{version}: no topics yet");
    }
}

/// "All topics" is an empty list in v0 and null from v1; from v1 an empty list asks for none.
/// The internal `__cluster_metadata` log is never listed.
#[test]
fn metadata_all_topics_null_or_v0_empty_list() {
    let broker = TestBroker::start("md-all");
    let mut client = broker.connect();
    let alpha = create_topic(&mut client, new_topic("alpha", 2, 1));
    let beta = create_topic(&mut client, new_topic("beta", 1, 1));
    for version in METADATA_VERSIONS {
        let all = if version == 0 {
            metadata(&mut client, version, Some(&[]), true)
        } else {
            metadata(&mut client, version, None, true)
        };
        let mut names: Vec<(String, usize, i16)> = all
            .topics
            .iter()
            .map(|t| (t.name.clone().unwrap(), t.partitions.len(), t.error_code))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [("alpha".into(), 2, NONE), ("beta".into(), 1, NONE)],
            "v{version}"
        );
        if version >= 10 {
            let ids: Vec<(Option<String>, Uuid)> = all
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.topic_id))
                .collect();
            assert!(ids.contains(&(Some("alpha".into()), alpha)), "v{version}");
            assert!(ids.contains(&(Some("beta".into()), beta)), "v{version}");
        }
        if version >= 1 {
            let none = metadata(&mut client, version, Some(&[]), true);
            assert!(
                none.topics.is_empty(),
                "v{version}: an empty list asks for no topic"
            );
        }
    }
}

/// A named topic: its partitions in order, each led by node 1 with replicas and ISR [1], leader
/// epoch 0 (v7+), no offline replicas, the topic id from CreateTopics (v10+), not internal, and
/// topic_authorized_operations i32::MIN unless asked for (v8+).
#[test]
fn metadata_describes_a_topic_with_partitions() {
    let broker = TestBroker::start("md-topic");
    let mut client = broker.connect();
    let id = create_topic(&mut client, new_topic("described", 3, 1));
    for version in METADATA_VERSIONS {
        let t = metadata_topic(&mut client, version, "described", false);
        assert_eq!(t.error_code, NONE, "v{version}");
        assert_eq!(t.name.as_deref(), Some("described"));
        assert!(!t.is_internal);
        let expected_id = if version >= 10 { id } else { Uuid::ZERO };
        assert_eq!(t.topic_id, expected_id, "v{version}");
        assert_eq!(t.topic_authorized_operations, i32::MIN, "v{version}");
        let expected_epoch = if version >= 7 { 0 } else { -1 };
        let partitions: Vec<_> = t
            .partitions
            .iter()
            .map(|p| {
                (
                    p.error_code,
                    p.partition_index,
                    p.leader_id,
                    p.leader_epoch,
                    p.replica_nodes.clone(),
                    p.isr_nodes.clone(),
                    p.offline_replicas.clone(),
                )
            })
            .collect();
        let expected: Vec<_> = (0..3)
            .map(|i| {
                (
                    NONE,
                    i,
                    NODE_ID,
                    expected_epoch,
                    vec![NODE_ID],
                    vec![NODE_ID],
                    vec![],
                )
            })
            .collect();
        assert_eq!(partitions, expected, "v{version}");
    }
    for version in [9, 12] {
        let request = md::MetadataRequest {
            include_topic_authorized_operations: true,
            ..metadata_request(Some(&["described"]), false)
        };
        let response = metadata_with(&mut client, version, &request);
        assert_eq!(
            response.topics[0].topic_authorized_operations, ALL_TOPIC_OPERATIONS,
            "v{version}"
        );
    }
}

/// With auto-creation off, an unknown topic is UNKNOWN_TOPIC_OR_PARTITION (3) with no partitions
/// and a zero id, and it is not created.
#[test]
fn metadata_unknown_topic_without_auto_creation_is_error_3() {
    let broker = TestBroker::start("md-unknown");
    let mut client = broker.connect();
    for version in [4, 9, 12] {
        let t = metadata_topic(&mut client, version, "ghost", false);
        assert_eq!(
            (
                t.error_code,
                t.name.as_deref(),
                t.topic_id,
                t.partitions.len()
            ),
            (UNKNOWN_TOPIC_OR_PARTITION, Some("ghost"), Uuid::ZERO, 0),
            "v{version}"
        );
    }
    assert!(listed_topics(&mut client).is_empty());
    assert_no_partition_dirs(&broker.log_dir, "ghost");
}

/// With `allow_auto_topic_creation` (implicit before v4) an unknown topic is created with
/// `num.partitions` partitions. Kafka 3.9 answers the creating request with LEADER_NOT_AVAILABLE
/// (5) and the topic on the next request; sprat may describe it at once. Both are accepted here.
#[test]
fn metadata_auto_creates_topics_with_num_partitions() {
    let broker = TestBroker::start_with("md-auto", |_| {}, &["num.partitions=3"]);
    let mut client = broker.connect();
    for version in METADATA_VERSIONS {
        let name = format!("auto-v{version}");
        let first = metadata_topic(&mut client, version, &name, true);
        match first.error_code {
            NONE => assert_eq!(first.partitions.len(), 3, "v{version}: {first:?}"),
            LEADER_NOT_AVAILABLE => {}
            other => panic!("v{version}: auto-creation answered {other}: {first:?}"),
        }
        let again = metadata_topic(&mut client, 12, &name, false);
        assert_eq!(again.error_code, NONE, "v{version}: {again:?}");
        assert_eq!(again.partitions.len(), 3);
        assert!(again.partitions.iter().all(|p| p.leader_id == NODE_ID));
        assert_partition_dirs(&broker.log_dir, &name, 3, again.topic_id);
    }
}

/// `auto.create.topics.enable=false` turns auto-creation off even when the request allows it.
#[test]
fn metadata_auto_creation_disabled_by_config() {
    let broker = TestBroker::start_with(
        "md-noauto",
        |_| {},
        &["auto.create.topics.enable=false", "num.partitions=3"],
    );
    let mut client = broker.connect();
    for version in METADATA_VERSIONS {
        let t = metadata_topic(&mut client, version, "never", true);
        assert_eq!(
            (t.error_code, t.partitions.len()),
            (UNKNOWN_TOPIC_OR_PARTITION, 0),
            "v{version}"
        );
    }
    assert!(listed_topics(&mut client).is_empty());
    assert_no_partition_dirs(&broker.log_dir, "never");
}

/// An illegal topic name is INVALID_TOPIC_EXCEPTION (17) whether or not creation is allowed
/// (`KafkaApis.getTopicMetadata` validates it before answering 3).
#[test]
fn metadata_invalid_topic_name_is_error_17() {
    let broker = TestBroker::start("md-invalid");
    let mut client = broker.connect();
    let too_long = "x".repeat(250);
    for version in METADATA_VERSIONS {
        for allow in [false, true] {
            for name in ["bad name", "..", "a/b", too_long.as_str()] {
                let t = metadata_topic(&mut client, version, name, allow);
                assert_eq!(
                    (t.error_code, t.partitions.len()),
                    (INVALID_TOPIC_EXCEPTION, 0),
                    "v{version} allow={allow} {name:?}"
                );
            }
        }
    }
    assert!(listed_topics(&mut client).is_empty());
}

// ---------------------------------------------------------------------------------------------
// CreateTopics
// ---------------------------------------------------------------------------------------------

/// Each version creates a topic: the answer carries no error and no message, v5+ the partition
/// count and replication factor, v7 the topic id; the partition directories appear with their
/// first segment and `partition.metadata`, and Metadata describes the topic with the same id.
#[test]
fn create_topics_creates_partitions_on_disk() {
    let broker = TestBroker::start("ct-create");
    let mut client = broker.connect();
    for version in [0, 3, 4, 7] {
        let name = format!("created-v{version}");
        let response = create_topics(&mut client, version, vec![new_topic(&name, 2, 1)], false);
        assert_eq!(response.throttle_time_ms, 0);
        assert_eq!(response.topics.len(), 1);
        let result = &response.topics[0];
        assert_eq!(
            (
                result.name.as_str(),
                result.error_code,
                &result.error_message
            ),
            (name.as_str(), NONE, &None),
            "v{version}"
        );
        let described = metadata_topic(&mut client, 12, &name, false);
        assert_eq!(described.error_code, NONE);
        assert_eq!(described.partitions.len(), 2);
        if version >= 7 {
            assert_eq!(result.topic_id, described.topic_id, "v{version}");
        } else {
            assert_eq!(result.topic_id, Uuid::ZERO, "v{version}");
        }
        assert!(!described.topic_id.is_zero());
        assert_partition_dirs(&broker.log_dir, &name, 2, described.topic_id);
        assert_topic_in_metadata_log(&broker.log_dir, &name, described.topic_id, 2);
    }
    // -1 partitions and replication factor mean the broker defaults (num.partitions=1).
    let response = create_topics(&mut client, 7, vec![new_topic("defaults", -1, -1)], false);
    let result = &response.topics[0];
    assert_eq!(
        (
            result.error_code,
            result.num_partitions,
            result.replication_factor
        ),
        (NONE, 1, 1)
    );
}

/// The errors Kafka gives, per topic, leaving the other topics of the request alone: an existing
/// name 36, zero or negative partitions 37, replication factor 3 on one broker 38, an illegal name
/// 17. Failed topics leave nothing on disk.
#[test]
fn create_topics_refuses_bad_topics_one_by_one() {
    let broker = TestBroker::start("ct-errors");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("taken", 1, 1));
    for version in [0, 3, 4, 7] {
        let good = format!("good-v{version}");
        let cases = [
            (new_topic("taken", 1, 1), TOPIC_ALREADY_EXISTS),
            (
                new_topic(&format!("zero-v{version}"), 0, 1),
                INVALID_PARTITIONS,
            ),
            (
                new_topic(&format!("neg-v{version}"), -5, 1),
                INVALID_PARTITIONS,
            ),
            (
                new_topic(&format!("rf3-v{version}"), 1, 3),
                INVALID_REPLICATION_FACTOR,
            ),
            (new_topic("bad name!", 1, 1), INVALID_TOPIC_EXCEPTION),
        ];
        let mut topics: Vec<_> = cases.iter().map(|(t, _)| t.clone()).collect();
        topics.push(new_topic(&good, 1, 1));
        let response = create_topics(&mut client, version, topics, false);
        assert_eq!(response.topics.len(), cases.len() + 1, "v{version}");
        for (topic, code) in &cases {
            let result = response
                .topics
                .iter()
                .find(|r| r.name == topic.name)
                .unwrap_or_else(|| panic!("v{version}: no result for {}", topic.name));
            assert_eq!(result.error_code, *code, "v{version} {}", topic.name);
            if version >= 1 {
                assert!(
                    result.error_message.is_some(),
                    "v{version} {}: an error message",
                    topic.name
                );
            }
            if version >= 5 {
                assert_eq!(
                    (result.num_partitions, result.replication_factor),
                    (-1, -1),
                    "v{version} {}",
                    topic.name
                );
            }
            if version >= 7 {
                assert_eq!(result.topic_id, Uuid::ZERO);
            }
            if topic.name != "taken" {
                assert_no_partition_dirs(&broker.log_dir, &topic.name);
            }
        }
        let ok = response.topics.iter().find(|r| r.name == good).unwrap();
        assert_eq!(ok.error_code, NONE, "v{version}: the good topic is created");
    }
    let mut names: Vec<String> = listed_topics(&mut client)
        .into_iter()
        .map(|t| t.0)
        .collect();
    names.sort();
    assert_eq!(names, ["good-v0", "good-v3", "good-v4", "good-v7", "taken"]);
}

/// `validate_only` runs every check and answers as a creation would, but creates nothing; an
/// existing name is still 36.
#[test]
fn create_topics_validate_only_creates_nothing() {
    let broker = TestBroker::start("ct-validate");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("exists", 1, 1));
    for version in [3, 4, 7] {
        let name = format!("dry-v{version}");
        let response = create_topics(
            &mut client,
            version,
            vec![
                new_topic(&name, 4, 1),
                new_topic("exists", 1, 1),
                new_topic("dry-bad", 0, 1),
            ],
            true,
        );
        let codes: Vec<(&str, i16)> = response
            .topics
            .iter()
            .map(|r| (r.name.as_str(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                (name.as_str(), NONE),
                ("exists", TOPIC_ALREADY_EXISTS),
                ("dry-bad", INVALID_PARTITIONS)
            ],
            "v{version}"
        );
        if version >= 5 {
            assert_eq!(response.topics[0].num_partitions, 4);
            assert_eq!(response.topics[0].replication_factor, 1);
        }
        let t = metadata_topic(&mut client, 12, &name, false);
        assert_eq!(t.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{version}");
        assert_no_partition_dirs(&broker.log_dir, &name);
    }
    let names: Vec<String> = listed_topics(&mut client)
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names, ["exists"]);
}

/// A config given at creation comes back in the v5+ answer as a DYNAMIC_TOPIC_CONFIG (1), and
/// DescribeConfigs reports it as the topic's override.
#[test]
fn create_topics_configs_come_back_in_the_response_and_describe_configs() {
    let broker = TestBroker::start("ct-configs");
    let mut client = broker.connect();
    let topic = with_configs(
        new_topic("configured", 2, 1),
        &[("retention.ms", "3600000"), ("cleanup.policy", "compact")],
    );
    let response = create_topics(&mut client, 7, vec![topic], false);
    let result = &response.topics[0];
    assert_eq!(result.error_code, NONE);
    assert_eq!((result.num_partitions, result.replication_factor), (2, 1));
    let configs = result.configs.as_ref().expect("v5+ lists the configs");
    for (name, value) in [("retention.ms", "3600000"), ("cleanup.policy", "compact")] {
        let c = configs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} missing from {configs:?}"));
        assert_eq!(
            (
                c.value.as_deref(),
                c.read_only,
                c.config_source,
                c.is_sensitive
            ),
            (Some(value), false, SOURCE_DYNAMIC_TOPIC_CONFIG, false),
            "{name}"
        );
    }
    let described = describe_configs(&mut client, 4, "configured", None);
    assert_eq!(described.error_code, NONE);
    let retention = config(&described, "retention.ms");
    assert_eq!(
        (retention.value.as_deref(), retention.config_source),
        (Some("3600000"), SOURCE_DYNAMIC_TOPIC_CONFIG)
    );
    let policy = config(&described, "cleanup.policy");
    assert_eq!(
        (policy.value.as_deref(), policy.config_source),
        (Some("compact"), SOURCE_DYNAMIC_TOPIC_CONFIG)
    );
}

/// KIP-525: from v5 Kafka answers a successful creation with the topic's whole effective
/// configuration, sorted by name (`ReplicationControlManager.createTopic` fills it from
/// `computeEffectiveTopicConfigs`): overrides as DYNAMIC_TOPIC_CONFIG (1), the rest as
/// DEFAULT_CONFIG (5). Admin clients show this list after a create.
#[test]
fn create_topics_v5_plus_lists_the_effective_configuration() {
    let broker = TestBroker::start("ct-effective");
    let mut client = broker.connect();
    let topic = with_configs(new_topic("effective", 1, 1), &[("retention.ms", "3600000")]);
    let response = create_topics(&mut client, 7, vec![topic], false);
    let configs = response.topics[0].configs.clone().unwrap_or_default();
    let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted by name");
    let defaults = [
        ("cleanup.policy", "delete"),
        ("max.message.bytes", "1048588"),
        ("message.timestamp.type", "CreateTime"),
        ("segment.bytes", "1073741824"),
    ];
    for (name, value) in defaults {
        let c = configs
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("default {name} missing from {names:?}"));
        assert_eq!(
            (c.value.as_deref(), c.config_source),
            (Some(value), SOURCE_DEFAULT_CONFIG),
            "{name}"
        );
    }
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC_CONFIG);
}

/// Topics, their ids, partitions and configs survive `kill -9` and a clean SIGTERM; the metadata
/// log that carries them is a sequence of valid v2 batches holding the records Kafka writes.
#[test]
fn created_topics_survive_restarts() {
    let mut broker = TestBroker::start("ct-restart");
    let mut client = broker.connect();
    let a = create_topic(
        &mut client,
        with_configs(new_topic("durable-a", 3, 1), &[("retention.ms", "123456")]),
    );
    let b = create_topic(&mut client, new_topic("durable-b", 1, 1));
    let before = listed_topics(&mut client);
    assert_eq!(
        before,
        [
            ("durable-a".to_string(), a, 3),
            ("durable-b".to_string(), b, 1)
        ]
    );
    let cluster_id = metadata(&mut client, 12, None, false).cluster_id;
    for clean in [false, true] {
        if clean {
            assert!(broker.terminate(), "a clean exit on SIGTERM");
            broker.restart();
        } else {
            broker.kill_and_restart();
        }
        let mut client = broker.connect();
        let after = metadata(&mut client, 12, None, false);
        assert_eq!(after.cluster_id, cluster_id, "clean={clean}");
        let listed: Vec<(String, Uuid, usize)> = after
            .topics
            .iter()
            .map(|t| (t.name.clone().unwrap(), t.topic_id, t.partitions.len()))
            .collect();
        assert_eq!(listed, before, "clean={clean}");
        let retention = describe_configs(&mut client, 4, "durable-a", Some(&["retention.ms"]));
        assert_eq!(
            config(&retention, "retention.ms").value.as_deref(),
            Some("123456")
        );
        assert_partition_dirs(&broker.log_dir, "durable-a", 3, a);
        assert_partition_dirs(&broker.log_dir, "durable-b", 1, b);
        assert_topic_in_metadata_log(&broker.log_dir, "durable-a", a, 3);
        assert_topic_in_metadata_log(&broker.log_dir, "durable-b", b, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// DeleteTopics
// ---------------------------------------------------------------------------------------------

/// By name (v1, v4): the topic leaves Metadata and its directories are removed; an unknown name is
/// UNKNOWN_TOPIC_OR_PARTITION (3).
#[test]
fn delete_topics_by_name_removes_the_topic_and_its_directories() {
    let broker = TestBroker::start("dt-name");
    let mut client = broker.connect();
    for version in [1, 4] {
        let name = format!("doomed-v{version}");
        create_topic(&mut client, new_topic(&name, 2, 1));
        produce_ok(&mut client, &name, &timed_batch(&[1_000]), 0);
        let response = delete_topics_by_name(&mut client, version, &[&name, "missing"]);
        assert_eq!(response.throttle_time_ms, 0);
        let codes: Vec<(Option<&str>, i16)> = response
            .responses
            .iter()
            .map(|r| (r.name.as_deref(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            [
                (Some(name.as_str()), NONE),
                (Some("missing"), UNKNOWN_TOPIC_OR_PARTITION)
            ],
            "v{version}"
        );
        let t = metadata_topic(&mut client, 12, &name, false);
        assert_eq!(t.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{version}");
        assert_no_partition_dirs(&broker.log_dir, &name);
        let p = list_offsets(&mut client, 7, &name, 0, LATEST);
        assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
    }
    assert!(listed_topics(&mut client).is_empty());
}

/// v6 deletes by id or by name and answers with both; an unknown id is UNKNOWN_TOPIC_ID (100), an
/// unknown name 3.
#[test]
fn delete_topics_v6_by_id_and_by_name() {
    let broker = TestBroker::start("dt-id");
    let mut client = broker.connect();
    let by_id = create_topic(&mut client, new_topic("by-id", 1, 1));
    let by_name = create_topic(&mut client, new_topic("by-name", 1, 1));
    let unknown_id = Uuid([7; 16]);
    let response = delete_topics_v6(
        &mut client,
        &[
            (None, by_id),
            (Some("by-name"), Uuid::ZERO),
            (None, unknown_id),
            (Some("nope"), Uuid::ZERO),
        ],
    );
    let results: Vec<(Option<&str>, Uuid, i16)> = response
        .responses
        .iter()
        .map(|r| (r.name.as_deref(), r.topic_id, r.error_code))
        .collect();
    assert_eq!(
        results,
        [
            (Some("by-id"), by_id, NONE),
            (Some("by-name"), by_name, NONE),
            (None, unknown_id, UNKNOWN_TOPIC_ID),
            (Some("nope"), Uuid::ZERO, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    assert!(listed_topics(&mut client).is_empty());
    assert_no_partition_dirs(&broker.log_dir, "by-id");
    assert_no_partition_dirs(&broker.log_dir, "by-name");
}

/// A deletion is durable (kill -9 and SIGTERM), and a topic re-created with the same name gets a
/// new id and only its new partitions.
#[test]
fn deletion_survives_restarts_and_recreation_gets_a_new_id() {
    let mut broker = TestBroker::start("dt-restart");
    let mut client = broker.connect();
    let old = create_topic(&mut client, new_topic("phoenix", 3, 1));
    create_topic(&mut client, new_topic("bystander", 1, 1));
    produce_ok(&mut client, "phoenix", &timed_batch(&[1_000, 1_001]), 0);
    let response = delete_topics_by_name(&mut client, 4, &["phoenix"]);
    assert_eq!(response.responses[0].error_code, NONE);
    broker.kill_and_restart();
    let mut client = broker.connect();
    let t = metadata_topic(&mut client, 12, "phoenix", false);
    assert_eq!(
        t.error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "still deleted after kill -9"
    );
    assert_no_partition_dirs(&broker.log_dir, "phoenix");
    let names: Vec<String> = listed_topics(&mut client)
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(names, ["bystander"]);

    let new = create_topic(&mut client, new_topic("phoenix", 1, 1));
    assert_ne!(new, old, "a re-created topic gets a new id");
    let t = metadata_topic(&mut client, 12, "phoenix", false);
    assert_eq!((t.topic_id, t.partitions.len()), (new, 1));
    assert_partition_dirs(&broker.log_dir, "phoenix", 1, new);
    let latest = list_offsets(&mut client, 7, "phoenix", 0, LATEST);
    assert_eq!(
        (latest.error_code, latest.offset),
        (NONE, 0),
        "the old records are gone"
    );

    assert!(broker.terminate());
    broker.restart();
    let mut client = broker.connect();
    let t = metadata_topic(&mut client, 12, "phoenix", false);
    assert_eq!(
        (t.error_code, t.topic_id, t.partitions.len()),
        (NONE, new, 1)
    );
    assert_partition_dirs(&broker.log_dir, "phoenix", 1, new);
}

// ---------------------------------------------------------------------------------------------
// ListOffsets
// ---------------------------------------------------------------------------------------------

const LIST_OFFSETS_VERSIONS: [i16; 5] = [0, 2, 3, 7, 9];

/// Produces three batches with distinct timestamps to `topic`-0:
/// offsets 0-1 at 1000 and 1005, offset 2 at 9000 (the largest), offsets 3-5 at 3000-3002.
fn produce_three_timed_batches(client: &mut Client, topic: &str) {
    produce_ok(client, topic, &timed_batch(&[1_000, 1_005]), 0);
    produce_ok(client, topic, &timed_batch(&[9_000]), 2);
    produce_ok(client, topic, &timed_batch(&[3_000, 3_001, 3_002]), 3);
}

/// Earliest (-2) is the log start offset 0; latest (-1) is the offset after the last record, not
/// the last batch's base offset. v0 answers in `old_style_offsets`.
#[test]
fn list_offsets_earliest_and_latest() {
    let broker = TestBroker::start("lo-ends");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("ends", 1, 1));
    for version in LIST_OFFSETS_VERSIONS {
        for which in [EARLIEST, LATEST] {
            let p = list_offsets(&mut client, version, "ends", 0, which);
            assert_eq!(
                offset_and_timestamp(&p, version),
                (NONE, 0, -1),
                "empty log, v{version} {which}"
            );
        }
    }
    produce_three_timed_batches(&mut client, "ends");
    for version in LIST_OFFSETS_VERSIONS {
        let earliest = list_offsets(&mut client, version, "ends", 0, EARLIEST);
        assert_eq!(
            offset_and_timestamp(&earliest, version),
            (NONE, 0, -1),
            "v{version}"
        );
        let latest = list_offsets(&mut client, version, "ends", 0, LATEST);
        assert_eq!(
            offset_and_timestamp(&latest, version),
            (NONE, 6, -1),
            "v{version}"
        );
        if version == 0 {
            assert_eq!(latest.old_style_offsets, [6]);
        }
        if version >= 4 {
            assert_eq!(
                latest.leader_epoch, 0,
                "v{version}: the partition's leader epoch"
            );
        }
    }
}

/// By timestamp: the first offset (in offset order) whose record timestamp is at least the
/// target, with that record's timestamp; past every record, offset and timestamp -1.
#[test]
fn list_offsets_by_timestamp() {
    let broker = TestBroker::start("lo-time");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("timed", 1, 1));
    produce_three_timed_batches(&mut client, "timed");
    let cases: &[(i64, i64, i64)] = &[
        (0, 0, 1_000),
        (1_000, 0, 1_000),
        (1_001, 1, 1_005),
        (1_005, 1, 1_005),
        (1_006, 2, 9_000),
        // The batch at offset 2 comes first in the log, so it wins over the later 3000s.
        (3_001, 2, 9_000),
        (9_000, 2, 9_000),
        (9_001, -1, -1),
    ];
    for version in [2, 3, 7, 9] {
        for &(target, offset, timestamp) in cases {
            let p = list_offsets(&mut client, version, "timed", 0, target);
            assert_eq!(
                (p.error_code, p.offset, p.timestamp),
                (NONE, offset, timestamp),
                "v{version} target {target}"
            );
            if version >= 4 {
                let epoch = if offset >= 0 { 0 } else { -1 };
                assert_eq!(p.leader_epoch, epoch, "v{version} target {target}");
            }
        }
    }
}

/// MAX_TIMESTAMP (-3, v7+): the offset and timestamp of the record with the largest timestamp,
/// which need not be the last; -1/-1 on an empty partition.
#[test]
fn list_offsets_max_timestamp() {
    let broker = TestBroker::start("lo-max");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("peak", 1, 1));
    for version in [7, 9] {
        let p = list_offsets(&mut client, version, "peak", 0, MAX_TIMESTAMP);
        assert_eq!(
            (p.error_code, p.offset, p.timestamp),
            (NONE, -1, -1),
            "v{version}"
        );
    }
    produce_three_timed_batches(&mut client, "peak");
    for version in [7, 9] {
        let p = list_offsets(&mut client, version, "peak", 0, MAX_TIMESTAMP);
        assert_eq!(
            (p.error_code, p.offset, p.timestamp, p.leader_epoch),
            (NONE, 2, 9_000, 0),
            "v{version}"
        );
    }
    // The largest timestamp inside a batch, not at its start.
    produce_ok(
        &mut client,
        "peak",
        &timed_batch(&[4_000, 12_000, 5_000]),
        6,
    );
    let p = list_offsets(&mut client, 9, "peak", 0, MAX_TIMESTAMP);
    assert_eq!((p.offset, p.timestamp), (7, 12_000));
}

/// A partition that does not exist, of a known or unknown topic, is UNKNOWN_TOPIC_OR_PARTITION
/// (3) with offset and timestamp -1 (v0: no offsets).
#[test]
fn list_offsets_unknown_partition_is_error_3() {
    let broker = TestBroker::start("lo-unknown");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("small", 2, 1));
    for version in LIST_OFFSETS_VERSIONS {
        for (topic, partition) in [("small", 2), ("small", -1), ("nowhere", 0)] {
            let p = list_offsets(&mut client, version, topic, partition, LATEST);
            assert_eq!(
                (p.error_code, p.offset, p.timestamp, p.leader_epoch),
                (UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1),
                "v{version} {topic}-{partition}"
            );
            assert!(p.old_style_offsets.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// InitProducerId and idempotent produce
// ---------------------------------------------------------------------------------------------

/// Without a transactional id every call hands out a new producer id with epoch 0.
#[test]
fn init_producer_id_hands_out_distinct_ids_with_epoch_0() {
    let broker = TestBroker::start("pid-distinct");
    let mut ids = Vec::new();
    for version in [0, 1, 4] {
        let mut client = broker.connect();
        for _ in 0..3 {
            let r = init_producer_id(&mut client, version, None);
            assert_eq!(
                (r.throttle_time_ms, r.error_code, r.producer_epoch),
                (0, NONE, 0),
                "v{version}"
            );
            assert!(r.producer_id >= 0, "v{version}: {r:?}");
            ids.push(r.producer_id);
        }
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "distinct ids: {ids:?}");
}

/// Producer ids are never handed out twice, even across restarts where no producer wrote
/// anything (Kafka reserves them in blocks with a ProducerIdsRecord in the metadata log).
#[test]
fn init_producer_id_ids_are_not_reused_after_restarts() {
    let mut broker = TestBroker::start("pid-restart");
    let mut seen: Vec<i64> = (0..3)
        .map(|_| new_producer_id(&mut broker.connect()))
        .collect();
    broker.kill_and_restart();
    let after_kill = new_producer_id(&mut broker.connect());
    assert!(
        !seen.contains(&after_kill),
        "after kill -9: id {after_kill} was already handed out in {seen:?}"
    );
    seen.push(after_kill);
    assert!(broker.terminate());
    broker.restart();
    let after_term = new_producer_id(&mut broker.connect());
    assert!(
        !seen.contains(&after_term),
        "after SIGTERM: id {after_term} was already handed out in {seen:?}"
    );
}

/// A transactional id gets one producer id, and each InitProducerId bumps its epoch (the
/// transaction coordinator's behaviour is tested in `transactions.rs`).
#[test]
fn init_producer_id_with_a_transactional_id_bumps_the_epoch() {
    let broker = TestBroker::start("pid-txn");
    let mut client = broker.connect();
    let mut ids = Vec::new();
    for (epoch, version) in [0, 1, 4].into_iter().enumerate() {
        let r = init_producer_id(&mut client, version, Some("txn-1"));
        assert_eq!(r.error_code, NONE, "v{version}");
        assert_eq!(r.producer_epoch, epoch as i16, "v{version}");
        ids.push(r.producer_id);
    }
    assert!(ids[0] >= 0 && ids.iter().all(|&id| id == ids[0]), "{ids:?}");
    assert!(
        new_producer_id(&mut client) >= 0,
        "still serving plain producers"
    );
}

/// Sequences from 0 append; a retry of a batch already written answers with its original offset
/// and is not written again; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER (45) and writes nothing.
#[test]
fn idempotent_produce_detects_retries_and_gaps() {
    let broker = TestBroker::start("idem");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("idem", 1, 1));
    let pid = new_producer_id(&mut client);
    let first = idempotent_batch(pid, 0, 0, &["a", "b"]);
    let second = idempotent_batch(pid, 0, 2, &["c"]);
    produce_ok(&mut client, "idem", &first, 0);
    produce_ok(&mut client, "idem", &second, 2);
    for version in [7, 9, 11] {
        for (batch, offset) in [(&first, 0), (&second, 2)] {
            let retry = produce(&mut client, version, "idem", 0, batch);
            assert_eq!(
                (retry.error_code, retry.base_offset),
                (NONE, offset),
                "v{version}: a retry answers with the original offset"
            );
        }
    }
    let expected_log = [at_offset(&first, 0), at_offset(&second, 2)].concat();
    assert_eq!(
        read_partition_log(&broker.log_dir, "idem", 0),
        expected_log,
        "each batch written once"
    );
    let gap = produce(
        &mut client,
        9,
        "idem",
        0,
        &idempotent_batch(pid, 0, 10, &["x"]),
    );
    assert_eq!(gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    let overlap = produce(
        &mut client,
        9,
        "idem",
        0,
        &idempotent_batch(pid, 0, 1, &["y", "z"]),
    );
    assert_eq!(overlap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(read_partition_log(&broker.log_dir, "idem", 0), expected_log);
    produce_ok(&mut client, "idem", &idempotent_batch(pid, 0, 3, &["d"]), 3);
}

/// A batch with an epoch older than the producer's current one is INVALID_PRODUCER_EPOCH (47).
#[test]
fn idempotent_produce_with_a_lower_epoch_is_fenced() {
    let broker = TestBroker::start("idem-epoch");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("fenced", 1, 1));
    let pid = new_producer_id(&mut client);
    produce_ok(
        &mut client,
        "fenced",
        &idempotent_batch(pid, 1, 0, &["new"]),
        0,
    );
    let old = produce(
        &mut client,
        9,
        "fenced",
        0,
        &idempotent_batch(pid, 0, 1, &["old"]),
    );
    assert_eq!(old.error_code, INVALID_PRODUCER_EPOCH);
    let latest = list_offsets(&mut client, 9, "fenced", 0, LATEST);
    assert_eq!(latest.offset, 1, "the fenced batch was not written");
}

/// The producer state is rebuilt from the log at start-up: after kill -9 (and after SIGTERM) a
/// retry is still recognised, the next sequence still appends, and a gap is still refused.
#[test]
fn idempotent_producer_state_survives_restarts() {
    let mut broker = TestBroker::start("idem-restart");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("durable", 1, 1));
    let pid = new_producer_id(&mut client);
    let batches: Vec<Vec<u8>> = (0..3)
        .map(|i| idempotent_batch(pid, 0, i * 2, &["x", "y"]))
        .collect();
    for (i, b) in batches.iter().enumerate() {
        produce_ok(&mut client, "durable", b, i as i64 * 2);
    }
    let log = read_partition_log(&broker.log_dir, "durable", 0);
    for clean in [false, true] {
        if clean {
            assert!(broker.terminate());
            broker.restart();
        } else {
            broker.kill_and_restart();
        }
        let mut client = broker.connect();
        for (i, b) in batches.iter().enumerate() {
            let retry = produce(&mut client, 9, "durable", 0, b);
            assert_eq!(
                (retry.error_code, retry.base_offset),
                (NONE, i as i64 * 2),
                "clean={clean}: a retry of batch {i}"
            );
        }
        assert_eq!(read_partition_log(&broker.log_dir, "durable", 0), log);
        let gap = produce(
            &mut client,
            9,
            "durable",
            0,
            &idempotent_batch(pid, 0, 9, &["g"]),
        );
        assert_eq!(
            gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER,
            "clean={clean}"
        );
        let other = new_producer_id(&mut client);
        assert_ne!(other, pid, "clean={clean}: a new producer gets a new id");
    }
    let mut client = broker.connect();
    produce_ok(
        &mut client,
        "durable",
        &idempotent_batch(pid, 0, 6, &["z"]),
        6,
    );
}

// ---------------------------------------------------------------------------------------------
// DescribeConfigs
// ---------------------------------------------------------------------------------------------

/// A topic's configs: the override as DYNAMIC_TOPIC_CONFIG (1), everything else as
/// DEFAULT_CONFIG (5) with Kafka's default values; v0 says `is_default` instead; topic configs are
/// not read-only; v3+ carry the config type.
#[test]
fn describe_configs_topic_defaults_and_overrides() {
    let broker = TestBroker::start("dc-topic");
    let mut client = broker.connect();
    create_topic(
        &mut client,
        with_configs(
            new_topic("described", 1, 1),
            &[("retention.ms", "86400000")],
        ),
    );
    for version in [0, 1, 4] {
        let result = describe_configs(&mut client, version, "described", None);
        assert_eq!(
            (result.error_code, &result.error_message),
            (NONE, &None),
            "v{version}"
        );
        let expected: &[(&str, &str, bool, i8)] = &[
            ("retention.ms", "86400000", false, TYPE_LONG),
            ("cleanup.policy", "delete", true, TYPE_LIST),
            ("segment.bytes", "1073741824", true, TYPE_INT),
            ("max.message.bytes", "1048588", true, TYPE_INT),
            ("message.timestamp.type", "CreateTime", true, TYPE_STRING),
            ("retention.bytes", "-1", true, TYPE_LONG),
            ("min.insync.replicas", "1", true, TYPE_INT),
        ];
        for &(name, value, is_default, config_type) in expected {
            let c = config(&result, name);
            assert_eq!(c.value.as_deref(), Some(value), "v{version} {name}");
            assert!(!c.read_only && !c.is_sensitive, "v{version} {name}");
            if version == 0 {
                assert_eq!(c.is_default, is_default, "v{version} {name}");
            } else {
                let source = if is_default {
                    SOURCE_DEFAULT_CONFIG
                } else {
                    SOURCE_DYNAMIC_TOPIC_CONFIG
                };
                assert_eq!(c.config_source, source, "v{version} {name}");
                assert!(c.synonyms.is_empty(), "no synonyms unless asked for");
            }
            if version >= 3 {
                assert_eq!(c.config_type, config_type, "v{version} {name}");
                assert_eq!(c.documentation, None);
            }
        }
    }
}

/// `configuration_keys` limits the answer to those keys; keys that are not configs are ignored.
#[test]
fn describe_configs_filters_by_configuration_keys() {
    let broker = TestBroker::start("dc-keys");
    let mut client = broker.connect();
    create_topic(
        &mut client,
        with_configs(new_topic("filtered", 1, 1), &[("retention.ms", "1000")]),
    );
    for version in [0, 1, 4] {
        let result = describe_configs(
            &mut client,
            version,
            "filtered",
            Some(&["retention.ms", "cleanup.policy", "no.such.config"]),
        );
        assert_eq!(result.error_code, NONE);
        let mut got: Vec<(&str, Option<&str>)> = result
            .configs
            .iter()
            .map(|c| (c.name.as_str(), c.value.as_deref()))
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                ("cleanup.policy", Some("delete")),
                ("retention.ms", Some("1000"))
            ],
            "v{version}"
        );
    }
}

/// An unknown topic is UNKNOWN_TOPIC_OR_PARTITION (3) with no configs.
#[test]
fn describe_configs_unknown_topic_is_error_3() {
    let broker = TestBroker::start("dc-unknown");
    let mut client = broker.connect();
    for version in [0, 1, 4] {
        let result = describe_configs(&mut client, version, "absent", None);
        assert_eq!(result.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{version}");
        assert!(result.configs.is_empty(), "v{version}");
    }
}

// ---------------------------------------------------------------------------------------------
// LogAppendTime
// ---------------------------------------------------------------------------------------------

/// A topic with `message.timestamp.type=LogAppendTime`: the produce answer carries the append time,
/// and the stored batch differs from the sent one only in its base offset, the timestamp-type bit,
/// the max timestamp (the append time) and a recomputed, valid CRC. ListOffsets and DescribeConfigs
/// agree.
#[test]
fn log_append_time_topic_stamps_the_batch() {
    let broker = TestBroker::start("lat");
    let mut client = broker.connect();
    create_topic(
        &mut client,
        with_configs(
            new_topic("stamped", 1, 1),
            &[("message.timestamp.type", "LogAppendTime")],
        ),
    );
    let sent = [timed_batch(&[1_000, 1_001]), timed_batch(&[2_000])];
    let mut expected_log = Vec::new();
    let mut append_times = Vec::new();
    for (i, (batch, version)) in sent.iter().zip([7, 9]).enumerate() {
        let before = wall_clock_ms();
        let p = produce(&mut client, version, "stamped", 0, batch);
        let after = wall_clock_ms();
        let base_offset = [0, 2][i];
        assert_eq!(
            (p.error_code, p.base_offset),
            (NONE, base_offset),
            "v{version}"
        );
        assert!(
            (before..=after).contains(&p.log_append_time_ms),
            "v{version}: log_append_time_ms {} outside [{before}, {after}]",
            p.log_append_time_ms
        );
        let mut expected = at_offset(batch, base_offset);
        set_log_append_time(&mut expected, p.log_append_time_ms);
        expected_log.extend(expected);
        append_times.push(p.log_append_time_ms);
    }
    let stored = read_partition_log(&broker.log_dir, "stamped", 0);
    for (view, append_time) in Batches::new(&stored).zip(&append_times) {
        let view = view.unwrap();
        view.validate().expect("a valid CRC after the rewrite");
        assert_ne!(
            view.attributes() & TIMESTAMP_TYPE_MASK,
            0,
            "LogAppendTime bit"
        );
        assert_eq!(view.max_timestamp(), *append_time);
    }
    assert_eq!(stored, expected_log);
    // Every record carries its batch's append time; both batches may share a millisecond.
    let first_at_or_after = if append_times[0] >= append_times[1] {
        0
    } else {
        2
    };
    let p = list_offsets(&mut client, 9, "stamped", 0, append_times[1]);
    assert_eq!(
        (p.offset, p.timestamp),
        (first_at_or_after, append_times[1])
    );
    let p = list_offsets(&mut client, 9, "stamped", 0, append_times[1] + 1);
    assert_eq!(
        (p.offset, p.timestamp),
        (-1, -1),
        "nothing after the last append"
    );
    let described = describe_configs(&mut client, 4, "stamped", Some(&["message.timestamp.type"]));
    let c = config(&described, "message.timestamp.type");
    assert_eq!(
        (c.value.as_deref(), c.config_source),
        (Some("LogAppendTime"), SOURCE_DYNAMIC_TOPIC_CONFIG)
    );
}

/// A CreateTime topic (the default) stores the batch as sent, with only the base offset
/// rewritten, and answers log_append_time_ms -1.
#[test]
fn create_time_topic_keeps_the_batch_bytes() {
    let broker = TestBroker::start("ct-bytes");
    let mut client = broker.connect();
    create_topic(&mut client, new_topic("plain", 1, 1));
    let batches = [timed_batch(&[1_000, 1_001]), timed_batch(&[2_000])];
    assert_eq!(produce_ok(&mut client, "plain", &batches[0], 0), -1);
    assert_eq!(produce_ok(&mut client, "plain", &batches[1], 2), -1);
    let stored = read_partition_log(&broker.log_dir, "plain", 0);
    assert_eq!(
        stored,
        [at_offset(&batches[0], 0), at_offset(&batches[1], 2)].concat()
    );
    for view in Batches::new(&stored) {
        let view = view.unwrap();
        view.validate().unwrap();
        assert_eq!(view.attributes() & TIMESTAMP_TYPE_MASK, 0);
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Regression: two CreateTopics racing on names that differ only in `.` versus `_` could both
/// pass the handler's collision check; the writer, which serialises topic changes, now checks
/// again, so exactly one of each pair is created and the other gets 17.
#[test]
fn colliding_topics_created_at_once_are_created_once() {
    let broker = TestBroker::start("collision-race");
    for i in 0..20 {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = [format!("race.{i}"), format!("race_{i}")]
            .into_iter()
            .map(|name| {
                let (addr, barrier) = (broker.addr, barrier.clone());
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr);
                    barrier.wait();
                    let response =
                        create_topics(&mut client, 7, vec![new_topic(&name, 1, 1)], false);
                    response.topics[0].error_code
                })
            })
            .collect();
        let mut codes: Vec<i16> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        codes.sort_unstable();
        assert_eq!(codes, vec![0, 17], "pair {i}");
    }
}
