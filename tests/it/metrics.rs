//! `GET /metrics` (`sprat.metrics.listener`): the counters match the traffic sent, byte for byte;
//! the log gauges match the files; consumer lag is the high watermark minus the committed offset;
//! bad HTTP gets 400/404/405 and the broker keeps serving Kafka clients.

use crate::groups::create_topic;
use crate::harness::{Client, TestBroker, plain_batch, produce_batch};

fn produce(client: &mut Client, topic: &str, batch: &[u8]) {
    assert_eq!(produce_batch(client, 9, topic, 0, batch).0, 0);
}
use sprat::protocol::messages::{
    api_versions as av, delete_topics as dt, fetch, offset_commit as oc,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Starts a broker with metrics on an ephemeral port and returns it with the metrics address.
fn start(name: &str) -> (TestBroker, String) {
    let broker = TestBroker::start_with(name, |_| {}, &["sprat.metrics.listener=127.0.0.1:0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        seen.extend(broker.drain_log());
        if let Some(addr) = seen.iter().find_map(|l| {
            l.split("serving metrics on http://")
                .nth(1)
                .map(|rest| rest.trim_end_matches("/metrics").trim().to_string())
        }) {
            return (broker, addr);
        }
        assert!(Instant::now() < deadline, "no metrics line in {seen:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends raw bytes and returns (status, body).
fn http(addr: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn scrape(addr: &str) -> String {
    let (status, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: sprat\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `name{labels}` (labels exactly as written, or none).
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} missing from:\n{body}"))
        .parse()
        .unwrap()
}

fn fetch_all(client: &mut Client, topic: &str) -> usize {
    let request = fetch::FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: i32::MAX,
        topics: vec![fetch::FetchTopic {
            topic: topic.into(),
            partitions: vec![fetch::FetchPartition {
                partition: 0,
                current_leader_epoch: -1,
                fetch_offset: 0,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: i32::MAX,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let response = client.call(
        fetch::API_KEY,
        12,
        |e| request.encode(e, 12),
        fetch::FetchResponse::decode,
    );
    response.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Vec::len)
}

fn commit(client: &mut Client, group: &str, topic: &str, offset: i64) {
    let request = oc::OffsetCommitRequest {
        group_id: group.into(),
        generation_id_or_member_epoch: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![oc::OffsetCommitRequestTopic {
            name: topic.into(),
            partitions: vec![oc::OffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: offset,
                committed_leader_epoch: -1,
                commit_timestamp: -1,
                committed_metadata: None,
            }],
        }],
    };
    let response = client.call(
        oc::API_KEY,
        8,
        |e| request.encode(e, 8),
        oc::OffsetCommitResponse::decode,
    );
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

#[test]
fn metrics_count_what_was_sent() {
    let (broker, addr) = start("metrics-count");
    let mut client = broker.connect();
    create_topic(&mut client, "m", 1);
    let batches = [
        plain_batch(0, &[b"one", b"two"]),
        plain_batch(0, &[b"three", b"four"]),
        plain_batch(0, &[b"five", b"six-and-more"]),
    ];
    for b in &batches {
        produce(&mut client, "m", b);
    }
    let appended: usize = batches.iter().map(Vec::len).sum();
    let fetched = fetch_all(&mut client, "m");
    assert_eq!(fetched, appended);
    commit(&mut client, "g", "m", 4);

    let body = scrape(&addr);
    assert_eq!(
        sample(
            &body,
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"m\"}"
        ),
        6.0
    );
    assert_eq!(
        sample(
            &body,
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"m\"}"
        ),
        appended as f64
    );
    assert_eq!(
        sample(
            &body,
            "kafka_server_brokertopicmetrics_bytesout_total{topic=\"m\"}"
        ),
        fetched as f64
    );
    assert!(sample(&body, "kafka_server_brokertopicmetrics_messagesin_total") >= 6.0);
    assert_eq!(
        sample(
            &body,
            "kafka_network_requestmetrics_requests_total{request=\"Produce\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &body,
            "kafka_network_requestmetrics_requests_total{request=\"Fetch\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            "kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &body,
            "kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"+Inf\"}"
        ),
        3.0
    );
    let on_disk = std::fs::metadata(broker.log_dir.join("m-0/00000000000000000000.log"))
        .unwrap()
        .len();
    assert_eq!(on_disk as usize, appended);
    assert_eq!(
        sample(&body, "kafka_log_log_size{topic=\"m\",partition=\"0\"}"),
        on_disk as f64
    );
    assert_eq!(
        sample(
            &body,
            "kafka_log_log_logendoffset{topic=\"m\",partition=\"0\"}"
        ),
        6.0
    );
    assert_eq!(
        sample(
            &body,
            "kafka_log_log_logstartoffset{topic=\"m\",partition=\"0\"}"
        ),
        0.0
    );
    let labels = "{consumergroup=\"g\",topic=\"m\",partition=\"0\"}";
    assert_eq!(
        sample(
            &body,
            &format!("kafka_consumergroup_current_offset{labels}")
        ),
        4.0
    );
    assert_eq!(
        sample(&body, &format!("kafka_consumergroup_lag{labels}")),
        2.0
    );
    assert_eq!(sample(&body, "sprat_connections"), 1.0);
    assert!(sample(&body, "sprat_writer_group_commands_count") >= 3.0);
    assert!(body.contains("# TYPE kafka_network_requestmetrics_totaltimems histogram"));

    // A second scrape sees the next request counted.
    produce(&mut client, "m", &batches[0]);
    let body = scrape(&addr);
    assert_eq!(
        sample(
            &body,
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"m\"}"
        ),
        8.0
    );
    assert_eq!(
        sample(
            &body,
            "kafka_consumergroup_lag{consumergroup=\"g\",topic=\"m\",partition=\"0\"}"
        ),
        4.0
    );
    // A deleted topic's series go with it.
    let request = dt::DeleteTopicsRequest {
        topic_names: vec!["m".into()],
        timeout_ms: 30000,
        ..Default::default()
    };
    let deleted = client.call(
        dt::API_KEY,
        4,
        |e| request.encode(e, 4),
        dt::DeleteTopicsResponse::decode,
    );
    assert_eq!(deleted.responses[0].error_code, 0);
    let body = scrape(&addr);
    assert!(!body.contains("topic=\"m\""), "{body}");
    assert!(
        sample(&body, "kafka_server_brokertopicmetrics_messagesin_total") >= 8.0,
        "the totals stay"
    );
    broker.assert_no_panics();
}

#[test]
fn bad_http_is_refused_and_kafka_goes_on() {
    let (broker, addr) = start("metrics-bad-http");
    for (request, status) in [
        (&b"\x00\x00\x00\x14\x00\x12\x00\x04garbage"[..], 400),
        (b"GET /metrics\r\n\r\n", 400),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GET /other HTTP/1.1\r\n\r\n", 404),
        (&[b'A'; 20_000][..], 400),
    ] {
        assert_eq!(
            http(&addr, request).0,
            status,
            "{:?}",
            String::from_utf8_lossy(&request[..request.len().min(40)])
        );
    }
    // A scraper that connects and sends nothing holds no one up.
    let _idle = TcpStream::connect(&addr).unwrap();
    scrape(&addr);
    let mut client = broker.connect();
    let request = av::ApiVersionsRequest {
        client_software_name: "sprat-test".into(),
        client_software_version: "1".into(),
    };
    let response = client.call(
        av::API_KEY,
        3,
        |e| request.encode(e, 3),
        av::ApiVersionsResponse::decode,
    );
    assert_eq!(response.error_code, 0);
    broker.assert_no_panics();
}
