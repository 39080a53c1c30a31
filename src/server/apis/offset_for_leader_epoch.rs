//! OffsetForLeaderEpoch (key 23), versions 0-4: the end offset of a leader epoch, which the Java
//! consumer asks for to detect log truncation after a leader change. On one node a partition's
//! leader epoch only changes with its metadata, and every batch carries the epoch it was written
//! in, so the current epoch ends at the log end offset, a later or undefined one is (-1, -1), and
//! an earlier one ends where the log starts, as Kafka's leader epoch cache answers.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::offset_for_leader_epoch::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized};
use crate::storage::log::TopicPartition;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = OffsetForLeaderEpochRequest::decode(d, version)?;
    let topics = request
        .topics
        .iter()
        .map(|topic| OffsetForLeaderTopicResult {
            topic: topic.topic.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| end_offset(ctx, &topic.topic, p))
                .collect(),
        })
        .collect();
    let response = OffsetForLeaderEpochResponse {
        topics,
        ..OffsetForLeaderEpochResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

fn end_offset(ctx: &BrokerContext, topic: &str, p: &OffsetForLeaderPartition) -> EpochEndOffset {
    let answer = |code: ErrorCode, leader_epoch: i32, end_offset: i64| EpochEndOffset {
        error_code: code.code(),
        partition: p.partition,
        leader_epoch,
        end_offset,
    };
    if !authorized(ctx, AclOperation::Describe, ResourceType::Topic, topic) {
        return answer(ErrorCode::TopicAuthorizationFailed, -1, -1);
    }
    let leader_epoch = ctx
        .topic(topic)
        .and_then(|t| t.partitions.get(&p.partition).map(|m| m.leader_epoch));
    let partition = ctx.partition(&TopicPartition::new(topic.to_string(), p.partition));
    let (Some(current), Some(partition)) = (leader_epoch, partition) else {
        return answer(ErrorCode::UnknownTopicOrPartition, -1, -1);
    };
    // The caller's idea of the current leader epoch (v2+; -1 skips the check).
    if p.current_leader_epoch >= 0 {
        if p.current_leader_epoch < current {
            return answer(ErrorCode::FencedLeaderEpoch, -1, -1);
        }
        if p.current_leader_epoch > current {
            return answer(ErrorCode::UnknownLeaderEpoch, -1, -1);
        }
    }
    if p.leader_epoch == current {
        answer(ErrorCode::None, current, partition.log_end_offset())
    } else if p.leader_epoch > current || p.leader_epoch < 0 {
        answer(ErrorCode::None, -1, -1)
    } else {
        // An epoch before any the log holds: Kafka's cache answers with that epoch and the
        // start of the next one it knows, here the current one, which spans the whole log.
        answer(
            ErrorCode::None,
            p.leader_epoch,
            partition.log_start_offset(),
        )
    }
}
