//! The transaction coordinator (Kafka's `TransactionCoordinator` with its
//! `TransactionStateManager` and `TransactionMarkerChannelManager`): the state of every
//! transactional id, kept in memory and in `__transaction_state`.
//!
//! Each id lives behind its own lock. A state change is written to `__transaction_state` through
//! the `log-writer` while that lock is held, and applied in memory only once the writer answered
//! (the answer means the record is fsynced). Markers are written without the lock: meanwhile the
//! id is in PrepareCommit or PrepareAbort and other requests for it get CONCURRENT_TRANSACTIONS,
//! as in Kafka. A Prepare* state found at start-up, or left by a marker write that failed, is
//! completed by the `transaction-coordinator` thread, which also aborts transactions past their
//! timeout and removes ids idle for `transactional.id.expiration.ms`.
//!
//! Locks: the map of ids is held only to look up, insert or remove an entry, never while an id's
//! lock is taken or across I/O; an id's lock may be held while the map is locked (expiration).

use super::metadata::{
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID, TRANSACTION_STATE_TOPIC, TransactionMetadata, TxnState,
    decode_record, is_epoch_exhausted, record_key, record_value,
};
use super::{MarkerResults, TxnMarker};
use crate::broker::BrokerContext;
use crate::config::BrokerConfig;
use crate::controller::NewTopic;
use crate::group::offsets::partition_for;
use crate::protocol::error_code::ErrorCode;
use crate::server::apis::now_ms;
use crate::storage::log::{Partition, TopicPartition};
use crate::storage::record_batch::{BatchHeader, Batches, Record, build_batch, decode_records};
use crate::writer::{PartitionAppend, WriterCommand};
use log::{error, info, warn};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The test-only hook that kills the broker at a named step of ending a transaction:
/// `txn-after-prepare` (the PrepareCommit/PrepareAbort record is written, no marker is) or
/// `txn-mid-markers` (the first partition's marker is written, the others are not; only for a
/// transaction of two or more partitions). Both also fire when a transaction is aborted by a
/// fencing InitProducerId or its timeout.
pub const CRASH_POINT_ENV: &str = "SPRAT_TEST_CRASH_POINT";

/// How many times a marker write is tried before the id is left in Prepare* for the
/// `transaction-coordinator` thread.
const MARKER_ATTEMPTS: u32 = 5;
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// How many bytes of `__transaction_state` are read at a time at start-up (Kafka's
/// `transaction.state.log.load.buffer.size` default).
const LOAD_BUFFER_BYTES: usize = 5 * 1024 * 1024;

/// The coordinator epoch written in markers: one node, never re-elected.
const COORDINATOR_EPOCH: i32 = 0;

/// The coordinator's settings, with Kafka's defaults.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    pub num_partitions: i32,
    pub segment_bytes: i64,
    pub max_timeout_ms: i32,
    pub abort_interval_ms: u64,
    pub expiration_ms: i64,
    pub remove_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            num_partitions: 50,
            segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            abort_interval_ms: 10_000,
            expiration_ms: 604_800_000,
            remove_interval_ms: 3_600_000,
        }
    }
}

impl TxnConfig {
    pub fn from_config(config: &BrokerConfig) -> TxnConfig {
        fn get<T: std::str::FromStr>(c: &BrokerConfig, key: &str, default: T) -> T {
            c.get(key)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        }
        let d = TxnConfig::default();
        TxnConfig {
            num_partitions: get(
                config,
                "transaction.state.log.num.partitions",
                d.num_partitions,
            )
            .max(1),
            segment_bytes: get(
                config,
                "transaction.state.log.segment.bytes",
                d.segment_bytes,
            ),
            max_timeout_ms: get(config, "transaction.max.timeout.ms", d.max_timeout_ms),
            abort_interval_ms: get(
                config,
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                d.abort_interval_ms,
            )
            .max(1),
            expiration_ms: get(config, "transactional.id.expiration.ms", d.expiration_ms),
            remove_interval_ms: get(
                config,
                "transaction.remove.expired.transaction.cleanup.interval.ms",
                d.remove_interval_ms,
            )
            .max(1),
        }
    }
}

