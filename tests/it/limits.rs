//! Connection limits and timeouts: `connections.max.idle.ms`, `max.connections.per.ip`,
//! `max.connections` (also changed at run time, with `max.connections.per.ip.overrides`), and the cost of many idle connections (one thread each).

use crate::harness::{Client, TestBroker, plain_batch};
use crate::storage::{create_topic, fetched, produce_with};
use sprat::protocol::messages::api_versions::{self, ApiVersionsRequest, ApiVersionsResponse};
use std::fs;
use std::time::{Duration, Instant};

/// How many idle connections the broker must hold while it serves other clients.
const IDLE_CONNECTIONS: usize = 2000;

/// A generous bound on the broker's resident memory with [`IDLE_CONNECTIONS`] idle connections:
/// each costs a thread whose stack is mostly untouched, and a connection holds no buffer while it
/// waits for a frame.
const IDLE_CONNECTIONS_MAX_RSS_KIB: u64 = 512 * 1024;

fn api_versions_works(broker: &TestBroker) {
    api_versions_answers(&mut broker.connect());
}

fn api_versions_answers(client: &mut Client) {
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

/// Whether a new connection is served: it answers ApiVersions, or is closed at once.
fn accepted(broker: &TestBroker) -> Option<Client> {
    // Give the acceptor time to count the connections already made.
    std::thread::sleep(Duration::from_millis(200));
    let mut client = broker.connect();
    if client.is_closed() {
        return None;
    }
    api_versions_answers(&mut client);
    Some(client)
}

#[test]
fn connection_limits_change_live_with_incremental_alter_configs() {
    const BROKER: i8 = 4;
    const SET: i8 = 0;
    const DELETE: i8 = 1;
    const INVALID_CONFIG: i16 = 40;
    let broker = TestBroker::start("limits-live");
    let mut admin = broker.connect();
    let _second = accepted(&broker).expect("no limit by default");
    let mut alter = |changes: Vec<(&str, i8, Option<&str>)>| {
        let r = crate::alter::incremental(&mut admin, 1, vec![(BROKER, "", changes)], false);
        (r[0].1, r[0].2.clone())
    };
    // Two connections are open from this address: the limit is lowered to two.
    assert_eq!(alter(vec![("max.connections.per.ip", SET, Some("2"))]).0, 0);
    assert!(
        accepted(&broker).is_none(),
        "the third is over max.connections.per.ip"
    );
    // An override for this address lets one more in.
    let (code, message) = alter(vec![(
        "max.connections.per.ip.overrides",
        SET,
        Some("127.0.0.1:3"),
    )]);
    assert_eq!(code, 0, "{message:?}");
    let third = accepted(&broker).expect("the override allows three");
    assert!(accepted(&broker).is_none(), "a fourth is over the override");
    let bad = alter(vec![(
        "max.connections.per.ip.overrides",
        SET,
        Some("127.0.0.1"),
    )]);
    assert_eq!(bad.0, INVALID_CONFIG, "{bad:?}");
    // max.connections counts every address.
    assert_eq!(
        alter(vec![
            ("max.connections.per.ip.overrides", DELETE, None),
            ("max.connections.per.ip", DELETE, None),
            ("max.connections", SET, Some("3")),
        ])
        .0,
        0
    );
    assert!(accepted(&broker).is_none(), "over max.connections");
    drop(third);
    let _again = accepted(&broker).expect("a place was freed");
    // Raised back: accepted again.
    assert_eq!(alter(vec![("max.connections", DELETE, None)]).0, 0);
    let _more = accepted(&broker).expect("no limit again");
    broker.assert_no_panics();
}

/// A numeric field of `/proc/<pid>/status`, such as `Threads` or `VmRSS` (in KiB).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// This process's soft limit on open files, which the broker it starts inherits.
fn open_files_soft_limit() -> u64 {
    let limits = fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft = line["Max open files".len()..].split_whitespace().next();
    match soft {
        Some("unlimited") => u64::MAX,
        Some(n) => n.parse().unwrap(),
        None => panic!("unreadable /proc/self/limits line {line:?}"),
    }
}

/// How many of the broker's threads serve a connection (named `conn-<peer>`).
pub fn connection_threads(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("conn-"))
        .count() as u64
}

