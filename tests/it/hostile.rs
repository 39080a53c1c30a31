//! Hostile input: requests that are malformed, out of range or abusive get the answer Apache
//! Kafka 3.9 gives them (an error code, or a closed connection where framing is lost), never a
//! panic or a stuck thread, and a bystander client is served throughout. Each test is named after
//! the bug it guards against.

use crate::harness::{Client, TestBroker};
use sprat::protocol::messages::{
    api_versions, create_topics as ct, delete_topics as dt, describe_configs as dc, fetch,
    init_producer_id as ipi, list_offsets as lo, metadata, produce,
};
use sprat::protocol::wire::{Decoder, Encoder, Uuid};
use sprat::storage::record_batch::{BatchHeader, Record, build_batch};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const NONE: i16 = 0;
const UNKNOWN_SERVER_ERROR: i16 = -1;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

/// Asserts the broker process is alive, answers ApiVersions on `bystander` (opened before the
/// trouble) and on a fresh connection, and has logged no panic.
fn assert_still_serving(broker: &TestBroker, bystander: &mut Client) {
    for client in [bystander, &mut broker.connect()] {
        let response = client.call(
            api_versions::API_KEY,
            3,
            |e| {
                api_versions::ApiVersionsRequest {
                    client_software_name: "bystander".into(),
                    client_software_version: "1".into(),
                }
                .encode(e, 3)
            },
            api_versions::ApiVersionsResponse::decode,
        );
        assert_eq!(response.error_code, NONE);
    }
    broker.assert_no_panics();
}

/// A raw frame: size prefix, the given header fields and `body`.
fn raw_frame(api_key: i16, version: i16, client_id: &[u8], tagged: bool, body: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.i16(api_key);
    e.i16(version);
    e.i32(9);
    e.i16(client_id.len() as i16);
    e.raw(client_id);
    if tagged {
        e.no_tagged_fields();
    }
    e.raw(body);
    let mut frame = (e.buf.len() as i32).to_be_bytes().to_vec();
    frame.extend(e.buf);
    frame
}

/// Sends raw bytes and decodes the one response frame with `decode`.
fn raw_call<T>(
    client: &mut Client,
    frame: &[u8],
    flexible_response: bool,
    version: i16,
    decode: impl FnOnce(&mut Decoder<'_>, i16) -> sprat::protocol::wire::DecodeResult<T>,
) -> T {
    client.send_raw(frame);
    let response = client.receive();
    let mut d = Decoder::new(&response);
    assert_eq!(d.i32().unwrap(), 9, "correlation id");
    if flexible_response {
        d.skip_tagged_fields().unwrap();
    }
    let value = decode(&mut d, version).unwrap();
    d.finish().unwrap();
    value
}

fn create_topic(client: &mut Client, name: &str, partitions: i32) {
    let result = create_topics(client, vec![creatable(name, partitions, 1)], false);
    assert_eq!(result[0].error_code, NONE, "{result:?}");
}

fn creatable(name: &str, partitions: i32, factor: i16) -> ct::CreatableTopic {
    ct::CreatableTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: factor,
        ..ct::CreatableTopic::default()
    }
}

fn create_topics(
    client: &mut Client,
    topics: Vec<ct::CreatableTopic>,
    validate_only: bool,
) -> Vec<ct::CreatableTopicResult> {
    let request = ct::CreateTopicsRequest {
        topics,
        timeout_ms: 30_000,
        validate_only,
    };
    client
        .call(
            ct::API_KEY,
            7,
            |e| request.encode(e, 7),
            ct::CreateTopicsResponse::decode,
        )
        .topics
}

/// A v2 batch of `count` records of `value_bytes` bytes each, timestamped now.
fn batch(header: BatchHeader, count: usize, value_bytes: usize) -> Vec<u8> {
    let records: Vec<Record> = (0..count)
        .map(|_| Record {
            value: Some(vec![b'v'; value_bytes]),
            ..Record::default()
        })
        .collect();
    let now = sprat::server::apis::now_ms();
    build_batch(
        &BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            ..header
        },
        &records,
    )
}

fn plain(count: usize) -> Vec<u8> {
    batch(BatchHeader::default(), count, 8)
}

/// Recomputes the CRC-32C after an edit (it covers attributes to the end).
fn recompute_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A copy of `batch` with `f` applied to it and its CRC made valid again.
fn edited(batch: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = batch.to_vec();
    f(&mut b);
    recompute_crc(&mut b);
    b
}

fn produce_request(
    transactional_id: Option<&str>,
    parts: &[(&str, i32, Option<Vec<u8>>)],
) -> produce::ProduceRequest {
    produce::ProduceRequest {
        transactional_id: transactional_id.map(str::to_string),
        acks: -1,
        timeout_ms: 30_000,
        topic_data: parts
            .iter()
            .map(|(topic, index, records)| produce::TopicProduceData {
                name: topic.to_string(),
                partition_data: vec![produce::PartitionProduceData {
                    index: *index,
                    records: records.clone(),
                }],
            })
            .collect(),
    }
}

/// Produces and returns (topic, partition, error code, base offset) per answered partition.
fn produce_with(
    client: &mut Client,
    version: i16,
    request: &produce::ProduceRequest,
) -> Vec<(String, i32, i16, i64)> {
    let response = client.call(
        produce::API_KEY,
        version,
        |e| request.encode(e, version),
        produce::ProduceResponse::decode,
    );
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (t.name.clone(), p.index, p.error_code, p.base_offset))
        })
        .collect()
}