type Entry = Arc<Mutex<TransactionMetadata>>;

/// The transaction coordinator.
#[derive(Debug, Default)]
pub struct TransactionCoordinator {
    config: TxnConfig,
    ids: Mutex<HashMap<String, Entry>>,
    /// Ids whose markers a thread is writing now: another thread that would complete the same
    /// transaction leaves it to that one, so that each marker is written once.
    completing: Mutex<HashSet<String>>,
}

/// What DescribeTransactions and ListTransactions show of an id.
pub type TxnSnapshot = TransactionMetadata;

impl TransactionCoordinator {
    pub fn new(config: &BrokerConfig) -> TransactionCoordinator {
        TransactionCoordinator {
            config: TxnConfig::from_config(config),
            ids: Mutex::new(HashMap::new()),
            completing: Mutex::new(HashSet::new()),
        }
    }

    pub fn max_timeout_ms(&self) -> i32 {
        self.config.max_timeout_ms
    }

    fn entry(&self, id: &str) -> Option<Entry> {
        self.ids.lock().get(id).cloned()
    }

    /// Whether a transactional batch of `producer_id`/`producer_epoch` under `transactional_id`
    /// may be appended to `tp`: the id's transaction is ongoing with that producer and epoch and
    /// includes the partition (Kafka's partition verification, KIP-890 part 1).
    ///
    /// The errors are the produce error codes Kafka gives: INVALID_PRODUCER_EPOCH for a stale
    /// epoch, INVALID_TXN_STATE when the partition was not added (or the transaction is ending),
    /// INVALID_PRODUCER_ID_MAPPING for an unknown id or another producer id.
    pub fn verify_produce(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        tp: &TopicPartition,
    ) -> Result<(), ErrorCode> {
        let entry = self.entry(id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let m = entry.lock();
        if m.producer_id != producer_id {
            Err(ErrorCode::InvalidProducerIdMapping)
        } else if m.producer_epoch != producer_epoch {
            Err(ErrorCode::InvalidProducerEpoch)
        } else if m.state != TxnState::Ongoing || !m.partitions.contains(tp) {
            Err(ErrorCode::InvalidTxnState)
        } else {
            Ok(())
        }
    }

    // ---- InitProducerId -----------------------------------------------------------------------

    /// InitProducerId with a transactional id (Kafka's `handleInitProducerId`): the producer id
    /// and the bumped epoch. `expected` is the KIP-360 producer id and epoch of the request.
    pub fn init_producer_id(
        &self,
        ctx: &BrokerContext,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        let entry = match self.entry(id) {
            Some(e) => e,
            None => {
                let producer_id = allocate_producer_id(ctx)?;
                let fresh = TransactionMetadata::new(id, producer_id, timeout_ms, now_ms());
                self.ids
                    .lock()
                    .entry(id.to_string())
                    .or_insert_with(|| Arc::new(Mutex::new(fresh)))
                    .clone()
            }
        };
        let mut m = entry.lock();
        let valid_producer = |(pid, epoch): (i64, i16)| {
            m.producer_epoch == NO_PRODUCER_EPOCH
                || pid == m.producer_id
                || (pid == m.last_producer_id && is_epoch_exhausted(epoch))
        };
        if !expected.is_none_or(valid_producer) {
            return Err(ErrorCode::ProducerFenced);
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the current producer and abort its transaction; the new one retries.
                let mut next = m.clone();
                next.producer_epoch = next.producer_epoch.saturating_add(1);
                next.last_producer_epoch = NO_PRODUCER_EPOCH;
                self.prepare_end(ctx, &mut m, next, false)?;
                drop(m);
                let _ = self.complete(ctx, &entry);
                Err(ErrorCode::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = m.clone();
                if is_epoch_exhausted(m.producer_epoch)
                    && expected.is_none_or(|(_, e)| e == m.producer_epoch)
                {
                    // KIP-360: a new producer id once the epochs are used up.
                    next.producer_id = allocate_producer_id(ctx)?;
                    next.producer_epoch = 0;
                    (next.last_producer_id, next.last_producer_epoch) = match expected {
                        Some(_) => (m.producer_id, m.producer_epoch),
                        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH),
                    };
                } else {
                    let (epoch, last) = bump_epoch(&m, expected.map(|(_, e)| e))?;
                    next.producer_epoch = epoch;
                    next.last_producer_epoch = last;
                }
                next.timeout_ms = timeout_ms;
                next.state = TxnState::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.update_ms = now_ms();
                self.store(ctx, &mut m, next)?;
                Ok((m.producer_id, m.producer_epoch))
            }
            TxnState::Dead | TxnState::PrepareEpochFence => Err(ErrorCode::ConcurrentTransactions),
        }
    }

