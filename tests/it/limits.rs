//! Connection limits and timeouts: `connections.max.idle.ms`, `max.connections.per.ip`,
//! `max.connections`.

use crate::harness::TestBroker;
use sprat::protocol::messages::api_versions::{self, ApiVersionsRequest, ApiVersionsResponse};

fn api_versions_works(broker: &TestBroker) {
    let mut client = broker.connect();
    let response = client.call(
        api_versions::API_KEY,
        3,
        |e| {
            ApiVersionsRequest {
                client_software_name: "limits".into(),
                client_software_version: "1".into(),
            }
            .encode(e, 3)
        },
        ApiVersionsResponse::decode,
    );
    assert_eq!(response.error_code, 0);
}

#[test]
fn idle_connection_is_dropped_and_others_still_served() {
    let broker = TestBroker::start_with("idle", |_| {}, &["connections.max.idle.ms=300"]);
    let mut idle = broker.connect();
    assert!(
        idle.is_closed(),
        "an idle connection is closed after connections.max.idle.ms"
    );
    // A client that stops halfway through a frame is dropped the same way.
    let mut stalled = broker.connect();
    stalled.send_raw(&[0, 0, 0, 40, 0, 18, 0]);
    assert!(stalled.is_closed());
    api_versions_works(&broker);
}

#[test]
fn connections_over_the_per_ip_limit_are_refused() {
    let broker = TestBroker::start_with("per-ip", |_| {}, &["max.connections.per.ip=2"]);
    let first = broker.connect();
    let _second = broker.connect();
    // Give the acceptor time to count both before the third arrives.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut third = broker.connect();
    assert!(
        third.is_closed(),
        "the third connection from one address is closed at once"
    );
    drop(first);
    std::thread::sleep(std::time::Duration::from_millis(200));
    api_versions_works(&broker);
}

#[test]
fn connections_over_the_total_limit_are_refused() {
    let broker = TestBroker::start_with("total", |_| {}, &["max.connections=1"]);
    let held = broker.connect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut refused = broker.connect();
    assert!(refused.is_closed());
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(200));
    api_versions_works(&broker);
}
