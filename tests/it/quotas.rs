//! Client quotas: AlterClientQuotas 0-1 and DescribeClientQuotas 0-1 on the wire, with Kafka's
//! validation and filters, kept across `kill -9`; and `producer_byte_rate` /
//! `consumer_byte_rate` enforced through `throttle_time_ms` (the harness's client id is
//! `sprat-test`).

use crate::groups::create_topic;
use crate::harness::{Client, TestBroker, plain_batch, produce_batch};

/// Produces `batch` to q-0 with Produce `version`; returns (error, throttle_time_ms).
fn produce(client: &mut Client, version: i16, batch: &[u8]) -> (i16, i32) {
    let (code, _, throttle) = produce_batch(client, version, "q", 0, batch);
    (code, throttle)
}
use sprat::protocol::messages::{alter_client_quotas as acq, describe_client_quotas as dcq, fetch};

const NONE: i16 = 0;
const INVALID_REQUEST: i16 = 42;

type Entity<'a> = &'a [(&'a str, Option<&'a str>)];

/// An AlterClientQuotas entry: its entity and (key, value, remove) operations.
type Entry<'a> = (Entity<'a>, &'a [(&'a str, f64, bool)]);

fn alter(
    client: &mut Client,
    version: i16,
    entries: &[Entry<'_>],
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let request = acq::AlterClientQuotasRequest {
        entries: entries
            .iter()
            .map(|(entity, ops)| acq::EntryData {
                entity: entity
                    .iter()
                    .map(|(t, n)| acq::EntityData {
                        entity_type: t.to_string(),
                        entity_name: n.map(String::from),
                    })
                    .collect(),
                ops: ops
                    .iter()
                    .map(|(k, v, remove)| acq::OpData {
                        key: k.to_string(),
                        value: *v,
                        remove: *remove,
                    })
                    .collect(),
            })
            .collect(),
        validate_only,
    };
    let response = client.call(
        acq::API_KEY,
        version,
        |e| request.encode(e, version),
        acq::AlterClientQuotasResponse::decode,
    );
    assert_eq!(response.entries.len(), entries.len());
    response
        .entries
        .into_iter()
        .map(|e| (e.error_code, e.error_message))
        .collect()
}

/// (entity, values) pairs, the entities with fewer types first.
type Described = Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)>;

fn describe(
    client: &mut Client,
    version: i16,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Result<Described, (i16, String)> {
    let request = dcq::DescribeClientQuotasRequest {
        components: components
            .iter()
            .map(|(t, m, name)| dcq::ComponentData {
                entity_type: t.to_string(),
                match_type: *m,
                match_: name.map(String::from),
            })
            .collect(),
        strict,
    };
    let response = client.call(
        dcq::API_KEY,
        version,
        |e| request.encode(e, version),
        dcq::DescribeClientQuotasResponse::decode,
    );
    if response.error_code != NONE {
        return Err((
            response.error_code,
            response.error_message.unwrap_or_default(),
        ));
    }
    let mut out: Described = response
        .entries
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.entity
                    .into_iter()
                    .map(|x| (x.entity_type, x.entity_name))
                    .collect(),
                e.values.into_iter().map(|v| (v.key, v.value)).collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
    Ok(out)
}

fn entity(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    pairs
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(String::from)))
        .collect()
}

#[test]
fn quotas_are_stored_described_and_kept() {
    let mut broker = TestBroker::start("client-quotas");
    let mut client = broker.connect();
    let results = alter(
        &mut client,
        0,
        &[
            (
                &[("client-id", Some("a"))],
                &[("producer_byte_rate", 1024.0, false)],
            ),
            (
                &[("client-id", None)],
                &[("consumer_byte_rate", 2048.0, false)],
            ),
            (
                &[("user", Some("alice")), ("client-id", Some("a"))],
                &[("request_percentage", 50.0, false)],
            ),
            (
                &[("ip", Some("10.0.0.1"))],
                &[("connection_creation_rate", 5.0, false)],
            ),
        ],
        false,
    );
    assert!(results.iter().all(|r| r.0 == NONE), "{results:?}");
    // Kafka's refusals, entry by entry.
    let refused = alter(
        &mut client,
        1,
        &[
            (
                &[("client-id", Some("b"))],
                &[("producer_byte_rate", 10.5, false)],
            ),
            (
                &[("client-id", Some("b"))],
                &[("no_such_quota", 1.0, false)],
            ),
            (
                &[("ip", Some("not-an-ip"))],
                &[("connection_creation_rate", 1.0, false)],
            ),
            (
                &[("group", Some("g"))],
                &[("producer_byte_rate", 1.0, false)],
            ),
            (
                &[("client-id", Some("c"))],
                &[("producer_byte_rate", 100.0, false)],
            ),
        ],
        false,
    );
    let codes: Vec<i16> = refused.iter().map(|r| r.0).collect();
    assert_eq!(
        codes,
        [
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            NONE
        ]
    );
    assert_eq!(
        refused[0].1.as_deref(),
        Some("Configuration producer_byte_rate must be a LONG value")
    );
    // validate_only stores nothing.
    let checked = alter(
        &mut client,
        1,
        &[(
            &[("client-id", Some("d"))],
            &[("producer_byte_rate", 1.0, false)],
        )],
        true,
    );
    assert_eq!(checked[0].0, NONE);

    for version in [0i16, 1] {
        let exact = describe(&mut client, version, &[("client-id", 0, Some("a"))], false).unwrap();
        assert_eq!(
            exact,
            [
                (
                    entity(&[("client-id", Some("a"))]),
                    vec![("producer_byte_rate".into(), 1024.0)]
                ),
                (
                    entity(&[("client-id", Some("a")), ("user", Some("alice"))]),
                    vec![("request_percentage".into(), 50.0)]
                ),
            ],
            "v{version}: not strict, so the user+client entity matches too"
        );
        let strict = describe(&mut client, version, &[("client-id", 0, Some("a"))], true).unwrap();
        assert_eq!(strict.len(), 1);
        let default = describe(&mut client, version, &[("client-id", 1, None)], true).unwrap();
        assert_eq!(
            default,
            [(
                entity(&[("client-id", None)]),
                vec![("consumer_byte_rate".into(), 2048.0)]
            )]
        );
        let specified = describe(&mut client, version, &[("client-id", 2, None)], true).unwrap();
        let names: Vec<_> = specified.iter().map(|(e, _)| e[0].1.clone()).collect();
        assert_eq!(names, [Some("a".to_string()), Some("c".to_string())]);
        let all = describe(&mut client, version, &[], false).unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        let bad = describe(&mut client, version, &[("client-id", 0, None)], false);
        assert_eq!(bad.unwrap_err().0, INVALID_REQUEST);
    }

    // Removing a key removes the entity once it has none.
    let removed = alter(
        &mut client,
        1,
        &[(
            &[("client-id", Some("c"))],
            &[("producer_byte_rate", 0.0, true)],
        )],
        false,
    );
    assert_eq!(removed[0].0, NONE);
    broker.kill_and_restart();
    let mut client = broker.connect();
    let all = describe(&mut client, 1, &[], false).unwrap();
    assert_eq!(all.len(), 4, "kept across kill -9: {all:?}");
    broker.assert_no_panics();
}

