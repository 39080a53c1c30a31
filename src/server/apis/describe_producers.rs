//! DescribeProducers (key 61), version 0 (flexible): the active producers of partitions (Kafka's
//! `ReplicaManager.activeProducerState`), as `kafka-transactions.sh describe-producers` shows
//! them: producer id and epoch, last sequence and timestamp, the coordinator epoch of the last
//! marker, and the start offset of the open transaction (-1 when none is open).
//!
//! The producer state belongs to the `log-writer` thread, so the handler asks it with one
//! [`WriterCommand::DescribeProducers`] for every known partition of the request. A partition
//! that does not exist is UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_producers::*;
use crate::protocol::wire::Decoder;
use crate::storage::log::TopicPartition;
use crate::storage::producer_state::ProducerDescription;
use crate::writer::WriterCommand;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeProducersRequest::decode(d, version)?;
    let mut wanted: Vec<TopicPartition> = Vec::new();
    for topic in &request.topics {
        let known = ctx.topic(&topic.name);
        for &index in &topic.partition_indexes {
            if known
                .as_ref()
                .is_some_and(|t| t.partitions.contains_key(&index))
            {
                wanted.push(TopicPartition::new(topic.name.clone(), index));
            }
        }
    }
    let mut described = describe(ctx, &wanted).into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let known = ctx.topic(&topic.name);
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let exists = known
                        .as_ref()
                        .is_some_and(|t| t.partitions.contains_key(&index));
                    let result = if exists {
                        described.next().flatten()
                    } else {
                        None
                    };
                    partition_response(index, result)
                })
                .collect();
            TopicResponse {
                name: topic.name.clone(),
                partitions,
            }
        })
        .collect();
    let response = DescribeProducersResponse {
        throttle_time_ms: 0,
        topics,
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Asks the writer for the producers of each partition, in order; `None` for a partition it
/// does not have (deleted meanwhile) or when it is gone.
fn describe(
    ctx: &BrokerContext,
    partitions: &[TopicPartition],
) -> Vec<Option<Vec<ProducerDescription>>> {
    if partitions.is_empty() {
        return Vec::new();
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let command = WriterCommand::DescribeProducers {
        partitions: partitions.to_vec(),
        reply: tx,
    };
    ctx.writer
        .send(command)
        .ok()
        .and_then(|()| rx.recv().ok())
        .unwrap_or_else(|| vec![None; partitions.len()])
}

fn partition_response(
    index: i32,
    producers: Option<Vec<ProducerDescription>>,
) -> PartitionResponse {
    let Some(producers) = producers else {
        return PartitionResponse {
            partition_index: index,
            error_code: ErrorCode::UnknownTopicOrPartition.code(),
            error_message: None,
            active_producers: Vec::new(),
        };
    };
    PartitionResponse {
        partition_index: index,
        error_code: ErrorCode::None.code(),
        error_message: None,
        active_producers: producers
            .into_iter()
            .map(|p| ProducerState {
                producer_id: p.producer_id,
                producer_epoch: i32::from(p.producer_epoch),
                last_sequence: p.last_sequence,
                last_timestamp: p.last_timestamp,
                coordinator_epoch: p.coordinator_epoch,
                current_txn_start_offset: p.current_txn_start_offset,
            })
            .collect(),
    }
}
