//! The transaction coordinator against the real broker: InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, DescribeTransactions,
//! ListTransactions and FindCoordinator key type 1, with Kafka 3.9's error codes, and the
//! `__transaction_state` records on disk, before and after `kill -9`.
//!
//! Requests are built with the generated codecs and answers decoded with them (`Client::call`),
//! in the versions clients send (librdkafka: InitProducerId 4, AddPartitionsToTxn 3, EndTxn 3,
//! TxnOffsetCommit 3; kafka-python: v0-2; the admin client: DescribeTransactions 0,
//! ListTransactions 1) and the older ones whose error mapping differs.

use crate::harness::{
    Client, TestBroker, TopicSpec, hex, read_partition_log, write_cluster_metadata,
    write_partition_log,
};
use sprat::group::offsets::partition_for;
use sprat::protocol::messages::{
    add_offsets_to_txn as aot, add_partitions_to_txn as apt, create_topics as ct,
    describe_transactions as dtx, end_txn as et, find_coordinator as fc, init_producer_id as ipi,
    list_transactions as ltx, offset_fetch as of, produce, txn_offset_commit as toc,
};
use sprat::storage::record_batch::{
    BatchHeader, Batches, Record, TRANSACTIONAL_FLAG_MASK, build_batch, decode_records,
};
use sprat::txn::metadata::{
    TransactionMetadata, TxnState, decode_record, record_key, record_value,
};
use std::time::{Duration, Instant};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn create_topic(client: &mut Client, name: &str, partitions: i32) {
    let request = ct::CreateTopicsRequest {
        topics: vec![ct::CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: 1,
            ..ct::CreatableTopic::default()
        }],
        timeout_ms: 30000,
        validate_only: false,
    };
    let r = client.call(
        ct::API_KEY,
        7,
        |e| request.encode(e, 7),
        ct::CreateTopicsResponse::decode,
    );
    assert_eq!(r.topics[0].error_code, NONE, "{r:?}");
}

fn init(
    client: &mut Client,
    version: i16,
    id: &str,
    timeout_ms: i32,
    expected: (i64, i16),
) -> ipi::InitProducerIdResponse {
    let request = ipi::InitProducerIdRequest {
        transactional_id: Some(id.into()),
        transaction_timeout_ms: timeout_ms,
        producer_id: expected.0,
        producer_epoch: expected.1,
    };
    client.call(
        ipi::API_KEY,
        version,
        |e| request.encode(e, version),
        ipi::InitProducerIdResponse::decode,
    )
}

/// InitProducerId that must succeed: (producer id, epoch).
fn init_ok(client: &mut Client, id: &str) -> (i64, i16) {
    let r = init(client, 4, id, 60000, (-1, -1));
    assert_eq!(r.error_code, NONE, "{r:?}");
    (r.producer_id, r.producer_epoch)
}

/// AddPartitionsToTxn v0-3: the error of every partition, in request order.
fn add_partitions(
    client: &mut Client,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    partitions: &[(&str, i32)],
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<apt::AddPartitionsToTxnTopic> = Vec::new();
    for &(topic, p) in partitions {
        match topics.iter_mut().find(|t| t.name == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(apt::AddPartitionsToTxnTopic {
                name: topic.into(),
                partitions: vec![p],
            }),
        }
    }
    let request = apt::AddPartitionsToTxnRequest {
        v3_and_below_transactional_id: id.into(),
        v3_and_below_producer_id: pid,
        v3_and_below_producer_epoch: epoch,
        v3_and_below_topics: topics,
        ..apt::AddPartitionsToTxnRequest::default()
    };
    let r = client.call(
        apt::API_KEY,
        version,
        |e| request.encode(e, version),
        apt::AddPartitionsToTxnResponse::decode,
    );
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| (t.name.clone(), p.partition_index, p.partition_error_code))
        })
        .collect()
}

