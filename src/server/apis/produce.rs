//! Produce (key 0), versions 3-11.
//!
//! Each partition is answered on its own: a bad partition never fails the others. The connection
//! thread validates each partition's records (exactly one v2 batch, length, CRC-32C, client base
//! offset 0, record count consistent with the last offset delta, size) and sends the valid ones to
//! the `log-writer` thread in one append command. The handler returns a deferred outcome that
//! waits for the offsets the writer assigns, so that the connection can submit the client's next
//! produce meanwhile. The answer is sent only after the bytes are in the log files. With acks=0
//! nothing is sent back.

use super::{Deferred, HandlerResult, Outcome, now_ms, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::produce::*;
use crate::protocol::wire::Decoder;
use crate::storage::log::TopicPartition;
use crate::storage::record_batch::{
    Batches, MAGIC_V2, set_log_append_time, set_partition_leader_epoch,
};
use crate::writer::{PartitionAppend, PartitionAppendResult, WriterCommand};
use crossbeam_channel::Receiver;
use log::{debug, error};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ProduceRequest::decode(d, version)?;
    let acks = request.acks;
    let submitted = submit(ctx, request);
    let header = header.clone();
    Ok(Outcome::Deferred(Deferred::new(move |ctx| {
        finish(ctx, &header, acks, submitted)
    })))
}

/// Waits for the writer and answers: the response, or with acks=0 nothing (or a close).
fn finish(ctx: &BrokerContext, header: &RequestHeader, acks: i16, submitted: Submitted) -> Outcome {
    let version = header.api_version;
    let response = submitted.response(ctx);
    if acks != 0 {
        return respond(header, |e| response.encode(e, version));
    }
    // With acks=0 the client reads no answer; as Kafka does, a failure closes the connection so
    // that the producer notices and refreshes its metadata.
    let failed = response
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.error_code != ErrorCode::None.code());
    match failed {
        Some(p) => Outcome::Close(format!(
            "acks=0 produce failed with error {} on partition {}",
            p.error_code, p.index
        )),
        None => Outcome::NoResponse,
    }
}

/// Where one partition's answer comes from: an error found while validating, or the writer.
enum Pending {
    Failed(ErrorCode),
    /// Index into the appends, and the LogAppendTime stamped on the batch, if the topic uses it.
    Appending(usize, Option<i64>),
}

/// A validated produce request whose appends went to the writer.
struct Submitted {
    /// Each topic's partitions, in request order, with where their answers come from.
    layout: Vec<(String, Vec<(i32, Pending)>)>,
    appends: Appending,
}

impl Submitted {
    /// Waits for the writer's results and builds the response.
    fn response(self, ctx: &BrokerContext) -> ProduceResponse {
        let results = self.appends.wait();
        let responses = self
            .layout
            .into_iter()
            .map(|(name, partitions)| TopicProduceResponse {
                partition_responses: partitions
                    .into_iter()
                    .map(|(index, pending)| {
                        let (result, append_time) = match pending {
                            Pending::Failed(code) => (Err(code), None),
                            Pending::Appending(i, t) => (results[i], t),
                        };
                        partition_response(ctx, &name, index, result, append_time)
                    })
                    .collect(),
                name,
            })
            .collect();
        ProduceResponse {
            responses,
            ..ProduceResponse::default()
        }
    }
}

/// Validates the request and sends its valid appends to the writer.
fn submit(ctx: &BrokerContext, request: ProduceRequest) -> Submitted {
    let acks = request.acks;
    let acks_valid = matches!(acks, -1..=1);
    let mut appends = Vec::new();
    let mut layout = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let metadata = ctx.topic(&topic.name);
        let log_append_time = metadata
            .as_ref()
            .and_then(|t| t.configs.get("message.timestamp.type"))
            .is_some_and(|v| v == "LogAppendTime");
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let known = metadata
                .as_ref()
                .is_some_and(|t| t.partitions.contains_key(&p.index));
            let max_message_bytes = metadata
                .as_ref()
                .and_then(|t| t.configs.get("max.message.bytes"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(ctx.config.message_max_bytes);
            // Kafka's order: unknown partitions, then the request-level record checks, then
            // acks, then the log-level batch checks.
            let checked = if !known {
                Err(ErrorCode::UnknownTopicOrPartition)
            } else {
                let records = p.records.unwrap_or_default();
                let acks_check = if acks_valid {
                    Ok(())
                } else {
                    Err(ErrorCode::InvalidRequiredAcks)
                };
                check_request_records(&records)
                    .and(acks_check)
                    .and_then(|()| check_batch(&records, max_message_bytes))
                    .map(|()| records)
            };
            let pending = match checked {
                Err(code) => Pending::Failed(code),
                Ok(mut records) => {
                    // As leader, Kafka stamps its partition leader epoch on every batch it
                    // appends; the CRC does not cover the field.
                    let leader_epoch = metadata
                        .as_ref()
                        .and_then(|t| t.partitions.get(&p.index))
                        .map_or(0, |m| m.leader_epoch);
                    set_partition_leader_epoch(&mut records, leader_epoch);
                    let append_time = log_append_time.then(now_ms);
                    if let Some(t) = append_time {
                        set_log_append_time(&mut records, t);
                    }
                    appends.push(PartitionAppend {
                        topic_partition: TopicPartition::new(topic.name.clone(), p.index),
                        batches: records,
                    });
                    Pending::Appending(appends.len() - 1, append_time)
                }
            };
            partitions.push((p.index, pending));
        }
        layout.push((topic.name, partitions));
    }
    Submitted {
        layout,
        appends: Appending::send(ctx, appends),
    }
}