fn produce_one(client: &mut Client, version: i16, topic: &str, records: Vec<u8>) -> (i16, i64) {
    let request = produce_request(None, &[(topic, 0, Some(records))]);
    let answers = produce_with(client, version, &request);
    assert_eq!(answers.len(), 1, "{answers:?}");
    (answers[0].2, answers[0].3)
}

fn fetch_partition(partition: i32, offset: i64, max_bytes: i32) -> fetch::FetchPartition {
    fetch::FetchPartition {
        partition,
        fetch_offset: offset,
        partition_max_bytes: max_bytes,
        ..fetch::FetchPartition::default()
    }
}

/// A Fetch v11 request (topics by name, non-flexible) with a session epoch of -1 (no session).
fn fetch_request(topic: &str, partitions: Vec<fetch::FetchPartition>) -> fetch::FetchRequest {
    fetch::FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 1,
        max_bytes: 50 << 20,
        session_epoch: -1,
        topics: vec![fetch::FetchTopic {
            topic: topic.into(),
            partitions,
            ..fetch::FetchTopic::default()
        }],
        ..fetch::FetchRequest::default()
    }
}

fn do_fetch(client: &mut Client, request: &fetch::FetchRequest) -> fetch::FetchResponse {
    client.call(
        fetch::API_KEY,
        11,
        |e| request.encode(e, 11),
        fetch::FetchResponse::decode,
    )
}

// ---------------------------------------------------------------------------------------------
// Decoding: Kafka's generated readers are lenient where sprat's were strict
// ---------------------------------------------------------------------------------------------

/// Kafka reads any negative length of a nullable field as null: a client id of length -2 is a
/// null client id, and a Metadata v1 topics array of length -2 means all topics. Only a
/// non-nullable field refuses it (and the connection is closed).
#[test]
fn nullable_lengths_below_minus_one_are_null_not_a_closed_connection() {
    let broker = TestBroker::start("hostile-null-lengths");
    let mut bystander = broker.connect();
    let mut client = broker.connect();
    create_topic(&mut client, "listed", 1);

    let mut e = Encoder::new();
    e.i16(api_versions::API_KEY);
    e.i16(0);
    e.i32(9);
    e.i16(-2);
    let mut frame = (e.buf.len() as i32).to_be_bytes().to_vec();
    frame.extend(&e.buf);
    let response = raw_call(
        &mut client,
        &frame,
        false,
        0,
        api_versions::ApiVersionsResponse::decode,
    );
    assert_eq!(response.error_code, NONE);

    let frame = raw_frame(metadata::API_KEY, 1, b"c", false, &(-2i32).to_be_bytes());
    let response = raw_call(
        &mut client,
        &frame,
        false,
        1,
        metadata::MetadataResponse::decode,
    );
    let names: Vec<_> = response.topics.iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, [Some("listed".to_string())], "null: every topic");

    // CreateTopics' topics array is not nullable: -2 is refused and the connection closed.
    let mut body = (-2i32).to_be_bytes().to_vec();
    body.extend(30_000i32.to_be_bytes());
    body.push(0);
    client.send_raw(&raw_frame(ct::API_KEY, 4, b"c", false, &body));
    client.assert_closed();
    assert_still_serving(&broker, &mut bystander);
}

