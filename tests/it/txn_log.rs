//! Transactions on the partition side, from a log directory written by hand in Kafka's format:
//! transactional batches, COMMIT/ABORT control batches and a `.txnindex`. The broker must serve
//! read_committed Fetch up to the last stable offset with the aborted transactions listed,
//! ListOffsets read_committed, and DescribeProducers, and keep doing so after kill -9 and after a
//! torn marker at the tail.

use crate::harness::{
    Client, TestBroker, TopicSpec, fetch_partition, write_cluster_metadata, write_partition_log,
};
use sprat::protocol::messages::{describe_producers as dp, list_offsets as lo};
use sprat::storage::record_batch::{BatchHeader, Batches, Record, build_batch};
use std::fs;
use std::path::Path;

const TOPIC: &str = "tx";
const TIMESTAMP: i64 = 1726045973899;
/// Producer ids: A commits, B aborts, C stays open.
const PRODUCER_A: i64 = 1000;
const PRODUCER_B: i64 = 2000;
const PRODUCER_C: i64 = 3000;
const COORDINATOR_EPOCH: i32 = 5;

fn txn_batch(
    base_offset: i64,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
    values: &[&str],
) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        attributes: 0x10,
        base_timestamp: TIMESTAMP,
        max_timestamp: TIMESTAMP,
        producer_id,
        producer_epoch: epoch,
        base_sequence: sequence,
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

fn plain(base_offset: i64, value: &str) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        base_timestamp: TIMESTAMP,
        max_timestamp: TIMESTAMP,
        ..BatchHeader::default()
    };
    let record = Record {
        value: Some(value.as_bytes().to_vec()),
        ..Record::default()
    };
    build_batch(&header, &[record])
}

/// A control batch as Kafka's `MemoryRecords.withEndTransactionMarker` writes it.
fn marker(base_offset: i64, producer_id: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let header = BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        attributes: 0x30,
        base_timestamp: TIMESTAMP,
        max_timestamp: TIMESTAMP,
        producer_id,
        producer_epoch: epoch,
        base_sequence: -1,
    };
    let mut value = vec![0, 0];
    value.extend_from_slice(&COORDINATOR_EPOCH.to_be_bytes());
    let record = Record {
        key: Some(vec![0, 0, 0, u8::from(commit)]),
        value: Some(value),
        ..Record::default()
    };
    build_batch(&header, &[record])
}

/// The log: A's transaction at 0-1 commits at 4, B's at 2 and 5 aborts at 6, C's opens at 7;
/// plain records at 3 and 8. The LSO is 7, the high watermark 9.
fn batches() -> Vec<Vec<u8>> {
    vec![
        txn_batch(0, PRODUCER_A, 0, 0, &["a1", "a2"]),
        txn_batch(2, PRODUCER_B, 1, 0, &["b1"]),
        plain(3, "p1"),
        marker(4, PRODUCER_A, 0, true),
        txn_batch(5, PRODUCER_B, 1, 1, &["b2"]),
        marker(6, PRODUCER_B, 1, false),
        txn_batch(7, PRODUCER_C, 0, 0, &["c1"]),
        plain(8, "p2"),
    ]
}

/// B's entry in Kafka's 34-byte layout, written out field by field: version 0, producer id,
/// first offset 2, last offset 6 (the marker), last stable offset 7 (no other transaction was
/// open when B ended).
fn b_abort_entry() -> Vec<u8> {
    let mut entry = Vec::new();
    entry.extend_from_slice(&[0x00, 0x00]);
    entry.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x07, 0xd0]);
    entry.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
    entry.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 6]);
    entry.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
    entry
}

fn txn_index_path(log_dir: &Path) -> std::path::PathBuf {
    log_dir
        .join(format!("{TOPIC}-0"))
        .join("00000000000000000000.txnindex")
}

fn start(name: &str, batches: &[Vec<u8>], txn_index: &[u8]) -> TestBroker {
    let txn_index = txn_index.to_vec();
    let batches = batches.to_vec();
    TestBroker::start_with(
        name,
        move |log_dir| {
            write_cluster_metadata(log_dir, &[TopicSpec::new(TOPIC, 7, 1)]);
            write_partition_log(log_dir, TOPIC, 0, &batches);
            fs::write(txn_index_path(log_dir), txn_index).unwrap();
        },
        &[],
    )
}

