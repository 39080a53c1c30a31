//! Tests of `scripts/kafka-raw`, the operator's hand tool: each runs the script against a real
//! broker (or, for the failure paths, against a socket that misbehaves on purpose) and checks what
//! it prints and how it exits.

use crate::harness::{TestBroker, TopicSpec, write_cluster_metadata};
use sprat::storage::record_batch::{Batches, decode_records};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The script's documented exit codes.
const EXIT_USAGE: i32 = 1;
const EXIT_CONNECT: i32 = 2;
const EXIT_SHORT_READ: i32 = 3;
const EXIT_TIMEOUT: i32 = 4;

/// ApiVersions v4, correlation id 7, client id "kafka-cli", client software "kafka-cli" "0.1".
const API_VERSIONS_V4_HEX: &str =
    "001200040000000700096b61666b612d636c69000a6b61666b612d636c6904302e3100";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join("kafka-raw")
}

/// What one run of the script produced.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, 0, "kafka-raw failed\n{self}");
    }

    fn assert_contains(&self, text: &str) {
        assert!(self.stdout.contains(text), "output lacks {text:?}\n{self}");
    }

    /// The bytes of the od-style dump that follows the line starting with `title` (lines in
    /// between, such as a request's one-line summary, are skipped).
    fn dump_after(&self, title: &str) -> Vec<u8> {
        let lines = self
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1);
        let mut bytes = Vec::new();
        let mut in_dump = false;
        for line in lines {
            // A dump line opens with a six-digit hex offset; the bytes end where ">text<" starts.
            let is_dump = line.len() >= 6 && line[..6].bytes().all(|b| b.is_ascii_hexdigit());
            if !is_dump {
                if in_dump {
                    break;
                }
                continue;
            }
            in_dump = true;
            let hex = line[6..].split("  >").next().unwrap();
            bytes.extend(
                hex.split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).unwrap()),
            );
        }
        bytes
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the script against `addr` with `args`.
fn kafka_raw(addr: SocketAddr, args: &[&str]) -> Run {
    let output = Command::new(script())
        .arg("--bootstrap")
        .arg(addr.to_string())
        .args(args)
        .env_remove("KAFKA_RAW_BOOTSTRAP")
        .output()
        .expect("run scripts/kafka-raw");
    Run::from(output)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A broker with topic `orders` (one partition) in its metadata log.
fn broker_with_orders(name: &str) -> (TestBroker, TopicSpec) {
    let topic = TopicSpec::new("orders", 0x31, 1);
    let spec = TopicSpec::new("orders", 0x31, 1);
    let broker = TestBroker::start_with(name, |dir| write_cluster_metadata(dir, &[spec]), &[]);
    (broker, topic)
}

/// A local port nobody listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

#[test]
fn api_versions_shows_error_0_and_key_18() {
    let broker = TestBroker::start("kafka-raw-api-versions");
    for version in ["4", "3", "0"] {
        let run = kafka_raw(
            broker.addr,
            &[
                "api-versions",
                "--version",
                version,
                "--correlation-id",
                "42",
            ],
        );
        run.assert_ok();
        run.assert_contains(&format!(
            "ApiVersions v{version} (api key 18), correlation id 42"
        ));
        // ApiVersions answers with response header v0 whatever the version.
        run.assert_contains("response header (v0):");
        run.assert_contains("correlation_id: 42");
        run.assert_contains("error_code: 0 (NONE)");
        let row = run.stdout.lines().find(|l| {
            l.trim_end().ends_with("ApiVersions") && l.split_whitespace().next() == Some("18")
        });
        let row = row.unwrap_or_else(|| panic!("no api key 18 row\n{run}"));
        let columns: Vec<_> = row.split_whitespace().collect();
        assert_eq!(columns[1], "0", "min version of ApiVersions\n{run}");
        assert!(
            columns[2].parse::<i16>().unwrap() >= 4,
            "max version of ApiVersions\n{run}"
        );
    }
}

#[test]
fn api_versions_of_an_unknown_version_decodes_the_v0_fallback() {
    let broker = TestBroker::start("kafka-raw-api-versions-unsupported");
    let run = kafka_raw(broker.addr, &["api-versions", "--version", "99"]);
    run.assert_ok();
    run.assert_contains("error_code: 35 (UNSUPPORTED_VERSION)");
}

#[test]
fn hex_mode_round_trips() {
    let broker = TestBroker::start("kafka-raw-hex");
    let run = kafka_raw(broker.addr, &["hex", API_VERSIONS_V4_HEX]);
    run.assert_ok();
    // The frame sent is the given bytes behind a size prefix the tool added.
    let body = unhex(API_VERSIONS_V4_HEX);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(&body);
    assert_eq!(run.dump_after("request to "), frame, "{run}");
    run.assert_contains("client id \"kafka-cli\"");
    // The response dump is one whole frame: a size prefix and that many bytes, correlation id 7.
    let response = run.dump_after("response: ");
    assert!(response.len() > 8, "{run}");
    assert_eq!(
        u32::from_be_bytes(response[..4].try_into().unwrap()) as usize,
        response.len() - 4
    );
    assert_eq!(&response[4..8], &7i32.to_be_bytes());
    run.assert_contains("error_code: 0 (NONE)");
}

#[test]
fn hex_mode_patches_correlation_id_and_client_id() {
    let broker = TestBroker::start("kafka-raw-hex-patch");
    let spaced: String = API_VERSIONS_V4_HEX
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let run = kafka_raw(
        broker.addr,
        &[
            "hex",
            &spaced,
            "--correlation-id",
            "1234",
            "--client-id",
            "ops",
        ],
    );
    run.assert_ok();
    run.assert_contains("correlation id 1234, client id \"ops\"");
    run.assert_contains("correlation_id: 1234");
    let request = run.dump_after("request to ");
    assert!(contains(&request, b"\x00\x03ops\x00"), "{run}");
}

/// The header of this request declares a 10-byte client id but holds 9 bytes ("kafka-cli"), so the
/// broker cannot read it and closes the connection: the tool must call that a short read.
#[test]
fn hex_mode_reports_short_read_when_broker_closes() {
    let broker = TestBroker::start("kafka-raw-hex-malformed");
    let malformed = "0012000400000007000a6b61666b612d636c69000a6b61666b612d636c6904302e3100";
    let run = kafka_raw(broker.addr, &["hex", malformed]);
    assert_eq!(run.code, EXIT_SHORT_READ, "{run}");
    assert!(run.stderr.contains("short read"), "{run}");
    // The summary shows the client id the broker would read, NUL included.
    run.assert_contains("client id hex 6b61666b612d636c6900");
}

#[test]
fn produce_then_fetch_by_topic_id_shows_the_values() {
    let (broker, topic) = broker_with_orders("kafka-raw-produce-fetch");
    let produce = kafka_raw(
        broker.addr,
        &[
            "produce",
            "--topic",
            "orders",
            "--partition",
            "0",
            "--value",
            "hello-sprat",
            "--value",
            "second",
        ],
    );
    produce.assert_ok();
    produce.assert_contains("Produce v11 (api key 0)");
    produce.assert_contains("response header (v1):");
    produce.assert_contains("header_tagged_fields: 0");
    produce.assert_contains("error_code: 0 (NONE)");
    produce.assert_contains("base_offset: 0");

    // The batch the script built is in the log as sent, and valid: length, magic and CRC-32C.
    let log = std::fs::read(
        broker
            .log_dir
            .join("orders-0")
            .join("00000000000000000000.log"),
    )
    .unwrap();
    let batches: Vec<_> = Batches::new(&log).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    batch.validate().expect("kafka-raw's batch is valid");
    assert_eq!(batch.base_offset(), 0);
    assert_eq!(batch.records_count(), 2);
    assert_eq!(batch.last_offset_delta(), 1);
    let values: Vec<_> = decode_records(batch)
        .unwrap()
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, [b"hello-sprat".to_vec(), b"second".to_vec()]);
    // The produce request carried exactly these bytes (base offset 0, as the client sent it),
    // except the partition leader epoch, which the broker stamps (0) and the CRC does not cover.
    assert_eq!(batch.partition_leader_epoch(), 0);
    let mut as_sent = batch.bytes().to_vec();
    sprat::storage::record_batch::set_partition_leader_epoch(&mut as_sent, -1);
    assert!(contains(&produce.dump_after("request to "), &as_sent));

    // Kafka's base64 form and 32 hex digits name the same topic.
    for id in [topic.id.to_string(), hex(&topic.id.0)] {
        let fetch = kafka_raw(
            broker.addr,
            &[
                "fetch",
                "--topic-id",
                &id,
                "--partition",
                "0",
                "--offset",
                "0",
            ],
        );
        fetch.assert_ok();
        fetch.assert_contains("Fetch v16 (api key 1)");
        fetch.assert_contains(&format!("topic_id: {}", topic.id));
        fetch.assert_contains("error_code: 0 (NONE)");
        fetch.assert_contains("high_watermark: 2");
        fetch.assert_contains("crc");
        fetch.assert_contains("(ok)");
        fetch.assert_contains("record: offset 0, key null, value \"hello-sprat\"");
        fetch.assert_contains("record: offset 1, key null, value \"second\"");
        let response = fetch.dump_after("response: ");
        assert!(
            contains(&response, b"hello-sprat"),
            "value bytes in the dump\n{fetch}"
        );
        assert!(
            contains(&response, batch.bytes()),
            "the stored batch in the dump\n{fetch}"
        );
        assert!(!fetch.stdout.contains("error_code: 100"), "{fetch}");
    }
}

