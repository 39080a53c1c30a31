//! Produce (key 0), versions 3-11.
//!
//! Each partition is answered on its own: a bad partition never fails the others. The connection
//! thread validates each partition's records (exactly one v2 batch, length, CRC-32C, client base
//! offset 0, record count consistent with the last offset delta, size) and sends the valid ones to
//! the `log-writer` thread in one append command, then waits for the offsets it assigns. The answer
//! is sent only after the bytes are in the log files. With acks=0 nothing is sent back.

use super::{HandlerResult, Outcome, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::produce::*;
use crate::protocol::wire::Decoder;
use crate::storage::log::TopicPartition;
use crate::storage::record_batch::{BatchError, Batches};
use crate::writer::{PartitionAppend, PartitionAppendResult, WriterCommand};
use log::{debug, error};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ProduceRequest::decode(d, version)?;
    let response = produce(ctx, request);
    match response {
        None => Ok(Outcome::NoResponse),
        Some(response) => Ok(respond(header, |e| response.encode(e, version))),
    }
}

/// Where one partition's answer comes from: an error found while validating, or the writer.
enum Pending {
    Failed(ErrorCode),
    Appending(usize),
}

/// Validates, appends and builds the response; `None` for acks=0.
fn produce(ctx: &BrokerContext, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let acks_valid = matches!(acks, -1..=1);
    let mut appends = Vec::new();
    let mut layout = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let metadata = ctx.topic(&topic.name);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let pending = if !acks_valid {
                Pending::Failed(ErrorCode::InvalidRequiredAcks)
            } else {
                let known = metadata
                    .as_ref()
                    .is_some_and(|t| t.partitions.contains_key(&p.index));
                let max_message_bytes = metadata
                    .as_ref()
                    .and_then(|t| t.configs.get("max.message.bytes"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(ctx.config.message_max_bytes);
                match (known, p.records) {
                    (false, _) => Pending::Failed(ErrorCode::UnknownTopicOrPartition),
                    (true, None) => Pending::Failed(ErrorCode::InvalidRecord),
                    (true, Some(records)) => match validate(&records, max_message_bytes) {
                        Err(code) => Pending::Failed(code),
                        Ok(()) => {
                            appends.push(PartitionAppend {
                                topic_partition: TopicPartition::new(topic.name.clone(), p.index),
                                batches: records,
                            });
                            Pending::Appending(appends.len() - 1)
                        }
                    },
                }
            };
            partitions.push((p.index, pending));
        }
        layout.push((topic.name, partitions));
    }
    let results = append(ctx, appends, acks == -1);
    if acks == 0 {
        return None;
    }
    let responses = layout
        .into_iter()
        .map(|(name, partitions)| TopicProduceResponse {
            partition_responses: partitions
                .into_iter()
                .map(|(index, pending)| {
                    let result = match pending {
                        Pending::Failed(code) => Err(code),
                        Pending::Appending(i) => results[i],
                    };
                    partition_response(ctx, &name, index, result)
                })
                .collect(),
            name,
        })
        .collect();
    Some(ProduceResponse {
        responses,
        ..ProduceResponse::default()
    })
}

/// Sends the appends to the writer and waits for the offsets; one result per append.
fn append(
    ctx: &BrokerContext,
    appends: Vec<PartitionAppend>,
    acks_all: bool,
) -> Vec<PartitionAppendResult> {
    if appends.is_empty() {
        return Vec::new();
    }
    let count = appends.len();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let command = WriterCommand::Append {
        partitions: appends,
        acks_all,
        reply: tx,
    };
    match ctx.writer.send(command).ok().and_then(|_| rx.recv().ok()) {
        Some(results) => results,
        None => {
            error!("the log writer is gone; failing {count} appends");
            vec![Err(ErrorCode::KafkaStorageError); count]
        }
    }
}

fn partition_response(
    ctx: &BrokerContext,
    topic: &str,
    index: i32,
    result: PartitionAppendResult,
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
                log_append_time_ms: -1,
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

/// Checks one partition's records as Kafka does for produce v3+: exactly one magic-2 batch with a
/// valid length and CRC, a client base offset of 0, a record count that matches its offset range,
/// and a size within `max.message.bytes`.
pub fn validate(records: &[u8], max_message_bytes: i32) -> Result<(), ErrorCode> {
    let mut batches = Batches::new(records);
    let batch = match batches.next() {
        None => return Err(ErrorCode::InvalidRecord),
        Some(Err(e)) => {
            debug!("produce batch refused: {e}");
            return Err(ErrorCode::CorruptMessage);
        }
        Some(Ok(b)) => b,
    };
    if batches.next().is_some() {
        return Err(ErrorCode::InvalidRecord);
    }
    match batch.validate() {
        Ok(()) => {}
        Err(BatchError::UnsupportedMagic(_)) => return Err(ErrorCode::InvalidRecord),
        Err(e) => {
            debug!("produce batch refused: {e}");
            return Err(ErrorCode::CorruptMessage);
        }
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
