//! Several named listeners: each is bound, and Metadata and FindCoordinator answer with the
//! advertised address of the listener the request arrived on. Listeners of a security protocol
//! sprat does not serve are refused at start-up, naming the listener.

use crate::harness::{Client, TestBroker, temp_dir};
use sprat::protocol::messages::{find_coordinator as fc, metadata as md};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

/// A port that was free a moment ago (the listener that found it is closed again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn broker_address(client: &mut Client) -> (String, i32) {
    let response = client.call(
        md::API_KEY,
        12,
        |e| md::MetadataRequest::default().encode(e, 12),
        md::MetadataResponse::decode,
    );
    assert_eq!(response.brokers.len(), 1);
    let broker = &response.brokers[0];
    (broker.host.clone(), broker.port)
}

fn coordinator_address(client: &mut Client) -> (String, i32) {
    let request = fc::FindCoordinatorRequest {
        key: "group-1".into(),
        ..fc::FindCoordinatorRequest::default()
    };
    let response = client.call(
        fc::API_KEY,
        3,
        |e| request.encode(e, 3),
        fc::FindCoordinatorResponse::decode,
    );
    assert_eq!(response.error_code, 0);
    (response.host, response.port)
}

#[test]
fn each_listener_answers_with_its_own_advertised_address() {
    let external = free_port();
    let internal = free_port();
    let listeners = format!(
        "listeners=PLAINTEXT://127.0.0.1:{external},INTERNAL://127.0.0.1:{internal},CONTROLLER://:9093"
    );
    let advertised = format!(
        "advertised.listeners=PLAINTEXT://localhost:{external},INTERNAL://internal.test:{internal}"
    );
    let broker = TestBroker::start_with(
        "listeners_advertised",
        |_| {},
        &[
            &listeners,
            &advertised,
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:plaintext,CONTROLLER:PLAINTEXT",
        ],
    );
    assert_eq!(
        broker.addr.port(),
        external,
        "the first listener is the one logged"
    );
    let mut outside = broker.connect();
    let inside_addr: SocketAddr = format!("127.0.0.1:{internal}").parse().unwrap();
    let mut inside = Client::connect(inside_addr);
    let expected_outside = ("localhost".to_string(), i32::from(external));
    let expected_inside = ("internal.test".to_string(), i32::from(internal));
    assert_eq!(broker_address(&mut outside), expected_outside);
    assert_eq!(broker_address(&mut inside), expected_inside);
    assert_eq!(coordinator_address(&mut inside), expected_inside);
    assert_eq!(coordinator_address(&mut outside), expected_outside);
    broker.assert_no_panics();
}

#[test]
fn a_listener_without_advertised_address_advertises_itself() {
    let second = free_port();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,REPLICATION://127.0.0.1:{second}");
    let broker = TestBroker::start_with(
        "listeners_self_advertised",
        |_| {},
        &[
            &listeners,
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT",
        ],
    );
    let mut client = Client::connect(format!("127.0.0.1:{second}").parse().unwrap());
    assert_eq!(
        broker_address(&mut client),
        ("127.0.0.1".to_string(), i32::from(second))
    );
    let mut first = broker.connect();
    assert_eq!(
        broker_address(&mut first),
        ("127.0.0.1".to_string(), i32::from(broker.addr.port()))
    );
}

/// Runs sprat on a configuration that must be refused and returns its stderr.
pub(crate) fn refused_start(name: &str, lines: &[&str]) -> String {
    let dir = temp_dir(name);
    let config = dir.join("server.properties");
    let mut text = format!("log.dirs={}\n", dir.join("logs").display());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    fs::write(&config, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sprat"))
        .arg(&config)
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&dir);
    assert!(!output.status.success(), "sprat started on {lines:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_listener_without_a_security_protocol_is_refused() {
    let stderr = refused_start(
        "listeners_unmapped",
        &["listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0"],
    );
    assert!(
        stderr.contains("listener.security.protocol.map") && stderr.contains("INTERNAL"),
        "{stderr}"
    );
}

#[test]
fn an_ssl_listener_without_a_keystore_is_refused_at_start_up() {
    let stderr = refused_start(
        "listeners_ssl_without_keystore",
        &["listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"],
    );
    assert!(
        stderr.contains("listener SSL") && stderr.contains("ssl.keystore.location"),
        "{stderr}"
    );
}