/// Appends sent to the writer, whose results are yet to come.
enum Appending {
    Nothing,
    Sent {
        count: usize,
        reply: Receiver<Vec<PartitionAppendResult>>,
    },
    /// The writer is gone (the broker is stopping).
    Failed(usize),
}

impl Appending {
    fn send(ctx: &BrokerContext, appends: Vec<PartitionAppend>) -> Appending {
        if appends.is_empty() {
            return Appending::Nothing;
        }
        let count = appends.len();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let command = WriterCommand::Append {
            partitions: appends,
            reply: tx,
        };
        match ctx.writer.send(command) {
            Ok(()) => Appending::Sent { count, reply: rx },
            Err(_) => Appending::Failed(count),
        }
    }

    /// Waits for the writer; one result per append, in order.
    fn wait(self) -> Vec<PartitionAppendResult> {
        let count = match self {
            Appending::Nothing => return Vec::new(),
            Appending::Sent { count, reply } => match reply.recv() {
                Ok(results) => return results,
                Err(_) => count,
            },
            Appending::Failed(count) => count,
        };
        error!("the log writer is gone; failing {count} appends");
        vec![Err(ErrorCode::KafkaStorageError); count]
    }
}

fn partition_response(
    ctx: &BrokerContext,
    topic: &str,
    index: i32,
    result: PartitionAppendResult,
    log_append_time: Option<i64>,
) -> PartitionProduceResponse {
    match result {
        Ok(info) => {
            let log_start_offset = ctx
                .partition(&TopicPartition::new(topic, index))
                .map_or(0, |p| p.log_start_offset());
            PartitionProduceResponse {
                index,
                error_code: ErrorCode::None.code(),
                base_offset: info.first_offset,
                log_append_time_ms: log_append_time.unwrap_or(-1),
                log_start_offset,
                ..PartitionProduceResponse::default()
            }
        }
        Err(code) => PartitionProduceResponse {
            index,
            error_code: code.code(),
            base_offset: -1,
            log_append_time_ms: -1,
            log_start_offset: -1,
            ..PartitionProduceResponse::default()
        },
    }
}

/// The checks Kafka makes on a produce request's records before looking at acks
/// (`ProduceRequest.validateRecords`): exactly one complete batch, of magic 2.
pub fn check_request_records(records: &[u8]) -> Result<(), ErrorCode> {
    let mut batches = Batches::new(records);
    let batch = match batches.next() {
        None => return Err(ErrorCode::InvalidRecord),
        Some(Err(e)) => {
            debug!("produce batch refused: {e}");
            return Err(ErrorCode::CorruptMessage);
        }
        Some(Ok(b)) => b,
    };
    if batches.next().is_some() || batch.magic() != MAGIC_V2 {
        return Err(ErrorCode::InvalidRecord);
    }
    Ok(())
}

/// The checks Kafka's log validator makes on the one batch: CRC-32C, size within
/// `max.message.bytes`, a client base offset of 0, and a record count matching the offset range.
pub fn check_batch(records: &[u8], max_message_bytes: i32) -> Result<(), ErrorCode> {
    let Some(Ok(batch)) = Batches::new(records).next() else {
        return Err(ErrorCode::CorruptMessage);
    };
    if let Err(e) = batch.validate() {
        debug!("produce batch refused: {e}");
        return Err(ErrorCode::CorruptMessage);
    }
    if batch.size() > max_message_bytes.max(0) as usize {
        return Err(ErrorCode::MessageTooLarge);
    }
    if batch.base_offset() != 0
        || batch.last_offset_delta() < 0
        || i64::from(batch.records_count()) != i64::from(batch.last_offset_delta()) + 1
    {
        return Err(ErrorCode::InvalidRecord);
    }
    Ok(())
}