fn end_txn(
    client: &mut Client,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> i16 {
    let request = et::EndTxnRequest {
        transactional_id: id.into(),
        producer_id: pid,
        producer_epoch: epoch,
        committed: commit,
    };
    client
        .call(
            et::API_KEY,
            version,
            |e| request.encode(e, version),
            et::EndTxnResponse::decode,
        )
        .error_code
}

fn describe(client: &mut Client, ids: &[&str]) -> Vec<dtx::TransactionState> {
    let request = dtx::DescribeTransactionsRequest {
        transactional_ids: ids.iter().map(|s| s.to_string()).collect(),
    };
    client
        .call(
            dtx::API_KEY,
            0,
            |e| request.encode(e, 0),
            dtx::DescribeTransactionsResponse::decode,
        )
        .transaction_states
}

/// Kafka's `__transaction_state` partition of an id: abs(hashCode) % 50.
fn state_partition(id: &str) -> i32 {
    partition_for(id, 50)
}

/// One `__transaction_state` record: state, producer id, epoch, partitions.
type StateRecord = (TxnState, i64, i16, Vec<(String, i32)>);

/// The transaction states written for `id`, in log order, read from the segment files.
fn state_records(broker: &TestBroker, id: &str) -> Vec<StateRecord> {
    let bytes = read_partition_log(&broker.log_dir, "__transaction_state", state_partition(id));
    let mut out = Vec::new();
    for batch in Batches::new(&bytes) {
        let batch = batch.unwrap();
        for r in decode_records(&batch).unwrap() {
            let (key_id, m) = decode_record(r.key.as_deref().unwrap(), r.value.as_deref()).unwrap();
            if key_id != id {
                continue;
            }
            let m = m.unwrap();
            let parts = m
                .partitions
                .iter()
                .map(|tp| (tp.topic.clone(), tp.partition))
                .collect();
            out.push((m.state, m.producer_id, m.producer_epoch, parts));
        }
    }
    out
}

/// FindCoordinator for a transactional id (key type 1) answers this node, v0-3 and batched v4+.
#[test]
fn find_coordinator_for_transactional_ids() {
    let broker = TestBroker::start("txn-findcoord");
    let mut client = broker.connect();
    for version in [1, 3] {
        let request = fc::FindCoordinatorRequest {
            key: "t1".into(),
            key_type: 1,
            ..fc::FindCoordinatorRequest::default()
        };
        let r = client.call(
            fc::API_KEY,
            version,
            |e| request.encode(e, version),
            fc::FindCoordinatorResponse::decode,
        );
        assert_eq!((r.error_code, r.node_id), (NONE, 1), "v{version}");
        assert_eq!(i32::from(broker.addr.port()), r.port);
    }
    let request = fc::FindCoordinatorRequest {
        key_type: 1,
        coordinator_keys: vec!["t1".into(), "t2".into()],
        ..fc::FindCoordinatorRequest::default()
    };
    let r = client.call(
        fc::API_KEY,
        4,
        |e| request.encode(e, 4),
        fc::FindCoordinatorResponse::decode,
    );
    let keys: Vec<(&str, i16, i32)> = r
        .coordinators
        .iter()
        .map(|c| (c.key.as_str(), c.error_code, c.node_id))
        .collect();
    assert_eq!(keys, [("t1", NONE, 1), ("t2", NONE, 1)]);
}

/// A new id gets epoch 0, each InitProducerId bumps it, and the record in `__transaction_state`
/// says so; a timeout above `transaction.max.timeout.ms` is 50; KIP-360 with another producer id
/// is PRODUCER_FENCED (90), or INVALID_PRODUCER_EPOCH (47) before v4.
#[test]
fn init_producer_id_bumps_and_fences() {
    let broker = TestBroker::start_with("txn-init", |_| {}, &["transaction.max.timeout.ms=120000"]);
    let mut client = broker.connect();
    let r = init(&mut client, 4, "app", 120001, (-1, -1));
    assert_eq!(r.error_code, INVALID_TRANSACTION_TIMEOUT);
    let (pid, e0) = init_ok(&mut client, "app");
    assert_eq!(e0, 0);
    let (pid1, e1) = init_ok(&mut client, "app");
    assert_eq!((pid1, e1), (pid, 1));
    // KIP-360: the producer that holds the current epoch may bump it itself...
    let r = init(&mut client, 4, "app", 60000, (pid, 1));
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (NONE, pid, 2)
    );
    // ...and a retry of that bump (it asks with the previous epoch) gets the same epoch.
    let r = init(&mut client, 4, "app", 60000, (pid, 1));
    assert_eq!((r.error_code, r.producer_epoch), (NONE, 2));
    // A producer id that is not this id's is fenced.
    let r = init(&mut client, 4, "app", 60000, (pid + 1000, 0));
    assert_eq!(r.error_code, PRODUCER_FENCED);
    let r = init(&mut client, 3, "app", 60000, (pid + 1000, 0));
    assert_eq!(r.error_code, INVALID_PRODUCER_EPOCH);
    let records = state_records(&broker, "app");
    let epochs: Vec<(TxnState, i64, i16)> = records.iter().map(|r| (r.0, r.1, r.2)).collect();
    assert_eq!(
        epochs,
        [
            (TxnState::Empty, pid, 0),
            (TxnState::Empty, pid, 1),
            (TxnState::Empty, pid, 2),
            (TxnState::Empty, pid, 2),
        ]
    );
}