    // ---- AddPartitionsToTxn / AddOffsetsToTxn -------------------------------------------------

    /// Adds partitions to the id's transaction, starting one if none is ongoing.
    pub fn add_partitions(
        &self,
        ctx: &BrokerContext,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<(), ErrorCode> {
        let entry = self.entry(id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let mut m = entry.lock();
        check_producer(&m, producer_id, producer_epoch)?;
        if m.state.is_prepare() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if !matches!(
            m.state,
            TxnState::Ongoing
                | TxnState::Empty
                | TxnState::CompleteCommit
                | TxnState::CompleteAbort
        ) {
            return Err(ErrorCode::InvalidTxnState);
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|tp| m.partitions.contains(tp)) {
            return Ok(());
        }
        let now = now_ms();
        let mut next = m.clone();
        if m.state != TxnState::Ongoing {
            next.start_ms = now;
            next.partitions.clear();
        }
        next.partitions.extend(partitions.iter().cloned());
        next.state = TxnState::Ongoing;
        next.update_ms = now;
        self.store(ctx, &mut m, next)
    }

    /// AddPartitionsToTxn with `verify_only` (v4+): which partitions are in the transaction.
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<ErrorCode>, ErrorCode> {
        let entry = self.entry(id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let m = entry.lock();
        check_producer(&m, producer_id, producer_epoch)?;
        if m.state.is_prepare() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                if m.state == TxnState::Ongoing && m.partitions.contains(tp) {
                    ErrorCode::None
                } else {
                    ErrorCode::InvalidTxnState
                }
            })
            .collect())
    }

    // ---- EndTxn -------------------------------------------------------------------------------