#[test]
fn fetch_by_name_uses_version_12() {
    let (broker, _) = broker_with_orders("kafka-raw-fetch-name");
    kafka_raw(
        broker.addr,
        &[
            "produce",
            "--topic",
            "orders",
            "--version",
            "8",
            "--value",
            "v8",
        ],
    )
    .assert_ok();
    let run = kafka_raw(broker.addr, &["fetch", "--topic", "orders"]);
    run.assert_ok();
    run.assert_contains("Fetch v12 (api key 1)");
    run.assert_contains("topic: orders");
    run.assert_contains("value \"v8\"");
}

#[test]
fn produce_with_key_and_binary_value() {
    let (broker, _) = broker_with_orders("kafka-raw-produce-binary");
    let run = kafka_raw(
        broker.addr,
        &[
            "produce",
            "--topic",
            "orders",
            "--key",
            "k1",
            "--value-hex",
            "00ff10",
            "--version",
            "9",
        ],
    );
    run.assert_ok();
    run.assert_contains("error_code: 0 (NONE)");
    let fetch = kafka_raw(broker.addr, &["fetch", "--topic", "orders"]);
    fetch.assert_ok();
    fetch.assert_contains("key \"k1\", value hex 00ff10");
}

#[test]
fn produce_with_acks_0_expects_no_response() {
    let (broker, _) = broker_with_orders("kafka-raw-acks-0");
    let run = kafka_raw(
        broker.addr,
        &[
            "produce", "--topic", "orders", "--acks", "0", "--value", "quiet",
        ],
    );
    run.assert_ok();
    run.assert_contains("no response (acks=0)");
    assert!(!run.stdout.contains("response: "), "{run}");
}

