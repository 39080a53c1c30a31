//! OffsetCommit (key 8), versions 0-9: stores committed offsets in `__consumer_offsets` and
//! answers once they are appended.
//!
//! As in Kafka's `KafkaApis`, partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION first;
//! the group then checks the member and generation (v0 has neither: a standalone commit, allowed
//! while the group is Empty). The commit timestamp is the broker's clock, except for v1 requests
//! that carry their own.

use super::{HandlerResult, now_ms, respond};
use crate::broker::BrokerContext;
use crate::group::{OffsetAndMetadata, OffsetCommit};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::offset_commit::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized, group_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = OffsetCommitRequest::decode(d, version)?;
    let now = now_ms();
    // Each partition's answer: an error found here, or the index of its offset in `offsets`.
    let mut answers: Vec<Vec<Result<usize, ErrorCode>>> = Vec::with_capacity(request.topics.len());
    let mut offsets = Vec::new();
    let group_denied = group_refusal(ctx, AclOperation::Read, &request.group_id);
    for topic in &request.topics {
        let metadata = ctx.topic(&topic.name);
        let topic_denied = !authorized(ctx, AclOperation::Read, ResourceType::Topic, &topic.name);
        let answer = topic
            .partitions
            .iter()
            .map(|p| {
                if let Some(error) = group_denied {
                    return Err(error);
                }
                if topic_denied {
                    return Err(ErrorCode::TopicAuthorizationFailed);
                }
                let known = metadata
                    .as_ref()
                    .is_some_and(|t| t.partitions.contains_key(&p.partition_index));
                if !known {
                    return Err(ErrorCode::UnknownTopicOrPartition);
                }
                offsets.push((topic.name.clone(), p.partition_index, offset(p, now)));
                Ok(offsets.len() - 1)
            })
            .collect();
        answers.push(answer);
    }
    let errors = if offsets.is_empty() {
        Vec::new()
    } else {
        ctx.group_coordinator.commit_offsets(
            ctx,
            OffsetCommit {
                group_id: &request.group_id,
                member_id: &request.member_id,
                group_instance_id: request.group_instance_id.as_deref(),
                generation_id: request.generation_id_or_member_epoch,
                offsets,
            },
        )
    };
    let topics = request
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, answer)| OffsetCommitResponseTopic {
            name: topic.name.clone(),
            partitions: topic
                .partitions
                .iter()
                .zip(answer)
                .map(|(p, a)| OffsetCommitResponsePartition {
                    partition_index: p.partition_index,
                    error_code: a.map_or_else(|e| e, |i| errors[i]).code(),
                })
                .collect(),
        })
        .collect();
    let response = OffsetCommitResponse {
        topics,
        ..OffsetCommitResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

fn offset(p: &OffsetCommitRequestPartition, now: i64) -> OffsetAndMetadata {
    OffsetAndMetadata {
        offset: p.committed_offset,
        leader_epoch: p.committed_leader_epoch,
        metadata: p.committed_metadata.clone().unwrap_or_default(),
        // Only v1 carries a commit timestamp; -1 there also means "now".
        commit_timestamp_ms: if p.commit_timestamp == -1 {
            now
        } else {
            p.commit_timestamp
        },
    }
}