/// Polls the broker's connection threads until `done` holds for their count, or 60 seconds
/// pass. (Counting all threads would also count the broker's short-lived ones.)
pub fn wait_for_threads(pid: u32, what: &str, done: impl Fn(u64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let threads = connection_threads(pid);
        if done(threads) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: the broker has {threads} connection threads"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// 2,000 idle connections are all accepted (max.connections is unlimited by default), each with
/// its own thread, while other clients are served as usual; the broker's memory stays small,
/// and the threads go away with their connections. The figures are printed for the record
/// (`cargo test --test it idle_connections -- --nocapture`).
#[test]
fn two_thousand_idle_connections_are_held_while_others_are_served() {
    // This process holds one end of every connection and the broker the other, under the limit
    // it inherits from this process. std cannot raise the limit (it has no setrlimit), so the
    // test says what to do instead.
    let needed = IDLE_CONNECTIONS as u64 + 100;
    let limit = open_files_soft_limit();
    assert!(
        limit >= needed,
        "this test needs an open-files limit of at least {needed}, and it is {limit}: run `ulimit -n {needed}` first"
    );
    let broker = TestBroker::start("idle-connections");
    let pid = broker.pid();
    let threads_before = proc_status(pid, "Threads");
    let rss_before_kib = proc_status(pid, "VmRSS");
    let started = Instant::now();
    let mut idle: Vec<Client> = Vec::with_capacity(IDLE_CONNECTIONS);
    while idle.len() < IDLE_CONNECTIONS {
        // Connect in steps that fit the listen backlog (128, std's), waiting for the acceptor to
        // start their threads: a faster burst overflows the backlog, and the kernel then drops
        // SYNs that the client only resends a second later.
        let step = (IDLE_CONNECTIONS - idle.len()).min(100);
        idle.extend((0..step).map(|_| broker.connect()));
        let opened = idle.len() as u64;
        wait_for_threads(pid, "a thread per idle connection", |n| n >= opened);
    }
    let threads = proc_status(pid, "Threads");
    let accepted_after = started.elapsed();

    api_versions_works(&broker);
    let mut client = broker.connect();
    create_topic(&mut client, "served-while-idle", 1, &[]);
    let batch = plain_batch(0, &[b"served", b"while", b"2000 connections idle"]);
    assert_eq!(
        produce_with(&mut client, "served-while-idle", 0, &batch, -1),
        (0, 0)
    );
    assert_eq!(
        fetched(&mut client, "served-while-idle", 0, i32::MAX),
        batch
    );

    let rss_kib = proc_status(pid, "VmRSS");
    println!(
        "{IDLE_CONNECTIONS} idle connections opened in steps of 100 and accepted in {:.2} s: broker VmRSS {} KiB ({} KiB before), {threads} threads ({threads_before} before)",
        accepted_after.as_secs_f64(),
        rss_kib,
        rss_before_kib
    );
    assert!(
        rss_kib < IDLE_CONNECTIONS_MAX_RSS_KIB,
        "VmRSS {rss_kib} KiB with {IDLE_CONNECTIONS} idle connections"
    );
    // The first, the last and every 50th idle connection still answer.
    let last = idle.len() - 1;
    for (i, c) in idle.iter_mut().enumerate() {
        if i % 50 == 0 || i == last {
            api_versions_answers(c);
        }
    }

    drop(idle);
    drop(client);
    // The broker's own threads may number a few more or fewer than when they were first counted
    // (one may still have been starting then); the connection threads must all be gone.
    wait_for_threads(pid, "the connection threads to exit", |n| n == 0);
}