    /// EndTxn (Kafka's `endTransaction` from a client): PrepareCommit/PrepareAbort, markers,
    /// then CompleteCommit/CompleteAbort. The answer is NONE once the Prepare* record is stored,
    /// as in Kafka, even if the markers must be finished later by the coordinator thread.
    pub fn end_txn(
        &self,
        ctx: &BrokerContext,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        let entry = self.entry(id).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        let mut m = entry.lock();
        if m.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let next = m.clone();
                self.prepare_end(ctx, &mut m, next, commit)?;
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                return Err(ErrorCode::ConcurrentTransactions);
            }
            _ => return Err(ErrorCode::InvalidTxnState),
        }
        drop(m);
        if let Err(code) = self.complete(ctx, &entry) {
            warn!("transactional id {id}: markers not written yet ({code:?}); will retry");
        }
        Ok(())
    }

    /// Writes the Prepare* record of `next` (the current metadata, maybe with a bumped epoch).
    fn prepare_end(
        &self,
        ctx: &BrokerContext,
        m: &mut TransactionMetadata,
        mut next: TransactionMetadata,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        let state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        next.state = state;
        next.update_ms = now_ms();
        self.store(ctx, m, next)?;
        crash_point("txn-after-prepare");
        Ok(())
    }

    /// Finishes a Prepare* state: markers on every partition, the group coordinator's
    /// transactional offsets, then the Complete* record. Does nothing in another state.
    pub fn complete(&self, ctx: &BrokerContext, entry: &Entry) -> Result<(), ErrorCode> {
        let id = entry.lock().transactional_id.clone();
        if !self.completing.lock().insert(id.clone()) {
            return Ok(());
        }
        let result = self.complete_once(ctx, entry);
        self.completing.lock().remove(&id);
        result
    }

    fn complete_once(&self, ctx: &BrokerContext, entry: &Entry) -> Result<(), ErrorCode> {
        let (marker, from) = {
            let m = entry.lock();
            if !m.state.is_prepare() {
                return Ok(());
            }
            let marker = TxnMarker {
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                commit: m.state == TxnState::PrepareCommit,
                coordinator_epoch: COORDINATOR_EPOCH,
                partitions: m.partitions.iter().cloned().collect(),
            };
            (marker, m.clone())
        };
        write_markers(ctx, &marker)?;
        ctx.group_coordinator
            .complete_txn_offsets(marker.producer_id, marker.commit);
        let mut m = entry.lock();
        if *m != from {
            // Completed by another thread meanwhile.
            return Ok(());
        }
        let mut next = m.clone();
        next.state = if marker.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions = BTreeSet::new();
        next.update_ms = now_ms();
        self.store(ctx, &mut m, next)
    }

    // ---- Describe / List ----------------------------------------------------------------------

    pub fn describe(&self, id: &str) -> Option<TxnSnapshot> {
        self.entry(id).map(|e| e.lock().clone())
    }

    pub fn list(&self) -> Vec<TxnSnapshot> {
        let entries: Vec<Entry> = self.ids.lock().values().cloned().collect();
        let mut all: Vec<TxnSnapshot> = entries.iter().map(|e| e.lock().clone()).collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    // ---- Storage ------------------------------------------------------------------------------

    /// Writes `next` to `__transaction_state` and, once stored, makes it the id's state.
    fn store(
        &self,
        ctx: &BrokerContext,
        m: &mut TransactionMetadata,
        next: TransactionMetadata,
    ) -> Result<(), ErrorCode> {
        assert!(
            next.state.can_follow(m.state),
            "transactional id {}: no transition from {:?} to {:?}",
            m.transactional_id,
            m.state,
            next.state
        );
        let value = record_value(&next);
        self.append(ctx, &next.transactional_id, Some(value))?;
        *m = next;
        Ok(())
    }

    fn append(
        &self,
        ctx: &BrokerContext,
        id: &str,
        value: Option<Vec<u8>>,
    ) -> Result<(), ErrorCode> {
        let topic_partition = self.state_partition(ctx, id)?;
        let now = now_ms();
        let header = BatchHeader {
            base_timestamp: now,
            max_timestamp: now,
            ..BatchHeader::default()
        };
        let record = Record {
            key: Some(record_key(id)),
            value,
            ..Record::default()
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        ctx.writer
            .send(WriterCommand::Append {
                partitions: vec![PartitionAppend {
                    topic_partition,
                    batches: build_batch(&header, &[record]),
                }],
                reply: tx,
            })
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        let results = rx.recv().map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
        match results.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err(code)) => {
                error!("could not write the state of transactional id {id}: {code:?}");
                Err(match code {
                    ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => {
                        ErrorCode::NotCoordinator
                    }
                    _ => ErrorCode::CoordinatorNotAvailable,
                })
            }
            None => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// The partition of `__transaction_state` that holds `id`, creating the topic on first use.
    fn state_partition(&self, ctx: &BrokerContext, id: &str) -> Result<TopicPartition, ErrorCode> {
        let count = match ctx.topic(TRANSACTION_STATE_TOPIC) {
            Some(topic) => topic.partitions.len() as i32,
            None => self.create_state_topic(ctx)?,
        };
        if count <= 0 {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        Ok(TopicPartition::new(
            TRANSACTION_STATE_TOPIC,
            partition_for(id, count),
        ))
    }

    fn create_state_topic(&self, ctx: &BrokerContext) -> Result<i32, ErrorCode> {
        let configs = [
            ("cleanup.policy", "compact".to_string()),
            ("compression.type", "uncompressed".to_string()),
            ("segment.bytes", self.config.segment_bytes.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let topic = NewTopic {
            name: TRANSACTION_STATE_TOPIC.to_string(),
            num_partitions: self.config.num_partitions,
            configs,
        };
        crate::writer::create_internal_topic(ctx, topic)
    }

    /// Rebuilds every id from `__transaction_state`, before the broker accepts connections.
    /// Prepare* states are completed by the coordinator thread once the writer runs.
    pub fn load(&self, partitions: &HashMap<TopicPartition, Arc<Partition>>) -> io::Result<()> {
        let mut loaded: HashMap<String, TransactionMetadata> = HashMap::new();
        let mut count = 0;
        for (tp, log) in partitions {
            if tp.topic != TRANSACTION_STATE_TOPIC {
                continue;
            }
            count += 1;
            replay_partition(log, &mut loaded)?;
        }
        let mut ids = self.ids.lock();
        for (id, m) in loaded {
            ids.insert(id, Arc::new(Mutex::new(m)));
        }
        if count > 0 {
            info!(
                "loaded {} transactional ids from {count} partitions of {TRANSACTION_STATE_TOPIC}",
                ids.len()
            );
        }
        Ok(())
    }

    // ---- Timers -------------------------------------------------------------------------------

    /// Starts the `transaction-coordinator` thread.
    pub fn start(ctx: &Arc<BrokerContext>) -> io::Result<()> {
        let weak = Arc::downgrade(ctx);
        std::thread::Builder::new()
            .name("transaction-coordinator".into())
            .spawn(move || run_timers(weak))?;
        Ok(())
    }

    /// Completes Prepare* states and aborts transactions past their timeout, bumping the
    /// epoch so that the producer is fenced (Kafka's `abortTimedOutTransactions`).
    pub fn abort_timed_out(&self, ctx: &BrokerContext, now: i64) {
        let entries: Vec<Entry> = self.ids.lock().values().cloned().collect();
        for entry in entries {
            let timed_out = {
                let mut m = entry.lock();
                let expired =
                    m.state == TxnState::Ongoing && m.start_ms + i64::from(m.timeout_ms) < now;
                if expired {
                    info!(
                        "aborting the transaction of {} (producer id {}, epoch {}): past its timeout of {} ms",
                        m.transactional_id, m.producer_id, m.producer_epoch, m.timeout_ms
                    );
                    let mut next = m.clone();
                    if !is_epoch_exhausted(next.producer_epoch) {
                        next.producer_epoch += 1;
                    }
                    if let Err(code) = self.prepare_end(ctx, &mut m, next, false) {
                        warn!("could not abort {}: {code:?}", m.transactional_id);
                    }
                }
                m.state.is_prepare()
            };
            if timed_out && let Err(code) = self.complete(ctx, &entry) {
                warn!("markers of a transaction not written yet: {code:?}");
            }
        }
    }

    /// Removes ids whose last transaction ended more than `transactional.id.expiration.ms` ago:
    /// a tombstone in `__transaction_state`, then the id is Dead in memory (a request holding
    /// it meanwhile gets CONCURRENT_TRANSACTIONS and retries) and leaves the map.
    pub fn remove_expired(&self, ctx: &BrokerContext, now: i64) {
        let entries: Vec<Entry> = self.ids.lock().values().cloned().collect();
        for entry in entries {
            let id = {
                let mut m = entry.lock();
                let idle = TxnState::Dead.can_follow(m.state)
                    && m.update_ms.saturating_add(self.config.expiration_ms) <= now;
                if !idle || self.append(ctx, &m.transactional_id, None).is_err() {
                    continue;
                }
                m.state = TxnState::Dead;
                m.transactional_id.clone()
            };
            info!("transactional id {id} expired");
            let mut ids = self.ids.lock();
            if ids.get(&id).is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                ids.remove(&id);
            }
        }
    }
}

/// Checks the producer id and epoch of a request against the id's state.
fn check_producer(m: &TransactionMetadata, producer_id: i64, epoch: i16) -> Result<(), ErrorCode> {
    if m.producer_id != producer_id {
        Err(ErrorCode::InvalidProducerIdMapping)
    } else if m.producer_epoch != epoch {
        Err(ErrorCode::ProducerFenced)
    } else {
        Ok(())
    }
}

/// Kafka's `prepareIncrementProducerEpoch`: the new epoch and last epoch.
fn bump_epoch(
    m: &TransactionMetadata,
    expected_epoch: Option<i16>,
) -> Result<(i16, i16), ErrorCode> {
    let bumped = m.producer_epoch.saturating_add(1);
    match expected_epoch {
        None => Ok((bumped, NO_PRODUCER_EPOCH)),
        Some(e) if m.producer_epoch == NO_PRODUCER_EPOCH || e == m.producer_epoch => {
            Ok((bumped, m.producer_epoch))
        }
        // A retry of a bump whose answer the producer never got.
        Some(e) if e == m.last_producer_epoch => Ok((m.producer_epoch, m.last_producer_epoch)),
        Some(_) => Err(ErrorCode::ProducerFenced),
    }
}

fn allocate_producer_id(ctx: &BrokerContext) -> Result<i64, ErrorCode> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    ctx.writer
        .send(WriterCommand::AllocateProducerId { reply: tx })
        .ok()
        .and_then(|_| rx.recv().ok())
        .unwrap_or(Err(ErrorCode::CoordinatorNotAvailable))
}

/// Writes a marker on every partition, retrying failed ones; a partition whose topic is gone
/// is skipped, as Kafka does.
fn write_markers(ctx: &BrokerContext, marker: &TxnMarker) -> Result<(), ErrorCode> {
    let mut pending = marker.partitions.clone();
    if crash_point_is("txn-mid-markers") && pending.len() > 1 {
        let first = TxnMarker {
            partitions: vec![pending[0].clone()],
            ..marker.clone()
        };
        let _ = send_markers(ctx, &first);
        crash_point("txn-mid-markers");
    }
    let mut last_error = ErrorCode::None;
    for attempt in 0..MARKER_ATTEMPTS {
        if pending.is_empty() {
            return Ok(());
        }
        if attempt > 0 {
            std::thread::sleep(MARKER_RETRY_BACKOFF);
        }
        let this = TxnMarker {
            partitions: pending.clone(),
            ..marker.clone()
        };
        let results = send_markers(ctx, &this)?;
        let mut failed = Vec::new();
        for (tp, result) in pending.into_iter().zip(results) {
            match result {
                Ok(()) | Err(ErrorCode::UnknownTopicOrPartition) => {}
                Err(code) => {
                    last_error = code;
                    failed.push(tp);
                }
            }
        }
        pending = failed;
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err(last_error)
    }
}

fn send_markers(ctx: &BrokerContext, marker: &TxnMarker) -> Result<MarkerResults, ErrorCode> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    ctx.writer
        .send(WriterCommand::WriteTxnMarkers {
            markers: vec![marker.clone()],
            reply: tx,
        })
        .map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
    let mut results = rx.recv().map_err(|_| ErrorCode::CoordinatorNotAvailable)?;
    let mut results = results.pop().unwrap_or_default();
    results.resize(marker.partitions.len(), Err(ErrorCode::UnknownServerError));
    Ok(results)
}

fn crash_point_is(point: &str) -> bool {
    std::env::var(CRASH_POINT_ENV).is_ok_and(|p| p == point)
}

/// Kills the broker if the test-only hook names `point`.
fn crash_point(point: &str) {
    if crash_point_is(point) {
        error!("{CRASH_POINT_ENV}={point}: killing the broker");
        // SAFETY: kill(2) with our own pid and SIGKILL has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

/// Applies one `__transaction_state` partition from its log start to its high watermark: the
/// last record of each id wins, a tombstone removes it.
fn replay_partition(
    log: &Partition,
    loaded: &mut HashMap<String, TransactionMetadata>,
) -> io::Result<()> {
    let tp = &log.topic_partition;
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    while offset < end {
        let read = match log.read(offset, LOAD_BUFFER_BYTES, true)? {
            Ok(read) if !read.records.is_empty() => read,
            _ => {
                warn!("{tp}: nothing to read at offset {offset} below the high watermark {end}");
                break;
            }
        };
        let mut next = offset;
        for batch in Batches::new(&read.records) {
            let Ok(batch) = batch else {
                warn!("{tp}: stopped loading at offset {next}");
                break;
            };
            next = next.max(batch.last_offset() + 1);
            if batch.is_control() || batch.compression_codec() != 0 {
                continue;
            }
            let Ok(records) = decode_records(&batch) else {
                warn!(
                    "{tp}: skipping undecodable batch at {}",
                    batch.base_offset()
                );
                continue;
            };
            for r in records {
                let Some(key) = &r.key else { continue };
                match decode_record(key, r.value.as_deref()) {
                    Ok((id, Some(m))) => {
                        loaded.insert(id, m);
                    }
                    Ok((id, None)) => {
                        loaded.remove(&id);
                    }
                    Err(e) => warn!("{tp}: skipping a record: {e}"),
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(())
}

/// The loop of the `transaction-coordinator` thread.
fn run_timers(ctx: Weak<BrokerContext>) {
    let mut last_abort = 0i64;
    let mut last_remove = now_ms();
    let mut first = true;
    loop {
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        if ctx.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let coordinator = &ctx.transactions;
        let now = now_ms();
        let abort_interval = coordinator.config.abort_interval_ms as i64;
        if first || now - last_abort >= abort_interval {
            coordinator.abort_timed_out(&ctx, now);
            last_abort = now;
            first = false;
        }
        if now - last_remove >= coordinator.config.remove_interval_ms as i64 {
            coordinator.remove_expired(&ctx, now);
            last_remove = now;
        }
        let sleep_ms = abort_interval.clamp(1, 1000) as u64;
        drop(ctx);
        std::thread::sleep(Duration::from_millis(sleep_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_epochs(epoch: i16, last: i16) -> TransactionMetadata {
        let mut m = TransactionMetadata::new("t", 1, 1000, 0);
        m.producer_epoch = epoch;
        m.last_producer_epoch = last;
        m
    }

    /// (epoch, last epoch, the request's epoch, the answer).
    type BumpCase = (i16, i16, Option<i16>, Result<(i16, i16), ErrorCode>);

    /// Kafka's `prepareIncrementProducerEpoch`, case by case.
    #[test]
    fn epoch_bumps_as_kafka() {
        let cases: &[BumpCase] = &[
            // A new producer: bump, forget the last epoch.
            (3, 2, None, Ok((4, NO_PRODUCER_EPOCH))),
            // A new id (no epoch yet) gets 0.
            (
                NO_PRODUCER_EPOCH,
                NO_PRODUCER_EPOCH,
                None,
                Ok((0, NO_PRODUCER_EPOCH)),
            ),
            // KIP-360: the current producer bumps its own epoch, remembering the last one.
            (3, NO_PRODUCER_EPOCH, Some(3), Ok((4, 3))),
            // A retry of that bump: no second bump.
            (4, 3, Some(3), Ok((4, 3))),
            // Anyone else is fenced.
            (4, 3, Some(1), Err(ErrorCode::ProducerFenced)),
        ];
        for &(epoch, last, expected, result) in cases {
            assert_eq!(
                bump_epoch(&with_epochs(epoch, last), expected),
                result,
                "epoch {epoch}, last {last}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn produce_verification_errors() {
        let c = TransactionCoordinator::default();
        let tp = TopicPartition::new("a", 0);
        assert_eq!(
            c.verify_produce("t", 1, 0, &tp),
            Err(ErrorCode::InvalidProducerIdMapping)
        );
        let mut m = with_epochs(2, NO_PRODUCER_EPOCH);
        m.state = TxnState::Ongoing;
        m.partitions.insert(tp.clone());
        c.ids.lock().insert("t".into(), Arc::new(Mutex::new(m)));
        assert_eq!(c.verify_produce("t", 1, 2, &tp), Ok(()));
        assert_eq!(
            c.verify_produce("t", 9, 2, &tp),
            Err(ErrorCode::InvalidProducerIdMapping)
        );
        assert_eq!(
            c.verify_produce("t", 1, 1, &tp),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            c.verify_produce("t", 1, 2, &TopicPartition::new("a", 1)),
            Err(ErrorCode::InvalidTxnState)
        );
    }
}