/// The (base offset, last offset) of each batch in fetched records.
fn batch_ranges(records: &[u8]) -> Vec<(i64, i64)> {
    Batches::new(records)
        .map(|b| {
            let b = b.unwrap();
            (b.base_offset(), b.last_offset())
        })
        .collect()
}

fn list_offset(client: &mut Client, timestamp: i64, isolation_level: i8) -> i64 {
    let version = 5;
    let request = lo::ListOffsetsRequest {
        replica_id: -1,
        isolation_level,
        topics: vec![lo::ListOffsetsTopic {
            name: TOPIC.into(),
            partitions: vec![lo::ListOffsetsPartition {
                partition_index: 0,
                current_leader_epoch: -1,
                timestamp,
                max_num_offsets: 1,
            }],
        }],
    };
    let response = client.call(
        lo::API_KEY,
        version,
        |e| request.encode(e, version),
        lo::ListOffsetsResponse::decode,
    );
    let p = &response.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

fn describe_producers(client: &mut Client) -> dp::PartitionResponse {
    let request = dp::DescribeProducersRequest {
        topics: vec![dp::TopicRequest {
            name: TOPIC.into(),
            partition_indexes: vec![0, 5],
        }],
    };
    let response = client.call(
        dp::API_KEY,
        0,
        |e| request.encode(e, 0),
        dp::DescribeProducersResponse::decode,
    );
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions.len(), 2);
    assert_eq!(
        (partitions[1].partition_index, partitions[1].error_code),
        (5, 3),
        "a partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION"
    );
    partitions[0].clone()
}

fn producer(id: i64, epoch: i32, last_sequence: i32, ce: i32, start: i64) -> dp::ProducerState {
    dp::ProducerState {
        producer_id: id,
        producer_epoch: epoch,
        last_sequence,
        last_timestamp: if last_sequence >= 0 { TIMESTAMP } else { -1 },
        coordinator_epoch: ce,
        current_txn_start_offset: start,
    }
}

/// What the hand-written log must look like to every reader.
fn check_transactional_reads(broker: &TestBroker) {
    let mut client = broker.connect();
    let committed = fetch_partition(&mut client, TOPIC, 0, 1);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (9, 7)
    );
    assert_eq!(
        batch_ranges(committed.records.as_deref().unwrap()),
        vec![(0, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6)],
        "read_committed stops at the LSO, before C's open transaction"
    );
    let aborted: Vec<(i64, i64)> = committed
        .aborted_transactions
        .unwrap()
        .iter()
        .map(|a| (a.producer_id, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(PRODUCER_B, 2)]);
    let later = fetch_partition(&mut client, TOPIC, 6, 1);
    assert_eq!(
        batch_ranges(later.records.as_deref().unwrap()),
        vec![(6, 6)]
    );
    assert_eq!(
        later.aborted_transactions.unwrap().len(),
        1,
        "B's marker at 6 is still in the range"
    );
    let at_lso = fetch_partition(&mut client, TOPIC, 7, 1);
    assert!(at_lso.records.unwrap_or_default().is_empty());
    assert_eq!(at_lso.aborted_transactions, Some(vec![]));
    let uncommitted = fetch_partition(&mut client, TOPIC, 0, 0);
    assert_eq!(uncommitted.last_stable_offset, 7, "the LSO for both levels");
    assert_eq!(
        batch_ranges(uncommitted.records.as_deref().unwrap()).last(),
        Some(&(8, 8))
    );
    assert_eq!(uncommitted.aborted_transactions, None);

    assert_eq!(list_offset(&mut client, -1, 1), 7, "latest read_committed");
    assert_eq!(
        list_offset(&mut client, -1, 0),
        9,
        "latest read_uncommitted"
    );
    assert_eq!(list_offset(&mut client, TIMESTAMP, 1), 0);

    let described = describe_producers(&mut client);
    assert_eq!(described.error_code, 0);
    let mut producers = described.active_producers;
    producers.sort_by_key(|p| p.producer_id);
    assert_eq!(
        producers,
        vec![
            producer(PRODUCER_A, 0, 1, COORDINATOR_EPOCH, -1),
            producer(PRODUCER_B, 1, 1, COORDINATOR_EPOCH, -1),
            producer(PRODUCER_C, 0, 0, -1, 7),
        ]
    );
}

