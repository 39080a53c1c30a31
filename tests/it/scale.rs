//! Many partitions and connections within a small open-file limit: the broker's segment files go
//! through a bounded cache, so start-up, produce, fetch and both kinds of restart work with far
//! more segment files than descriptors, and running out of descriptors at `accept` only makes new
//! connections wait.

use crate::harness::{Client, TestBroker, plain_batch};
use crate::limits::wait_for_threads;
use sprat::protocol::messages::{
    api_versions::{self, ApiVersionsRequest, ApiVersionsResponse},
    create_topics as ct, fetch, produce,
};
use std::fs;
use std::time::{Duration, Instant};

const TOPICS: usize = 20;
const PARTITIONS: i32 = 100;
/// Batches per partition; `segment.bytes=100` puts each in its own segment.
const ROUNDS: i64 = 3;
/// The broker's RLIMIT_NOFILE: 2,000 partitions of 3 segments are 18,000 segment files.
const NOFILE: u64 = 1024;

fn topic(t: usize) -> String {
    format!("scale-{t}")
}

fn value(t: usize, p: i32, round: i64) -> Vec<u8> {
    format!("topic {t} partition {p} round {round}").into_bytes()
}

fn create_all(client: &mut Client) {
    let request = ct::CreateTopicsRequest {
        topics: (0..TOPICS)
            .map(|t| ct::CreatableTopic {
                name: topic(t),
                num_partitions: PARTITIONS,
                replication_factor: 1,
                configs: vec![ct::CreatableTopicConfig {
                    name: "segment.bytes".into(),
                    value: Some("100".into()),
                }],
                ..ct::CreatableTopic::default()
            })
            .collect(),
        timeout_ms: 60_000,
        validate_only: false,
    };
    let response = client.call(
        ct::API_KEY,
        7,
        |e| request.encode(e, 7),
        ct::CreateTopicsResponse::decode,
    );
    assert_eq!(response.topics.len(), TOPICS);
    for t in &response.topics {
        assert_eq!(
            t.error_code, 0,
            "creating {}: {:?}",
            t.name, t.error_message
        );
    }
}

/// One produce request with a batch for every partition; each must land at offset `round`.
fn produce_round(client: &mut Client, round: i64) {
    let request = produce::ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 30_000,
        topic_data: (0..TOPICS)
            .map(|t| produce::TopicProduceData {
                name: topic(t),
                partition_data: (0..PARTITIONS)
                    .map(|p| produce::PartitionProduceData {
                        index: p,
                        records: Some(plain_batch(0, &[&value(t, p, round)])),
                    })
                    .collect(),
            })
            .collect(),
    };
    let response = client.call(
        produce::API_KEY,
        9,
        |e| request.encode(e, 9),
        produce::ProduceResponse::decode,
    );
    let mut answered = 0;
    for t in &response.responses {
        for p in &t.partition_responses {
            assert_eq!(
                (p.error_code, p.base_offset),
                (0, round),
                "{}-{} round {round}",
                t.name,
                p.index
            );
            answered += 1;
        }
    }
    assert_eq!(answered, TOPICS * PARTITIONS as usize);
}

/// Fetches `offset` from every partition in one request (of `version`) and checks that each
/// returns exactly the batch produced in that round, byte for byte.
fn fetch_round(client: &mut Client, offset: i64, version: i16) {
    let request = fetch::FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 64 << 20,
        session_epoch: -1,
        topics: (0..TOPICS)
            .map(|t| fetch::FetchTopic {
                topic: topic(t),
                partitions: (0..PARTITIONS)
                    .map(|p| fetch::FetchPartition {
                        partition: p,
                        current_leader_epoch: -1,
                        fetch_offset: offset,
                        last_fetched_epoch: -1,
                        log_start_offset: -1,
                        partition_max_bytes: 1 << 20,
                        ..fetch::FetchPartition::default()
                    })
                    .collect(),
                ..fetch::FetchTopic::default()
            })
            .collect(),
        ..fetch::FetchRequest::default()
    };
    let response = client.call(
        fetch::API_KEY,
        version,
        |e| request.encode(e, version),
        fetch::FetchResponse::decode,
    );
    assert_eq!(response.responses.len(), TOPICS);
    for (t, topic_response) in response.responses.iter().enumerate() {
        for (p, data) in topic_response.partitions.iter().enumerate() {
            let p = p as i32;
            assert_eq!(data.error_code, 0, "{} {p}", topic_response.topic);
            assert_eq!(data.high_watermark, ROUNDS);
            // Each segment holds one batch, and a read stops at the end of its segment.
            assert_eq!(
                data.records.as_deref(),
                Some(&plain_batch(offset, &[&value(t, p, offset)])[..]),
                "{}-{p} at offset {offset}",
                topic_response.topic
            );
        }
    }
}

