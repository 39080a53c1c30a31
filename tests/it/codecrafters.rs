//! The CodeCrafters "Build your own Kafka" stages, end to end, against the real broker.
//!
//! Each test starts its own broker, prepares the log directory the way the tester does
//! (`write_cluster_metadata`, partition logs) and checks real bytes: on the wire, and in the
//! partition log files. Two kinds of test live here:
//!
//! - **Replays** of recorded tester runs (kafka-tester's `internal/test_helpers/fixtures/*/pass`,
//!   runs against real Kafka with full hexdumps). They send the recorded request bytes and expect
//!   the recorded response byte for byte. Fetch responses differ in one field only: real Kafka
//!   opened a fetch session, while the newest tester requires session id 0, which sprat sends.
//! - **Codec tests**, which build requests and decode responses with the crate's generated codecs
//!   and cover what the stages randomise (correlation ids, topic counts, partition counts, record
//!   counts) plus the edges around them (pagination, offsets, validation errors, bad framing).
//!
//! Stage slugs (vi6, nv3, pv1, ...) are those of `internal/tester_definition.go`.

use crate::harness::{
    Client, Rng, TestBroker, TopicSpec, decode_response, hex, plain_batch, read_partition_log,
    request_frame, tester_batch, uuid, write_cluster_metadata, write_partition_log,
};
use sprat::protocol::SUPPORTED_APIS;
use sprat::protocol::messages::{api_versions, describe_topic_partitions as dtp, fetch, produce};
use sprat::protocol::wire::{DecodeResult, Decoder, Encoder, Uuid};
use sprat::storage::record_batch::set_base_offset;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// How long to listen for stray bytes after a response. The tester listens for 100 ms.
const QUIET_WAIT: Duration = Duration::from_millis(150);

/// Random words for record values, as the tester uses.
const FRUITS: &[&str] = &[
    "apple",
    "banana",
    "blueberry",
    "cherry",
    "grape",
    "kiwi",
    "mango",
    "orange",
    "pear",
    "pineapple",
    "raspberry",
    "strawberry",
];

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Whether a response starts with header v1 (correlation id and a tag buffer) rather than v0.
/// Written out here instead of asking the crate, so that a wrong header version fails: ApiVersions
/// always answers with header v0 (KIP-511), the others use v1 from their first flexible version.
fn tagged_response_header(api_key: i16, version: i16) -> bool {
    match api_key {
        api_versions::API_KEY => false,
        produce::API_KEY => version >= 9,
        fetch::API_KEY => version >= 12,
        dtp::API_KEY => true,
        _ => panic!("no header rule for API key {api_key}"),
    }
}

