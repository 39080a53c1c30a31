//! The `log-writer` thread: the one owner of every partition log's write side, playing the part of
//! Kafka's ReplicaManager and log layer on a single node.
//!
//! Connection threads validate produce requests and send an [`WriterCommand::Append`] over a bounded
//! crossbeam channel, each with its own reply channel. The writer takes whatever is queued as one
//! group (group commit): it appends every batch, fsyncs once per touched partition when configured
//! to, publishes the new high watermarks, wakes waiting fetches, and only then replies to everyone.
//! A reply therefore always means the bytes are in the log file.

use crate::broker::{BrokerContext, open_partition_log, random_uuid};
use crate::controller::{NewTopic, TopicError, topic_records};
use crate::metadata::log::{build_metadata_batch, metadata_topic_partition};
use crate::metadata::records::producer_ids_record::ProducerIdsRecord;
use crate::metadata::records::remove_topic_record::RemoveTopicRecord;
use crate::metadata::{MetadataRecord, TopicMetadata};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::wire::Uuid;
use crate::server::apis::now_ms;
use crate::storage::log::{AppendError, AppendInfo, PartitionLog, TopicPartition};
use crossbeam_channel::{Receiver, Sender};
use log::{error, info};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How many producer ids one ProducerIdsRecord reserves (Kafka's block size).
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The most commands handled as one group before replies go out.
const MAX_GROUP_COMMANDS: usize = 1024;

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
        /// Whether the producer waits for all replicas (acks=-1), which with `flush_on_ack`
        /// means waiting for fsync.
        acks_all: bool,
        reply: AppendReply,
    },
    /// Creates topics (already validated); one result per topic, in order.
    CreateTopics {
        topics: Vec<NewTopic>,
        reply: Sender<Vec<Result<Uuid, TopicError>>>,
    },
    /// Deletes topics by id; one result (the deleted name) per topic, in order.
    DeleteTopics {
        topic_ids: Vec<Uuid>,
        reply: Sender<Vec<Result<String, ErrorCode>>>,
    },
    /// Hands out a new producer id (InitProducerId).
    AllocateProducerId {
        reply: Sender<Result<i64, ErrorCode>>,
    },
    /// Finishes queued work, flushes every log and stops.
    Shutdown { reply: Sender<()> },
}

/// The writer thread's state.
pub struct LogWriter {
    ctx: Arc<BrokerContext>,
    logs: HashMap<TopicPartition, PartitionLog>,
    flush_on_ack: bool,
    /// Producer ids reserved by the last ProducerIdsRecord and not yet handed out.
    producer_ids: std::ops::Range<i64>,
}

impl LogWriter {
    pub fn new(ctx: Arc<BrokerContext>, logs: Vec<PartitionLog>) -> Self {
        let logs = logs
            .into_iter()
            .map(|l| (l.partition.topic_partition.clone(), l))
            .collect();
        LogWriter {
            flush_on_ack: ctx.config.log_flush_on_ack,
            ctx,
            logs,
            producer_ids: 0..0,
        }
    }

    /// Runs until a shutdown command arrives or every sender is gone.
    pub fn run(mut self, commands: Receiver<WriterCommand>) {
        let mut group = Vec::new();
        while let Ok(first) = commands.recv() {
            group.push(first);
            while group.len() < MAX_GROUP_COMMANDS {
                match commands.try_recv() {
                    Ok(c) => group.push(c),
                    Err(_) => break,
                }
            }
            if self.handle_group(&mut group) {
                return;
            }
        }
        self.flush_all();
    }

    /// Handles one group of commands. Returns true when the writer should stop.
    fn handle_group(&mut self, group: &mut Vec<WriterCommand>) -> bool {
        let mut replies: Vec<(AppendReply, Vec<(TopicPartition, PartitionAppendResult)>)> =
            Vec::with_capacity(group.len());
        let mut to_sync: HashSet<TopicPartition> = HashSet::new();
        let mut shutdown = None;
        for command in group.drain(..) {
            match command {
                WriterCommand::Append {
                    partitions,
                    acks_all,
                    reply,
                } => {
                    let results: Vec<_> = partitions
                        .into_iter()
                        .map(|p| {
                            let result = self.append(&p.topic_partition, p.batches);
                            if acks_all && self.flush_on_ack && result.is_ok() {
                                to_sync.insert(p.topic_partition.clone());
                            }
                            (p.topic_partition, result)
                        })
                        .collect();
                    replies.push((reply, results));
                }
                WriterCommand::CreateTopics { topics, reply } => {
                    let results = topics.into_iter().map(|t| self.create_topic(t)).collect();
                    let _ = reply.send(results);
                }
                WriterCommand::DeleteTopics { topic_ids, reply } => {
                    let results = topic_ids.iter().map(|id| self.delete_topic(id)).collect();
                    let _ = reply.send(results);
                }
                WriterCommand::AllocateProducerId { reply } => {
                    let _ = reply.send(self.allocate_producer_id());
                }
                WriterCommand::Shutdown { reply } => shutdown = Some(reply),
            }
        }
        let failed = self.sync(&to_sync);
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
        if let Some(reply) = shutdown {
            self.flush_all();
            let _ = reply.send(());
            return true;
        }
        false
    }

    /// Records a new topic in the metadata log (fsynced), opens its partition logs, and then
    /// publishes it.
    fn create_topic(&mut self, topic: NewTopic) -> Result<Uuid, TopicError> {
        if self.ctx.metadata.read().topic(&topic.name).is_some() {
            let message = format!("Topic '{}' already exists.", topic.name);
            return Err((ErrorCode::TopicAlreadyExists, message));
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
        let log_dir = self.ctx.config.log_dir().to_path_buf();
        for index in 0..topic.num_partitions {
            match open_partition_log(&log_dir, &self.ctx.config, &metadata, index) {
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
        info!("deleted topic {} ({topic_id})", topic.name);
        Ok(topic.name)
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
        match self.logs.get(&tp).map(PartitionLog::flush) {
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
        log.append_batch(&mut batches).map_err(|e| match e {
            AppendError::Producer(code) => code,
            AppendError::Io(e) => {
                error!("append to {tp} failed: {e}");
                ErrorCode::KafkaStorageError
            }
        })
    }

    /// fsyncs each partition once and returns those whose fsync failed: their appends are
    /// answered with a storage error, since the data may not be durable.
    fn sync(&self, partitions: &HashSet<TopicPartition>) -> HashSet<TopicPartition> {
        let mut failed = HashSet::new();
        for tp in partitions {
            if let Some(log) = self.logs.get(tp)
                && let Err(e) = log.flush()
            {
                error!("fsync of {tp} failed: {e}");
                failed.insert(tp.clone());
            }
        }
        failed
    }

    fn flush_all(&self) {
        for (tp, log) in &self.logs {
            if let Err(e) = log.flush() {
                error!("flush of {tp} at shutdown failed: {e}");
            }
        }
    }
}