#[test]
fn produce_to_an_unknown_topic_shows_the_error() {
    let broker = TestBroker::start("kafka-raw-produce-unknown");
    let run = kafka_raw(broker.addr, &["produce", "--topic", "nope", "--value", "x"]);
    run.assert_ok();
    run.assert_contains("error_code: 3 (UNKNOWN_TOPIC_OR_PARTITION)");
}

#[test]
fn describe_topic_partitions_lists_the_topic() {
    let (broker, topic) = broker_with_orders("kafka-raw-describe");
    let run = kafka_raw(
        broker.addr,
        &[
            "describe-topic-partitions",
            "orders",
            "missing",
            "--limit",
            "10",
        ],
    );
    run.assert_ok();
    run.assert_contains("DescribeTopicPartitions v0 (api key 75)");
    run.assert_contains("response header (v1):");
    run.assert_contains("topic: orders");
    run.assert_contains(&format!(
        "topic_id: {} (hex {})",
        topic.id,
        hex(&topic.id.0)
    ));
    run.assert_contains("partition: 0");
    run.assert_contains("leader_id: 1");
    run.assert_contains("topic: missing");
    run.assert_contains("error_code: 3 (UNKNOWN_TOPIC_OR_PARTITION)");
    let orders = run.stdout.split("topic: orders").nth(1).unwrap();
    let first_error = orders.lines().find(|l| l.contains("error_code")).unwrap();
    assert!(first_error.contains("0 (NONE)"), "{run}");
}