/// AddPartitionsToTxn's errors: unknown id or another producer id is 49, a stale epoch 90 (47
/// before v2), an unknown topic 3 with 55 for the rest; EndTxn with no transaction is 48.
#[test]
fn add_partitions_and_end_txn_errors() {
    let broker = TestBroker::start("txn-errors");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    let (pid, epoch) = init_ok(&mut client, "app");
    let unknown = add_partitions(&mut client, 3, "nobody", (pid, epoch), &[("t", 0)]);
    assert_eq!(unknown, [("t".to_string(), 0, INVALID_PRODUCER_ID_MAPPING)]);
    let other = add_partitions(&mut client, 3, "app", (pid + 1, epoch), &[("t", 0)]);
    assert_eq!(other[0].2, INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(
        end_txn(&mut client, 3, "app", (pid, epoch), true),
        INVALID_TXN_STATE
    );
    assert_eq!(
        end_txn(&mut client, 3, "nobody", (pid, epoch), true),
        INVALID_PRODUCER_ID_MAPPING
    );
    let mixed = add_partitions(
        &mut client,
        3,
        "app",
        (pid, epoch),
        &[("t", 0), ("nope", 0)],
    );
    assert_eq!(
        mixed,
        [
            ("t".to_string(), 0, OPERATION_NOT_ATTEMPTED),
            ("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    let ok = add_partitions(&mut client, 3, "app", (pid, epoch), &[("t", 0), ("t", 1)]);
    assert!(ok.iter().all(|p| p.2 == NONE), "{ok:?}");
    // A second instance fences this one: its Ongoing transaction is aborted first.
    let r = init(&mut client, 4, "app", 60000, (-1, -1));
    let fenced_epoch = epoch + 1;
    assert!(
        matches!(r.error_code, NONE | CONCURRENT_TRANSACTIONS),
        "{r:?}"
    );
    for version in [0, 1] {
        let stale = add_partitions(&mut client, version, "app", (pid, epoch), &[("t", 0)]);
        assert_eq!(stale[0].2, INVALID_PRODUCER_EPOCH, "v{version}");
    }
    for version in [2, 3] {
        let stale = add_partitions(&mut client, version, "app", (pid, epoch), &[("t", 0)]);
        assert_eq!(stale[0].2, PRODUCER_FENCED, "v{version}");
    }
    assert_eq!(
        end_txn(&mut client, 1, "app", (pid, epoch), true),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        end_txn(&mut client, 3, "app", (pid, epoch), true),
        PRODUCER_FENCED
    );
    let states: Vec<TxnState> = state_records(&broker, "app").iter().map(|r| r.0).collect();
    assert_eq!(
        &states[..3],
        [TxnState::Empty, TxnState::Ongoing, TxnState::PrepareAbort],
        "the fenced transaction is aborted with the bumped epoch {fenced_epoch}"
    );
}

/// DescribeTransactions and ListTransactions (v0 and v1 with filters) show ids, states and
/// partitions; an unknown id is 105.
#[test]
fn describe_and_list_transactions() {
    let broker = TestBroker::start("txn-describe");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    let a = init_ok(&mut client, "a");
    let b = init_ok(&mut client, "b");
    let added = add_partitions(&mut client, 3, "a", a, &[("t", 1), ("t", 0)]);
    assert!(added.iter().all(|p| p.2 == NONE));
    let states = describe(&mut client, &["a", "b", "zz"]);
    assert_eq!(states[0].transaction_state, "Ongoing");
    assert_eq!((states[0].producer_id, states[0].producer_epoch), a);
    assert_eq!(states[0].transaction_timeout_ms, 60000);
    assert!(states[0].transaction_start_time_ms > 0);
    assert_eq!(states[0].topics.len(), 1);
    assert_eq!(states[0].topics[0].partitions, [0, 1]);
    assert_eq!(states[1].transaction_state, "Empty");
    assert_eq!(states[1].producer_id, b.0);
    assert_eq!(states[2].error_code, TRANSACTIONAL_ID_NOT_FOUND);
    for version in [0, 1] {
        let request = ltx::ListTransactionsRequest {
            state_filters: vec!["Ongoing".into(), "Bogus".into()],
            duration_filter: -1,
            ..ltx::ListTransactionsRequest::default()
        };
        let r = client.call(
            ltx::API_KEY,
            version,
            |e| request.encode(e, version),
            ltx::ListTransactionsResponse::decode,
        );
        assert_eq!(r.unknown_state_filters, ["Bogus"], "v{version}");
        let listed: Vec<(&str, i64, &str)> = r
            .transaction_states
            .iter()
            .map(|t| {
                (
                    t.transactional_id.as_str(),
                    t.producer_id,
                    t.transaction_state.as_str(),
                )
            })
            .collect();
        assert_eq!(listed, [("a", a.0, "Ongoing")], "v{version}");
    }
    let request = ltx::ListTransactionsRequest {
        producer_id_filters: vec![b.0],
        duration_filter: -1,
        ..ltx::ListTransactionsRequest::default()
    };
    let r = client.call(
        ltx::API_KEY,
        1,
        |e| request.encode(e, 1),
        ltx::ListTransactionsResponse::decode,
    );
    assert_eq!(r.transaction_states.len(), 1);
    assert_eq!(r.transaction_states[0].transactional_id, "b");
    // v1's duration filter: only transactions started longer ago than an hour, so not the
    // Ongoing one (Empty ids have no start time, -1, and pass, as in Kafka).
    let request = ltx::ListTransactionsRequest {
        state_filters: vec!["Ongoing".into()],
        duration_filter: 3_600_000,
        ..ltx::ListTransactionsRequest::default()
    };
    let r = client.call(
        ltx::API_KEY,
        1,
        |e| request.encode(e, 1),
        ltx::ListTransactionsResponse::decode,
    );
    assert_eq!(r.transaction_states.len(), 0, "{r:?}");
}

/// An open transaction survives `kill -9`: the restarted coordinator has the same producer id,
/// epoch, state and partitions.
#[test]
fn ongoing_transaction_survives_kill_9() {
    let mut broker = TestBroker::start("txn-restart");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 3);
    let p = init_ok(&mut client, "app");
    let added = add_partitions(&mut client, 3, "app", p, &[("t", 2)]);
    assert_eq!(added[0].2, NONE);
    broker.kill_and_restart();
    let mut client = broker.connect();
    let states = describe(&mut client, &["app"]);
    assert_eq!(states[0].transaction_state, "Ongoing");
    assert_eq!((states[0].producer_id, states[0].producer_epoch), p);
    assert_eq!(states[0].topics[0].topic, "t");
    assert_eq!(states[0].topics[0].partitions, [2]);
    // The same producer carries on with its epoch.
    let again = add_partitions(&mut client, 3, "app", p, &[("t", 2), ("t", 0)]);
    assert!(again.iter().all(|r| r.2 == NONE), "{again:?}");
}

/// AddOffsetsToTxn adds the group's `__consumer_offsets` partition; TxnOffsetCommit without it
/// is INVALID_TXN_STATE (48), with an unknown id 49.
#[test]
fn add_offsets_and_txn_offset_commit_checks() {
    let broker = TestBroker::start("txn-offsets");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let p = init_ok(&mut client, "app");
    let commit = |client: &mut Client, version: i16, id: &str| {
        txn_commit_v(client, version, &txn_offset_request(id, p, "g", 5))
    };
    assert_eq!(commit(&mut client, 3, "app"), INVALID_TXN_STATE);
    assert_eq!(
        commit(&mut client, 0, "nobody"),
        INVALID_PRODUCER_ID_MAPPING
    );
    for version in [0, 3] {
        let error = add_offsets_v(&mut client, version, "app", p, "g");
        assert_eq!(error, NONE, "v{version}");
    }
    let states = describe(&mut client, &["app"]);
    assert_eq!(states[0].topics[0].topic, "__consumer_offsets");
    assert_eq!(states[0].topics[0].partitions, [partition_for("g", 50)]);
}

/// A transactional batch of `pid`/`epoch` with one record per value, sequences from `seq`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Vec<u8> {
    // A current timestamp, or `segment.ms` would roll the segment before the marker.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let header = BatchHeader {
        base_timestamp: now,
        max_timestamp: now,
        attributes: TRANSACTIONAL_FLAG_MASK,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
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

/// Produce v9 with a transactional id: (error, base offset).
fn produce_txn(
    client: &mut Client,
    id: &str,
    topic: &str,
    partition: i32,
    batch: &[u8],
) -> (i16, i64) {
    let request = produce::ProduceRequest {
        transactional_id: Some(id.into()),
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
    let r = client.call(
        produce::API_KEY,
        9,
        |e| request.encode(e, 9),
        produce::ProduceResponse::decode,
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// The control batches of a partition's log: (offset, producer id, epoch, COMMIT?).
fn markers(broker: &TestBroker, topic: &str, partition: i32) -> Vec<(i64, i64, i16, bool)> {
    let bytes = read_partition_log(&broker.log_dir, topic, partition);
    Batches::new(&bytes)
        .map(|b| b.unwrap())
        .filter(|b| b.is_control())
        .map(|b| {
            let records = decode_records(&b).unwrap();
            let key = records[0].key.clone().unwrap();
            (
                b.base_offset(),
                b.producer_id(),
                b.producer_epoch(),
                key == [0, 0, 0, 1],
            )
        })
        .collect()
}

fn add_offsets(client: &mut Client, id: &str, p: (i64, i16), group: &str) -> i16 {
    add_offsets_v(client, 3, id, p, group)
}

fn add_offsets_v(client: &mut Client, version: i16, id: &str, p: (i64, i16), group: &str) -> i16 {
    let request = aot::AddOffsetsToTxnRequest {
        transactional_id: id.into(),
        producer_id: p.0,
        producer_epoch: p.1,
        group_id: group.into(),
    };
    client
        .call(
            aot::API_KEY,
            version,
            |e| request.encode(e, version),
            aot::AddOffsetsToTxnResponse::decode,
        )
        .error_code
}

fn txn_commit_offset(
    client: &mut Client,
    id: &str,
    p: (i64, i16),
    group: &str,
    offset: i64,
) -> i16 {
    txn_commit_v(client, 3, &txn_offset_request(id, p, group, offset))
}

/// A TxnOffsetCommit of partition t-0 at `offset`, without a member.
fn txn_offset_request(
    id: &str,
    p: (i64, i16),
    group: &str,
    offset: i64,
) -> toc::TxnOffsetCommitRequest {
    toc::TxnOffsetCommitRequest {
        transactional_id: id.into(),
        group_id: group.into(),
        producer_id: p.0,
        producer_epoch: p.1,
        generation_id: -1,
        topics: vec![toc::TxnOffsetCommitRequestTopic {
            name: "t".into(),
            partitions: vec![toc::TxnOffsetCommitRequestPartition {
                partition_index: 0,
                committed_offset: offset,
                committed_leader_epoch: -1,
                committed_metadata: Some(String::new()),
            }],
        }],
        ..toc::TxnOffsetCommitRequest::default()
    }
}

/// Sends a TxnOffsetCommit of one partition at `version`; its error.
fn txn_commit_v(client: &mut Client, version: i16, request: &toc::TxnOffsetCommitRequest) -> i16 {
    client
        .call(
            toc::API_KEY,
            version,
            |e| request.encode(e, version),
            toc::TxnOffsetCommitResponse::decode,
        )
        .topics[0]
        .partitions[0]
        .error_code
}

/// OffsetFetch v7 of partition t-0: (error, committed offset).
fn fetch_offset(client: &mut Client, group: &str, require_stable: bool) -> (i16, i64) {
    let request = of::OffsetFetchRequest {
        group_id: group.into(),
        topics: Some(vec![of::OffsetFetchRequestTopic {
            name: "t".into(),
            partition_indexes: vec![0],
        }]),
        require_stable,
        ..of::OffsetFetchRequest::default()
    };
    let r = client.call(
        of::API_KEY,
        7,
        |e| request.encode(e, 7),
        of::OffsetFetchResponse::decode,
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// EndTxn writes PrepareCommit, a COMMIT marker on every partition (the data partitions and the
/// group's `__consumer_offsets` partition), then CompleteCommit; the transactional offset is
/// UNSTABLE_OFFSET_COMMIT (88) for require_stable readers until then, and the group's offset
/// after, also after `kill -9`. An aborted one is dropped, also after a restart.
#[test]
fn end_txn_writes_markers_and_commits_offsets() {
    let mut broker = TestBroker::start("txn-end");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    let p = init_ok(&mut client, "app");
    let added = add_partitions(&mut client, 3, "app", p, &[("t", 0), ("t", 1)]);
    assert!(added.iter().all(|r| r.2 == NONE), "{added:?}");
    assert_eq!(
        produce_txn(
            &mut client,
            "app",
            "t",
            0,
            &txn_batch(p.0, p.1, 0, &["a", "b"])
        ),
        (NONE, 0)
    );
    assert_eq!(
        produce_txn(&mut client, "app", "t", 1, &txn_batch(p.0, p.1, 0, &["c"])),
        (NONE, 0)
    );
    assert_eq!(add_offsets(&mut client, "app", p, "g"), NONE);
    assert_eq!(txn_commit_offset(&mut client, "app", p, "g", 2), NONE);
    assert_eq!(
        fetch_offset(&mut client, "g", true).0,
        UNSTABLE_OFFSET_COMMIT
    );
    assert_eq!(fetch_offset(&mut client, "g", false), (NONE, -1));
    assert_eq!(end_txn(&mut client, 3, "app", p, true), NONE);
    assert_eq!(fetch_offset(&mut client, "g", true), (NONE, 2));
    assert_eq!(markers(&broker, "t", 0), [(2, p.0, p.1, true)]);
    assert_eq!(markers(&broker, "t", 1), [(1, p.0, p.1, true)]);
    let offsets_partition = partition_for("g", 50);
    assert_eq!(
        markers(&broker, "__consumer_offsets", offsets_partition).len(),
        1
    );
    let states: Vec<TxnState> = state_records(&broker, "app").iter().map(|r| r.0).collect();
    assert_eq!(
        states,
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::CompleteCommit
        ]
    );
    // A retried EndTxn of the same result succeeds; the other result is INVALID_TXN_STATE.
    assert_eq!(end_txn(&mut client, 3, "app", p, true), NONE);
    assert_eq!(end_txn(&mut client, 3, "app", p, false), INVALID_TXN_STATE);
    // The next transaction commits an offset and aborts.
    assert_eq!(add_offsets(&mut client, "app", p, "g"), NONE);
    assert_eq!(txn_commit_offset(&mut client, "app", p, "g", 7), NONE);
    assert_eq!(end_txn(&mut client, 3, "app", p, false), NONE);
    assert_eq!(fetch_offset(&mut client, "g", true), (NONE, 2));
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(fetch_offset(&mut client, "g", true), (NONE, 2));
    let states = describe(&mut client, &["app"]);
    assert_eq!(states[0].transaction_state, "CompleteAbort");
    assert_eq!((states[0].producer_id, states[0].producer_epoch), p);
}

/// A transaction left open past its timeout is aborted by the coordinator thread with a bumped
/// epoch, which fences its producer.
#[test]
fn timed_out_transaction_is_aborted_with_an_epoch_bump() {
    let broker = TestBroker::start_with(
        "txn-timeout",
        |_| {},
        &["transaction.abort.timed.out.transaction.cleanup.interval.ms=50"],
    );
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let r = init(&mut client, 4, "app", 200, (-1, -1));
    let p = (r.producer_id, r.producer_epoch);
    assert_eq!(
        add_partitions(&mut client, 3, "app", p, &[("t", 0)])[0].2,
        NONE
    );
    assert_eq!(
        produce_txn(&mut client, "app", "t", 0, &txn_batch(p.0, p.1, 0, &["x"])),
        (NONE, 0)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let s = describe(&mut client, &["app"]).remove(0);
        if s.transaction_state == "CompleteAbort" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state.transaction_state, "CompleteAbort");
    assert_eq!((state.producer_id, state.producer_epoch), (p.0, p.1 + 1));
    assert_eq!(markers(&broker, "t", 0), [(1, p.0, p.1 + 1, false)]);
    assert_eq!(end_txn(&mut client, 3, "app", p, true), PRODUCER_FENCED);
}

/// `kill -9` right after the PrepareCommit record, or after the first partition's marker: the
/// restarted coordinator completes the commit (every partition gets a COMMIT marker, the first
/// one maybe twice, which is harmless as in Kafka) and the id ends in CompleteCommit.
#[test]
fn prepare_commit_is_completed_after_a_crash() {
    for point in ["txn-after-prepare", "txn-mid-markers"] {
        let mut broker = TestBroker::start_with_env(&format!("txn-crash-{point}"), &[], |_| {
            vec![("SPRAT_TEST_CRASH_POINT".to_string(), point.to_string())]
        });
        let mut client = broker.connect();
        create_topic(&mut client, "t", 2);
        let p = init_ok(&mut client, "app");
        add_partitions(&mut client, 3, "app", p, &[("t", 0), ("t", 1)]);
        for partition in [0, 1] {
            let batch = txn_batch(p.0, p.1, 0, &["v"]);
            assert_eq!(
                produce_txn(&mut client, "app", "t", partition, &batch),
                (NONE, 0)
            );
        }
        let request = et::EndTxnRequest {
            transactional_id: "app".into(),
            producer_id: p.0,
            producer_epoch: p.1,
            committed: true,
        };
        client.send(et::API_KEY, 3, |e| request.encode(e, 3));
        let deadline = Instant::now() + Duration::from_secs(20);
        while broker.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !broker.is_running(),
            "{point}: the crash point killed the broker"
        );
        broker.extra_env.clear();
        broker.restart();
        let mut client = broker.connect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let state = loop {
            let s = describe(&mut client, &["app"]).remove(0);
            if s.transaction_state == "CompleteCommit" || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(state.transaction_state, "CompleteCommit", "{point}");
        let m0 = markers(&broker, "t", 0);
        let m1 = markers(&broker, "t", 1);
        assert!(
            m0.iter().all(|m| m.3) && m1.iter().all(|m| m.3),
            "{point}: {m0:?} {m1:?}"
        );
        assert!(!m0.is_empty() && !m1.is_empty(), "{point}");
    }
}

/// An id idle for `transactional.id.expiration.ms` is removed: a tombstone in
/// `__transaction_state`, and DescribeTransactions answers TRANSACTIONAL_ID_NOT_FOUND, also after
/// a restart. Using it again starts from a new producer id.
#[test]
fn idle_transactional_ids_expire() {
    let mut broker = TestBroker::start_with(
        "txn-expire",
        |_| {},
        &[
            "transactional.id.expiration.ms=100",
            "transaction.remove.expired.transaction.cleanup.interval.ms=50",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=50",
        ],
    );
    let mut client = broker.connect();
    let p = init_ok(&mut client, "idle");
    let deadline = Instant::now() + Duration::from_secs(20);
    while describe(&mut client, &["idle"])[0].error_code == NONE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        describe(&mut client, &["idle"])[0].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    let bytes = read_partition_log(
        &broker.log_dir,
        "__transaction_state",
        state_partition("idle"),
    );
    let last = Batches::new(&bytes)
        .flat_map(|b| decode_records(&b.unwrap()).unwrap())
        .last()
        .unwrap();
    assert_eq!(
        last.key.as_deref(),
        Some(&[0, 0, 0, 4, b'i', b'd', b'l', b'e'][..])
    );
    assert_eq!(last.value, None, "a tombstone");
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(
        describe(&mut client, &["idle"])[0].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
    let again = init_ok(&mut client, "idle");
    assert_ne!(again.0, p.0, "a new producer id");
    assert_eq!(again.1, 0);
}

/// While markers cannot be written (here the partition knows a newer epoch of the producer, so
/// it refuses the marker as fenced), the id stays in PrepareCommit and every request for it is
/// CONCURRENT_TRANSACTIONS (51), as while Kafka's markers are in flight; an EndTxn asking for the
/// other result is INVALID_TXN_STATE.
#[test]
fn prepare_commit_answers_concurrent_transactions() {
    let broker = TestBroker::start("txn-concurrent");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let p = init_ok(&mut client, "app");
    assert_eq!(
        add_partitions(&mut client, 3, "app", p, &[("t", 0)])[0].2,
        NONE
    );
    // An idempotent batch of the same producer id with a later epoch, outside the transaction.
    let newer = build_batch(
        &BatchHeader {
            producer_id: p.0,
            producer_epoch: p.1 + 5,
            base_sequence: 0,
            ..BatchHeader::default()
        },
        &[Record {
            value: Some(b"newer".to_vec()),
            ..Record::default()
        }],
    );
    let (code, _, _) = crate::harness::produce_batch(&mut client, 9, "t", 0, &newer);
    assert_eq!(code, NONE);
    assert_eq!(end_txn(&mut client, 3, "app", p, true), NONE);
    assert_eq!(
        describe(&mut client, &["app"])[0].transaction_state,
        "PrepareCommit"
    );
    assert_eq!(
        end_txn(&mut client, 3, "app", p, true),
        CONCURRENT_TRANSACTIONS
    );
    assert_eq!(end_txn(&mut client, 3, "app", p, false), INVALID_TXN_STATE);
    assert_eq!(
        add_partitions(&mut client, 3, "app", p, &[("t", 0)])[0].2,
        CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        init(&mut client, 4, "app", 60000, (-1, -1)).error_code,
        CONCURRENT_TRANSACTIONS
    );
}

/// KIP-360: an id whose epoch is exhausted (32766, as loaded from a `__transaction_state` written
/// before start-up) gets a new producer id with epoch 0; a producer that asks with the old id and
/// epoch gets the same answer again when it retries.
#[test]
fn exhausted_epoch_rotates_the_producer_id() {
    let exhausted = i16::MAX - 1;
    let broker = TestBroker::start_with(
        "txn-exhausted",
        |log_dir| {
            write_cluster_metadata(log_dir, &[TopicSpec::new("__transaction_state", 9, 50)]);
            // The two ids live in different partitions (one record each).
            assert_ne!(state_partition("old"), state_partition("old2"));
            for id in ["old", "old2"] {
                let mut m = TransactionMetadata::new(id, 5000, 60000, 1);
                m.producer_epoch = exhausted;
                m.state = TxnState::CompleteCommit;
                let record = Record {
                    key: Some(record_key(id)),
                    value: Some(record_value(&m)),
                    ..Record::default()
                };
                let batch = build_batch(&BatchHeader::default(), &[record]);
                write_partition_log(
                    log_dir,
                    "__transaction_state",
                    state_partition(id),
                    &[batch],
                );
            }
        },
        &[],
    );
    let mut client = broker.connect();
    let described = describe(&mut client, &["old"]);
    assert_eq!(
        (described[0].producer_id, described[0].producer_epoch),
        (5000, exhausted)
    );
    let (pid, epoch) = init_ok(&mut client, "old");
    assert_ne!(pid, 5000);
    assert_eq!(epoch, 0);
    let r = init(&mut client, 4, "old2", 60000, (5000, exhausted));
    assert_eq!(r.error_code, NONE);
    assert_ne!(r.producer_id, 5000);
    assert_eq!(r.producer_epoch, 0);
    let retry = init(&mut client, 4, "old2", 60000, (5000, exhausted));
    assert_eq!(
        (retry.error_code, retry.producer_id, retry.producer_epoch),
        (NONE, r.producer_id, 0)
    );
}

/// AddPartitionsToTxn v4 and v5 (brokers): several transactions at once, and `verify_only`
/// answers which partitions are in the transaction without adding any.
#[test]
fn add_partitions_batched_and_verify_only() {
    let broker = TestBroker::start("txn-batched");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 2);
    let a = init_ok(&mut client, "a");
    let b = init_ok(&mut client, "b");
    let transaction = |id: &str, p: (i64, i16), verify_only: bool, partitions: Vec<i32>| {
        apt::AddPartitionsToTxnTransaction {
            transactional_id: id.into(),
            producer_id: p.0,
            producer_epoch: p.1,
            verify_only,
            topics: vec![apt::AddPartitionsToTxnTopic {
                name: "t".into(),
                partitions,
            }],
        }
    };
    for version in [4, 5] {
        let request = apt::AddPartitionsToTxnRequest {
            transactions: vec![
                transaction("a", a, false, vec![0]),
                transaction("b", b, true, vec![0, 1]),
            ],
            ..apt::AddPartitionsToTxnRequest::default()
        };
        let r = client.call(
            apt::API_KEY,
            version,
            |e| request.encode(e, version),
            apt::AddPartitionsToTxnResponse::decode,
        );
        assert_eq!(r.error_code, NONE);
        let results: Vec<(&str, Vec<(i32, i16)>)> = r
            .results_by_transaction
            .iter()
            .map(|t| {
                let parts = t.topic_results[0]
                    .results_by_partition
                    .iter()
                    .map(|p| (p.partition_index, p.partition_error_code))
                    .collect();
                (t.transactional_id.as_str(), parts)
            })
            .collect();
        assert_eq!(
            results,
            [
                ("a", vec![(0, NONE)]),
                ("b", vec![(0, INVALID_TXN_STATE), (1, INVALID_TXN_STATE)])
            ],
            "v{version}"
        );
    }
    let request = apt::AddPartitionsToTxnRequest {
        transactions: vec![transaction("a", a, true, vec![0, 1])],
        ..apt::AddPartitionsToTxnRequest::default()
    };
    let r = client.call(
        apt::API_KEY,
        4,
        |e| request.encode(e, 4),
        apt::AddPartitionsToTxnResponse::decode,
    );
    let verified: Vec<i16> = r.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect();
    assert_eq!(verified, [NONE, INVALID_TXN_STATE]);
    assert_eq!(describe(&mut client, &["b"])[0].transaction_state, "Empty");
}

/// TxnOffsetCommit that names a member (KIP-447) must come from a member of the group:
/// UNKNOWN_MEMBER_ID (25) for a group or member the coordinator does not know.
#[test]
fn txn_offset_commit_checks_the_member() {
    let broker = TestBroker::start("txn-member");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    let p = init_ok(&mut client, "app");
    assert_eq!(add_offsets(&mut client, "app", p, "g"), NONE);
    for version in [3, 4] {
        let mut request = txn_offset_request("app", p, "g", 1);
        request.generation_id = 3;
        request.member_id = "m-1".into();
        request.topics[0].partitions[0].committed_metadata = None;
        let error = txn_commit_v(&mut client, version, &request);
        assert_eq!(error, UNKNOWN_MEMBER_ID, "v{version}");
    }
    // Without a member (v0-2 clients) it is accepted.
    assert_eq!(txn_commit_offset(&mut client, "app", p, "g", 1), NONE);
}

/// Sends a hand-built frame and returns the response frame (without its size prefix).
fn raw_round_trip(client: &mut Client, request: &str) -> Vec<u8> {
    let body = hex(request);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend(body);
    client.send_raw(&frame);
    client.receive()
}

/// Byte fixtures, derived by hand from the JSON specs, for the versions librdkafka sends.
#[test]
fn raw_bytes_of_the_client_versions() {
    let broker = TestBroker::start("txn-raw");
    let mut client = broker.connect();
    // InitProducerId v4 (flexible, header v2): id "tx", timeout 60000, no producer id or epoch.
    let response = raw_round_trip(
        &mut client,
        "00 16 00 04 00 00 00 07 00 04 74 65 73 74 00
         03 74 78  00 00 ea 60  ff ff ff ff ff ff ff ff  ff ff  00",
    );
    // Correlation id, header tags, throttle, error NONE, producer id (allocated), epoch 0, tags.
    assert_eq!(response.len(), 4 + 1 + 4 + 2 + 8 + 2 + 1, "{response:02x?}");
    assert_eq!(&response[..11], hex("00 00 00 07 00 00 00 00 00 00 00"));
    let pid = i64::from_be_bytes(response[11..19].try_into().unwrap());
    assert!(pid >= 0);
    assert_eq!(&response[19..], hex("00 00 00"));
    // AddPartitionsToTxn v3 (flexible): id "tx", that producer id, epoch 0, topic "nope" [0].
    let pid_hex: String = pid
        .to_be_bytes()
        .iter()
        .map(|b| format!("{b:02x} "))
        .collect();
    let response = raw_round_trip(
        &mut client,
        &format!(
            "00 18 00 03 00 00 00 08 00 04 74 65 73 74 00
             03 74 78  {pid_hex} 00 00  02 05 6e 6f 70 65 02 00 00 00 00 00  00"
        ),
    );
    // Throttle, results: one topic "nope", one partition 0 with UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(
        response,
        hex("00 00 00 08 00  00 00 00 00  02 05 6e 6f 70 65 02 00 00 00 00 00 03 00 00  00")
    );
    // EndTxn v3 (flexible) with an unknown id: INVALID_PRODUCER_ID_MAPPING.
    let response = raw_round_trip(
        &mut client,
        "00 1a 00 03 00 00 00 09 00 04 74 65 73 74 00
         02 74  00 00 00 00 00 00 00 2a  00 01  01  00",
    );
    assert_eq!(response, hex("00 00 00 09 00  00 00 00 00  00 31  00"));
    // EndTxn v1 (classic header v1 and body): the same.
    let response = raw_round_trip(
        &mut client,
        "00 1a 00 01 00 00 00 0a 00 04 74 65 73 74
         00 01 74  00 00 00 00 00 00 00 2a  00 01  01",
    );
    assert_eq!(response, hex("00 00 00 0a  00 00 00 00  00 31"));
}

/// Every advertised version of each transactional API decodes and answers (codec round trip
/// through the real broker).
#[test]
fn every_version_answers() {
    let broker = TestBroker::start("txn-versions");
    let mut client = broker.connect();
    create_topic(&mut client, "t", 1);
    for version in 0..=5 {
        let r = init(&mut client, version, "v", 60000, (-1, -1));
        assert_eq!(r.error_code, NONE, "InitProducerId v{version}");
    }
    let p = init_ok(&mut client, "v");
    for version in 0..=3 {
        let r = add_partitions(&mut client, version, "v", p, &[("t", 0)]);
        assert_eq!(r[0].2, NONE, "AddPartitionsToTxn v{version}");
    }
    for version in 0..=4 {
        let error = add_offsets_v(&mut client, version, "v", p, "g");
        assert_eq!(error, NONE, "AddOffsetsToTxn v{version}");
    }
    for version in 0..=4 {
        let mut request = txn_offset_request("v", p, "g", i64::from(version));
        request.topics[0].partitions[0].committed_metadata = Some("m".into());
        let error = txn_commit_v(&mut client, version, &request);
        assert_eq!(error, NONE, "TxnOffsetCommit v{version}");
    }
    assert_eq!(end_txn(&mut client, 0, "v", p, true), NONE);
    for version in 1..=4 {
        assert_eq!(
            end_txn(&mut client, version, "v", p, true),
            NONE,
            "EndTxn v{version} retry"
        );
    }
    assert_eq!(fetch_offset(&mut client, "g", true), (NONE, 4));
}