/// Kafka decodes strings as Java does, with U+FFFD for bytes that are not UTF-8: a client id that
/// is not UTF-8 is accepted, and a topic name that is not gets the error code for the name it
/// becomes (not a closed connection).
#[test]
fn invalid_utf8_names_get_kafka_error_codes() {
    let broker = TestBroker::start("hostile-utf8");
    let mut bystander = broker.connect();
    let mut client = broker.connect();
    let bad = [0xffu8, 0xfe, b'a'];

    let frame = raw_frame(api_versions::API_KEY, 0, &bad, false, &[]);
    let response = raw_call(
        &mut client,
        &frame,
        false,
        0,
        api_versions::ApiVersionsResponse::decode,
    );
    assert_eq!(response.error_code, NONE);

    // CreateTopics v4: topics [name, -1 partitions, -1 factor, no assignments, no configs].
    let mut body = Encoder::new();
    body.i32(1);
    body.i16(bad.len() as i16);
    body.raw(&bad);
    body.i32(-1);
    body.i16(-1);
    body.i32(0);
    body.i32(0);
    body.i32(30_000);
    body.bool(false);
    let frame = raw_frame(ct::API_KEY, 4, b"c", false, &body.buf);
    let response = raw_call(
        &mut client,
        &frame,
        false,
        4,
        ct::CreateTopicsResponse::decode,
    );
    assert_eq!(response.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
    assert_eq!(response.topics[0].name, "\u{fffd}\u{fffd}a");

    // Produce v7: the topic is unknown.
    let mut body = Encoder::new();
    body.i16(-1);
    body.i16(-1);
    body.i32(30_000);
    body.i32(1);
    body.i16(bad.len() as i16);
    body.raw(&bad);
    body.i32(1);
    body.i32(0);
    body.bytes(false, &plain(1));
    let frame = raw_frame(produce::API_KEY, 7, b"c", false, &body.buf);
    let response = raw_call(
        &mut client,
        &frame,
        false,
        7,
        produce::ProduceResponse::decode,
    );
    let p = &response.responses[0].partition_responses[0];
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // Metadata v4 without auto-creation: the name is invalid.
    let mut body = Encoder::new();
    body.i32(1);
    body.i16(bad.len() as i16);
    body.raw(&bad);
    body.bool(false);
    let frame = raw_frame(metadata::API_KEY, 4, b"c", false, &body.buf);
    let response = raw_call(
        &mut client,
        &frame,
        false,
        4,
        metadata::MetadataResponse::decode,
    );
    assert_eq!(response.topics[0].error_code, INVALID_TOPIC_EXCEPTION);
    assert_still_serving(&broker, &mut bystander);
}

// ---------------------------------------------------------------------------------------------
// Connections: idle limits apply to writes too
// ---------------------------------------------------------------------------------------------

/// A client that pipelines requests and never reads the responses used to block its connection
/// thread in a write forever. Like Kafka's idle expiry, a write that makes no progress for
/// `connections.max.idle.ms` now drops the connection.
#[test]
fn client_that_never_reads_is_dropped_after_the_idle_timeout() {
    let broker =
        TestBroker::start_with("hostile-no-read", |_| {}, &["connections.max.idle.ms=1000"]);
    let mut client = broker.connect();
    create_topic(&mut client, "big", 1);
    let (error, _) = produce_one(
        &mut client,
        9,
        "big",
        batch(BatchHeader::default(), 8, 100_000),
    );
    assert_eq!(error, NONE);

    let request = fetch_request("big", vec![fetch_partition(0, 0, 1 << 30)]);
    let frame = crate::harness::request_frame(fetch::API_KEY, 11, 1, |e| request.encode(e, 11));
    let mut hog = broker.connect();
    hog.stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut sent = 0;
    while sent < 200 && hog.stream.write_all(&frame).is_ok() {
        sent += 1;
    }
    // Responses are 800 KB each: well before 200 of them the socket buffers are full and the
    // broker's write to this client stops making progress.
    std::thread::sleep(Duration::from_secs(4));
    let dropped = broker
        .drain_log()
        .iter()
        .any(|l| l.contains("the client is not reading"));
    assert!(dropped, "the drop is logged");
    // (A bystander idle for the whole wait would be dropped too: connect it now.)
    assert_still_serving(&broker, &mut broker.connect());
    hog.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut received = 0usize;
    let started = Instant::now();
    loop {
        match hog.stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
        assert!(started.elapsed() < Duration::from_secs(60), "still open");
    }
    assert!(
        received < sent * 800_000,
        "the broker gave up writing ({received} bytes of {sent} responses read)"
    );
}

/// A client that declares a large frame and trickles it keeps its connection while bytes arrive,
/// and nobody else waits for it.
#[test]
fn slowly_trickled_frame_does_not_stall_other_clients() {
    let broker =
        TestBroker::start_with("hostile-trickle", |_| {}, &["connections.max.idle.ms=1500"]);
    let mut bystander = broker.connect();
    let mut slow = broker.connect();
    slow.send_raw(&(50i32 << 20).to_be_bytes());
    for _ in 0..6 {
        slow.send_raw(&[0]);
        std::thread::sleep(Duration::from_millis(500));
        assert_still_serving(&broker, &mut bystander);
    }
    // Once it stops, the idle timeout drops it.
    slow.assert_closed();
}

// ---------------------------------------------------------------------------------------------
// Fetch
// ---------------------------------------------------------------------------------------------

/// sprat keeps no fetch sessions, so a request that continues one (epoch other than 0 and -1)
/// names a session it does not have: Kafka answers FETCH_SESSION_ID_NOT_FOUND with no data.
#[test]
fn fetch_continuing_a_session_is_fetch_session_id_not_found() {
    let broker = TestBroker::start("hostile-fetch-session");
    let mut client = broker.connect();
    create_topic(&mut client, "s", 1);
    for (session_id, epoch) in [(5, 1), (0, 5), (123, i32::MAX)] {
        let request = fetch::FetchRequest {
            session_id,
            session_epoch: epoch,
            ..fetch_request("s", vec![fetch_partition(0, 0, 1 << 20)])
        };
        let response = do_fetch(&mut client, &request);
        assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
        assert!(response.responses.is_empty());
        assert_eq!(response.session_id, 0);
    }
    // A full request (epoch -1 or 0) is served.
    for epoch in [-1, 0] {
        let request = fetch::FetchRequest {
            session_epoch: epoch,
            ..fetch_request("s", vec![fetch_partition(0, 0, 1 << 20)])
        };
        assert_eq!(do_fetch(&mut client, &request).error_code, NONE);
    }
}

/// Kafka's `LogSegment.read` refuses a negative size: a negative partition_max_bytes (or
/// request max_bytes, which limits the first partition) on a partition with records to return is
/// UNKNOWN_SERVER_ERROR there; at the log end it is an empty answer, and before the log start
/// OFFSET_OUT_OF_RANGE as always.
#[test]
fn fetch_negative_size_limits_are_unknown_server_error() {
    let broker = TestBroker::start("hostile-fetch-negative");
    let mut client = broker.connect();
    create_topic(&mut client, "n", 2);
    assert_eq!(produce_one(&mut client, 9, "n", plain(3)).0, NONE);
    let mut partition = |request: &fetch::FetchRequest, i: usize| {
        let response = do_fetch(&mut client, request);
        let p = response.responses[0].partitions[i].clone();
        (
            p.error_code,
            p.high_watermark,
            p.records.map_or(0, |r| r.len()),
        )
    };
    let request = fetch_request("n", vec![fetch_partition(0, 0, -1)]);
    assert_eq!(partition(&request, 0), (UNKNOWN_SERVER_ERROR, -1, 0));
    let request = fetch_request("n", vec![fetch_partition(1, 0, -1)]);
    assert_eq!(partition(&request, 0), (NONE, 0, 0), "nothing to read");
    let request = fetch_request("n", vec![fetch_partition(0, -5, -1)]);
    assert_eq!(partition(&request, 0).0, 1, "OFFSET_OUT_OF_RANGE first");
    // A negative max_bytes limits only the first partition read; the limit is then 0 and the
    // next partition still gets its first batch.
    let request = fetch::FetchRequest {
        max_bytes: -1,
        ..fetch_request(
            "n",
            vec![
                fetch_partition(1, 0, 1 << 20),
                fetch_partition(0, 0, 1 << 20),
            ],
        )
    };
    let response = do_fetch(&mut client, &request);
    let codes: Vec<_> = response.responses[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [NONE, NONE]);
    assert!(
        !response.responses[0].partitions[1]
            .records
            .as_ref()
            .unwrap()
            .is_empty()
    );
}

/// An isolation level other than 0 and 1 makes Kafka's `IsolationLevel.forId` throw once a
/// partition is to be read: the whole request fails with UNKNOWN_SERVER_ERROR (top level and,
/// before v13, every partition).
#[test]
fn fetch_unknown_isolation_level_fails_the_request() {
    let broker = TestBroker::start("hostile-fetch-isolation");
    let mut client = broker.connect();
    create_topic(&mut client, "iso", 1);
    let request = fetch::FetchRequest {
        isolation_level: 5,
        session_id: 77,
        ..fetch_request("iso", vec![fetch_partition(0, 0, 1 << 20)])
    };
    let response = do_fetch(&mut client, &request);
    assert_eq!(response.error_code, UNKNOWN_SERVER_ERROR);
    assert_eq!(response.session_id, 77);
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_SERVER_ERROR
    );
    // Without a known partition nothing is read and the request is answered normally.
    let request = fetch::FetchRequest {
        isolation_level: 5,
        ..fetch_request("missing", vec![fetch_partition(0, 0, 1 << 20)])
    };
    let response = do_fetch(&mut client, &request);
    assert_eq!(response.error_code, NONE);
    assert_eq!(
        response.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

/// A fetch with max_wait_ms of i32::MAX used to hold its connection thread for 24 days. Kafka's
/// selector expires a connection without activity after `connections.max.idle.ms`; so does
/// sprat, and other clients are served meanwhile.
#[test]
fn fetch_waiting_longer_than_the_idle_timeout_closes_the_connection() {
    let broker = TestBroker::start_with(
        "hostile-fetch-wait",
        |_| {},
        &["connections.max.idle.ms=1500"],
    );
    let mut bystander = broker.connect();
    let mut client = broker.connect();
    create_topic(&mut client, "w", 1);
    let request = fetch::FetchRequest {
        max_wait_ms: i32::MAX,
        min_bytes: i32::MAX,
        ..fetch_request("w", vec![fetch_partition(0, 0, 1 << 20)])
    };
    client.send(fetch::API_KEY, 11, |e| request.encode(e, 11));
    assert_still_serving(&broker, &mut bystander);
    client.assert_closed();
    // A wait within the limit is still answered when it ends.
    let mut client = broker.connect();
    let request = fetch::FetchRequest {
        max_wait_ms: 300,
        ..request
    };
    assert_eq!(do_fetch(&mut client, &request).error_code, NONE);
}

// ---------------------------------------------------------------------------------------------
// Produce
// ---------------------------------------------------------------------------------------------

/// Records Kafka refuses get Kafka's codes, and nothing is written: an impossible magic is
/// CORRUPT_MESSAGE; an unknown compression codec UNKNOWN_SERVER_ERROR; zstd before v7
/// UNSUPPORTED_COMPRESSION_TYPE; a control batch, a producer id without a sequence, records that
/// do not parse or do not fill the batch exactly, and a length beyond the bytes sent are
/// INVALID_RECORD.
#[test]
fn produce_records_kafka_refuses_get_its_codes() {
    let broker = TestBroker::start("hostile-produce-records");
    let mut bystander = broker.connect();
    let mut client = broker.connect();
    create_topic(&mut client, "p", 1);
    let good = plain(2);
    let mut longer = good.clone();
    longer[8..12].copy_from_slice(&((good.len() as i32 - 12 + 10).to_be_bytes()));
    let cases: Vec<(&str, i16, Vec<u8>, i16)> = vec![
        ("magic 3", 9, edited(&good, |b| b[16] = 3), CORRUPT_MESSAGE),
        (
            "magic -1",
            9,
            edited(&good, |b| b[16] = 0xff),
            CORRUPT_MESSAGE,
        ),
        (
            "codec 5",
            9,
            edited(&good, |b| b[22] |= 5),
            UNKNOWN_SERVER_ERROR,
        ),
        (
            "codec 7",
            7,
            edited(&good, |b| b[22] |= 7),
            UNKNOWN_SERVER_ERROR,
        ),
        (
            "zstd at v6",
            6,
            edited(&good, |b| b[22] |= 4),
            UNSUPPORTED_COMPRESSION_TYPE,
        ),
        (
            "control batch",
            9,
            edited(&good, |b| b[22] |= 0x20),
            INVALID_RECORD,
        ),
        (
            "producer id without a sequence",
            9,
            batch(
                BatchHeader {
                    producer_id: 5,
                    producer_epoch: 0,
                    ..BatchHeader::default()
                },
                1,
                8,
            ),
            INVALID_RECORD,
        ),
        (
            "a record that does not parse",
            9,
            edited(&good, |b| {
                let n = b.len();
                b[n - 12..].fill(0xff);
            }),
            INVALID_RECORD,
        ),
        (
            "bytes left after the records",
            9,
            edited(&good, |b| {
                b.extend([0, 0]);
                let length = (b.len() - 12) as i32;
                b[8..12].copy_from_slice(&length.to_be_bytes());
            }),
            INVALID_RECORD,
        ),
        ("a length beyond the bytes sent", 9, longer, INVALID_RECORD),
        ("no batch at all", 9, vec![1, 2, 3, 4, 5], INVALID_RECORD),
    ];
    for (name, version, records, expected) in cases {
        let (error, offset) = produce_one(&mut client, version, "p", records);
        assert_eq!((error, offset), (expected, -1), "{name}");
    }
    // Nothing was written: the next good batch lands at offset 0.
    assert_eq!(produce_one(&mut client, 9, "p", good).1, 0);
    assert_still_serving(&broker, &mut bystander);
}

/// Bytes after the one batch that are too few to form another are ignored by Kafka's batch
/// iterator (and trimmed before the append): the batch is accepted and stored without them.
#[test]
fn produce_trailing_partial_batch_is_ignored() {
    let broker = TestBroker::start("hostile-produce-trailing");
    let mut client = broker.connect();
    create_topic(&mut client, "tr", 1);
    let good = plain(1);
    let mut records = good.clone();
    records.extend([0u8; 11]);
    assert_eq!(produce_one(&mut client, 9, "tr", records), (NONE, 0));
    let stored = crate::harness::read_partition_log(&broker.log_dir, "tr", 0);
    assert_eq!(stored.len(), good.len(), "only the batch is stored");
    // Twelve zero bytes declare a batch shorter than any: CORRUPT_MESSAGE.
    let mut records = good;
    records.extend([0u8; 12]);
    assert_eq!(
        produce_one(&mut client, 9, "tr", records).0,
        CORRUPT_MESSAGE
    );
}

/// Kafka looks at every partition's first batch before anything else
/// (`RequestUtils.hasTransactionalRecords`): a transactional batch in a request without a
/// transactional id fails the whole request with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and an
/// impossible batch header fails it with CORRUPT_MESSAGE, unknown topics included.
#[test]
fn produce_first_batch_checks_fail_the_whole_request() {
    let broker = TestBroker::start("hostile-produce-request");
    let mut client = broker.connect();
    create_topic(&mut client, "a", 1);
    let transactional = edited(
        &batch(
            BatchHeader {
                producer_id: 1,
                producer_epoch: 0,
                base_sequence: 0,
                ..BatchHeader::default()
            },
            1,
            8,
        ),
        |b| b[22] |= 0x10,
    );
    let corrupt = edited(&plain(1), |b| b[16] = 9);
    for (bad, code) in [
        (transactional, TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        (corrupt, CORRUPT_MESSAGE),
    ] {
        let request = produce_request(
            None,
            &[
                ("a", 0, Some(plain(1))),
                ("nope", 0, Some(plain(1))),
                ("a", 1, Some(bad)),
            ],
        );
        let answers = produce_with(&mut client, 9, &request);
        let codes: Vec<_> = answers.iter().map(|a| (a.1, a.2, a.3)).collect();
        assert_eq!(codes, [(0, code, -1), (0, code, -1), (1, code, -1)]);
    }
    // Before v7 an unknown codec throws outside the partition loop: the whole request fails.
    let request = produce_request(
        None,
        &[
            ("a", 0, Some(plain(1))),
            ("a", 0, Some(edited(&plain(1), |b| b[22] |= 6))),
        ],
    );
    let answers = produce_with(&mut client, 6, &request);
    assert_eq!(answers, [("a".to_string(), 0, UNKNOWN_SERVER_ERROR, -1)]);
    // Nothing was written by any of them.
    assert_eq!(produce_one(&mut client, 9, "a", plain(1)), (NONE, 0));
}

/// A partition named twice is one entry in Kafka's maps: answered once, with the last entry's
/// records appended once.
#[test]
fn produce_partition_named_twice_is_answered_once() {
    let broker = TestBroker::start("hostile-produce-twice");
    let mut client = broker.connect();
    create_topic(&mut client, "d", 1);
    let request = produce_request(
        None,
        &[("d", 0, Some(vec![1, 2, 3])), ("d", 0, Some(plain(2)))],
    );
    let answers = produce_with(&mut client, 9, &request);
    assert_eq!(answers, [("d".to_string(), 0, NONE, 0)]);
    assert_eq!(produce_one(&mut client, 9, "d", plain(1)), (NONE, 2));
}

/// A fetch may name one topic again and again (Kafka answers each entry). Each lookup used to
/// copy the topic's whole partition table, which made such a request a cheap way to keep a
/// thread busy for minutes; topics are now shared through `Arc`. What a test can check without a
/// clock is that every entry is answered.
#[test]
fn fetch_naming_a_topic_many_times_answers_every_entry() {
    let broker = TestBroker::start("hostile-repeated-topic");
    let mut client = broker.connect();
    create_topic(&mut client, "wide", 200);
    let one = fetch_request("wide", vec![fetch_partition(0, 0, 1024)]);
    let request = fetch::FetchRequest {
        topics: vec![one.topics[0].clone(); 2_000],
        ..one
    };
    let response = client.call(
        fetch::API_KEY,
        11,
        |e| request.encode(e, 11),
        fetch::FetchResponse::decode,
    );
    assert_eq!(response.responses.len(), 2_000);
    assert!(
        response
            .responses
            .iter()
            .all(|t| t.partitions[0].error_code == NONE)
    );
}

// ---------------------------------------------------------------------------------------------
// CreateTopics
// ---------------------------------------------------------------------------------------------

/// Kafka's controller refuses a request whose topics need more than 10,000 metadata records
/// (one per topic, config and partition) with POLICY_VIOLATION for every topic, before creating
/// anything: 2^31-1 partitions must not become two billion directories.
#[test]
fn create_topics_over_the_record_limit_is_policy_violation() {
    let broker = TestBroker::start("hostile-create-huge");
    let mut bystander = broker.connect();
    let mut client = broker.connect();
    for topics in [
        vec![creatable("huge", i32::MAX, 1)],
        vec![creatable("first", 5000, 1), creatable("second", 5000, 1)],
    ] {
        for validate_only in [true, false] {
            let results = create_topics(&mut client, topics.clone(), validate_only);
            assert_eq!(results.len(), topics.len());
            for r in &results {
                assert_eq!(r.error_code, POLICY_VIOLATION, "{r:?}");
                assert_eq!(
                    r.error_message.as_deref(),
                    Some("Unable to perform excessively large batch operation.")
                );
            }
        }
    }
    let dirs = std::fs::read_dir(&broker.log_dir).unwrap().count();
    assert!(
        dirs < 10,
        "no partition directories were created ({dirs} entries)"
    );
    // 9,999 partitions and the topic record are exactly the limit.
    let results = create_topics(&mut client, vec![creatable("edge", 9999, 1)], true);
    assert_eq!(results[0].error_code, NONE);
    assert_still_serving(&broker, &mut bystander);
}

/// Kafka checks the replication factor before the partition count, and manual assignments with
/// its own messages.
#[test]
fn create_topics_checks_in_kafkas_order() {
    let broker = TestBroker::start("hostile-create-order");
    let mut client = broker.connect();
    let results = create_topics(&mut client, vec![creatable("z", 0, 0)], true);
    assert_eq!(results[0].error_code, INVALID_REPLICATION_FACTOR);
    let results = create_topics(&mut client, vec![creatable("z", -7, -1)], true);
    assert_eq!(results[0].error_code, INVALID_PARTITIONS);
    let assigned = |assignments: Vec<(i32, Vec<i32>)>| ct::CreatableTopic {
        assignments: assignments
            .into_iter()
            .map(
                |(partition_index, broker_ids)| ct::CreatableReplicaAssignment {
                    partition_index,
                    broker_ids,
                },
            )
            .collect(),
        ..creatable("m", -1, -1)
    };
    let mut message = |t: ct::CreatableTopic| {
        let r = &create_topics(&mut client, vec![t], true)[0];
        (r.error_code, r.error_message.clone().unwrap_or_default())
    };
    assert_eq!(
        message(assigned(vec![(0, vec![1]), (0, vec![1])])),
        (
            39,
            "Found multiple manual partition assignments for partition 0".into()
        )
    );
    assert_eq!(
        message(assigned(vec![(0, vec![7])])),
        (
            39,
            "The manual partition assignment includes broker 7, but no such broker is registered."
                .into()
        )
    );
    // A config error comes before the partition count.
    let t = ct::CreatableTopic {
        configs: vec![ct::CreatableTopicConfig {
            name: "retention.ms".into(),
            value: Some("soon".into()),
        }],
        ..creatable("c", 0, 1)
    };
    assert_eq!(message(t).0, INVALID_CONFIG);
}

/// Config values are checked with Kafka's types and bounds (`LogConfig`), null values are
/// refused, and Kafka's newer topic configs are accepted.
#[test]
fn create_topics_config_values_are_validated_as_kafka_does() {
    let broker = TestBroker::start("hostile-create-configs");
    let mut client = broker.connect();
    let with = |key: &str, value: Option<&str>| ct::CreatableTopic {
        configs: vec![ct::CreatableTopicConfig {
            name: key.into(),
            value: value.map(str::to_string),
        }],
        ..creatable("cfg", 1, 1)
    };
    let refused = [
        ("segment.bytes", Some("-5"), "Value must be at least 14"),
        ("segment.bytes", Some("13"), "Value must be at least 14"),
        (
            "segment.bytes",
            Some("3000000000"),
            "Not a number of type INT",
        ),
        ("retention.ms", Some("abc"), "Not a number of type LONG"),
        ("retention.ms", Some("-2"), "Value must be at least -1"),
        ("max.message.bytes", Some("-1"), "Value must be at least 0"),
        ("segment.ms", Some("0"), "Value must be at least 1"),
        ("segment.index.bytes", Some("3"), "Value must be at least 4"),
        ("min.insync.replicas", Some("0"), "Value must be at least 1"),
        (
            "min.cleanable.dirty.ratio",
            Some("1.5"),
            "Value must be no more than 1",
        ),
        (
            "preallocate",
            Some("maybe"),
            "Expected value to be either true or false",
        ),
        (
            "cleanup.policy",
            Some("delete,bogus"),
            "String must be one of: compact, delete",
        ),
        ("flush.messages", Some("0"), "Value must be at least 1"),
    ];
    for (key, value, reason) in refused {
        let r = &create_topics(&mut client, vec![with(key, value)], true)[0];
        assert_eq!(r.error_code, INVALID_CONFIG, "{key}={value:?}");
        let expected = format!(
            "Invalid value {} for configuration {key}: {reason}",
            value.unwrap()
        );
        assert_eq!(r.error_message.as_deref(), Some(expected.as_str()));
    }
    let r = &create_topics(&mut client, vec![with("retention.ms", None)], true)[0];
    assert_eq!(
        (r.error_code, r.error_message.as_deref()),
        (
            INVALID_CONFIG,
            Some("Null value not supported for topic configs: retention.ms")
        )
    );
    for (key, value) in [
        ("retention.ms", "-1"),
        ("segment.bytes", "14"),
        ("compression.zstd.level", "-5"),
        ("preallocate", "TRUE"),
        ("cleanup.policy", "compact,delete"),
        ("leader.replication.throttled.replicas", "0:1,1:1"),
        ("message.format.version", "3.0-IV1"),
    ] {
        let r = &create_topics(&mut client, vec![with(key, Some(value))], true)[0];
        assert_eq!(r.error_code, NONE, "{key}={value}: {:?}", r.error_message);
    }
}

/// A name given twice is not created and answered once with INVALID_REQUEST, after the others;
/// a name that differs from an existing topic's only in '.' versus '_' is
/// INVALID_TOPIC_EXCEPTION.
#[test]
fn create_topics_duplicates_and_collisions() {
    let broker = TestBroker::start("hostile-create-dups");
    let mut client = broker.connect();
    let results = create_topics(
        &mut client,
        vec![
            creatable("dup", 1, 1),
            creatable("one", 1, 1),
            creatable("dup", 1, 1),
        ],
        false,
    );
    let answers: Vec<_> = results
        .iter()
        .map(|r| (r.name.as_str(), r.error_code, r.error_message.as_deref()))
        .collect();
    assert_eq!(
        answers,
        [
            ("one", NONE, None),
            ("dup", INVALID_REQUEST, Some("Duplicate topic name."))
        ]
    );
    create_topic(&mut client, "my.topic", 1);
    let r = &create_topics(&mut client, vec![creatable("my_topic", 1, 1)], false)[0];
    assert_eq!(r.error_code, INVALID_TOPIC_EXCEPTION);
    assert_eq!(
        r.error_message.as_deref(),
        Some("Topic 'my_topic' collides with existing topic: my.topic")
    );
    let r = &create_topics(&mut client, vec![creatable("my.topic", 1, 1)], false)[0];
    assert_eq!(r.error_code, 36, "an existing name is TOPIC_ALREADY_EXISTS");
}

// ---------------------------------------------------------------------------------------------
// Other APIs
// ---------------------------------------------------------------------------------------------

/// DeleteTopics v6 entries with neither a name nor an id, or with both, are INVALID_REQUEST, and
/// a topic named twice is not deleted.
#[test]
fn delete_topics_invalid_entries_are_invalid_request() {
    let broker = TestBroker::start("hostile-delete-topics");
    let mut client = broker.connect();
    create_topic(&mut client, "keep", 1);
    let state = |name: Option<&str>, id: Uuid| dt::DeleteTopicState {
        name: name.map(str::to_string),
        topic_id: id,
    };
    let request = dt::DeleteTopicsRequest {
        topics: vec![
            state(None, Uuid::ZERO),
            state(Some("keep"), Uuid([1; 16])),
            state(Some("keep"), Uuid::ZERO),
            state(Some("keep"), Uuid::ZERO),
        ],
        timeout_ms: 30_000,
        ..dt::DeleteTopicsRequest::default()
    };
    let response = client.call(
        dt::API_KEY,
        6,
        |e| request.encode(e, 6),
        dt::DeleteTopicsResponse::decode,
    );
    let answers: Vec<_> = response
        .responses
        .iter()
        .map(|r| (r.name.as_deref(), r.error_code, r.error_message.as_deref()))
        .collect();
    assert_eq!(
        answers,
        [
            (
                None,
                INVALID_REQUEST,
                Some("Neither topic name nor id were specified.")
            ),
            (
                Some("keep"),
                INVALID_REQUEST,
                Some("You may not specify both topic name and topic id.")
            ),
            (Some("keep"), INVALID_REQUEST, Some("Duplicate topic name.")),
        ]
    );
    let listed = client.call(
        metadata::API_KEY,
        12,
        |e| {
            metadata::MetadataRequest {
                topics: None,
                ..metadata::MetadataRequest::default()
            }
            .encode(e, 12)
        },
        metadata::MetadataResponse::decode,
    );
    assert_eq!(listed.topics.len(), 1, "nothing was deleted");
}

/// ListOffsets: a partition named twice is INVALID_REQUEST at each mention (v1+); a negative
/// timestamp that is not one of the special values is searched for like any other; an unknown
/// isolation level fails the whole request.
#[test]
fn list_offsets_duplicates_negative_timestamps_and_isolation() {
    let broker = TestBroker::start("hostile-list-offsets");
    let mut client = broker.connect();
    create_topic(&mut client, "l", 1);
    assert_eq!(produce_one(&mut client, 9, "l", plain(2)).0, NONE);
    let list = |client: &mut Client, isolation: i8, parts: &[(i32, i64)]| {
        let request = lo::ListOffsetsRequest {
            replica_id: -1,
            isolation_level: isolation,
            topics: vec![lo::ListOffsetsTopic {
                name: "l".into(),
                partitions: parts
                    .iter()
                    .map(|&(partition_index, timestamp)| lo::ListOffsetsPartition {
                        partition_index,
                        timestamp,
                        ..lo::ListOffsetsPartition::default()
                    })
                    .collect(),
            }],
        };
        client
            .call(
                lo::API_KEY,
                7,
                |e| request.encode(e, 7),
                lo::ListOffsetsResponse::decode,
            )
            .topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(&mut client, 0, &[(0, -1), (0, -2)]),
        [(INVALID_REQUEST, -1), (INVALID_REQUEST, -1)]
    );
    assert_eq!(list(&mut client, 0, &[(0, -100)]), [(NONE, 0)]);
    assert_eq!(list(&mut client, 0, &[(0, -1)]), [(NONE, 2)]);
    assert_eq!(
        list(&mut client, 9, &[(0, -1), (5, -1)]),
        [(UNKNOWN_SERVER_ERROR, -1), (UNKNOWN_SERVER_ERROR, -1)]
    );
}

/// Metadata: the requested topics are a set, so a topic named many times is described once (the
/// response used to grow with every repetition); before v12 a topic without a name fails the
/// whole request with INVALID_REQUEST.
#[test]
fn metadata_topics_are_a_set_and_names_are_required_before_v12() {
    let broker = TestBroker::start("hostile-metadata");
    let mut client = broker.connect();
    create_topic(&mut client, "m", 50);
    let named = |name: Option<&str>| metadata::MetadataRequestTopic {
        name: name.map(str::to_string),
        topic_id: Uuid::ZERO,
    };
    let request = metadata::MetadataRequest {
        topics: Some(vec![named(Some("m")); 10_000]),
        ..metadata::MetadataRequest::default()
    };
    let response = client.call(
        metadata::API_KEY,
        12,
        |e| request.encode(e, 12),
        metadata::MetadataResponse::decode,
    );
    assert_eq!(response.topics.len(), 1);
    let request = metadata::MetadataRequest {
        topics: Some(vec![named(Some("m")), named(None)]),
        ..metadata::MetadataRequest::default()
    };
    let response = client.call(
        metadata::API_KEY,
        10,
        |e| request.encode(e, 10),
        metadata::MetadataResponse::decode,
    );
    let codes: Vec<_> = response
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            (Some("m".to_string()), INVALID_REQUEST),
            (Some(String::new()), INVALID_REQUEST)
        ]
    );
}

/// DescribeConfigs describes a resource named many times once, so that a few bytes of request
/// cannot ask for kilobytes of response each.
#[test]
fn describe_configs_repeated_resource_is_described_once() {
    let broker = TestBroker::start("hostile-describe-configs");
    let mut client = broker.connect();
    create_topic(&mut client, "dc", 1);
    let request = dc::DescribeConfigsRequest {
        resources: vec![
            dc::DescribeConfigsResource {
                resource_type: 2,
                resource_name: "dc".into(),
                configuration_keys: None,
            };
            50_000
        ],
        ..dc::DescribeConfigsRequest::default()
    };
    let response = client.call(
        dc::API_KEY,
        1,
        |e| request.encode(e, 1),
        dc::DescribeConfigsResponse::decode,
    );
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].error_code, NONE);
}

