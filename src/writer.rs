//! The `log-writer` thread: the one owner of every partition log's write side, playing the part of
//! Kafka's ReplicaManager and log layer on a single node.
//!
//! Connection threads validate produce requests and send an [`WriterCommand::Append`] over a bounded
//! crossbeam channel, each with its own reply channel. The writer takes whatever is queued as one
//! group (group commit): it appends every batch, fsyncs once per touched partition when configured
//! to, publishes the new high watermarks, wakes waiting fetches, and only then replies to everyone.
//! A reply therefore always means the bytes are in the log file.
//!
//! Between groups (and on a timer when idle) the writer does the log manager's periodic work:
//! retention every `log.retention.check.interval.ms`, time-based flushes (`log.flush.interval.ms`,
//! topic `flush.ms`), and the `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint`
//! files. A rolled segment is fsynced by a short-lived `segment-flush` thread, which reports back
//! with [`WriterCommand::SegmentsFlushed`] so that the recovery point can pass it. At shutdown the
//! writer finishes what is queued, closes every log (final index entries, trimmed indexes,
//! fsync, producer snapshots), writes both checkpoints, and last the `.kafka_cleanshutdown` marker.

use crate::broker::{BrokerContext, log_config, open_partition_log, random_uuid};
use crate::controller::{
    NewTopic, TopicError, collision_name, partition_record, topic_collides, topic_exists,
    topic_records, validate_new_partitions,
};
use crate::dynamic_config::{self, AlterResource};
use crate::metadata::log::{build_metadata_batch, metadata_topic_partition};
use crate::metadata::records::producer_ids_record::ProducerIdsRecord;
use crate::metadata::records::remove_topic_record::RemoveTopicRecord;
use crate::metadata::{MetadataRecord, TopicMetadata};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::wire::Uuid;
use crate::server::apis::now_ms;
use crate::storage::checkpoint::{
    self, LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
    write_clean_shutdown_marker, write_offset_checkpoint,
};
use crate::storage::log::{
    AppendError, AppendInfo, CleanedSegment, DeleteRecordsError, LoadOptions, Partition,
    PartitionLog, SealedFlush, TopicPartition,
};
use crate::storage::open_files;
use crate::storage::producer_state::ProducerDescription;
use crate::txn::TxnMarker;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, error, info, warn};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many producer ids one ProducerIdsRecord reserves (Kafka's block size).
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Kafka's default `producer.id.expiration.ms` (one day).
const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// The most commands handled as one group before replies go out.
const MAX_GROUP_COMMANDS: usize = 1024;

/// Kafka's default for `log.flush.offset.checkpoint.interval.ms` and
/// `log.flush.start.offset.checkpoint.interval.ms`.
const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 60_000;

/// The shortest period of the time-based flush check, however small `flush.ms` is.
const MIN_FLUSH_CHECK_MS: u64 = 1;

/// The error code a failed append (or marker) is answered with.
fn append_error_code(tp: &TopicPartition, e: AppendError) -> ErrorCode {
    match e {
        AppendError::Producer(code) => code,
        AppendError::Io(e) => {
            error!("append to {tp} failed: {e}");
            ErrorCode::KafkaStorageError
        }
        AppendError::Offline => ErrorCode::KafkaStorageError,
    }
}

/// A WriteTxnMarkers reply channel and each marker's per-partition results, sent after the
/// group's fsyncs.
type MarkerReply = (
    Sender<Vec<crate::txn::MarkerResults>>,
    Vec<Vec<(TopicPartition, Result<(), ErrorCode>)>>,
);

/// One partition's share of a produce request: validated batches, concatenated.
pub struct PartitionAppend {
    pub topic_partition: TopicPartition,
    pub batches: Vec<u8>,
}

/// The result of one partition's append.
pub type PartitionAppendResult = Result<AppendInfo, ErrorCode>;

/// Where the writer sends an append command's results.
pub type AppendReply = Sender<Vec<PartitionAppendResult>>;

pub enum WriterCommand {
    /// Append batches to partitions; the reply lists one result per partition, in order.
    Append {
        partitions: Vec<PartitionAppend>,
        reply: AppendReply,
    },
    /// Creates topics (already validated); one result per topic, in order.
    CreateTopics {
        topics: Vec<NewTopic>,
        reply: Sender<Vec<Result<Uuid, TopicError>>>,
    },
    /// Adds partitions to topics: (name, new partition count) each; one result per topic, in
    /// order.
    CreatePartitions {
        topics: Vec<(String, i32)>,
        reply: Sender<Vec<Result<(), TopicError>>>,
    },
    /// Changes configs (AlterConfigs, IncrementalAlterConfigs); one result per resource, in order.
    AlterConfigs {
        resources: Vec<AlterResource>,
        reply: Sender<Vec<Result<(), TopicError>>>,
    },
    /// Deletes topics by id; one result (the deleted name) per topic, in order.
    DeleteTopics {
        topic_ids: Vec<Uuid>,
        reply: Sender<Vec<Result<String, ErrorCode>>>,
    },
    /// Appends metadata records that need no checks by the writer (the caller validated them,
    /// e.g. SCRAM credentials, client quotas), fsyncs them, then applies them to the metadata image.
    AppendMetadata {
        records: Vec<MetadataRecord>,
        reply: Sender<Result<(), ErrorCode>>,
    },
    /// Hands out a new producer id (InitProducerId).
    AllocateProducerId {
        reply: Sender<Result<i64, ErrorCode>>,
    },
    /// DeleteRecords: moves each partition's log start offset up to the offset (-1: the high
    /// watermark); one result (the new log start offset) per partition, in order.
    DeleteRecords {
        partitions: Vec<(TopicPartition, i64)>,
        reply: Sender<Vec<Result<i64, ErrorCode>>>,
    },
    /// Sent by a `segment-flush` thread: the segments of log `log_id` below `upto_offset` are on
    /// disk.
    SegmentsFlushed {
        topic_partition: TopicPartition,
        log_id: u64,
        upto_offset: i64,
    },
    /// Sent by a `segment-flush` thread whose fsync failed: nothing from `from_offset` on may be
    /// trusted to be on disk.
    SegmentsFlushFailed {
        topic_partition: TopicPartition,
        log_id: u64,
        from_offset: i64,
    },
    /// Sent by the `log-cleaner`: swaps cleaned copies of the partition's sealed segments in
    /// (see `storage::log::compaction`); the reply says how many were swapped.
    ReplaceCleanedSegments {
        partition: Arc<Partition>,
        segments: Vec<CleanedSegment>,
        reply: Sender<std::io::Result<usize>>,
    },
    /// Writes COMMIT/ABORT control batches (sent by the transaction coordinator); the reply has
    /// one [`crate::txn::MarkerResults`] per marker, in order, each sent once the batches are in
    /// the log files.
    WriteTxnMarkers {
        markers: Vec<crate::txn::TxnMarker>,
        reply: Sender<Vec<crate::txn::MarkerResults>>,
    },
    /// DescribeProducers: the producers of each partition, in order (`None`: no such log).
    DescribeProducers {
        partitions: Vec<TopicPartition>,
        reply: Sender<Vec<Option<Vec<ProducerDescription>>>>,
    },
    /// Finishes queued work, flushes every log and stops.
    Shutdown { reply: Sender<()> },
}

/// Creates an internal topic (`__consumer_offsets`, `__transaction_state`) through the writer if
/// it does not exist yet, and returns its partition count. Whoever loses a race to create it
/// uses the winner's topic; any other failure is COORDINATOR_NOT_AVAILABLE, as the coordinators
/// answer while their topic cannot be had.
pub fn create_internal_topic(ctx: &BrokerContext, topic: NewTopic) -> Result<i32, ErrorCode> {
    let name = topic.name.clone();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let created = ctx
        .writer
        .send(WriterCommand::CreateTopics {
            topics: vec![topic],
            reply: tx,
        })
        .ok()
        .and_then(|_| rx.recv().ok());
    match created.as_ref().and_then(|r| r.first()) {
        Some(Ok(_)) | Some(Err((ErrorCode::TopicAlreadyExists, _))) => {}
        Some(Err((code, message))) => {
            error!("could not create {name}: {code:?} {message}");
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        None => return Err(ErrorCode::CoordinatorNotAvailable),
    }
    ctx.topic(&name)
        .map(|t| t.partitions.len() as i32)
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

/// The writer thread's state.
pub struct LogWriter {
    ctx: Arc<BrokerContext>,
    logs: HashMap<TopicPartition, PartitionLog>,
    /// Producer ids reserved by the last ProducerIdsRecord and not yet handed out.
    producer_ids: std::ops::Range<i64>,
    schedule: Schedule,
    /// The queue of the `segment-flush` thread, started with the first roll.
    flusher: Option<crossbeam_channel::Sender<SealedFlush>>,
}

/// When the periodic tasks run next.
struct Schedule {
    retention_interval: Duration,
    next_retention: Instant,
    recovery_checkpoint_interval: Duration,
    next_recovery_checkpoint: Instant,
    start_checkpoint_interval: Duration,
    next_start_checkpoint: Instant,
    /// How often time-based flushes are checked; `None` when no log has `flush.ms`.
    flush_check_interval: Option<Duration>,
    next_flush_check: Instant,
}

impl Schedule {
    fn new(ctx: &BrokerContext, now: Instant) -> Schedule {
        let interval_ms = |key: &str| {
            ctx.config
                .get(key)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL_MS)
                .max(1)
        };
        let retention_interval =
            Duration::from_millis(ctx.config.log_retention_check_interval_ms.max(1));
        let recovery_checkpoint_interval =
            Duration::from_millis(interval_ms("log.flush.offset.checkpoint.interval.ms"));
        let start_checkpoint_interval =
            Duration::from_millis(interval_ms("log.flush.start.offset.checkpoint.interval.ms"));
        Schedule {
            retention_interval,
            next_retention: now + retention_interval,
            recovery_checkpoint_interval,
            next_recovery_checkpoint: now + recovery_checkpoint_interval,
            start_checkpoint_interval,
            next_start_checkpoint: now + start_checkpoint_interval,
            flush_check_interval: None,
            next_flush_check: now,
        }
    }

    /// The earliest time a task is due.
    fn next_deadline(&self) -> Instant {
        let mut next = self
            .next_retention
            .min(self.next_recovery_checkpoint)
            .min(self.next_start_checkpoint);
        if self.flush_check_interval.is_some() {
            next = next.min(self.next_flush_check);
        }
        next
    }
}

impl LogWriter {
    pub fn new(ctx: Arc<BrokerContext>, logs: Vec<PartitionLog>) -> Self {
        let logs = logs
            .into_iter()
            .map(|l| (l.partition.topic_partition.clone(), l))
            .collect();
        let schedule = Schedule::new(&ctx, Instant::now());
        let mut writer = LogWriter {
            ctx,
            logs,
            producer_ids: 0..0,
            schedule,
            flusher: None,
        };
        writer.update_flush_check_interval();
        writer
    }

    /// Swaps cleaned segments into the log they were cleaned from, unless that log was deleted
    /// (or deleted and created again) meanwhile.
    fn replace_cleaned_segments(
        &mut self,
        partition: &Arc<Partition>,
        segments: &[CleanedSegment],
    ) -> std::io::Result<usize> {
        let log = self
            .logs
            .get_mut(&partition.topic_partition)
            .filter(|log| Arc::ptr_eq(&log.partition, partition));
        let Some(log) = log else {
            for s in segments {
                let _ = fs::remove_file(crate::storage::log::cleaned_path(
                    &partition.dir,
                    s.base_offset,
                ));
            }
            return Ok(0);
        };
        let mut swapped = 0;
        for s in segments {
            swapped += usize::from(log.replace_cleaned_segment(s)?);
        }
        Ok(swapped)
    }

    /// Runs until a shutdown command arrives or every sender is gone.
    pub fn run(mut self, commands: Receiver<WriterCommand>) {
        let mut group = Vec::new();
        loop {
            let timeout = self
                .schedule
                .next_deadline()
                .saturating_duration_since(Instant::now());
            match commands.recv_timeout(timeout) {
                Ok(first) => group.push(first),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while !group.is_empty() && group.len() < MAX_GROUP_COMMANDS {
                match commands.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            if group.is_empty() {
                // A timer tick.
            } else if let Some(reply) = self.handle_group(&mut group) {
                // Finish what was queued behind the shutdown request.
                group.extend(commands.try_iter().take(MAX_GROUP_COMMANDS));
                if let Some(late) = self.handle_group(&mut group) {
                    let _ = late.send(());
                }
                self.close_all();
                let _ = reply.send(());
                return;
            }
            self.run_periodic_tasks(Instant::now());
        }
        self.close_all();
    }

    /// Handles one group of commands. Returns the reply channel of a shutdown request, after
    /// which the writer should stop.
    fn handle_group(&mut self, group: &mut Vec<WriterCommand>) -> Option<Sender<()>> {
        let mut replies: Vec<(AppendReply, Vec<(TopicPartition, PartitionAppendResult)>)> =
            Vec::with_capacity(group.len());
        let mut to_sync: HashSet<TopicPartition> = HashSet::new();
        let mut touched: HashSet<TopicPartition> = HashSet::new();
        let mut marker_replies: Vec<MarkerReply> = Vec::new();
        let mut shutdown = None;
        self.ctx.metrics.record_group_commit(group.len());
        for command in group.drain(..) {
            match command {
                WriterCommand::Append { partitions, reply } => {
                    let results: Vec<_> = partitions
                        .into_iter()
                        .map(|p| {
                            let bytes = p.batches.len() as u64;
                            let result = self.append(&p.topic_partition, p.batches);
                            if let Ok(info) = &result {
                                let messages = (info.last_offset - info.first_offset + 1) as u64;
                                self.ctx.metrics.record_append(
                                    &p.topic_partition.topic,
                                    messages,
                                    bytes,
                                );
                            }
                            if result.is_ok() && !touched.contains(&p.topic_partition) {
                                touched.insert(p.topic_partition.clone());
                            }
                            (p.topic_partition, result)
                        })
                        .collect();
                    replies.push((reply, results));
                }
                WriterCommand::CreateTopics { topics, reply } => {
                    let results = topics.into_iter().map(|t| self.create_topic(t)).collect();
                    self.update_flush_check_interval();
                    let _ = reply.send(results);
                }
                WriterCommand::CreatePartitions { topics, reply } => {
                    let results = topics
                        .iter()
                        .map(|(name, count)| self.create_partitions(name, *count))
                        .collect();
                    let _ = reply.send(results);
                }
                WriterCommand::AlterConfigs { resources, reply } => {
                    let results = resources.iter().map(|r| self.alter_configs(r)).collect();
                    let _ = reply.send(results);
                }
                WriterCommand::DeleteTopics { topic_ids, reply } => {
                    let results = topic_ids.iter().map(|id| self.delete_topic(id)).collect();
                    let _ = reply.send(results);
                }
                WriterCommand::AppendMetadata { records, reply } => {
                    let result = self.append_metadata(&records).map(|()| {
                        let mut image = self.ctx.metadata.write();
                        for r in &records {
                            image.apply(r);
                        }
                        self.ctx.authorizer.set_acls(image.acls.clone());
                    });
                    let _ = reply.send(result);
                }
                WriterCommand::AllocateProducerId { reply } => {
                    let _ = reply.send(self.allocate_producer_id());
                }
                WriterCommand::DeleteRecords { partitions, reply } => {
                    let _ = reply.send(self.delete_records(partitions));
                }
                WriterCommand::SegmentsFlushed {
                    topic_partition,
                    log_id,
                    upto_offset,
                } => {
                    if let Some(log) = self.logs.get_mut(&topic_partition)
                        && log.id() == log_id
                    {
                        log.mark_flushed(upto_offset);
                    }
                }
                WriterCommand::SegmentsFlushFailed {
                    topic_partition,
                    log_id,
                    from_offset,
                } => {
                    if let Some(log) = self.logs.get_mut(&topic_partition)
                        && log.id() == log_id
                    {
                        log.mark_flush_failed(from_offset);
                    }
                }
                WriterCommand::ReplaceCleanedSegments {
                    partition,
                    segments,
                    reply,
                } => {
                    let _ = reply.send(self.replace_cleaned_segments(&partition, &segments));
                }
                WriterCommand::WriteTxnMarkers { markers, reply } => {
                    let results: Vec<Vec<(TopicPartition, Result<(), ErrorCode>)>> = markers
                        .iter()
                        .map(|m| self.write_txn_marker(m, &mut touched))
                        .collect();
                    marker_replies.push((reply, results));
                }
                WriterCommand::DescribeProducers { partitions, reply } => {
                    let described = partitions
                        .iter()
                        .map(|tp| self.logs.get(tp).map(PartitionLog::describe_producers))
                        .collect();
                    let _ = reply.send(described);
                }
                WriterCommand::Shutdown { reply } => shutdown = Some(reply),
            }
        }
        let now = crate::server::apis::now_ms();
        for tp in &touched {
            if let Some(log) = self.logs.get(tp)
                && log.flush_due(now)
            {
                to_sync.insert(tp.clone());
            }
        }
        let failed = self.sync(&to_sync);
        for tp in &touched {
            self.start_sealed_flush(tp);
        }
        self.ctx.appends.notify();
        for (reply, results) in replies {
            let results = results
                .into_iter()
                .map(|(tp, r)| {
                    if failed.contains(&tp) {
                        Err(ErrorCode::KafkaStorageError)
                    } else {
                        r
                    }
                })
                .collect();
            // A connection that went away no longer wants its answer.
            let _ = reply.send(results);
        }
        for (reply, markers) in marker_replies {
            let results = markers
                .into_iter()
                .map(|partitions| {
                    partitions
                        .into_iter()
                        .map(|(tp, r)| {
                            if failed.contains(&tp) {
                                Err(ErrorCode::KafkaStorageError)
                            } else {
                                r
                            }
                        })
                        .collect()
                })
                .collect();
            let _ = reply.send(results);
        }
        shutdown
    }

    /// Writes one marker's control batch on each of its partitions (fsynced with the group, like
    /// an append); one result per partition, in order.
    fn write_txn_marker(
        &mut self,
        marker: &TxnMarker,
        touched: &mut HashSet<TopicPartition>,
    ) -> Vec<(TopicPartition, Result<(), ErrorCode>)> {
        marker
            .partitions
            .iter()
            .map(|tp| {
                let leader_epoch = self
                    .ctx
                    .topic(&tp.topic)
                    .and_then(|t| t.partitions.get(&tp.partition).map(|p| p.leader_epoch))
                    .unwrap_or(0);
                let result = match self.logs.get_mut(tp) {
                    None => Err(ErrorCode::UnknownTopicOrPartition),
                    Some(log) => log
                        .append_marker(
                            marker.producer_id,
                            marker.producer_epoch,
                            marker.commit,
                            marker.coordinator_epoch,
                            leader_epoch,
                        )
                        .map(|_| ())
                        .map_err(|e| append_error_code(tp, e)),
                };
                if result.is_ok() {
                    touched.insert(tp.clone());
                }
                (tp.clone(), result)
            })
            .collect()
    }

    /// Runs the periodic tasks that are due.
    fn run_periodic_tasks(&mut self, now: Instant) {
        if let Some(interval) = self.schedule.flush_check_interval
            && now >= self.schedule.next_flush_check
        {
            self.schedule.next_flush_check = now + interval;
            self.flush_due_logs();
        }
        if now >= self.schedule.next_retention {
            self.schedule.next_retention = now + self.schedule.retention_interval;
            self.refresh_log_configs();
            self.delete_old_segments();
            self.expire_producers();
        }
        if now >= self.schedule.next_recovery_checkpoint {
            self.schedule.next_recovery_checkpoint =
                now + self.schedule.recovery_checkpoint_interval;
            let _ = self.checkpoint_recovery_points();
        }
        if now >= self.schedule.next_start_checkpoint {
            self.schedule.next_start_checkpoint = now + self.schedule.start_checkpoint_interval;
            let _ = self.checkpoint_log_start_offsets();
        }
    }

    /// Forgets, in every log, the producers idle for `producer.id.expiration.ms` (Kafka's
    /// default: one day), so that the producer state does not grow with every producer that ever
    /// wrote. Runs with the retention check (`log.retention.check.interval.ms`), where Kafka has
    /// `producer.id.expiration.check.interval.ms`.
    fn expire_producers(&mut self) {
        let expiration_ms = self
            .ctx
            .live_config()
            .get("producer.id.expiration.ms")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|&ms| ms >= 1)
            .unwrap_or(DEFAULT_PRODUCER_ID_EXPIRATION_MS);
        let now = crate::server::apis::now_ms();
        for (tp, log) in &mut self.logs {
            let removed = log.remove_expired_producers(now, expiration_ms);
            if removed > 0 {
                debug!("{tp}: forgot {removed} producers idle for {expiration_ms} ms");
            }
        }
    }

    /// fsyncs the logs whose `flush.ms` has passed since their last flush.
    fn flush_due_logs(&mut self) {
        let now = crate::server::apis::now_ms();
        for (tp, log) in &mut self.logs {
            if log.flush_due(now)
                && let Err(e) = log.flush()
            {
                error!("fsync of {tp} failed: {e}");
            }
        }
    }

    /// Applies topic and dynamic broker config changes to the logs (retention, segment and
    /// flush settings).
    fn refresh_log_configs(&mut self) {
        let live = self.ctx.live_config();
        let image = self.ctx.metadata.read();
        for (tp, log) in &mut self.logs {
            if let Some(topic) = image.topic(&tp.topic) {
                let config = log_config(&live, topic);
                if &config != log.config() {
                    log.set_config(config);
                }
            }
        }
        drop(image);
        self.update_flush_check_interval();
    }

    /// The time-based flush check runs as often as the smallest `flush.ms` (bounded by
    /// `log.flush.scheduler.interval.ms`), and not at all when no log sets one.
    fn update_flush_check_interval(&mut self) {
        let smallest = self
            .logs
            .values()
            .filter_map(|l| l.config().flush_interval_ms)
            .min();
        self.schedule.flush_check_interval = smallest.map(|ms| {
            let scheduler = self.ctx.config.log_flush_scheduler_interval_ms;
            Duration::from_millis((ms.min(scheduler).max(0) as u64).max(MIN_FLUSH_CHECK_MS))
        });
    }

    /// Retention: deletes the segments each log no longer keeps.
    fn delete_old_segments(&mut self) {
        let now = crate::server::apis::now_ms();
        let mut rolled = Vec::new();
        for (tp, log) in &mut self.logs {
            match log.delete_old_segments(now) {
                Ok(0) => {}
                Ok(_) => rolled.push(tp.clone()),
                Err(e) => error!("retention on {tp} failed: {e}"),
            }
        }
        for tp in &rolled {
            self.start_sealed_flush(tp);
        }
    }

    /// DeleteRecords, then a log start offset checkpoint, so that the records stay deleted after
    /// a crash.
    fn delete_records(
        &mut self,
        partitions: Vec<(TopicPartition, i64)>,
    ) -> Vec<Result<i64, ErrorCode>> {
        let results: Vec<_> = partitions
            .into_iter()
            .map(|(tp, offset)| {
                let Some(log) = self.logs.get_mut(&tp) else {
                    return Err(ErrorCode::UnknownTopicOrPartition);
                };
                log.delete_records(offset).map_err(|e| match e {
                    DeleteRecordsError::OffsetOutOfRange => ErrorCode::OffsetOutOfRange,
                    DeleteRecordsError::PolicyViolation => ErrorCode::PolicyViolation,
                    DeleteRecordsError::Io(e) => {
                        error!("DeleteRecords on {tp} failed: {e}");
                        ErrorCode::KafkaStorageError
                    }
                })
            })
            .collect();
        if results.iter().any(Result::is_ok) && self.checkpoint_log_start_offsets().is_err() {
            return results
                .into_iter()
                .map(|r| r.and(Err(ErrorCode::KafkaStorageError)))
                .collect();
        }
        results
    }

    /// Hands a log's rolled segments to a `segment-flush` thread, which fsyncs them and reports
    /// back so that the recovery point can move past them.
    fn start_sealed_flush(&mut self, tp: &TopicPartition) {
        let Some(flush) = self
            .logs
            .get_mut(tp)
            .and_then(PartitionLog::take_sealed_flush)
        else {
            return;
        };
        if self.flusher.is_none() {
            // One thread for all of them: thousands of partitions may roll at once (segment.ms),
            // and the disk takes their fsyncs one at a time anyway.
            let (tx, rx) = crossbeam_channel::unbounded::<SealedFlush>();
            let writer = self.ctx.writer.clone();
            let spawned = std::thread::Builder::new()
                .name("segment-flush".into())
                .spawn(move || {
                    for flush in rx {
                        run_sealed_flush(flush, &writer);
                    }
                });
            match spawned {
                Ok(_) => self.flusher = Some(tx),
                Err(e) => {
                    // The recovery point stays where it is until a later flush covers it.
                    error!("could not start the segment-flush thread for {tp}: {e}");
                    return;
                }
            }
        }
        if let Some(flusher) = &self.flusher {
            let _ = flusher.send(flush);
        }
    }

    fn recovery_points(&self) -> Vec<(TopicPartition, i64)> {
        let mut entries: Vec<_> = self
            .logs
            .iter()
            .map(|(tp, log)| (tp.clone(), log.recovery_point()))
            .collect();
        entries.sort();
        entries
    }

    fn log_start_offsets(&self) -> Vec<(TopicPartition, i64)> {
        let mut entries: Vec<_> = self
            .logs
            .iter()
            .map(|(tp, log)| (tp.clone(), log.log_start_offset()))
            .collect();
        entries.sort();
        entries
    }

    fn checkpoint_recovery_points(&self) -> std::io::Result<()> {
        let path = self
            .ctx
            .config
            .log_dir()
            .join(RECOVERY_POINT_CHECKPOINT_FILE);
        write_offset_checkpoint(&path, &self.recovery_points()).inspect_err(|e| {
            error!("writing {} failed: {e}", path.display());
        })
    }

    fn checkpoint_log_start_offsets(&self) -> std::io::Result<()> {
        let path = self
            .ctx
            .config
            .log_dir()
            .join(LOG_START_OFFSET_CHECKPOINT_FILE);
        write_offset_checkpoint(&path, &self.log_start_offsets()).inspect_err(|e| {
            error!("writing {} failed: {e}", path.display());
        })
    }

    /// Records a new topic in the metadata log (fsynced), opens its partition logs, and then
    /// publishes it.
    fn create_topic(&mut self, topic: NewTopic) -> Result<Uuid, TopicError> {
        // The handler checked these too, but two requests may have raced past it: the writer,
        // which serialises topic changes, has the last word.
        {
            let image = self.ctx.metadata.read();
            if image.topic(&topic.name).is_some() {
                return Err(topic_exists(&topic.name));
            }
            let unified = collision_name(&topic.name);
            if let Some(other) = image.topics().find(|t| collision_name(&t.name) == unified) {
                return Err(topic_collides(&topic.name, &other.name));
            }
        }
        let topic_id = random_uuid();
        let records = topic_records(self.ctx.config.node_id, topic_id, &topic);
        self.append_metadata(&records)
            .map_err(|code| (code, "Could not write the metadata log.".to_string()))?;
        let metadata = TopicMetadata {
            name: topic.name.clone(),
            topic_id,
            partitions: Default::default(),
            configs: topic.configs.clone(),
        };
        self.open_logs(&metadata, 0..topic.num_partitions);
        let mut image = self.ctx.metadata.write();
        for r in &records {
            image.apply(r);
        }
        info!(
            "created topic {} ({topic_id}) with {} partitions",
            topic.name, topic.num_partitions
        );
        Ok(topic_id)
    }

    /// Opens (creating them) the logs of partitions `indexes` of `topic` and registers them.
    fn open_logs(&mut self, topic: &TopicMetadata, indexes: std::ops::Range<i32>) {
        let log_dir = self.ctx.config.log_dir().to_path_buf();
        let live = self.ctx.live_config();
        for index in indexes {
            match open_partition_log(&log_dir, &live, topic, index, LoadOptions::default()) {
                Ok(log) => {
                    let tp = log.partition.topic_partition.clone();
                    self.ctx
                        .partitions
                        .write()
                        .insert(tp.clone(), log.partition.clone());
                    self.logs.insert(tp, log);
                }
                Err(e) => error!("creating the log of {}-{index} failed: {e}", topic.name),
            }
        }
    }

    /// CreatePartitions for one topic: checked again here, where topic changes are serialised,
    /// then PartitionRecords in the metadata log (fsynced), the new logs, and only then the
    /// change in the image.
    fn create_partitions(&mut self, name: &str, count: i32) -> Result<(), TopicError> {
        let Some(topic) = self.ctx.topic(name) else {
            return Err((
                ErrorCode::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            ));
        };
        let current = topic.partitions.len() as i32;
        let node_id = self.ctx.config.node_id;
        validate_new_partitions(node_id, name, current, count, None)?;
        let records: Vec<MetadataRecord> = (current..count)
            .map(|p| partition_record(node_id, topic.topic_id, p))
            .collect();
        self.append_metadata(&records)
            .map_err(|code| (code, "Could not write the metadata log.".to_string()))?;
        self.open_logs(&topic, current..count);
        let mut image = self.ctx.metadata.write();
        for r in &records {
            image.apply(r);
        }
        drop(image);
        self.update_flush_check_interval();
        info!("topic {name}: {current} partitions increased to {count}");
        Ok(())
    }

    /// Applies one resource's config change: planned again against the image (a concurrent
    /// change may have come first), ConfigRecords in the metadata log (fsynced), then the image,
    /// the live broker configuration and the logs' settings.
    fn alter_configs(&mut self, resource: &AlterResource) -> Result<(), TopicError> {
        let records = {
            let image = self.ctx.metadata.read();
            dynamic_config::plan(&image, &self.ctx.config, resource)?
        };
        if records.is_empty() {
            return Ok(());
        }
        self.append_metadata(&records)
            .map_err(|code| (code, "Could not write the metadata log.".to_string()))?;
        let live = {
            let mut image = self.ctx.metadata.write();
            for r in &records {
                image.apply(r);
            }
            dynamic_config::live_config(&self.ctx.config, &image)
        };
        match live {
            Ok(live) => *self.ctx.live.write() = Arc::new(live),
            Err(e) => error!("the dynamic broker configs do not apply: {e}"),
        }
        let names: Vec<&str> = records
            .iter()
            .filter_map(|r| match r {
                MetadataRecord::Config(c) => Some(c.name.as_str()),
                _ => None,
            })
            .collect();
        info!(
            "configs of {} '{}' changed: {}",
            if resource.resource_type == crate::metadata::CONFIG_RESOURCE_TOPIC {
                "topic"
            } else {
                "broker"
            },
            resource.resource_name,
            names.join(", ")
        );
        self.refresh_log_configs();
        Ok(())
    }

    /// Records the removal in the metadata log, unpublishes the topic, and deletes its logs.
    fn delete_topic(&mut self, topic_id: &Uuid) -> Result<String, ErrorCode> {
        let Some(topic) = self.ctx.metadata.read().topic_by_id(topic_id).cloned() else {
            return Err(ErrorCode::UnknownTopicId);
        };
        let record = MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: *topic_id,
        });
        self.append_metadata(std::slice::from_ref(&record))?;
        self.ctx.metadata.write().apply(&record);
        for &index in topic.partitions.keys() {
            let tp = TopicPartition::new(topic.name.clone(), index);
            self.ctx.partitions.write().remove(&tp);
            if let Some(log) = self.logs.remove(&tp)
                && let Err(e) = std::fs::remove_dir_all(&log.partition.dir)
            {
                error!("removing {} failed: {e}", log.partition.dir.display());
            }
        }
        self.ctx.metrics.forget_topic(&topic.name);
        self.ctx.group_coordinator.on_topic_deleted(&topic.name);
        info!("deleted topic {} ({topic_id})", topic.name);
        Ok(topic.name.clone())
    }

    /// Hands out the next producer id, reserving a new block in the metadata log (as Kafka's
    /// controller does with ProducerIdsRecord) when the current one is used up, so that ids are
    /// never reused after a restart.
    fn allocate_producer_id(&mut self) -> Result<i64, ErrorCode> {
        if self.producer_ids.is_empty() {
            let seen = self
                .logs
                .values()
                .filter_map(PartitionLog::max_producer_id)
                .max()
                .map_or(0, |id| id + 1);
            let start = self.ctx.metadata.read().next_producer_id.max(seen);
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            let record = MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: self.ctx.config.node_id,
                broker_epoch: 0,
                next_producer_id: end,
            });
            self.append_metadata(std::slice::from_ref(&record))?;
            self.ctx.metadata.write().apply(&record);
            self.producer_ids = start..end;
        }
        let id = self.producer_ids.start;
        self.producer_ids.start += 1;
        Ok(id)
    }

    /// Appends records to the cluster metadata log and fsyncs it: topic changes are rare and must
    /// survive a power loss.
    fn append_metadata(&mut self, records: &[MetadataRecord]) -> Result<(), ErrorCode> {
        let tp = metadata_topic_partition();
        let batch = build_metadata_batch(records, now_ms(), 1);
        self.append(&tp, batch)?;
        match self.logs.get_mut(&tp).map(PartitionLog::flush) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                error!("fsync of the metadata log failed: {e}");
                Err(ErrorCode::KafkaStorageError)
            }
            None => Err(ErrorCode::KafkaStorageError),
        }
    }

    fn append(&mut self, tp: &TopicPartition, mut batches: Vec<u8>) -> PartitionAppendResult {
        let Some(log) = self.logs.get_mut(tp) else {
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        log.append_batch(&mut batches)
            .map_err(|e| append_error_code(tp, e))
    }

    /// fsyncs each partition once and returns those whose fsync failed: their appends are
    /// answered with a storage error, since the data may not be durable (the log has cut them
    /// off again or gone offline, see [`PartitionLog::flush`]).
    fn sync(&mut self, partitions: &HashSet<TopicPartition>) -> HashSet<TopicPartition> {
        let mut failed = HashSet::new();
        for tp in partitions {
            if let Some(log) = self.logs.get_mut(tp) {
                let started = Instant::now();
                let flushed = log.flush();
                self.ctx.metrics.record_fsync(started.elapsed());
                if let Err(e) = flushed {
                    error!("fsync of {tp} failed: {e}");
                    failed.insert(tp.clone());
                }
            }
        }
        failed
    }

    /// The clean shutdown (Kafka's `LogManager.shutdown`): closes every log, writes both
    /// checkpoints, and only when all of that succeeded, the clean shutdown marker.
    fn close_all(&mut self) {
        let started = Instant::now();
        let mut clean = true;
        let log_dir = self.ctx.config.log_dir().to_path_buf();
        let mut one_file_system = true;
        let log_dir_device = fs::metadata(&log_dir).map(|m| m.dev()).ok();
        for (tp, log) in &mut self.logs {
            if let Err(e) = log.prepare_close() {
                error!("closing the log of {tp} failed: {e}");
                clean = false;
            }
            let device = fs::metadata(&log.partition.dir).map(|m| m.dev()).ok();
            one_file_system &= device.is_some() && device == log_dir_device;
        }
        // One syncfs puts every log's last writes on disk at once; an fsync per file costs a
        // disk flush each, seconds for thousands of partitions. Without it (another file
        // system under a partition directory, or a kernel that refuses), every log is fsynced.
        let prepared = started.elapsed();
        let synced = one_file_system
            && match checkpoint::sync_file_system(&log_dir) {
                Ok(()) => true,
                Err(e) => {
                    warn!(
                        "syncfs of {} failed ({e}); fsyncing every log instead",
                        log_dir.display()
                    );
                    false
                }
            };
        let sync_time = started.elapsed() - prepared;
        for (tp, log) in &mut self.logs {
            if let Err(e) = log.finish_close(synced) {
                error!("closing the log of {tp} failed: {e}");
                clean = false;
            }
        }
        clean &= self.checkpoint_recovery_points().is_ok();
        clean &= self.checkpoint_log_start_offsets().is_ok();
        if !clean {
            warn!("not writing the clean shutdown marker: the next start-up recovers the logs");
            return;
        }
        let log_dir = self.ctx.config.log_dir();
        match write_clean_shutdown_marker(log_dir, 0) {
            Ok(()) => info!(
                "closed {} logs and wrote the clean shutdown marker in {} ms ({} ms writing, {} ms {})",
                self.logs.len(),
                started.elapsed().as_millis(),
                prepared.as_millis(),
                sync_time.as_millis(),
                if synced {
                    "in one syncfs"
                } else {
                    "fsyncing each log"
                }
            ),
            Err(e) => error!(
                "writing the clean shutdown marker in {} failed: {e}",
                log_dir.display()
            ),
        }
    }
}

/// The body of a `segment-flush` thread.
fn run_sealed_flush(flush: SealedFlush, writer: &Sender<WriterCommand>) {
    match flush.run() {
        Ok(()) => {
            // The writer may have stopped; then the recovery point no longer matters.
            let _ = writer.send(WriterCommand::SegmentsFlushed {
                topic_partition: flush.topic_partition.clone(),
                log_id: flush.log_id,
                upto_offset: flush.upto_offset,
            });
        }
        Err(e) if open_files::is_open_failure(&e) => {
            // The recovery point stays below these segments until a later flush covers them.
            warn!(
                "background flush of the rolled segments of {} put off: {e}",
                flush.topic_partition
            );
        }
        Err(e) => {
            error!(
                "fsync of the rolled segments of {} failed: {e}",
                flush.topic_partition
            );
            let _ = writer.send(WriterCommand::SegmentsFlushFailed {
                topic_partition: flush.topic_partition.clone(),
                log_id: flush.log_id,
                from_offset: flush.from_offset,
            });
        }
    }
}
