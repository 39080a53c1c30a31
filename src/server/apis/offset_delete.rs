//! OffsetDelete (key 47), version 0: deletes committed offsets of a group. Partitions of unknown
//! topics get UNKNOWN_TOPIC_OR_PARTITION; a group that still consumes a topic keeps its offsets
//! (GROUP_SUBSCRIBED_TO_TOPIC). A group-level error answers for the whole request.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::offset_delete::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized, group_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = OffsetDeleteRequest::decode(d, version)?;
    if let Some(error) = group_refusal(ctx, AclOperation::Delete, &request.group_id) {
        let response = OffsetDeleteResponse {
            error_code: error.code(),
            ..OffsetDeleteResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    // Each partition's answer: an error found here, or its index in `known`.
    let mut known = Vec::new();
    let answers: Vec<Vec<Result<usize, ErrorCode>>> = request
        .topics
        .iter()
        .map(|topic| {
            let metadata = ctx.topic(&topic.name);
            let denied = !authorized(ctx, AclOperation::Read, ResourceType::Topic, &topic.name);
            topic
                .partitions
                .iter()
                .map(|p| {
                    if denied {
                        return Err(ErrorCode::TopicAuthorizationFailed);
                    }
                    let exists = metadata
                        .as_ref()
                        .is_some_and(|t| t.partitions.contains_key(&p.partition_index));
                    if !exists {
                        return Err(ErrorCode::UnknownTopicOrPartition);
                    }
                    known.push((topic.name.clone(), p.partition_index));
                    Ok(known.len() - 1)
                })
                .collect()
        })
        .collect();
    let response = match ctx
        .group_coordinator
        .delete_offsets(ctx, &request.group_id, &known)
    {
        Err(error) => OffsetDeleteResponse {
            error_code: error.code(),
            ..OffsetDeleteResponse::default()
        },
        Ok(errors) => OffsetDeleteResponse {
            error_code: ErrorCode::None.code(),
            topics: request
                .topics
                .iter()
                .zip(answers)
                .map(|(topic, answer)| OffsetDeleteResponseTopic {
                    name: topic.name.clone(),
                    partitions: topic
                        .partitions
                        .iter()
                        .zip(answer)
                        .map(|(p, a)| OffsetDeleteResponsePartition {
                            partition_index: p.partition_index,
                            error_code: a.map_or_else(|e| e, |i| errors[i]).code(),
                        })
                        .collect(),
                })
                .collect(),
            ..OffsetDeleteResponse::default()
        },
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