fn fetch_throttle(client: &mut Client) -> (usize, i32) {
    let request = fetch::FetchRequest {
        replica_id: -1,
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: i32::MAX,
        topics: vec![fetch::FetchTopic {
            topic: "q".into(),
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
    let r = client.call(
        fetch::API_KEY,
        12,
        |e| request.encode(e, 12),
        fetch::FetchResponse::decode,
    );
    let len = r.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Vec::len);
    (len, r.throttle_time_ms)
}

#[test]
fn byte_rate_quotas_throttle_producers_and_consumers() {
    let broker = TestBroker::start("quota-throttle");
    let mut client = broker.connect();
    create_topic(&mut client, "q", 1);
    let batch = plain_batch(0, &[&[9u8; 6000]]);
    // No quota: never throttled.
    for _ in 0..3 {
        assert_eq!(produce(&mut client, 9, &batch), (NONE, 0));
    }
    let set = alter(
        &mut client,
        1,
        &[(
            &[("client-id", Some("sprat-test"))],
            &[
                ("producer_byte_rate", 1000.0, false),
                ("consumer_byte_rate", 1000.0, false),
            ],
        )],
        false,
    );
    assert_eq!(set[0].0, NONE);
    // The rate is measured over at least ten one-second windows: 6 KB is within 1000 B/s,
    // 12 KB (and the batches' overhead) is over 1200 B/s, 20 % over: throttled for about 20 % of
    // the window, a little over 2 s.
    let (code, first) = produce(&mut client, 9, &batch);
    assert_eq!((code, first), (NONE, 0));
    let (code, throttle) = produce(&mut client, 9, &batch);
    assert_eq!(code, NONE, "a throttled produce is still stored");
    assert!(
        (1000..=2500).contains(&throttle),
        "throttle_time_ms {throttle}"
    );
    // A throttled connection is muted for the throttle time; the quota is per client id, so
    // the next steps use new connections.
    let mut client = broker.connect();
    // Consumers: the first fetch sends the whole log (5 batches, about 30 KB) at once.
    let (len, throttle) = fetch_throttle(&mut client);
    assert!(len > 29_000, "{len}");
    assert!(throttle > 10_000, "throttle_time_ms {throttle}");
    // Without the quota, no throttling.
    let mut client = broker.connect();
    let removed = alter(
        &mut client,
        1,
        &[(
            &[("client-id", Some("sprat-test"))],
            &[
                ("producer_byte_rate", 0.0, true),
                ("consumer_byte_rate", 0.0, true),
            ],
        )],
        false,
    );
    assert_eq!(removed[0].0, NONE);
    assert_eq!(produce(&mut client, 9, &batch), (NONE, 0));
    broker.assert_no_panics();
}

#[test]
fn user_quotas_apply_to_the_authenticated_principal() {
    // The SASL user `admin` (a super user of that broker) gets a user quota; the plaintext
    // listener's ANONYMOUS clients are not involved.
    let (broker, addr) = crate::acls::secured_broker("quota-user");
    let mut admin = crate::acls::login(addr, "admin");
    create_topic(&mut admin, "q", 1);
    let set = alter(
        &mut admin,
        1,
        &[(
            &[("user", Some("admin"))],
            &[("producer_byte_rate", 1000.0, false)],
        )],
        false,
    );
    assert_eq!(set[0].0, NONE);
    let batch = plain_batch(0, &[&[9u8; 6000]]);
    assert_eq!(produce(&mut admin, 9, &batch), (NONE, 0));
    let (code, throttle) = produce(&mut admin, 9, &batch);
    assert_eq!(code, NONE);
    assert!(throttle > 0, "the user quota of User:admin was not applied");
    broker.assert_no_panics();
}