/// ApiVersions v3+ with a client software name Kafka's pattern refuses is INVALID_REQUEST with no
/// APIs listed (`ApiVersionsRequest.getErrorResponse`).
#[test]
fn api_versions_invalid_client_software_lists_no_apis() {
    let broker = TestBroker::start("hostile-api-versions");
    let mut client = broker.connect();
    let response = client.call(
        api_versions::API_KEY,
        3,
        |e| {
            api_versions::ApiVersionsRequest {
                client_software_name: "-bad-".into(),
                client_software_version: "1".into(),
            }
            .encode(e, 3)
        },
        api_versions::ApiVersionsResponse::decode,
    );
    assert_eq!(response.error_code, INVALID_REQUEST);
    assert!(response.api_keys.is_empty());
}

/// InitProducerId gets Kafka's checks before sprat's refusal of transactions: an empty
/// transactional id and half of a producer id and epoch are INVALID_REQUEST, a timeout outside
/// 1..=900000 INVALID_TRANSACTION_TIMEOUT.
#[test]
fn init_producer_id_invalid_arguments() {
    let broker = TestBroker::start("hostile-init-producer-id");
    let mut client = broker.connect();
    let mut init = |transactional_id: Option<&str>, timeout: i32, id: i64, epoch: i16| {
        let request = ipi::InitProducerIdRequest {
            transactional_id: transactional_id.map(str::to_string),
            transaction_timeout_ms: timeout,
            producer_id: id,
            producer_epoch: epoch,
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
    assert_eq!(init(Some(""), 60_000, -1, -1), INVALID_REQUEST);
    assert_eq!(init(Some("tx"), 0, -1, -1), INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(
        init(Some("tx"), 900_001, -1, -1),
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(init(Some("tx"), 60_000, -1, -1), NONE);
    assert_eq!(init(Some("tx"), 60_000, -1, 3), INVALID_REQUEST);
    assert_eq!(init(None, -1, -1, 3), INVALID_REQUEST);
    assert_eq!(init(None, -1, 1000, -1), INVALID_REQUEST);
    assert_eq!(init(None, -1, -1, -1), NONE);
}