#[test]
fn read_committed_fetch_stops_at_the_lso_and_lists_aborted_transactions() {
    // The index on disk is torn (a partial second entry): the start without a clean shutdown
    // marker recovers the segment and rebuilds it from the markers, to Kafka's exact bytes.
    let mut torn_index = b_abort_entry();
    torn_index.extend_from_slice(&[0xde; 11]);
    let mut broker = start("txn-read-committed", &batches(), &torn_index);
    check_transactional_reads(&broker);
    assert_eq!(
        fs::read(txn_index_path(&broker.log_dir)).unwrap(),
        b_abort_entry()
    );

    broker.kill_and_restart();
    check_transactional_reads(&broker);
    assert!(broker.terminate());
    broker.restart();
    check_transactional_reads(&broker);
    assert_eq!(
        fs::read(txn_index_path(&broker.log_dir)).unwrap(),
        b_abort_entry()
    );
    broker.assert_no_panics();
}

#[test]
fn a_torn_abort_marker_leaves_its_transaction_open() {
    let mut log = batches();
    log.truncate(6);
    let torn = log.pop().unwrap();
    log.push(torn[..torn.len() - 3].to_vec());
    let mut broker = start("txn-torn-marker", &log, &b_abort_entry());
    let mut client = broker.connect();
    let committed = fetch_partition(&mut client, TOPIC, 0, 1);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (6, 2),
        "B's transaction is open again from 2"
    );
    assert_eq!(
        batch_ranges(committed.records.as_deref().unwrap()),
        vec![(0, 1)]
    );
    assert_eq!(committed.aborted_transactions, Some(vec![]));
    assert_eq!(list_offset(&mut client, -1, 1), 2);
    assert!(
        fs::read(txn_index_path(&broker.log_dir))
            .unwrap_or_default()
            .is_empty(),
        "the entry of the cut marker is gone"
    );
    drop(client);
    broker.kill_and_restart();
    let mut client = broker.connect();
    assert_eq!(list_offset(&mut client, -1, 1), 2);
    let described = describe_producers(&mut client);
    let b = described
        .active_producers
        .iter()
        .find(|p| p.producer_id == PRODUCER_B)
        .unwrap();
    assert_eq!(b.current_txn_start_offset, 2);
    broker.assert_no_panics();
}