/// Decodes a response frame (without its size prefix) with a generated codec.
fn decode<T>(
    frame: &[u8],
    api_key: i16,
    version: i16,
    correlation_id: i32,
    decoder: impl FnOnce(&mut Decoder<'_>, i16) -> DecodeResult<T>,
) -> T {
    decode_response(
        frame,
        correlation_id,
        tagged_response_header(api_key, version),
        version,
        decoder,
    )
}

/// Sends one request with a random correlation id and decodes its response.
fn call<T>(
    client: &mut Client,
    api_key: i16,
    version: i16,
    body: impl FnOnce(&mut Encoder),
    decoder: impl FnOnce(&mut Decoder<'_>, i16) -> DecodeResult<T>,
) -> T {
    let correlation_id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ 0x5a5a_5a5a) as i32;
    client.send_with_correlation_id(api_key, version, correlation_id, body);
    decode(&client.receive(), api_key, version, correlation_id, decoder)
}

fn start_with_topics(name: &str, topics: Vec<TopicSpec>) -> TestBroker {
    TestBroker::start_with(name, move |dir| write_cluster_metadata(dir, &topics), &[])
}

fn start_with_topics_and_logs(
    name: &str,
    topics: Vec<TopicSpec>,
    logs: Vec<(&'static str, i32, Vec<Vec<u8>>)>,
) -> TestBroker {
    TestBroker::start_with(
        name,
        move |dir| {
            write_cluster_metadata(dir, &topics);
            for (topic, partition, batches) in &logs {
                write_partition_log(dir, topic, *partition, batches);
            }
        },
        &[],
    )
}

/// `values` as the byte slices `tester_batch` takes.
/// A batch from a plain (non-idempotent) producer: producer id, epoch and sequence -1, so that
/// repeated produces are appended rather than checked as retries.
fn batch_of(base_offset: i64, values: &[&str]) -> Vec<u8> {
    let values: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    plain_batch(base_offset, &values)
}

/// `min..=max` random words.
fn random_words(rng: &mut Rng, min: i64, max: i64) -> Vec<&'static str> {
    (0..rng.range(min, max + 1))
        .map(|_| FRUITS[rng.range(0, FRUITS.len() as i64) as usize])
        .collect()
}

/// A copy of `batch` with its base offset rewritten, as the log stores it.
fn at_offset(batch: &[u8], offset: i64) -> Vec<u8> {
    let mut copy = batch.to_vec();
    set_base_offset(&mut copy, offset);
    copy
}

/// Flips the last byte, inside the records, which the CRC covers: the stored CRC no longer matches.
fn corrupt_records(batch: &mut [u8]) {
    let last = batch.len() - 1;
    batch[last] ^= 0xff;
}

/// Recomputes the CRC-32C after an edit, over `attributes` to the end as Kafka defines it.
fn recompute_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// ApiVersions (vi6, nv3, wa6, nc5, pv1) and concurrency (nh4, sk0)
// ---------------------------------------------------------------------------------------------

/// The ranges the CodeCrafters stages are written against: (key, min, max) as sprat advertises
/// them. The tester needs 0 <= min <= its expected max and max >= 11/16/4/0.
const CODECRAFTERS_RANGES: &[(i16, i16, i16)] = &[(0, 0, 11), (1, 4, 17), (18, 0, 4), (75, 0, 0)];

/// What the tester expects per key: (key, expected min, expected max), see
/// `api_versions_response_assertion.go`.
const TESTER_EXPECTATIONS: &[(i16, i16, i16)] = &[(18, 0, 4), (75, 0, 0), (1, 0, 16), (0, 0, 11)];

/// The recorded pv1 request (every stage's first ApiVersions): v4, correlation id 0x0a95c1bf,
/// client id "kafka-tester", software "kafka-cli" "0.1".
const PV1_REQUEST: &str = "
    0000 | 00 00 00 26 00 12 00 04 0a 95 c1 bf 00 0c 6b 61
    0010 | 66 6b 61 2d 74 65 73 74 65 72 00 0a 6b 61 66 6b
    0020 | 61 2d 63 6c 69 04 30 2e 31 00
";

fn api_versions_body(version: i16) -> impl FnOnce(&mut Encoder) {
    move |e| {
        api_versions::ApiVersionsRequest {
            client_software_name: "kafka-cli".into(),
            client_software_version: "0.1".into(),
        }
        .encode(e, version.min(api_versions::MAX_VERSION))
    }
}

/// The complete ApiVersions frame sprat must send, written out field by field: size, response
/// header v0 (correlation id only, never a tag buffer), error 0, the entries of
/// [`SUPPORTED_APIS`] as {key, min, max}, then per version: v0 stops there; v1 and v2 add
/// throttle 0; v3+ use a compact array (length + 1), a tag buffer per entry, throttle 0 and a
/// final tag buffer.
fn expected_api_versions_frame(version: i16, correlation_id: i32) -> Vec<u8> {
    let flexible = version >= 3;
    let mut body = Vec::new();
    body.extend(correlation_id.to_be_bytes());
    body.extend([0x00, 0x00]);
    if flexible {
        body.push(SUPPORTED_APIS.len() as u8 + 1);
    } else {
        body.extend((SUPPORTED_APIS.len() as i32).to_be_bytes());
    }
    for api in SUPPORTED_APIS {
        body.extend(api.key.to_be_bytes());
        body.extend(api.min_version.to_be_bytes());
        body.extend(api.max_version.to_be_bytes());
        if flexible {
            body.push(0x00);
        }
    }
    if version >= 1 {
        body.extend([0x00, 0x00, 0x00, 0x00]);
    }
    if flexible {
        body.push(0x00);
    }
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

fn expected_api_versions_v4_frame(correlation_id: i32) -> Vec<u8> {
    expected_api_versions_frame(4, correlation_id)
}

/// Checks a decoded ApiVersions response as the tester does, and against sprat's table.
fn assert_full_api_versions(response: &api_versions::ApiVersionsResponse) {
    assert_eq!(response.error_code, 0);
    assert_eq!(response.throttle_time_ms, 0);
    let advertised: Vec<(i16, i16, i16)> = response
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let table: Vec<(i16, i16, i16)> = SUPPORTED_APIS
        .iter()
        .map(|a| (a.key, a.min_version, a.max_version))
        .collect();
    assert_eq!(
        advertised, table,
        "ApiVersions must advertise exactly SUPPORTED_APIS"
    );
    for &(key, min, max) in CODECRAFTERS_RANGES {
        assert!(
            advertised.contains(&(key, min, max)),
            "key {key} must be advertised as {min}-{max}: {advertised:?}"
        );
    }
    for &(key, expected_min, expected_max) in TESTER_EXPECTATIONS {
        let (_, min, max) = *advertised
            .iter()
            .find(|(k, _, _)| *k == key)
            .unwrap_or_else(|| panic!("key {key} missing"));
        assert!(
            min >= expected_min && min <= expected_max,
            "key {key}: min {min}"
        );
        assert!(max >= expected_max, "key {key}: max {max}");
    }
}

/// vi6: the port accepts TCP connections.
#[test]
fn vi6_bind_accepts_connections() {
    let broker = TestBroker::start("vi6");
    for _ in 0..3 {
        let stream = TcpStream::connect(broker.addr).expect("connect");
        drop(stream);
    }
    // A connection opened and closed without a byte must not disturb the next one.
    let mut client = broker.connect();
    let frame = client.round_trip(&hex(PV1_REQUEST));
    assert_eq!(frame, expected_api_versions_v4_frame(0x0a95c1bf));
}

/// nv3 and wa6: the correlation id is echoed, for the hard-coded 7, edge values and random ones.
#[test]
fn nv3_wa6_correlation_id_is_echoed() {
    let broker = TestBroker::start("wa6");
    let mut rng = Rng::new("wa6");
    let mut ids = vec![7, 0, -1, i32::MIN, i32::MAX];
    ids.extend((0..5).map(|_| rng.i32()));
    for id in ids {
        let mut client = broker.connect();
        client.send_with_correlation_id(api_versions::API_KEY, 4, id, api_versions_body(4));
        let frame = client.receive();
        assert_eq!(frame[..4], id.to_be_bytes(), "correlation id {id}");
        assert_eq!(frame, expected_api_versions_v4_frame(id)[4..]);
        client.assert_no_more_bytes(QUIET_WAIT);
    }
}

/// pv1: the recorded request gets the full v4 answer, which decodes with the generated codec,
/// matches the hand-written layout, and is followed by nothing.
#[test]
fn pv1_api_versions_v4_full_response() {
    let broker = TestBroker::start("pv1");
    let mut client = broker.connect();
    let frame = client.round_trip(&hex(PV1_REQUEST));
    // Header v0: the correlation id is followed directly by the error code, with no tag byte.
    assert_eq!(frame[4..10], hex("0a 95 c1 bf 00 00"));
    assert_eq!(frame, expected_api_versions_v4_frame(0x0a95c1bf));
    for entry in [
        "00 00 00 00 00 0b 00", // Produce 0-11
        "00 01 00 04 00 11 00", // Fetch 4-17
        "00 12 00 00 00 04 00", // ApiVersions 0-4
        "00 4b 00 00 00 00 00", // DescribeTopicPartitions 0-0
    ] {
        let entry = hex(entry);
        assert!(
            frame.windows(entry.len()).any(|w| w == entry),
            "entry {entry:02x?} missing"
        );
    }
    let response = decode(
        &frame[4..],
        api_versions::API_KEY,
        4,
        0x0a95c1bf,
        api_versions::ApiVersionsResponse::decode,
    );
    assert_full_api_versions(&response);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// nc5: a version of 1000 or more gets error 35 in the v0 layout, listing only ApiVersions 0-4,
/// exactly as real Kafka answers. One tester version sends the request twice on one connection.
#[test]
fn nc5_unsupported_api_versions_version_gets_error_35() {
    let broker = TestBroker::start("nc5");
    let mut rng = Rng::new("nc5");
    let mut versions = vec![1000, 1999, i16::MAX];
    versions.extend((0..3).map(|_| rng.range(1000, 2000) as i16));
    for version in versions {
        let id = rng.i32();
        let request = request_frame(
            api_versions::API_KEY,
            version,
            id,
            api_versions_body(version),
        );
        let mut expected = hex("00 00 00 10");
        expected.extend(id.to_be_bytes());
        expected.extend(hex("00 23 00 00 00 01 00 12 00 00 00 04"));
        let mut client = broker.connect();
        assert_eq!(client.round_trip(&request), expected, "version {version}");
        client.assert_no_more_bytes(QUIET_WAIT);
        // The same request twice in one write: two identical answers, in order.
        client.send_raw(&[request.clone(), request].concat());
        assert_eq!(client.receive(), expected[4..]);
        assert_eq!(client.receive(), expected[4..]);
        client.assert_no_more_bytes(QUIET_WAIT);
    }
}

/// ApiVersions v0 to v3 are answered too, each in its own layout.
#[test]
fn api_versions_v0_to_v3_are_answered() {
    let broker = TestBroker::start("api-versions-v0-v3");
    let mut rng = Rng::new("api-versions-v0-v3");
    let mut client = broker.connect();
    for version in 0..=3 {
        let id = rng.i32();
        client.send_with_correlation_id(
            api_versions::API_KEY,
            version,
            id,
            api_versions_body(version),
        );
        let frame = client.receive();
        assert_eq!(
            frame,
            expected_api_versions_frame(version, id)[4..],
            "v{version}"
        );
        let response = decode(
            &frame,
            api_versions::API_KEY,
            version,
            id,
            api_versions::ApiVersionsResponse::decode,
        );
        assert_full_api_versions(&response);
        client.assert_no_more_bytes(QUIET_WAIT);
    }
}

/// Several requests in one write are answered in order, each exactly once.
#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let broker = TestBroker::start("pipelined");
    let mut rng = Rng::new("pipelined");
    let requests: Vec<(i16, i32)> = vec![
        (4, rng.i32()),
        (0, rng.i32()),
        (2, rng.i32()),
        (4, rng.i32()),
    ];
    let bytes: Vec<u8> = requests
        .iter()
        .flat_map(|&(version, id)| {
            request_frame(
                api_versions::API_KEY,
                version,
                id,
                api_versions_body(version),
            )
        })
        .collect();
    let mut client = broker.connect();
    client.send_raw(&bytes);
    for &(version, id) in &requests {
        let frame = client.receive();
        assert_eq!(
            frame,
            expected_api_versions_frame(version, id)[4..],
            "v{version}"
        );
        let response = decode(
            &frame,
            api_versions::API_KEY,
            version,
            id,
            api_versions::ApiVersionsResponse::decode,
        );
        assert_full_api_versions(&response);
    }
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// nh4: 2-4 requests in a row on one connection, each with a fresh random correlation id.
#[test]
fn nh4_sequential_requests_on_one_connection() {
    let broker = TestBroker::start("nh4");
    let mut rng = Rng::new("nh4");
    let mut client = broker.connect();
    for _ in 0..rng.range(2, 5) {
        let id = rng.i32();
        client.send_with_correlation_id(api_versions::API_KEY, 4, id, api_versions_body(4));
        let frame = client.receive();
        assert_eq!(frame, expected_api_versions_v4_frame(id)[4..]);
        let response = decode(
            &frame,
            api_versions::API_KEY,
            4,
            id,
            api_versions::ApiVersionsResponse::decode,
        );
        assert_full_api_versions(&response);
        client.assert_no_more_bytes(QUIET_WAIT);
    }
}

/// sk0: three clients connect, all send, then the answers are read last client first. A
/// connection must never wait for another.
#[test]
fn sk0_concurrent_clients_read_in_reverse_order() {
    let broker = TestBroker::start("sk0");
    let mut rng = Rng::new("sk0");
    let mut clients: Vec<(Client, i32)> = (0..3).map(|_| (broker.connect(), rng.i32())).collect();
    for (client, id) in &mut clients {
        client.send_with_correlation_id(api_versions::API_KEY, 4, *id, api_versions_body(4));
    }
    for (client, id) in clients.iter_mut().rev() {
        let frame = client.receive();
        assert_eq!(frame, expected_api_versions_v4_frame(*id)[4..]);
        let response = decode(
            &frame,
            api_versions::API_KEY,
            4,
            *id,
            api_versions::ApiVersionsResponse::decode,
        );
        assert_full_api_versions(&response);
        client.assert_no_more_bytes(QUIET_WAIT);
    }
}

// ---------------------------------------------------------------------------------------------
// DescribeTopicPartitions (yk1, vt6, ea7, ku4, wq2)
// ---------------------------------------------------------------------------------------------

/// The uuid form the older DTP fixtures used: `00000000-0000-4000-8000-0000000000xx`.
fn dtp_fixture_id(last: u8) -> Uuid {
    let mut id = uuid("00000000-0000-4000-8000-000000000000");
    id.0[15] = last;
    id
}

fn dtp_request(
    names: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> dtp::DescribeTopicPartitionsRequest {
    dtp::DescribeTopicPartitionsRequest {
        topics: names
            .iter()
            .map(|n| dtp::TopicRequest {
                name: n.to_string(),
            })
            .collect(),
        response_partition_limit: limit,
        cursor: cursor.map(|(topic_name, partition_index)| dtp::Cursor {
            topic_name: topic_name.into(),
            partition_index,
        }),
    }
}

/// Sends a DescribeTopicPartitions request; returns the raw frame (without size) and its decoding.
fn describe(
    client: &mut Client,
    request: &dtp::DescribeTopicPartitionsRequest,
) -> (Vec<u8>, dtp::DescribeTopicPartitionsResponse) {
    let id = 0x5eed_0075;
    client.send_with_correlation_id(dtp::API_KEY, 0, id, |e| request.encode(e, 0));
    let frame = client.receive();
    let response = decode(
        &frame,
        dtp::API_KEY,
        0,
        id,
        dtp::DescribeTopicPartitionsResponse::decode,
    );
    (frame, response)
}

/// The partition indexes listed for one topic entry.
fn indexes(topic: &dtp::DescribeTopicPartitionsResponseTopic) -> Vec<i32> {
    topic.partitions.iter().map(|p| p.partition_index).collect()
}

fn assert_known_topic(
    topic: &dtp::DescribeTopicPartitionsResponseTopic,
    spec: &TopicSpec,
    expected_indexes: &[i32],
) {
    assert_eq!(topic.error_code, 0, "{}", spec.name);
    assert_eq!(topic.name.as_deref(), Some(spec.name.as_str()));
    assert_eq!(topic.topic_id, spec.id);
    assert!(!topic.is_internal);
    assert_eq!(indexes(topic), expected_indexes, "{}", spec.name);
    for p in &topic.partitions {
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id, 1);
        assert_eq!(p.leader_epoch, 0);
        assert_eq!(p.replica_nodes, [1]);
        assert_eq!(p.isr_nodes, [1]);
        assert_eq!(p.offline_replicas, Vec::<i32>::new());
    }
}

fn assert_unknown_topic(topic: &dtp::DescribeTopicPartitionsResponseTopic, name: &str) {
    assert_eq!(topic.error_code, 3, "{name}");
    assert_eq!(topic.name.as_deref(), Some(name));
    assert_eq!(topic.topic_id, Uuid::ZERO);
    assert!(topic.partitions.is_empty());
}

/// The response ends with a null cursor (`ff`) and an empty tagged-field section.
fn assert_null_cursor(frame: &[u8]) {
    assert_eq!(
        frame[frame.len() - 2..],
        [0xff, 0x00],
        "null cursor and final tag buffer"
    );
}

/// yk1: ApiVersions lists DescribeTopicPartitions 0-0 (asserted in full by the pv1 test).
#[test]
fn yk1_api_versions_lists_describe_topic_partitions() {
    let broker = TestBroker::start("yk1");
    let mut client = broker.connect();
    let response = call(
        &mut client,
        api_versions::API_KEY,
        4,
        api_versions_body(4),
        api_versions::ApiVersionsResponse::decode,
    );
    assert!(
        response
            .api_keys
            .iter()
            .any(|k| (k.api_key, k.min_version, k.max_version) == (75, 0, 0))
    );
}

/// vt6, replayed: an unknown topic gets error 3, the name echoed, a zero uuid, no partitions.
#[test]
fn vt6_replay_unknown_topic() {
    let broker = start_with_topics(
        "vt6",
        vec![TopicSpec::with_id("mango", dtp_fixture_id(0x70), 1)],
    );
    let request = hex("
        0000 | 00 00 00 30 00 4b 00 00 0f d0 46 02 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 02 11 55 4e 4b
        0020 | 4e 4f 57 4e 5f 54 4f 50 49 43 5f 31 36 00 00 00
        0030 | 00 01 ff 00
    ");
    let expected = hex("
        0000 | 00 00 00 36 0f d0 46 02 00 00 00 00 00 02 00 03
        0010 | 11 55 4e 4b 4e 4f 57 4e 5f 54 4f 50 49 43 5f 31
        0020 | 36 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0030 | 00 00 01 00 00 0d f8 00 ff 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// ea7, replayed: a topic with one partition.
#[test]
fn ea7_replay_topic_with_one_partition() {
    let broker = start_with_topics(
        "ea7",
        vec![
            TopicSpec::with_id("pear", dtp_fixture_id(0x03), 2),
            TopicSpec::with_id("mango", dtp_fixture_id(0x70), 1),
        ],
    );
    let request = hex("
        0000 | 00 00 00 25 00 4b 00 00 27 11 57 36 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 02 06 6d 61 6e
        0020 | 67 6f 00 00 00 00 01 ff 00
    ");
    let expected = hex("
        0000 | 00 00 00 47 27 11 57 36 00 00 00 00 00 02 00 00
        0010 | 06 6d 61 6e 67 6f 00 00 00 00 00 00 40 00 80 00
        0020 | 00 00 00 00 00 70 00 02 00 00 00 00 00 00 00 00
        0030 | 00 01 00 00 00 00 02 00 00 00 01 02 00 00 00 01
        0040 | 01 01 01 00 00 00 0d f8 00 ff 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// ku4, replayed: a topic with two partitions, listed in index order.
#[test]
fn ku4_replay_topic_with_several_partitions() {
    let broker = start_with_topics(
        "ku4",
        vec![
            TopicSpec::with_id("mango", dtp_fixture_id(0x70), 1),
            TopicSpec::with_id("pear", dtp_fixture_id(0x03), 2),
        ],
    );
    let request = hex("
        0000 | 00 00 00 24 00 4b 00 00 42 3c 0e e6 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 02 05 70 65 61
        0020 | 72 00 00 00 00 02 ff 00
    ");
    let expected = hex("
        0000 | 00 00 00 62 42 3c 0e e6 00 00 00 00 00 02 00 00
        0010 | 05 70 65 61 72 00 00 00 00 00 00 40 00 80 00 00
        0020 | 00 00 00 00 03 00 03 00 00 00 00 00 00 00 00 00
        0030 | 01 00 00 00 00 02 00 00 00 01 02 00 00 00 01 01
        0040 | 01 01 00 00 00 00 00 00 01 00 00 00 01 00 00 00
        0050 | 00 02 00 00 00 01 02 00 00 00 01 01 01 01 00 00
        0060 | 00 0d f8 00 ff 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// wq2, replayed: two topics in one request, with 1 and 2 partitions.
#[test]
fn wq2_replay_several_topics() {
    let broker = start_with_topics(
        "wq2",
        vec![
            TopicSpec::with_id("pear", dtp_fixture_id(0x91), 2),
            TopicSpec::with_id("blueberry", dtp_fixture_id(0x10), 1),
            TopicSpec::with_id("mango", dtp_fixture_id(0x70), 3),
        ],
    );
    let request = hex("
        0000 | 00 00 00 2f 00 4b 00 00 70 97 2c be 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 03 0a 62 6c 75
        0020 | 65 62 65 72 72 79 00 05 70 65 61 72 00 00 00 00
        0030 | 03 ff 00
    ");
    let expected = hex("
        0000 | 00 00 00 a1 70 97 2c be 00 00 00 00 00 03 00 00
        0010 | 0a 62 6c 75 65 62 65 72 72 79 00 00 00 00 00 00
        0020 | 40 00 80 00 00 00 00 00 00 10 00 02 00 00 00 00
        0030 | 00 00 00 00 00 01 00 00 00 00 02 00 00 00 01 02
        0040 | 00 00 00 01 01 01 01 00 00 00 0d f8 00 00 00 05
        0050 | 70 65 61 72 00 00 00 00 00 00 40 00 80 00 00 00
        0060 | 00 00 00 91 00 03 00 00 00 00 00 00 00 00 00 01
        0070 | 00 00 00 00 02 00 00 00 01 02 00 00 00 01 01 01
        0080 | 01 00 00 00 00 00 00 01 00 00 00 01 00 00 00 00
        0090 | 02 00 00 00 01 02 00 00 00 01 01 01 01 00 00 00
        00a0 | 0d f8 00 ff 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// vt6 with the codec: unknown topics (with and without other topics on disk).
#[test]
fn dtp_unknown_topic() {
    let broker = start_with_topics("dtp-unknown", vec![TopicSpec::new("foo", 1, 1)]);
    let mut client = broker.connect();
    let (frame, response) = describe(&mut client, &dtp_request(&["UNKNOWN_TOPIC_42"], 1, None));
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(response.topics.len(), 1);
    assert_unknown_topic(&response.topics[0], "UNKNOWN_TOPIC_42");
    assert_eq!(response.next_cursor, None);
    assert_null_cursor(&frame);
    // A broker without any cluster metadata answers the same way.
    let empty = TestBroker::start("dtp-unknown-empty");
    let (frame, response) = describe(&mut empty.connect(), &dtp_request(&["bar"], 1, None));
    assert_unknown_topic(&response.topics[0], "bar");
    assert_null_cursor(&frame);
}

/// ea7 with the codec: one partition, with its leader and replica sets.
#[test]
fn dtp_topic_with_one_partition() {
    let topics = vec![TopicSpec::new("other", 1, 3), TopicSpec::new("kiwi", 2, 1)];
    let spec = TopicSpec::new("kiwi", 2, 1);
    let broker = start_with_topics("dtp-one", topics);
    let mut client = broker.connect();
    let (frame, response) = describe(&mut client, &dtp_request(&["kiwi"], 1, None));
    assert_eq!(response.topics.len(), 1);
    assert_known_topic(&response.topics[0], &spec, &[0]);
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    assert_eq!(p.last_known_elr, Some(vec![]));
    assert_eq!(response.next_cursor, None);
    assert_null_cursor(&frame);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// ku4 with the codec: many partitions, all listed, in index order.
#[test]
fn dtp_topic_with_several_partitions_in_order() {
    let spec = TopicSpec::new("grape", 7, 12);
    let broker = start_with_topics(
        "dtp-many",
        vec![
            TopicSpec::new("apple", 1, 2),
            TopicSpec::new("grape", 7, 12),
        ],
    );
    let mut client = broker.connect();
    let (frame, response) = describe(&mut client, &dtp_request(&["grape"], 12, None));
    assert_eq!(response.topics.len(), 1);
    assert_known_topic(&response.topics[0], &spec, &(0..12).collect::<Vec<_>>());
    assert_null_cursor(&frame);
}

/// wq2 with the codec: topics asked for in a random, unsorted order come back sorted by name,
/// unknown ones included, each with its own id and partitions.
#[test]
fn dtp_several_topics_requested_unsorted_come_back_sorted() {
    let mut rng = Rng::new("dtp-sorted");
    let specs = vec![
        TopicSpec::new("pear", 1, 2),
        TopicSpec::new("apple", 2, 1),
        TopicSpec::new("mango", 3, 3),
        TopicSpec::new("banana", 4, 1),
    ];
    let expected: Vec<(String, Uuid, i32)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.id, s.partitions))
        .collect();
    let broker = start_with_topics("dtp-sorted", specs);
    let mut names = vec!["pear", "apple", "mango", "banana", "cherry-unknown"];
    while names.windows(2).all(|w| w[0] <= w[1]) {
        rng.shuffle(&mut names);
    }
    let mut client = broker.connect();
    let (frame, response) = describe(&mut client, &dtp_request(&names, 100, None));
    let listed: Vec<&str> = response
        .topics
        .iter()
        .map(|t| t.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["apple", "banana", "cherry-unknown", "mango", "pear"],
        "requested {names:?}"
    );
    for topic in &response.topics {
        let name = topic.name.as_deref().unwrap();
        match expected.iter().find(|(n, _, _)| n == name) {
            Some((n, id, partitions)) => {
                let spec = TopicSpec::with_id(n, *id, *partitions);
                assert_known_topic(topic, &spec, &(0..*partitions).collect::<Vec<_>>());
            }
            None => assert_unknown_topic(topic, name),
        }
    }
    assert_null_cursor(&frame);
}

/// `response_partition_limit` caps the partitions of one response, counted across topics, as in
/// Kafka's `KRaftMetadataCache.describeTopicResponse`: a topic cut short gets a cursor at its next
/// partition; a limit used up exactly at a topic boundary gets a cursor at the next topic's
/// partition 0. A second request with the cursor continues where the first stopped.
#[test]
fn dtp_partition_limit_paginates_with_a_cursor() {
    let a = TopicSpec::new("alpha", 1, 2);
    let b = TopicSpec::new("beta", 2, 3);
    let broker = start_with_topics(
        "dtp-cursor",
        vec![TopicSpec::new("alpha", 1, 2), TopicSpec::new("beta", 2, 3)],
    );
    let mut client = broker.connect();

    // One topic, limit 1 of 2 partitions.
    let (_, first) = describe(&mut client, &dtp_request(&["alpha"], 1, None));
    assert_eq!(first.topics.len(), 1);
    assert_known_topic(&first.topics[0], &a, &[0]);
    let cursor = first.next_cursor.expect("a cursor when partitions remain");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("alpha", 1)
    );
    let (frame, second) = describe(&mut client, &dtp_request(&["alpha"], 1, Some(("alpha", 1))));
    assert_known_topic(&second.topics[0], &a, &[1]);
    assert_eq!(second.next_cursor, None);
    assert_null_cursor(&frame);

    // Two topics, limit 3: alpha 0-1 and beta 0, then beta 1-2.
    let (frame, first) = describe(&mut client, &dtp_request(&["beta", "alpha"], 3, None));
    assert_eq!(first.topics.len(), 2);
    assert_known_topic(&first.topics[0], &a, &[0, 1]);
    assert_known_topic(&first.topics[1], &b, &[0]);
    let cursor = first.next_cursor.expect("cursor");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("beta", 1)
    );
    // A present cursor is `01`, the topic name, the partition and a tag buffer.
    assert_eq!(
        frame[frame.len() - 12..],
        hex("01 05 62 65 74 61 00 00 00 01 00 00")
    );
    let (frame, second) = describe(
        &mut client,
        &dtp_request(&["beta", "alpha"], 3, Some(("beta", 1))),
    );
    assert_eq!(
        second.topics.len(),
        1,
        "topics before the cursor are skipped"
    );
    assert_known_topic(&second.topics[0], &b, &[1, 2]);
    assert_eq!(second.next_cursor, None);
    assert_null_cursor(&frame);

    // Limit 2 ends exactly after alpha: the cursor points at beta's first partition.
    let (_, first) = describe(&mut client, &dtp_request(&["alpha", "beta"], 2, None));
    assert_eq!(first.topics.len(), 1);
    assert_known_topic(&first.topics[0], &a, &[0, 1]);
    let cursor = first.next_cursor.expect("cursor");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("beta", 0)
    );
    let (_, second) = describe(
        &mut client,
        &dtp_request(&["alpha", "beta"], 2, Some(("beta", 0))),
    );
    assert_known_topic(&second.topics[0], &b, &[0, 1]);
    let cursor = second.next_cursor.expect("cursor");
    assert_eq!(
        (cursor.topic_name.as_str(), cursor.partition_index),
        ("beta", 2)
    );
}

// ---------------------------------------------------------------------------------------------
// Fetch (gs0, dh6, hn6, cm4, eg2, fd8)
// ---------------------------------------------------------------------------------------------

/// Where the 4-byte session id sits in a Fetch v16 response frame: size, correlation id, tag
/// buffer, throttle time, error code.
const FETCH_SESSION_ID_AT: usize = 4 + 4 + 1 + 4 + 2;

/// A recorded Fetch v16 response with the session id set to 0: real Kafka opened a session,
/// while the tester's fetch stages require session id 0 (`ExpectSessionId(0)`).
fn without_session(mut recorded: Vec<u8>) -> Vec<u8> {
    recorded[FETCH_SESSION_ID_AT..FETCH_SESSION_ID_AT + 4].fill(0);
    recorded
}

/// The request every Fetch stage sends for one topic id and partition 0 (fixture layout):
/// max_wait 500, min_bytes 1, max_bytes and partition_max_bytes i32::MAX, session 0 epoch 0.
fn tester_fetch(topic_id: Uuid) -> fetch::FetchRequest {
    fetch_request(topic_id, "", vec![fetch_partition(0, 0, i32::MAX)])
}

fn fetch_partition(
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
) -> fetch::FetchPartition {
    fetch::FetchPartition {
        partition,
        current_leader_epoch: -1,
        fetch_offset,
        last_fetched_epoch: -1,
        log_start_offset: -1,
        partition_max_bytes,
        ..fetch::FetchPartition::default()
    }
}

fn fetch_request(
    topic_id: Uuid,
    topic: &str,
    partitions: Vec<fetch::FetchPartition>,
) -> fetch::FetchRequest {
    fetch::FetchRequest {
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: i32::MAX,
        isolation_level: 0,
        session_id: 0,
        session_epoch: 0,
        topics: vec![fetch::FetchTopic {
            topic: topic.into(),
            topic_id,
            partitions,
        }],
        ..fetch::FetchRequest::default()
    }
}

fn do_fetch(
    client: &mut Client,
    version: i16,
    request: &fetch::FetchRequest,
) -> fetch::FetchResponse {
    call(
        client,
        fetch::API_KEY,
        version,
        |e| request.encode(e, version),
        fetch::FetchResponse::decode,
    )
}

/// Checks the top level as the fetch stages do and returns the single partition's data.
fn single_partition(response: &fetch::FetchResponse, topic_id: Uuid) -> &fetch::PartitionData {
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.session_id, 0);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].topic_id, topic_id);
    assert_eq!(response.responses[0].partitions.len(), 1);
    &response.responses[0].partitions[0]
}

/// The one record batch of the eg2 run (value "pineapple", base offset 0, headers count -1), as
/// the tester wrote it to disk and real Kafka returned it.
fn eg2_batch(base_offset: u8, value: &str) -> Vec<u8> {
    let mut batch = hex("
        00 00 00 00 00 00 00 00  00 00 00 41  00 00 00 00  02  00 00 00 00  00 00  00 00 00 00
        00 00 01 91 e0 5b 6d 8b  00 00 01 91 e0 5b 6d 8b  00 00 00 00 00 00 00 00  00 00
        00 00 00 00  00 00 00 01
    ");
    batch[7] = base_offset;
    // The record: length 15 (zigzag 1e), attributes, timestamp delta, offset delta, null key (01),
    // a 9-byte value (12), the value, headers count -1 (01).
    assert_eq!(value.len(), 9);
    batch.extend(hex("1e 00 00 00 01 12"));
    batch.extend(value.as_bytes());
    batch.push(0x01);
    recompute_crc(&mut batch);
    batch
}

/// gs0: ApiVersions lists Fetch with a max of at least 16.
#[test]
fn gs0_api_versions_lists_fetch() {
    let broker = TestBroker::start("gs0");
    let mut client = broker.connect();
    let response = call(
        &mut client,
        api_versions::API_KEY,
        4,
        api_versions_body(4),
        api_versions::ApiVersionsResponse::decode,
    );
    let fetch = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 1)
        .expect("Fetch listed");
    assert!(fetch.min_version <= 16 && fetch.max_version >= 16);
}

/// dh6, replayed: no topics at all; an empty (not null) topics array and session id 0. The
/// broker has no cluster metadata, as in the tester's run.
#[test]
fn dh6_replay_fetch_without_topics() {
    let broker = TestBroker::start("dh6");
    let request = hex("
        0000 | 00 00 00 30 00 01 00 10 60 5a 05 cd 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 00 01 f4 00
        0020 | 00 00 01 7f ff ff ff 00 00 00 00 00 00 00 00 00
        0030 | 01 01 01 00
    ");
    let recorded = hex("
        0000 | 00 00 00 11 60 5a 05 cd 00 00 00 00 00 00 00 02
        0010 | e9 9f 03 01 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), without_session(recorded));
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// hn6, replayed: an unknown topic id is a partition-level error 100, with -1 offsets.
#[test]
fn hn6_replay_fetch_unknown_topic_id() {
    let broker = start_with_topics(
        "hn6",
        vec![TopicSpec::with_id(
            "mango",
            uuid("71a59a51-8968-4f8b-937e-000000000480"),
            1,
        )],
    );
    let request = hex("
        0000 | 00 00 00 63 00 01 00 10 76 02 b0 58 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 00 01 f4 00
        0020 | 00 00 01 7f ff ff ff 00 00 00 00 00 00 00 00 00
        0030 | 02 71 a5 9a 51 89 68 4f 8b 93 7e 00 00 00 00 04
        0040 | 79 02 00 00 00 00 ff ff ff ff 00 00 00 00 00 00
        0050 | 00 00 ff ff ff ff ff ff ff ff ff ff ff ff 7f ff
        0060 | ff ff 00 00 01 01 00
    ");
    let recorded = hex("
        0000 | 00 00 00 48 76 02 b0 58 00 00 00 00 00 00 00 08
        0010 | 21 c6 b1 02 71 a5 9a 51 89 68 4f 8b 93 7e 00 00
        0020 | 00 00 04 79 02 00 00 00 00 00 64 ff ff ff ff ff
        0030 | ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
        0040 | ff ff ff 01 ff ff ff ff 01 00 00 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), without_session(recorded));
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// cm4, replayed: a known topic with an empty log: error 0, offsets 0, no records.
#[test]
fn cm4_replay_fetch_empty_topic() {
    let broker = start_with_topics(
        "cm4",
        vec![TopicSpec::with_id(
            "kiwi",
            uuid("71a59a51-8968-4f8b-937e-71087585a62d"),
            1,
        )],
    );
    let request = hex("
        0000 | 00 00 00 63 00 01 00 10 5c dd 07 a9 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 00 01 f4 00
        0020 | 00 00 01 7f ff ff ff 00 00 00 00 00 00 00 00 00
        0030 | 02 71 a5 9a 51 89 68 4f 8b 93 7e 71 08 75 85 a6
        0040 | 2d 02 00 00 00 00 ff ff ff ff 00 00 00 00 00 00
        0050 | 00 00 ff ff ff ff ff ff ff ff ff ff ff ff 7f ff
        0060 | ff ff 00 00 01 01 00
    ");
    let recorded = hex("
        0000 | 00 00 00 48 5c dd 07 a9 00 00 00 00 00 00 00 05
        0010 | 68 63 88 02 71 a5 9a 51 89 68 4f 8b 93 7e 71 08
        0020 | 75 85 a6 2d 02 00 00 00 00 00 00 00 00 00 00 00
        0030 | 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        0040 | 00 00 00 00 ff ff ff ff 01 00 00 00
    ");
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), without_session(recorded));
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// eg2, replayed: the one batch on disk comes back byte for byte.
#[test]
fn eg2_replay_fetch_one_message() {
    let request = hex("
        0000 | 00 00 00 63 00 01 00 10 01 8d 2f 37 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 00 01 f4 00
        0020 | 00 00 01 7f ff ff ff 00 00 00 00 00 00 00 00 00
        0030 | 02 71 a5 9a 51 89 68 4f 8b 93 7e b2 dc 35 0e 60
        0040 | ec 02 00 00 00 00 ff ff ff ff 00 00 00 00 00 00
        0050 | 00 00 ff ff ff ff ff ff ff ff ff ff ff ff 7f ff
        0060 | ff ff 00 00 01 01 00
    ");
    let recorded = hex("
        0000 | 00 00 00 95 01 8d 2f 37 00 00 00 00 00 00 00 02
        0010 | 8d aa 57 02 71 a5 9a 51 89 68 4f 8b 93 7e b2 dc
        0020 | 35 0e 60 ec 02 00 00 00 00 00 00 00 00 00 00 00
        0030 | 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00
        0040 | 00 00 00 00 ff ff ff ff 4e 00 00 00 00 00 00 00
        0050 | 00 00 00 00 41 00 00 00 00 02 cf 35 bf 62 00 00
        0060 | 00 00 00 00 00 00 01 91 e0 5b 6d 8b 00 00 01 91
        0070 | e0 5b 6d 8b 00 00 00 00 00 00 00 00 00 00 00 00
        0080 | 00 00 00 00 00 01 1e 00 00 00 01 12 70 69 6e 65
        0090 | 61 70 70 6c 65 01 00 00 00
    ");
    // The batch is the records field: 77 bytes after its compact length 4e.
    let batch = recorded[0x49..0x49 + 77].to_vec();
    assert_eq!(
        batch,
        eg2_batch(0, "pineapple"),
        "the fixture batch and its CRC"
    );
    let topic_id = uuid("71a59a51-8968-4f8b-937e-b2dc350e60ec");
    let broker = start_with_topics_and_logs(
        "eg2",
        vec![TopicSpec::with_id("banana", topic_id, 1)],
        vec![("banana", 0, vec![batch])],
    );
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), without_session(recorded));
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// fd8, replayed: two batches on disk, both returned byte for byte.
#[test]
fn fd8_replay_fetch_several_messages() {
    let request = hex("
        0000 | 00 00 00 63 00 01 00 10 0b 65 7e 30 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 00 01 f4 00
        0020 | 00 00 01 7f ff ff ff 00 00 00 00 00 00 00 00 00
        0030 | 02 71 a5 9a 51 89 68 4f 8b 93 7e aa a9 c9 b1 a6
        0040 | 2c 02 00 00 00 00 ff ff ff ff 00 00 00 00 00 00
        0050 | 00 00 ff ff ff ff ff ff ff ff ff ff ff ff 7f ff
        0060 | ff ff 00 00 01 01 00
    ");
    let recorded = hex("
        0000 | 00 00 00 e3 0b 65 7e 30 00 00 00 00 00 00 00 0d
        0010 | e9 af dd 02 71 a5 9a 51 89 68 4f 8b 93 7e aa a9
        0020 | c9 b1 a6 2c 02 00 00 00 00 00 00 00 00 00 00 00
        0030 | 00 00 02 00 00 00 00 00 00 00 02 00 00 00 00 00
        0040 | 00 00 00 00 ff ff ff ff 9b 01 00 00 00 00 00 00
        0050 | 00 00 00 00 00 41 00 00 00 00 02 b2 66 93 fc 00
        0060 | 00 00 00 00 00 00 00 01 91 e0 5b 6d 8b 00 00 01
        0070 | 91 e0 5b 6d 8b 00 00 00 00 00 00 00 00 00 00 00
        0080 | 00 00 00 00 00 00 01 1e 00 00 00 01 12 72 61 73
        0090 | 70 62 65 72 72 79 01 00 00 00 00 00 00 00 01 00
        00a0 | 00 00 41 00 00 00 00 02 cf 35 bf 62 00 00 00 00
        00b0 | 00 00 00 00 01 91 e0 5b 6d 8b 00 00 01 91 e0 5b
        00c0 | 6d 8b 00 00 00 00 00 00 00 00 00 00 00 00 00 00
        00d0 | 00 00 00 01 1e 00 00 00 01 12 70 69 6e 65 61 70
        00e0 | 70 6c 65 01 00 00 00
    ");
    // The records field: 154 bytes after its compact length 9b 01.
    let records = &recorded[0x4a..0x4a + 154];
    let batches = vec![records[..77].to_vec(), records[77..].to_vec()];
    assert_eq!(batches[0], eg2_batch(0, "raspberry"));
    assert_eq!(batches[1], eg2_batch(1, "pineapple"));
    let topic_id = uuid("71a59a51-8968-4f8b-937e-aaa9c9b1a62c");
    let broker = start_with_topics_and_logs(
        "fd8",
        vec![TopicSpec::with_id("cherry", topic_id, 1)],
        vec![("cherry", 0, batches)],
    );
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), without_session(recorded));
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// dh6 with the codec: no topics → an empty responses array (`01`, not null `00`), session 0.
#[test]
fn fetch_v16_without_topics() {
    let broker = TestBroker::start("fetch-no-topics");
    let mut client = broker.connect();
    let mut request = tester_fetch(Uuid::ZERO);
    request.topics.clear();
    let id = 0x0dd6;
    client.send_with_correlation_id(fetch::API_KEY, 16, id, |e| request.encode(e, 16));
    let frame = client.receive();
    // Without its size prefix the frame holds: correlation id, tag buffer, throttle time, error,
    // session id (bytes 11..15), then the responses array at byte 15.
    assert_eq!(
        frame[11..16],
        [0, 0, 0, 0, 0x01],
        "session id 0, then an empty compact array"
    );
    let response = decode(&frame, fetch::API_KEY, 16, id, fetch::FetchResponse::decode);
    assert_eq!(
        (
            response.throttle_time_ms,
            response.error_code,
            response.session_id
        ),
        (0, 0, 0)
    );
    assert!(response.responses.is_empty());
}

/// hn6 with the codec: unknown topic id → partition error 100, top-level error 0, id echoed.
#[test]
fn fetch_v16_unknown_topic_id() {
    let known = TopicSpec::new("apple", 1, 1);
    let unknown = uuid("71a59a51-8968-4f8b-937e-0000deadbeef");
    let broker = start_with_topics("fetch-unknown-id", vec![known]);
    let mut client = broker.connect();
    let response = do_fetch(&mut client, 16, &tester_fetch(unknown));
    let p = single_partition(&response, unknown);
    assert_eq!((p.partition_index, p.error_code), (0, 100));
    assert_eq!(p.records.as_deref().unwrap_or_default(), b"");
}

/// cm4 with the codec: empty topic → error 0, no records, high watermark 0.
#[test]
fn fetch_v16_empty_topic() {
    let spec = TopicSpec::new("apple", 1, 1);
    let id = spec.id;
    let broker = start_with_topics("fetch-empty", vec![spec]);
    let response = do_fetch(&mut broker.connect(), 16, &tester_fetch(id));
    let p = single_partition(&response, id);
    assert_eq!(
        (
            p.partition_index,
            p.error_code,
            p.high_watermark,
            p.log_start_offset
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(p.records.as_deref(), Some(&b""[..]));
}

/// The log the offset tests read: batches at offsets 0, 1-3, 4, 5-7 (high watermark 8).
fn four_batches() -> Vec<Vec<u8>> {
    vec![
        batch_of(0, &["apple"]),
        batch_of(1, &["banana", "cherry", "grape"]),
        batch_of(4, &["kiwi"]),
        batch_of(5, &["mango", "orange", "pear"]),
    ]
}

/// eg2/fd8 with the codec: one batch, then several, returned byte for byte.
#[test]
fn fetch_v16_returns_batches_byte_for_byte() {
    let one = TopicSpec::new("one", 1, 1);
    let many = TopicSpec::new("many", 2, 1);
    let (one_id, many_id) = (one.id, many.id);
    let single = vec![batch_of(0, &["hello"])];
    let broker = start_with_topics_and_logs(
        "fetch-batches",
        vec![one, many],
        vec![("one", 0, single.clone()), ("many", 0, four_batches())],
    );
    let mut client = broker.connect();
    let response = do_fetch(&mut client, 16, &tester_fetch(one_id));
    let p = single_partition(&response, one_id);
    assert_eq!(
        (
            p.error_code,
            p.high_watermark,
            p.last_stable_offset,
            p.log_start_offset
        ),
        (0, 1, 1, 0)
    );
    assert_eq!(p.records.as_deref(), Some(&single.concat()[..]));
    let response = do_fetch(&mut client, 16, &tester_fetch(many_id));
    let p = single_partition(&response, many_id);
    assert_eq!((p.error_code, p.high_watermark), (0, 8));
    assert_eq!(p.records.as_deref(), Some(&four_batches().concat()[..]));
}

/// A fetch offset inside a batch returns whole batches from the one holding it; the log end
/// offset returns nothing; past it is OFFSET_OUT_OF_RANGE (1).
#[test]
fn fetch_from_an_offset_inside_the_log() {
    let spec = TopicSpec::new("offsets", 1, 1);
    let id = spec.id;
    let broker = start_with_topics_and_logs(
        "fetch-offsets",
        vec![spec],
        vec![("offsets", 0, four_batches())],
    );
    let batches = four_batches();
    let mut client = broker.connect();
    for (offset, first_batch) in [(0, 0), (1, 1), (2, 1), (3, 1), (4, 2), (5, 3), (7, 3)] {
        let request = fetch_request(id, "", vec![fetch_partition(0, offset, i32::MAX)]);
        let response = do_fetch(&mut client, 16, &request);
        let p = single_partition(&response, id);
        assert_eq!(p.error_code, 0, "offset {offset}");
        assert_eq!(
            p.records.as_deref(),
            Some(&batches[first_batch..].concat()[..]),
            "offset {offset}"
        );
    }
    let mut at_end = fetch_request(id, "", vec![fetch_partition(0, 8, i32::MAX)]);
    at_end.max_wait_ms = 0;
    let response = do_fetch(&mut client, 16, &at_end);
    let p = single_partition(&response, id);
    assert_eq!((p.error_code, p.high_watermark), (0, 8));
    assert_eq!(p.records.as_deref().unwrap_or_default(), b"");
    for offset in [9, 1000] {
        let request = fetch_request(id, "", vec![fetch_partition(0, offset, i32::MAX)]);
        let response = do_fetch(&mut client, 16, &request);
        let p = single_partition(&response, id);
        assert_eq!(p.error_code, 1, "offset {offset}");
        assert_eq!(p.records.as_deref().unwrap_or_default(), b"");
    }
}

/// A partition_max_bytes (or max_bytes) smaller than the first batch still returns that batch
/// whole, and only it; otherwise only whole batches that fit are returned.
#[test]
fn fetch_max_bytes_returns_whole_batches() {
    let spec = TopicSpec::new("sizes", 1, 1);
    let id = spec.id;
    let broker = start_with_topics_and_logs(
        "fetch-max-bytes",
        vec![spec],
        vec![("sizes", 0, four_batches())],
    );
    let batches = four_batches();
    let (first, second) = (batches[0].len() as i32, batches[1].len() as i32);
    let mut client = broker.connect();
    for (limit, expected) in [
        (1, 1),
        (first - 1, 1),
        (first, 1),
        (first + second - 1, 1),
        (first + second, 2),
    ] {
        let request = fetch_request(id, "", vec![fetch_partition(0, 0, limit)]);
        let response = do_fetch(&mut client, 16, &request);
        let p = single_partition(&response, id);
        assert_eq!(
            p.records.as_deref(),
            Some(&batches[..expected].concat()[..]),
            "partition_max_bytes {limit}"
        );
        let mut request = fetch_request(id, "", vec![fetch_partition(0, 0, i32::MAX)]);
        request.max_bytes = limit;
        let response = do_fetch(&mut client, 16, &request);
        let p = single_partition(&response, id);
        assert_eq!(
            p.records.as_deref(),
            Some(&batches[..expected].concat()[..]),
            "max_bytes {limit}"
        );
    }
}

/// A fetch on an empty partition with max_wait_ms 2000 and min_bytes 1 answers with the records
/// a produce from another connection appends while it waits.
#[test]
fn fetch_waits_for_a_produce_from_another_connection() {
    let spec = TopicSpec::new("waiting", 1, 1);
    let id = spec.id;
    let broker = start_with_topics("fetch-long-poll", vec![spec]);
    let addr = broker.addr;
    let fetcher = std::thread::spawn(move || {
        let mut request = fetch_request(id, "", vec![fetch_partition(0, 0, i32::MAX)]);
        request.max_wait_ms = 2000;
        do_fetch(&mut Client::connect(addr), 16, &request)
    });
    std::thread::sleep(Duration::from_millis(300));
    let batch = batch_of(0, &["late", "arrival"]);
    let response = do_produce(
        &mut broker.connect(),
        11,
        &produce_request(-1, &[("waiting", 0, batch.clone())]),
    );
    assert_appended(partition_result(&response, "waiting", 0), 0);
    let response = fetcher.join().unwrap();
    let p = single_partition(&response, id);
    assert_eq!(p.error_code, 0);
    assert_eq!(
        p.records.as_deref(),
        Some(&batch[..]),
        "the fetch returns what was produced while it waited"
    );
}

/// Fetch v11 (topics by name, non-flexible, response header v0) and v12 (by name, flexible).
#[test]
fn fetch_v11_and_v12_by_topic_name() {
    let spec = TopicSpec::new("named", 1, 2);
    let broker = start_with_topics_and_logs(
        "fetch-by-name",
        vec![spec],
        vec![("named", 1, four_batches())],
    );
    let mut client = broker.connect();
    for version in [11, 12] {
        let request = fetch_request(
            Uuid::ZERO,
            "named",
            vec![
                fetch_partition(1, 0, i32::MAX),
                fetch_partition(0, 0, i32::MAX),
            ],
        );
        let response = do_fetch(&mut client, version, &request);
        assert_eq!((response.error_code, response.session_id), (0, 0));
        assert_eq!(response.responses.len(), 1);
        assert_eq!(response.responses[0].topic, "named");
        let partitions = &response.responses[0].partitions;
        assert_eq!(partitions.len(), 2);
        assert_eq!(
            (
                partitions[0].partition_index,
                partitions[0].error_code,
                partitions[0].high_watermark
            ),
            (1, 0, 8)
        );
        assert_eq!(
            partitions[0].records.as_deref(),
            Some(&four_batches().concat()[..]),
            "v{version}"
        );
        assert_eq!(
            (partitions[1].partition_index, partitions[1].error_code),
            (0, 0)
        );
        assert_eq!(partitions[1].records.as_deref().unwrap_or_default(), b"");

        let request = fetch_request(
            Uuid::ZERO,
            "no-such-topic",
            vec![fetch_partition(0, 0, i32::MAX)],
        );
        let response = do_fetch(&mut client, version, &request);
        assert_eq!(response.responses[0].topic, "no-such-topic");
        assert_eq!(
            response.responses[0].partitions[0].error_code, 3,
            "v{version}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Produce (xz1, zf2, gg1, ls8, yd8, ct4, ov0)
// ---------------------------------------------------------------------------------------------

/// A Produce request with acks, timeout 30000 (as the tester sends) and one records field per
/// (topic, partition), grouped by topic in order of first appearance.
fn produce_request(acks: i16, parts: &[(&str, i32, Vec<u8>)]) -> produce::ProduceRequest {
    let mut topic_data: Vec<produce::TopicProduceData> = Vec::new();
    for (topic, index, records) in parts {
        let partition = produce::PartitionProduceData {
            index: *index,
            records: Some(records.clone()),
        };
        match topic_data.iter_mut().find(|t| t.name == *topic) {
            Some(t) => t.partition_data.push(partition),
            None => topic_data.push(produce::TopicProduceData {
                name: topic.to_string(),
                partition_data: vec![partition],
            }),
        }
    }
    produce::ProduceRequest {
        transactional_id: None,
        acks,
        timeout_ms: 30000,
        topic_data,
    }
}

fn do_produce(
    client: &mut Client,
    version: i16,
    request: &produce::ProduceRequest,
) -> produce::ProduceResponse {
    call(
        client,
        produce::API_KEY,
        version,
        |e| request.encode(e, version),
        produce::ProduceResponse::decode,
    )
}

/// The answer for one partition, found by topic name and partition index as the tester does
/// (real Kafka may reorder them). Each must appear exactly once.
fn partition_result<'a>(
    response: &'a produce::ProduceResponse,
    topic: &str,
    index: i32,
) -> &'a produce::PartitionProduceResponse {
    let found: Vec<_> = response
        .responses
        .iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| t.partition_responses.iter().filter(|p| p.index == index))
        .collect();
    assert_eq!(found.len(), 1, "{topic}-{index} in {response:?}");
    found[0]
}

fn assert_appended(p: &produce::PartitionProduceResponse, base_offset: i64) {
    assert_eq!(
        (
            p.error_code,
            p.base_offset,
            p.log_append_time_ms,
            p.log_start_offset
        ),
        (0, base_offset, -1, 0),
        "partition {}: error, base offset, log append time, log start offset",
        p.index
    );
}

fn assert_refused(p: &produce::PartitionProduceResponse, error_code: i16) {
    assert_eq!(
        (
            p.error_code,
            p.base_offset,
            p.log_append_time_ms,
            p.log_start_offset
        ),
        (error_code, -1, -1, -1),
        "partition {}: error, base offset, log append time, log start offset",
        p.index
    );
}

/// The response covers exactly the requested topics and partitions, with throttle 0.
fn assert_covers(response: &produce::ProduceResponse, parts: &[(&str, i32, Vec<u8>)]) {
    assert_eq!(response.throttle_time_ms, 0);
    let mut listed: Vec<(String, i32)> = response
        .responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (t.name.clone(), p.index))
        })
        .collect();
    let mut asked: Vec<(String, i32)> = parts.iter().map(|(t, p, _)| (t.to_string(), *p)).collect();
    listed.sort();
    asked.sort();
    assert_eq!(listed, asked);
}

/// xz1: ApiVersions lists Produce with a max of at least 11.
#[test]
fn xz1_api_versions_lists_produce() {
    let broker = TestBroker::start("xz1");
    let response = call(
        &mut broker.connect(),
        api_versions::API_KEY,
        4,
        api_versions_body(4),
        api_versions::ApiVersionsResponse::decode,
    );
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == 0)
        .expect("Produce listed");
    assert!(produce.min_version <= 11 && produce.max_version >= 11);
}

/// zf2, replayed: a known topic with an unknown partition (720), then an unknown topic, each
/// answered with error 3 and -1 offsets; nothing is written.
#[test]
fn zf2_replay_produce_to_unknown_partition_and_topic() {
    let broker = start_with_topics("zf2", vec![TopicSpec::new("orange", 1, 1)]);
    let mut client = broker.connect();
    let unknown_partition = hex("
        0000 | 00 00 00 78 00 00 00 0b 47 b3 69 78 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 ff ff 00 00
        0020 | 75 30 02 07 6f 72 61 6e 67 65 02 00 00 02 d0 4a
        0030 | 00 00 00 00 00 00 00 00 00 00 00 3d 00 00 00 00
        0040 | 02 72 bc 4a b0 00 00 00 00 00 00 00 00 01 91 e0
        0050 | 5b 6d 8b 00 00 01 91 e0 5b 6d 8b 00 00 00 00 00
        0060 | 00 00 00 00 00 00 00 00 00 00 00 00 01 16 00 00
        0070 | 00 01 0a 6d 61 6e 67 6f 00 00 00 00
    ");
    let expected = hex("
        0000 | 00 00 00 35 47 b3 69 78 00 02 07 6f 72 61 6e 67
        0010 | 65 02 00 00 02 d0 00 03 ff ff ff ff ff ff ff ff
        0020 | ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff
        0030 | 01 00 00 00 00 00 00 00 00
    ");
    assert_eq!(client.round_trip(&unknown_partition), expected);
    let unknown_topic = hex("
        0000 | 00 00 00 75 00 00 00 0b 27 11 57 36 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 ff ff 00 00
        0020 | 75 30 02 05 70 65 61 72 02 00 00 00 00 49 00 00
        0030 | 00 00 00 00 00 00 00 00 00 3c 00 00 00 00 02 74
        0040 | be 71 fd 00 00 00 00 00 00 00 00 01 91 e0 5b 6d
        0050 | 8b 00 00 01 91 e0 5b 6d 8b 00 00 00 00 00 00 00
        0060 | 00 00 00 00 00 00 00 00 00 00 01 14 00 00 00 01
        0070 | 08 70 65 61 72 00 00 00 00
    ");
    let expected = hex("
        0000 | 00 00 00 33 27 11 57 36 00 02 05 70 65 61 72 02
        0010 | 00 00 00 00 00 03 ff ff ff ff ff ff ff ff ff ff
        0020 | ff ff ff ff ff ff ff ff ff ff ff ff ff ff 01 00
        0030 | 00 00 00 00 00 00 00
    ");
    assert_eq!(client.round_trip(&unknown_topic), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
    assert_eq!(read_partition_log(&broker.log_dir, "orange", 0), b"");
    assert!(!broker.log_dir.join("orange-720").exists());
    assert!(!broker.log_dir.join("pear-0").exists());
}

/// gg1, replayed: one record to a known topic; the recorded answer, and the batch in the file.
#[test]
fn gg1_replay_produce_one_record() {
    let broker = start_with_topics("gg1", vec![TopicSpec::new("apple", 1, 1)]);
    let request = hex("
        0000 | 00 00 00 77 00 00 00 0b 51 7f 2d 86 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 ff ff 00 00
        0020 | 75 30 02 06 61 70 70 6c 65 02 00 00 00 00 4a 00
        0030 | 00 00 00 00 00 00 00 00 00 00 3d 00 00 00 00 02
        0040 | a4 37 a6 ee 00 00 00 00 00 00 00 00 01 91 e0 5b
        0050 | 6d 8b 00 00 01 91 e0 5b 6d 8b 00 00 00 00 00 00
        0060 | 00 00 00 00 00 00 00 00 00 00 00 01 16 00 00 00
        0070 | 01 0a 61 70 70 6c 65 00 00 00 00
    ");
    let expected = hex("
        0000 | 00 00 00 34 51 7f 2d 86 00 02 06 61 70 70 6c 65
        0010 | 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ff
        0020 | ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00 01
        0030 | 00 00 00 00 00 00 00 00
    ");
    // The records field: 73 bytes after its compact length 4a.
    let batch = request[0x2f..0x2f + 73].to_vec();
    assert_eq!(
        batch,
        tester_batch(0, &[b"apple"]),
        "tester_batch encodes like the tester"
    );
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
    assert_eq!(read_partition_log(&broker.log_dir, "apple", 0), batch);
}

/// ls8, replayed: produce one record, check the file, then fetch it back by topic id.
#[test]
fn ls8_replay_produce_then_fetch() {
    let topic_id = uuid("71a59a51-8968-4f8b-937e-49379a7e97cc");
    let broker = start_with_topics(
        "ls8",
        vec![
            TopicSpec::new("grape", 1, 2),
            TopicSpec::with_id("pineapple", topic_id, 1),
        ],
    );
    let request = hex("
        0000 | 00 00 00 7b 00 00 00 0b 7b 4d 6d 13 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 ff ff 00 00
        0020 | 75 30 02 0a 70 69 6e 65 61 70 70 6c 65 02 00 00
        0030 | 00 00 4a 00 00 00 00 00 00 00 00 00 00 00 3d 00
        0040 | 00 00 00 02 a4 37 a6 ee 00 00 00 00 00 00 00 00
        0050 | 01 91 e0 5b 6d 8b 00 00 01 91 e0 5b 6d 8b 00 00
        0060 | 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
        0070 | 16 00 00 00 01 0a 61 70 70 6c 65 00 00 00 00
    ");
    let expected = hex("
        0000 | 00 00 00 38 7b 4d 6d 13 00 02 0a 70 69 6e 65 61
        0010 | 70 70 6c 65 02 00 00 00 00 00 00 00 00 00 00 00
        0020 | 00 00 00 ff ff ff ff ff ff ff ff 00 00 00 00 00
        0030 | 00 00 00 01 00 00 00 00 00 00 00 00
    ");
    let batch = request[0x33..0x33 + 73].to_vec();
    let mut client = broker.connect();
    assert_eq!(client.round_trip(&request), expected);
    assert_eq!(read_partition_log(&broker.log_dir, "pineapple", 0), batch);

    let fetch_request = hex("
        0000 | 00 00 00 63 00 01 00 10 7b 4d 6d 13 00 0c 6b 61
        0010 | 66 6b 61 2d 74 65 73 74 65 72 00 00 00 01 f4 00
        0020 | 00 00 01 7f ff ff ff 00 00 00 00 00 00 00 00 00
        0030 | 02 71 a5 9a 51 89 68 4f 8b 93 7e 49 37 9a 7e 97
        0040 | cc 02 00 00 00 00 ff ff ff ff 00 00 00 00 00 00
        0050 | 00 00 ff ff ff ff ff ff ff ff ff ff ff ff 7f ff
        0060 | ff ff 00 00 01 01 00
    ");
    // Real Kafka's answer (the hexdump shows its first 0x67 bytes): high watermark and last
    // stable offset 1, log start 0, null aborted transactions, no preferred replica, the batch.
    let mut expected = hex("
        0000 | 00 00 00 91 7b 4d 6d 13 00 00 00 00 00 00 00 00
        0010 | 00 00 00 02 71 a5 9a 51 89 68 4f 8b 93 7e 49 37
        0020 | 9a 7e 97 cc 02 00 00 00 00 00 00 00 00 00 00 00
        0030 | 00 00 01 00 00 00 00 00 00 00 01 00 00 00 00 00
        0040 | 00 00 00 00 ff ff ff ff 4a
    ");
    expected.extend(&batch);
    expected.extend(hex("00 00 00"));
    assert_eq!(client.round_trip(&fetch_request), expected);
    client.assert_no_more_bytes(QUIET_WAIT);
}

/// zf2 with the codec: unknown topic and unknown partitions (also negative), each error 3 with
/// -1/-1/-1, and nothing written.
#[test]
fn produce_to_unknown_topic_or_partition() {
    let broker = start_with_topics("produce-unknown", vec![TopicSpec::new("known", 1, 2)]);
    let mut client = broker.connect();
    let batch = batch_of(0, &["apple"]);
    for (topic, partition) in [("known", 2), ("known", 999), ("known", -1), ("unknown", 0)] {
        let parts = [(topic, partition, batch.clone())];
        let response = do_produce(&mut client, 11, &produce_request(-1, &parts));
        assert_covers(&response, &parts);
        assert_refused(partition_result(&response, topic, partition), 3);
    }
    assert!(!broker.log_dir.join("unknown-0").exists());
    assert!(!broker.log_dir.join("known-2").exists());
    assert_eq!(read_partition_log(&broker.log_dir, "known", 0), b"");
    assert_eq!(read_partition_log(&broker.log_dir, "known", 1), b"");
}

/// gg1/ls8/yd8 with the codec: one record, then several records in one batch, each the first
/// produce to its (empty) partition, stored verbatim.
#[test]
fn produce_one_and_several_records() {
    let mut rng = Rng::new("produce-records");
    let broker = start_with_topics(
        "produce-records",
        vec![
            TopicSpec::new("single", 1, 1),
            TopicSpec::new("several", 2, 1),
        ],
    );
    let mut client = broker.connect();
    for (topic, words) in [
        ("single", vec!["apple"]),
        ("several", random_words(&mut rng, 3, 5)),
    ] {
        let batch = batch_of(0, &words);
        let parts = [(topic, 0, batch.clone())];
        let response = do_produce(&mut client, 11, &produce_request(-1, &parts));
        assert_covers(&response, &parts);
        assert_appended(partition_result(&response, topic, 0), 0);
        assert_eq!(
            read_partition_log(&broker.log_dir, topic, 0),
            batch,
            "{topic}"
        );
    }
}

/// ct4: one topic, several partitions, 2-3 records each, in one request.
#[test]
fn ct4_produce_to_several_partitions() {
    let mut rng = Rng::new("ct4");
    let partitions = rng.range(2, 5) as i32;
    let broker = start_with_topics("ct4", vec![TopicSpec::new("fruit", 1, partitions)]);
    let mut order: Vec<i32> = (0..partitions).collect();
    rng.shuffle(&mut order);
    let parts: Vec<(&str, i32, Vec<u8>)> = order
        .iter()
        .map(|&p| ("fruit", p, batch_of(0, &random_words(&mut rng, 2, 3))))
        .collect();
    let response = do_produce(&mut broker.connect(), 11, &produce_request(-1, &parts));
    assert_covers(&response, &parts);
    for (topic, partition, batch) in &parts {
        assert_appended(partition_result(&response, topic, *partition), 0);
        assert_eq!(
            &read_partition_log(&broker.log_dir, topic, *partition),
            batch,
            "{topic}-{partition}"
        );
    }
}

/// ov0: several topics, each with several partitions, all in one request.
#[test]
fn ov0_produce_to_several_topics() {
    let mut rng = Rng::new("ov0");
    let names = ["alpha", "beta", "gamma"];
    let counts: Vec<i32> = names.iter().map(|_| rng.range(1, 4) as i32).collect();
    let specs = names
        .iter()
        .zip(&counts)
        .enumerate()
        .map(|(i, (n, &c))| TopicSpec::new(n, i as u8 + 1, c))
        .collect();
    let broker = start_with_topics("ov0", specs);
    let mut parts: Vec<(&str, i32, Vec<u8>)> = Vec::new();
    for (name, &count) in names.iter().zip(&counts) {
        for p in 0..count {
            parts.push((name, p, batch_of(0, &random_words(&mut rng, 1, 3))));
        }
    }
    let response = do_produce(&mut broker.connect(), 11, &produce_request(-1, &parts));
    assert_covers(&response, &parts);
    for (topic, partition, batch) in &parts {
        assert_appended(partition_result(&response, topic, *partition), 0);
        assert_eq!(
            &read_partition_log(&broker.log_dir, topic, *partition),
            batch,
            "{topic}-{partition}"
        );
    }
}

/// A second produce continues each partition's offsets on its own: the response's base offset
/// and the base offset written into the file are the partition's log end offset.
#[test]
fn produce_offsets_continue_per_partition() {
    let spec = TopicSpec::new("counting", 1, 2);
    let id = spec.id;
    let broker = start_with_topics("produce-offsets", vec![spec]);
    let mut client = broker.connect();
    let first = [
        ("counting", 0, batch_of(0, &["a", "b"])),
        ("counting", 1, batch_of(0, &["c"])),
    ];
    let response = do_produce(&mut client, 11, &produce_request(-1, &first));
    assert_appended(partition_result(&response, "counting", 0), 0);
    assert_appended(partition_result(&response, "counting", 1), 0);
    let second = [
        ("counting", 1, batch_of(0, &["d", "e", "f"])),
        ("counting", 0, batch_of(0, &["g"])),
    ];
    let response = do_produce(&mut client, 11, &produce_request(-1, &second));
    assert_appended(partition_result(&response, "counting", 0), 2);
    assert_appended(partition_result(&response, "counting", 1), 1);
    let third = [("counting", 0, batch_of(0, &["h", "i"]))];
    let response = do_produce(&mut client, 11, &produce_request(-1, &third));
    assert_appended(partition_result(&response, "counting", 0), 3);

    let p0 = [
        first[0].2.clone(),
        at_offset(&second[1].2, 2),
        at_offset(&third[0].2, 3),
    ]
    .concat();
    let p1 = [first[1].2.clone(), at_offset(&second[0].2, 1)].concat();
    assert_eq!(read_partition_log(&broker.log_dir, "counting", 0), p0);
    assert_eq!(read_partition_log(&broker.log_dir, "counting", 1), p1);

    // Fetch by topic id sees the same bytes, and starts at the batch holding the offset.
    let request = fetch_request(
        id,
        "",
        vec![
            fetch_partition(0, 0, i32::MAX),
            fetch_partition(1, 1, i32::MAX),
        ],
    );
    let response = do_fetch(&mut client, 16, &request);
    let partitions = &response.responses[0].partitions;
    assert_eq!(
        (partitions[0].error_code, partitions[0].high_watermark),
        (0, 5)
    );
    assert_eq!(partitions[0].records.as_deref(), Some(&p0[..]));
    assert_eq!(
        (partitions[1].error_code, partitions[1].high_watermark),
        (0, 4)
    );
    assert_eq!(
        partitions[1].records.as_deref(),
        Some(&at_offset(&second[0].2, 1)[..])
    );
}

/// acks=0: no response at all, but the batch is written; the next request on the same
/// connection is answered (and is the first thing read back).
#[test]
fn produce_with_acks_0_writes_without_answering() {
    let broker = start_with_topics("produce-acks-0", vec![TopicSpec::new("quiet", 1, 1)]);
    let mut client = broker.connect();
    let batch = batch_of(0, &["shh"]);
    let request = produce_request(0, &[("quiet", 0, batch.clone())]);
    client.send_with_correlation_id(produce::API_KEY, 11, 1111, |e| request.encode(e, 11));
    client.assert_no_more_bytes(Duration::from_millis(500));
    let deadline = Instant::now() + Duration::from_secs(10);
    while read_partition_log(&broker.log_dir, "quiet", 0) != batch {
        assert!(
            Instant::now() < deadline,
            "the acks=0 batch was never written"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    client.send_with_correlation_id(api_versions::API_KEY, 4, 2222, api_versions_body(4));
    assert_eq!(client.receive(), expected_api_versions_v4_frame(2222)[4..]);
    client.assert_no_more_bytes(QUIET_WAIT);
    // The log end offset moved: the next produce gets offset 1.
    let response = do_produce(
        &mut client,
        11,
        &produce_request(-1, &[("quiet", 0, batch_of(0, &["again"]))]),
    );
    assert_appended(partition_result(&response, "quiet", 0), 1);
}

/// acks other than -1, 0 and 1 is INVALID_REQUIRED_ACKS (21) for every partition; nothing is
/// written.
#[test]
fn produce_with_invalid_acks_is_error_21() {
    let broker = start_with_topics("produce-acks-5", vec![TopicSpec::new("acks", 1, 2)]);
    let mut client = broker.connect();
    for acks in [5, 2, -2] {
        let parts = [
            ("acks", 0, batch_of(0, &["x"])),
            ("acks", 1, batch_of(0, &["y"])),
        ];
        let response = do_produce(&mut client, 11, &produce_request(acks, &parts));
        assert_covers(&response, &parts);
        assert_refused(partition_result(&response, "acks", 0), 21);
        assert_refused(partition_result(&response, "acks", 1), 21);
    }
    assert_eq!(read_partition_log(&broker.log_dir, "acks", 0), b"");
    assert_eq!(read_partition_log(&broker.log_dir, "acks", 1), b"");
    // acks=1 is valid.
    let response = do_produce(
        &mut client,
        11,
        &produce_request(1, &[("acks", 0, batch_of(0, &["z"]))]),
    );
    assert_appended(partition_result(&response, "acks", 0), 0);
}

/// Kafka checks in this order (`KafkaApis.handleProduceRequest`, then
/// `ReplicaManager.appendRecords`): unknown topic or partition (3), then the request-level record
/// checks of `ProduceRequest.validateRecords` (87: not exactly one magic-2 batch), and only for
/// the partitions left, the acks value (21). So with acks=5 an unknown partition still gets 3.
#[test]
fn produce_with_invalid_acks_still_reports_unknown_partitions_and_invalid_records() {
    let broker = start_with_topics("produce-acks-order", vec![TopicSpec::new("acks", 1, 2)]);
    let parts = [
        ("acks", 0, batch_of(0, &["valid"])),
        (
            "acks",
            1,
            [batch_of(0, &["one"]), batch_of(0, &["two"])].concat(),
        ),
        ("acks", 9, batch_of(0, &["nowhere"])),
        ("missing", 0, batch_of(0, &["nobody"])),
    ];
    let response = do_produce(&mut broker.connect(), 11, &produce_request(5, &parts));
    assert_covers(&response, &parts);
    assert_refused(partition_result(&response, "acks", 0), 21);
    assert_refused(partition_result(&response, "acks", 1), 87);
    assert_refused(partition_result(&response, "acks", 9), 3);
    assert_refused(partition_result(&response, "missing", 0), 3);
}

/// With acks=0 the producer reads no response, so Kafka closes the connection when any partition
/// fails (`KafkaApis.handleProduceRequest`: "the server will close socket server so that the
/// producer client will know that some error has happened and will refresh its metadata"). The
/// good partitions of the request are still written.
#[test]
fn produce_with_acks_0_closes_the_connection_when_a_partition_fails() {
    let broker = start_with_topics("produce-acks-0-error", vec![TopicSpec::new("quiet", 1, 1)]);
    let batch = batch_of(0, &["kept"]);
    let request = produce_request(
        0,
        &[
            ("quiet", 0, batch.clone()),
            ("missing", 0, batch_of(0, &["lost"])),
        ],
    );
    let mut client = broker.connect();
    client.send_with_correlation_id(produce::API_KEY, 11, 3333, |e| request.encode(e, 11));
    client.assert_closed();
    assert_eq!(read_partition_log(&broker.log_dir, "quiet", 0), batch);
}

/// Invalid batches are refused with Kafka's codes and nothing is written: a CRC mismatch is
/// CORRUPT_MESSAGE (2); magic 1, a client base offset other than 0, two batches in one records
/// field, and a record count that contradicts last_offset_delta are INVALID_RECORD (87).
#[test]
fn produce_refuses_invalid_batches() {
    let broker = start_with_topics("produce-invalid", vec![TopicSpec::new("strict", 1, 1)]);
    let mut client = broker.connect();
    let good = batch_of(0, &["apple", "banana"]);

    let mut bad_crc = good.clone();
    corrupt_records(&mut bad_crc);
    let mut magic_1 = good.clone();
    magic_1[16] = 1;
    let nonzero_base = at_offset(&good, 5);
    let two_batches = [batch_of(0, &["one"]), batch_of(0, &["two"])].concat();
    let mut count_mismatch = good.clone();
    count_mismatch[23..27].copy_from_slice(&0i32.to_be_bytes());
    recompute_crc(&mut count_mismatch);
    let mut count_mismatch_2 = batch_of(0, &["apple"]);
    count_mismatch_2[23..27].copy_from_slice(&4i32.to_be_bytes());
    recompute_crc(&mut count_mismatch_2);

    for (what, records, code) in [
        ("no batch at all", Vec::new(), 87),
        ("corrupt CRC", bad_crc, 2),
        ("magic 1", magic_1, 87),
        ("client base offset 5", nonzero_base, 87),
        ("two batches", two_batches, 87),
        ("2 records, last_offset_delta 0", count_mismatch, 87),
        ("1 record, last_offset_delta 4", count_mismatch_2, 87),
    ] {
        let response = do_produce(
            &mut client,
            11,
            &produce_request(-1, &[("strict", 0, records)]),
        );
        let p = partition_result(&response, "strict", 0);
        assert_eq!(p.error_code, code, "{what}");
        assert_refused(p, code);
        assert_eq!(
            read_partition_log(&broker.log_dir, "strict", 0),
            b"",
            "{what}: nothing written"
        );
    }
    let response = do_produce(
        &mut client,
        11,
        &produce_request(-1, &[("strict", 0, good.clone())]),
    );
    assert_appended(partition_result(&response, "strict", 0), 0);
    assert_eq!(read_partition_log(&broker.log_dir, "strict", 0), good);
}

/// A bad partition never fails the good ones in the same request.
#[test]
fn produce_bad_partition_does_not_fail_good_ones() {
    let broker = start_with_topics(
        "produce-mixed",
        vec![TopicSpec::new("mixed", 1, 3), TopicSpec::new("other", 2, 1)],
    );
    let good_0 = batch_of(0, &["apple"]);
    let mut corrupt = batch_of(0, &["banana"]);
    corrupt_records(&mut corrupt);
    let good_2 = batch_of(0, &["cherry", "grape"]);
    let good_other = batch_of(0, &["kiwi"]);
    let parts = [
        ("mixed", 0, good_0.clone()),
        ("mixed", 1, corrupt),
        ("mixed", 2, good_2.clone()),
        ("mixed", 7, batch_of(0, &["nowhere"])),
        ("missing", 0, batch_of(0, &["nobody"])),
        ("other", 0, good_other.clone()),
    ];
    let response = do_produce(&mut broker.connect(), 11, &produce_request(-1, &parts));
    assert_covers(&response, &parts);
    assert_appended(partition_result(&response, "mixed", 0), 0);
    assert_refused(partition_result(&response, "mixed", 1), 2);
    assert_appended(partition_result(&response, "mixed", 2), 0);
    assert_refused(partition_result(&response, "mixed", 7), 3);
    assert_refused(partition_result(&response, "missing", 0), 3);
    assert_appended(partition_result(&response, "other", 0), 0);
    assert_eq!(read_partition_log(&broker.log_dir, "mixed", 0), good_0);
    assert_eq!(read_partition_log(&broker.log_dir, "mixed", 1), b"");
    assert_eq!(read_partition_log(&broker.log_dir, "mixed", 2), good_2);
    assert_eq!(read_partition_log(&broker.log_dir, "other", 0), good_other);
}

/// ls8/yd8 with the codec: what was produced comes back from a Fetch v16 by topic id.
#[test]
fn produce_then_fetch_by_topic_id() {
    let mut rng = Rng::new("produce-fetch");
    let spec = TopicSpec::new("roundtrip", 1, 1);
    let id = spec.id;
    let broker = start_with_topics("produce-fetch", vec![spec]);
    let mut client = broker.connect();
    let words = random_words(&mut rng, 3, 4);
    let batch = batch_of(0, &words);
    let response = do_produce(
        &mut client,
        11,
        &produce_request(-1, &[("roundtrip", 0, batch.clone())]),
    );
    assert_appended(partition_result(&response, "roundtrip", 0), 0);
    let response = do_fetch(&mut client, 16, &tester_fetch(id));
    let p = single_partition(&response, id);
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (0, words.len() as i64, 0)
    );
    assert_eq!(p.records.as_deref(), Some(&batch[..]));
}

/// Produce v0-v2 (advertised so that old librdkafka enables compression; clients send v3+),
/// v3, v7 and v9 are answered in their own layouts, and append like v11.
#[test]
fn produce_versions_0_to_3_7_9_and_11() {
    let broker = start_with_topics("produce-versions", vec![TopicSpec::new("versions", 1, 1)]);
    let mut client = broker.connect();
    let mut expected_log = Vec::new();
    for (offset, version) in [0, 1, 2, 3, 7, 9, 11].into_iter().enumerate() {
        let batch = batch_of(0, &[&format!("v{version}")]);
        let parts = [("versions", 0, batch.clone())];
        let response = do_produce(&mut client, version, &produce_request(-1, &parts));
        assert_covers(&response, &parts);
        let p = partition_result(&response, "versions", 0);
        assert_eq!(
            (p.error_code, p.base_offset, p.log_append_time_ms),
            (0, offset as i64, -1),
            "v{version}"
        );
        if version >= 5 {
            assert_eq!(p.log_start_offset, 0, "v{version}");
        }
        expected_log.extend(at_offset(&batch, offset as i64));
        assert_eq!(
            read_partition_log(&broker.log_dir, "versions", 0),
            expected_log,
            "v{version}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: each closes its own connection and never disturbs anyone else
// ---------------------------------------------------------------------------------------------

/// Asserts the broker still serves a fresh connection and one opened before the trouble.
fn assert_still_serving(broker: &mut TestBroker, bystander: &mut Client) {
    assert!(broker.is_running(), "the broker process exited");
    for client in [bystander, &mut broker.connect()] {
        client.send_with_correlation_id(api_versions::API_KEY, 4, 77, api_versions_body(4));
        assert_eq!(client.receive(), expected_api_versions_v4_frame(77)[4..]);
    }
    broker.assert_no_panics();
}

/// A negative frame size closes that connection; others are still served.
#[test]
fn negative_frame_size_closes_the_connection() {
    let mut broker = TestBroker::start("bad-negative-size");
    let mut bystander = broker.connect();
    for size in [-1i32, i32::MIN, -100] {
        let mut client = broker.connect();
        client.send_raw(&size.to_be_bytes());
        client.assert_closed();
    }
    assert_still_serving(&mut broker, &mut bystander);
}

/// A frame larger than socket.request.max.bytes is refused before it is read, and closes the
/// connection; a frame of exactly the limit is still read.
#[test]
fn frame_larger_than_socket_request_max_bytes_closes_the_connection() {
    let mut broker = TestBroker::start_with(
        "bad-large-frame",
        |_| {},
        &["socket.request.max.bytes=1024"],
    );
    let mut bystander = broker.connect();
    for size in [1025i32, 1 << 20, i32::MAX] {
        let mut client = broker.connect();
        client.send_raw(&size.to_be_bytes());
        client.assert_closed();
    }
    // An ApiVersions v0 request padded to exactly 1024 bytes is within the limit and answered
    // (ApiVersions v0 has an empty body; Kafka ignores what follows a request).
    let mut frame = request_frame(api_versions::API_KEY, 0, 1024, |_| {});
    frame.resize(4 + 1024, 0);
    frame[..4].copy_from_slice(&1024i32.to_be_bytes());
    let mut client = broker.connect();
    client.send_raw(&frame);
    assert_eq!(client.receive()[..4], 1024i32.to_be_bytes());
    assert_still_serving(&mut broker, &mut bystander);
}

/// With the default limit (100 MiB) a huge declared size is refused without allocating it.
#[test]
fn huge_frame_size_with_default_limit_closes_the_connection() {
    let mut broker = TestBroker::start("bad-huge-frame");
    let mut bystander = broker.connect();
    let mut client = broker.connect();
    client.send_raw(&i32::MAX.to_be_bytes());
    client.assert_closed();
    assert_still_serving(&mut broker, &mut bystander);
}

/// An API key sprat does not serve closes the connection, as Kafka does.
#[test]
fn unknown_api_key_closes_the_connection() {
    let mut broker = TestBroker::start("bad-api-key");
    let mut bystander = broker.connect();
    for key in [1000i16, -1, i16::MAX, 9999] {
        let mut client = broker.connect();
        client.send_raw(&request_frame(key, 0, 5, |e| e.i32(0)));
        client.assert_closed();
    }
    assert_still_serving(&mut broker, &mut bystander);
}

/// A version outside an API's supported range closes the connection (only ApiVersions answers
/// with error 35 instead).
#[test]
fn unsupported_versions_close_the_connection() {
    let mut broker = TestBroker::start_with(
        "bad-version",
        |dir| write_cluster_metadata(dir, &[TopicSpec::new("t", 1, 1)]),
        &[],
    );
    let mut bystander = broker.connect();
    let fetch_v3 = fetch_request(Uuid::ZERO, "t", vec![fetch_partition(0, 0, 1024)]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Fetch v3",
            request_frame(fetch::API_KEY, 3, 1, |e| fetch_v3.encode(e, 3)),
        ),
        (
            "Fetch v18",
            request_frame(fetch::API_KEY, 18, 2, |e| fetch_v3.encode(e, 17)),
        ),
        (
            "Produce v12",
            request_frame(produce::API_KEY, 12, 4, |e| {
                produce_request(-1, &[]).encode(e, 11)
            }),
        ),
        (
            "DescribeTopicPartitions v1",
            request_frame(dtp::API_KEY, 1, 5, |e| {
                dtp_request(&["t"], 1, None).encode(e, 0)
            }),
        ),
        (
            "DescribeTopicPartitions v-1",
            request_frame(dtp::API_KEY, -1, 6, |e| {
                dtp_request(&["t"], 1, None).encode(e, 0)
            }),
        ),
    ];
    for (what, frame) in cases {
        let mut client = broker.connect();
        client.send_raw(&frame);
        client.assert_closed();
        assert!(broker.is_running(), "{what}");
    }
    assert_still_serving(&mut broker, &mut bystander);
}

/// Truncated input closes the connection: a body that ends inside a field, a frame shorter than
/// a request header, and a frame whose declared size is never delivered.
#[test]
fn truncated_requests_close_the_connection() {
    let mut broker = TestBroker::start_with(
        "bad-truncated",
        |dir| write_cluster_metadata(dir, &[TopicSpec::new("t", 1, 1)]),
        &[],
    );
    let mut bystander = broker.connect();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Each request cut short by a few bytes, with the size prefix adjusted to match.
    let dtp_full = request_frame(dtp::API_KEY, 0, 1, |e| {
        dtp_request(&["t", "u"], 10, None).encode(e, 0)
    });
    let fetch_full = request_frame(fetch::API_KEY, 16, 2, |e| {
        tester_fetch(Uuid::ZERO).encode(e, 16)
    });
    let produce_full = request_frame(produce::API_KEY, 11, 3, |e| {
        produce_request(-1, &[("t", 0, batch_of(0, &["x"]))]).encode(e, 11)
    });
    let api_versions_full = request_frame(api_versions::API_KEY, 4, 4, api_versions_body(4));
    for (what, full) in [
        ("DescribeTopicPartitions", dtp_full),
        ("Fetch", fetch_full),
        ("Produce", produce_full),
        ("ApiVersions v4", api_versions_full),
    ] {
        for cut in [1usize, 3, 10] {
            let mut frame = full[..full.len() - cut].to_vec();
            let size = (frame.len() - 4) as i32;
            frame[..4].copy_from_slice(&size.to_be_bytes());
            cases.push((what, frame));
        }
    }
    // Shorter than the fixed part of a header.
    cases.push(("3-byte frame", hex("00 00 00 03 00 12 00")));
    cases.push(("empty frame", hex("00 00 00 00")));
    // A client id whose length runs past the frame.
    cases.push((
        "client id too long",
        hex("00 00 00 0a 00 12 00 00 00 00 00 01 00 09"),
    ));
    for (what, frame) in cases {
        let mut client = broker.connect();
        client.send_raw(&frame);
        client.assert_closed();
        assert!(broker.is_running(), "{what}");
    }
    // The size promises 100 bytes, 10 arrive, then the client stops sending.
    let mut client = broker.connect();
    client.send_raw(&[&100i32.to_be_bytes()[..], &[0u8; 10]].concat());
    client.stream.shutdown(Shutdown::Write).unwrap();
    client.assert_closed();
    assert_still_serving(&mut broker, &mut bystander);
}

/// Random bytes, and valid headers followed by random bodies, never crash the broker or any of
/// its threads; clients that behave are served throughout.
#[test]
fn random_garbage_never_crashes_the_broker() {
    let mut rng = Rng::new("garbage");
    let mut broker = TestBroker::start_with(
        "bad-garbage",
        |dir| write_cluster_metadata(dir, &[TopicSpec::new("t", 1, 2)]),
        &["socket.request.max.bytes=65536"],
    );
    let mut bystander = broker.connect();
    let apis: Vec<(i16, i16, i16)> = SUPPORTED_APIS
        .iter()
        .map(|a| (a.key, a.min_version, a.max_version))
        .collect();
    for round in 0..120 {
        let bytes = match round % 3 {
            // Pure noise, sometimes with a plausible size prefix.
            0 => {
                let len = rng.range(1, 200) as usize;
                let mut bytes = rng.bytes(len);
                if rng.range(0, 2) == 0 && bytes.len() > 4 {
                    let size = (bytes.len() - 4) as i32;
                    bytes[..4].copy_from_slice(&size.to_be_bytes());
                }
                bytes
            }
            // A valid header for a supported (API, version), then a random body.
            _ => {
                let (key, min, max) = apis[rng.range(0, apis.len() as i64) as usize];
                let version = rng.range(min as i64, max as i64 + 1) as i16;
                let len = rng.range(0, 120) as usize;
                let body = rng.bytes(len);
                request_frame(key, version, round, |e| e.raw(&body))
            }
        };
        let mut stream = TcpStream::connect(broker.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        // The broker may close before everything is written; that is fine.
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stream, &mut sink);
        assert!(
            broker.is_running(),
            "round {round} crashed the broker with {bytes:02x?}"
        );
    }
    assert_still_serving(&mut broker, &mut bystander);
    // Nothing reached the partition logs.
    assert_eq!(read_partition_log(&broker.log_dir, "t", 0), b"");
    assert_eq!(read_partition_log(&broker.log_dir, "t", 1), b"");
}

/// The tester's batches carry producer id 0, epoch 0, sequence 0, so Kafka treats them as coming
/// from an idempotent producer: the same batch sent again is a retry, answered with its original
/// offset and not appended; a different batch restarting at sequence 0 is out of order (45).
#[test]
fn tester_batches_are_checked_as_idempotent_retries() {
    let broker = start_with_topics("idempotent-retry", vec![TopicSpec::new("retry", 9, 1)]);
    let mut client = broker.connect();
    let once = tester_batch(0, &[b"apple"]);
    let request = produce_request(-1, &[("retry", 0, once.clone())]);
    assert_appended(
        partition_result(&do_produce(&mut client, 11, &request), "retry", 0),
        0,
    );
    let again = do_produce(&mut client, 11, &request);
    assert_appended(partition_result(&again, "retry", 0), 0);
    let gap = produce_request(-1, &[("retry", 0, tester_batch(0, &[b"kiwi", b"fig"]))]);
    let response = do_produce(&mut client, 11, &gap);
    assert_eq!(partition_result(&response, "retry", 0).error_code, 45);
    assert_eq!(
        read_partition_log(&broker.log_dir, "retry", 0),
        once,
        "nothing appended twice"
    );
}
