//! DeleteRecords (key 21), versions 0-2 (flexible from 2): moves partitions' log start offsets
//! forward. The `log-writer` thread moves each log start offset and deletes the segments entirely
//! below it; fetches below the new start then get OFFSET_OUT_OF_RANGE. An offset of -1 means the
//! high watermark; an offset past it (or otherwise negative) is OFFSET_OUT_OF_RANGE, as in Kafka.
//! sprat answers once the work is done, so `timeout_ms` never expires.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::delete_records::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized};
use crate::storage::log::TopicPartition;
use crate::writer::WriterCommand;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DeleteRecordsRequest::decode(d, version)?;
    // Every partition gets a result in request order; the known ones are filled in by the writer.
    let mut topics: Vec<DeleteRecordsTopicResult> = Vec::with_capacity(request.topics.len());
    let mut wanted: Vec<(usize, usize, TopicPartition, i64)> = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let known = ctx.topic(&topic.name);
        let allowed = authorized(ctx, AclOperation::Delete, ResourceType::Topic, &topic.name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (p, partition) in topic.partitions.iter().enumerate() {
            let exists = known
                .as_ref()
                .is_some_and(|k| k.partitions.contains_key(&partition.partition_index));
            let error = if !allowed {
                ErrorCode::TopicAuthorizationFailed
            } else if exists {
                let tp = TopicPartition::new(topic.name.clone(), partition.partition_index);
                wanted.push((t, p, tp, partition.offset));
                ErrorCode::None
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            partitions.push(DeleteRecordsPartitionResult {
                partition_index: partition.partition_index,
                low_watermark: -1,
                error_code: error.code(),
            });
        }
        topics.push(DeleteRecordsTopicResult {
            name: topic.name.clone(),
            partitions,
        });
    }
    if !wanted.is_empty() {
        let results = delete(ctx, &wanted);
        for ((t, p, _, _), result) in wanted.iter().zip(results) {
            let entry = &mut topics[*t].partitions[*p];
            match result {
                Ok(low_watermark) => entry.low_watermark = low_watermark,
                Err(code) => entry.error_code = code.code(),
            }
        }
    }
    let response = DeleteRecordsResponse {
        throttle_time_ms: 0,
        topics,
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Asks the writer to move the log start offsets; one result per partition, in order.
fn delete(
    ctx: &BrokerContext,
    wanted: &[(usize, usize, TopicPartition, i64)],
) -> Vec<Result<i64, ErrorCode>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let partitions = wanted
        .iter()
        .map(|(_, _, tp, offset)| (tp.clone(), *offset))
        .collect();
    ctx.writer
        .send(WriterCommand::DeleteRecords {
            partitions,
            reply: tx,
        })
        .ok()
        .and_then(|_| rx.recv().ok())
        .unwrap_or_else(|| vec![Err(ErrorCode::KafkaStorageError); wanted.len()])
}