fn fetch_everything(client: &mut Client) {
    for offset in 0..ROUNDS {
        // Version 11 has 4-byte records lengths, 12 and up compact (varint) ones.
        fetch_round(client, offset, if offset % 2 == 0 { 11 } else { 12 });
    }
}

fn open_descriptors(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn warnings(broker: &TestBroker) -> Vec<String> {
    broker
        .drain_log()
        .into_iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

/// The broker runs under RLIMIT_NOFILE 1,024 with 2,000 partitions of three segments each
/// (18,000 segment files): creating, producing to and fetching from every partition works, and
/// so do a restart after `kill -9` and a clean one, which logs no warning.
#[test]
fn two_thousand_partitions_of_several_segments_within_1024_open_files() {
    let mut broker = TestBroker::start_with_open_files_limit("scale-fds", &[], NOFILE);
    let mut client = broker.connect();
    create_all(&mut client);
    for round in 0..ROUNDS {
        produce_round(&mut client, round);
    }
    let partition_dir = broker.log_dir.join("scale-0-0");
    let logs = fs::read_dir(&partition_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(logs, ROUNDS as usize, "one segment per batch");
    fetch_everything(&mut client);
    let held = open_descriptors(broker.pid());
    println!("{held} descriptors open with 2,000 partitions of {ROUNDS} segments each");
    assert!(
        held < NOFILE as usize / 2,
        "{held} descriptors open: segment files are not bounded by the cache"
    );
    let before_crash = warnings(&broker);
    assert!(before_crash.is_empty(), "{before_crash:?}");

    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    fetch_everything(&mut client);
    drop(client);

    assert!(broker.terminate(), "clean shutdown");
    broker.restart();
    let mut client = broker.connect();
    fetch_everything(&mut client);
    let after_clean_restart = warnings(&broker);
    assert!(
        after_clean_restart.is_empty(),
        "a clean restart warns: {after_clean_restart:?}"
    );
    broker.assert_no_panics();
}

fn api_versions_answers(client: &mut Client) {
    let response = client.call(
        api_versions::API_KEY,
        3,
        |e| {
            ApiVersionsRequest {
                client_software_name: "scale".into(),
                client_software_version: "1".into(),
            }
            .encode(e, 3)
        },
        ApiVersionsResponse::decode,
    );
    assert_eq!(response.error_code, 0);
}

/// With the descriptors used up by connections, `accept` fails with EMFILE: the broker says so
/// once, keeps serving the connections it has, and takes the waiting ones as soon as
/// descriptors are free again.
#[test]
fn out_of_descriptors_at_accept_keeps_serving_and_recovers() {
    let broker = TestBroker::start_with_open_files_limit(
        "scale-emfile",
        &["sprat.open.files.cache.size=16"],
        128,
    );
    let mut served = broker.connect();
    api_versions_answers(&mut served);
    // More connections than the broker has descriptors: the kernel completes them all (the
    // listen backlog holds those not yet accepted).
    let mut idle: Vec<Client> = (0..150).map(|_| broker.connect()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = Vec::new();
    let starved = loop {
        log.extend(broker.drain_log());
        if let Some(line) = log.iter().find(|l| l.contains("accept failed")) {
            break line.clone();
        }
        assert!(
            Instant::now() < deadline,
            "accept never ran out of descriptors"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(starved.contains("Too many open files"), "{starved}");
    // The broker keeps retrying (backing off) and stays quiet about it.
    std::thread::sleep(Duration::from_millis(800));
    api_versions_answers(&mut served);
    log.extend(broker.drain_log());
    let repeated: Vec<&String> = log.iter().filter(|l| l.contains("accept failed")).collect();
    assert_eq!(repeated.len(), 1, "one line per burst: {repeated:?}");

    // Free descriptors: the waiting connections are accepted and answered, and so are new ones.
    let waiting = idle.split_off(100);
    drop(idle);
    wait_for_threads(broker.pid(), "the waiting connections", |n| {
        n > waiting.len() as u64
    });
    for mut c in waiting {
        api_versions_answers(&mut c);
    }
    api_versions_answers(&mut broker.connect());
    api_versions_answers(&mut served);
    log.extend(broker.drain_log());
    assert!(
        log.iter()
            .any(|l| l.contains("accepting connections again")),
        "the end of the burst is logged"
    );
    broker.assert_no_panics();
}
