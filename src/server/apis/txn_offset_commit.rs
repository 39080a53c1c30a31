//! TxnOffsetCommit (key 28), versions 0-4: a transactional producer's offsets of a group, written
//! to `__consumer_offsets` inside its transaction (see [`crate::group::TxnOffsetCommit`]); they
//! become the group's offsets when the transaction commits.
//!
//! With an authorizer, as in Kafka: Write on the transactional id (else 53 for every partition),
//! then Read on the group (else 30 for every partition), then Read on each topic (29 for its
//! partitions, which are left out of the commit).

use super::{HandlerResult, now_ms, respond};
use crate::broker::BrokerContext;
use crate::group::{OffsetAndMetadata, OffsetCommit, TxnOffsetCommit};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::txn_offset_commit::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{
    AclOperation, ResourceType, authorized, group_refusal, transactional_id_refusal,
};
use std::collections::HashSet;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = TxnOffsetCommitRequest::decode(d, version)?;
    let now = now_ms();
    let refusal = transactional_id_refusal(ctx, AclOperation::Write, &request.transactional_id)
        .or_else(|| group_refusal(ctx, AclOperation::Read, &request.group_id));
    let denied: HashSet<&str> = request
        .topics
        .iter()
        .filter(|t| !authorized(ctx, AclOperation::Read, ResourceType::Topic, &t.name))
        .map(|t| t.name.as_str())
        .collect();
    let offsets: Vec<(String, i32, OffsetAndMetadata)> = request
        .topics
        .iter()
        .filter(|t| refusal.is_none() && !denied.contains(t.name.as_str()))
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.clone(),
                    p.partition_index,
                    OffsetAndMetadata {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.clone().unwrap_or_default(),
                        commit_timestamp_ms: now,
                    },
                )
            })
        })
        .collect();
    let errors = if offsets.is_empty() {
        Vec::new()
    } else {
        ctx.group_coordinator.commit_txn_offsets(
            ctx,
            TxnOffsetCommit {
                transactional_id: &request.transactional_id,
                producer_id: request.producer_id,
                producer_epoch: request.producer_epoch,
                commit: OffsetCommit {
                    group_id: &request.group_id,
                    member_id: &request.member_id,
                    group_instance_id: request.group_instance_id.as_deref(),
                    generation_id: request.generation_id,
                    offsets,
                },
            },
        )
    };
    let mut errors = errors.into_iter();
    let response = TxnOffsetCommitResponse {
        topics: request
            .topics
            .iter()
            .map(|t| TxnOffsetCommitResponseTopic {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| TxnOffsetCommitResponsePartition {
                        partition_index: p.partition_index,
                        error_code: match refusal {
                            Some(code) => code.code(),
                            None if denied.contains(t.name.as_str()) => {
                                ErrorCode::TopicAuthorizationFailed.code()
                            }
                            None => errors.next().map_or(0, |e| e.code()),
                        },
                    })
                    .collect(),
            })
            .collect(),
        ..TxnOffsetCommitResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
