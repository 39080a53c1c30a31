//! The `log-writer` thread: the one owner of every partition log's write side, playing the part of
//! Kafka's ReplicaManager and log layer on a single node.
//!
//! Connection threads validate produce requests and send an [`WriterCommand::Append`] over a bounded
//! crossbeam channel, each with its own reply channel. The writer takes whatever is queued as one
//! group (group commit): it appends every batch, fsyncs once per touched partition when configured
//! to, publishes the new high watermarks, wakes waiting fetches, and only then replies to everyone.
//! A reply therefore always means the bytes are in the log file.

use crate::protocol::error_code::ErrorCode;
use crate::storage::log::{AppendInfo, AppendNotifier, PartitionLog, TopicPartition};
use crossbeam_channel::{Receiver, Sender};
use log::{debug, error, info};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The most commands handled as one group before replies go out.
const MAX_GROUP_COMMANDS: usize = 1024;

/// One partition's share of a produce request: validated batches, concatenated.
pub struct PartitionAppend {
    pub topic_partition: TopicPartition,
    pub batches: Vec<u8>,
}

/// The result of one partition's append.
pub type PartitionAppendResult = Result<AppendInfo, ErrorCode>;

pub enum WriterCommand {
    /// Append batches to partitions; the reply lists one result per partition, in order.
    Append {
        partitions: Vec<PartitionAppend>,
        /// Whether the producer waits for all replicas (acks=-1), which with `flush_on_ack`
        /// means waiting for fsync.
        acks_all: bool,
        reply: Sender<Vec<PartitionAppendResult>>,
    },
    /// Hands a newly opened partition log to the writer.
    AddLog(PartitionLog),
    /// Finishes queued work, flushes every log and stops.
    Shutdown { reply: Sender<()> },
}

/// The writer thread's state.
pub struct LogWriter {
    logs: HashMap<TopicPartition, PartitionLog>,
    notifier: Arc<AppendNotifier>,
    flush_on_ack: bool,
}

impl LogWriter {
    pub fn new(logs: Vec<PartitionLog>, notifier: Arc<AppendNotifier>, flush_on_ack: bool) -> Self {
        let logs = logs
            .into_iter()
            .map(|l| (l.partition.topic_partition.clone(), l))
            .collect();
        LogWriter {
            logs,
            notifier,
            flush_on_ack,
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
        let mut replies = Vec::with_capacity(group.len());
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
                            let result = self.append(p.topic_partition.clone(), p.batches);
                            if acks_all && self.flush_on_ack && result.is_ok() {
                                to_sync.insert(p.topic_partition);
                            }
                            result
                        })
                        .collect();
                    replies.push((reply, results));
                }
                WriterCommand::AddLog(log) => {
                    info!("log-writer now owns {}", log.partition.topic_partition);
                    self.logs.insert(log.partition.topic_partition.clone(), log);
                }
                WriterCommand::Shutdown { reply } => shutdown = Some(reply),
            }
        }
        self.sync(&to_sync, &mut replies);
        self.notifier.notify();
        for (reply, results) in replies {
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

    fn append(&mut self, tp: TopicPartition, mut batches: Vec<u8>) -> PartitionAppendResult {
        let Some(log) = self.logs.get_mut(&tp) else {
            return Err(ErrorCode::UnknownTopicOrPartition);
        };
        log.append(&mut batches).map_err(|e| {
            error!("append to {tp} failed: {e}");
            ErrorCode::KafkaStorageError
        })
    }

    /// fsyncs each partition once; a failed fsync turns that partition's results into storage
    /// errors, since the data may not be durable.
    fn sync(
        &self,
        partitions: &HashSet<TopicPartition>,
        replies: &mut [(
            Sender<Vec<PartitionAppendResult>>,
            Vec<PartitionAppendResult>,
        )],
    ) {
        let mut failed = HashSet::new();
        for tp in partitions {
            if let Some(log) = self.logs.get(tp)
                && let Err(e) = log.flush()
            {
                error!("fsync of {tp} failed: {e}");
                failed.insert(tp.clone());
            }
        }
        if failed.is_empty() {
            return;
        }
        debug!("{} partitions failed to sync", failed.len());
        for (_, results) in replies.iter_mut() {
            for r in results.iter_mut() {
                if r.is_ok() {
                    *r = Err(ErrorCode::KafkaStorageError);
                }
            }
        }
    }

    fn flush_all(&self) {
        for (tp, log) in &self.logs {
            if let Err(e) = log.flush() {
                error!("flush of {tp} at shutdown failed: {e}");
            }
        }
    }
}