#[test]
fn bootstrap_comes_from_the_environment() {
    let broker = TestBroker::start("kafka-raw-env");
    let output = Command::new(script())
        .arg("api-versions")
        .env("KAFKA_RAW_BOOTSTRAP", broker.addr.to_string())
        .output()
        .unwrap();
    let run = Run::from(output);
    run.assert_ok();
    run.assert_contains(&format!("request to {}:", broker.addr.ip()));
}

#[test]
fn connection_failure_exits_with_a_message() {
    let run = kafka_raw(closed_port(), &["api-versions"]);
    assert_eq!(run.code, EXIT_CONNECT, "{run}");
    assert!(run.stderr.contains("cannot connect to 127.0.0.1:"), "{run}");
}

#[test]
fn short_response_exits_with_a_message() {
    // A fake broker that announces 100 bytes, sends 3 and hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4];
        std::io::Read::read_exact(&mut stream, &mut request).unwrap();
        stream.write_all(&[0, 0, 0, 100, 0, 0, 0]).unwrap();
    });
    let run = kafka_raw(addr, &["api-versions"]);
    server.join().unwrap();
    assert_eq!(run.code, EXIT_SHORT_READ, "{run}");
    assert!(run.stderr.contains("short read"), "{run}");
    run.assert_contains("response (incomplete, 7 bytes):");
}

#[test]
fn silent_broker_times_out() {
    // Connections complete in the listen backlog, but nobody ever answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let run = kafka_raw(addr, &["api-versions", "--timeout", "1"]);
    drop(listener);
    assert_eq!(run.code, EXIT_TIMEOUT, "{run}");
    assert!(run.stderr.contains("timed out after 1s"), "{run}");
}

#[test]
fn usage_errors_and_help() {
    let addr = closed_port();
    let help = kafka_raw(addr, &["--help"]);
    help.assert_ok();
    for text in [
        "api-versions",
        "describe-topic-partitions",
        "fetch",
        "produce",
        "hex",
        "Examples:",
    ] {
        help.assert_contains(text);
    }
    for args in [
        &["fetch"][..],
        &["fetch", "--topic", "orders", "--version", "16"],
        &["fetch", "--topic-id", "not-an-id"],
        &["produce", "--value", "x"],
        &["hex", "123"],
        &["hex", "00120004", "--version", "4"],
        &["api-versions", "--topic", "orders"],
        &["frobnicate"],
        &[],
    ] {
        let run = kafka_raw(addr, args);
        assert_eq!(run.code, EXIT_USAGE, "{args:?}\n{run}");
        assert!(run.stderr.contains("kafka-raw: "), "{args:?}\n{run}");
    }
}