/// The writer's WriteTxnMarkers, as the transaction coordinator uses it, on a broker in this
/// process: each marker is answered per partition once its control batch is in the file.
#[test]
fn write_txn_markers_appends_control_batches_and_index_entries() {
    use sprat::broker::Broker;
    use sprat::config::BrokerConfig;
    use sprat::protocol::error_code::ErrorCode;
    use sprat::storage::log::TopicPartition;
    use sprat::txn::TxnMarker;
    use sprat::writer::WriterCommand;

    let dir = crate::harness::temp_dir("txn-write-markers");
    let log_dir = dir.join("logs");
    fs::create_dir_all(&log_dir).unwrap();
    write_cluster_metadata(&log_dir, &[TopicSpec::new(TOPIC, 7, 1)]);
    write_partition_log(&log_dir, TOPIC, 0, &batches());
    let props: Vec<(String, String)> = [
        ("log.dirs", log_dir.to_str().unwrap()),
        ("listeners", "PLAINTEXT://127.0.0.1:0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut broker = Broker::start(BrokerConfig::from_properties(&props).unwrap()).unwrap();
    let tp = TopicPartition::new(TOPIC, 0);
    let markers = vec![
        // C's open transaction ends in an abort; the second partition does not exist.
        TxnMarker {
            producer_id: PRODUCER_C,
            producer_epoch: 0,
            commit: false,
            coordinator_epoch: COORDINATOR_EPOCH,
            partitions: vec![tp.clone(), TopicPartition::new("nope", 0)],
        },
        // B is at epoch 1: a marker of epoch 0 is fenced.
        TxnMarker {
            producer_id: PRODUCER_B,
            producer_epoch: 0,
            commit: true,
            coordinator_epoch: COORDINATOR_EPOCH,
            partitions: vec![tp.clone()],
        },
    ];
    let (tx, rx) = crossbeam_channel::bounded(1);
    broker
        .context
        .writer
        .send(WriterCommand::WriteTxnMarkers { markers, reply: tx })
        .unwrap();
    let results = rx.recv().unwrap();
    assert_eq!(
        results,
        vec![
            vec![Ok(()), Err(ErrorCode::UnknownTopicOrPartition)],
            vec![Err(ErrorCode::ProducerFenced)],
        ]
    );
    // In the file when answered. The marker carries today's time, which is more than
    // `segment.ms` after the hand-written batches' timestamps: it rolled segment 9, whose index
    // holds C's entry (7 to 9, LSO 10); segment 0 keeps B's.
    let segment = log_dir.join(format!("{TOPIC}-0/00000000000000000009.log"));
    let log = fs::read(segment).unwrap();
    let last = Batches::new(&log).last().unwrap().unwrap();
    assert_eq!(
        (last.base_offset(), last.attributes(), last.producer_id()),
        (9, 0x30, PRODUCER_C)
    );
    let mut c_entry = vec![0, 0];
    for field in [PRODUCER_C, 7, 9, 10] {
        c_entry.extend_from_slice(&field.to_be_bytes());
    }
    let index_9 = log_dir.join(format!("{TOPIC}-0/00000000000000000009.txnindex"));
    assert_eq!(fs::read(index_9).unwrap(), c_entry);
    assert_eq!(fs::read(txn_index_path(&log_dir)).unwrap(), b_abort_entry());
    let partition = broker.context.partition(&tp).unwrap();
    assert_eq!(partition.last_stable_offset(), 10);

    let mut client = Client::connect(broker.local_addr());
    let committed = fetch_partition(&mut client, TOPIC, 7, 1);
    assert_eq!(committed.last_stable_offset, 10);
    // A read stops at the end of the segment it starts in.
    assert_eq!(
        batch_ranges(committed.records.as_deref().unwrap()),
        vec![(7, 7), (8, 8)]
    );
    let aborted: Vec<(i64, i64)> = committed
        .aborted_transactions
        .unwrap()
        .iter()
        .map(|a| (a.producer_id, a.first_offset))
        .collect();
    assert_eq!(aborted, vec![(PRODUCER_C, 7)], "found in segment 9's index");
    let marker = fetch_partition(&mut client, TOPIC, 9, 1);
    assert_eq!(
        batch_ranges(marker.records.as_deref().unwrap()),
        vec![(9, 9)]
    );
    drop(client);
    broker.shutdown();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn idle_producers_expire_but_an_open_transaction_keeps_its_producer() {
    // The batches are from 2024: far older than an hour, so every producer without an open
    // transaction is idle for longer than `producer.id.expiration.ms`.
    let batches = batches();
    let broker = TestBroker::start_with(
        "txn-log-producer-expiry",
        move |log_dir| {
            write_cluster_metadata(log_dir, &[TopicSpec::new(TOPIC, 7, 1)]);
            write_partition_log(log_dir, TOPIC, 0, &batches);
        },
        &[
            "producer.id.expiration.ms=3600000",
            "log.retention.check.interval.ms=100",
            // The batches are older than any time retention: keep them.
            "log.retention.ms=-1",
        ],
    );
    let mut client = broker.connect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let producers = loop {
        let partition = describe_producers(&mut client);
        if partition.active_producers.len() == 1 {
            break partition.active_producers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "producers never expired: {:?}",
            partition.active_producers
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(producers[0].producer_id, PRODUCER_C);
    assert_eq!(producers[0].current_txn_start_offset, 7);
    // The open transaction still holds back read_committed readers.
    assert_eq!(
        fetch_partition(&mut client, TOPIC, 0, 1).last_stable_offset,
        7
    );
    broker.assert_no_panics();
}
