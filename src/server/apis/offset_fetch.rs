//! OffsetFetch (key 9), versions 0-9: the committed offsets of one group (v0-7) or several (v8+).
//!
//! A partition with no committed offset gets offset -1, leader epoch -1 and empty metadata with
//! no error, as in Kafka. A null topic list (v2+) asks for every partition the group committed.
//! With `require_stable` (v7+), a partition whose offset a transaction has committed but not yet
//! ended gets UNSTABLE_OFFSET_COMMIT, as in Kafka.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::{FetchedOffsets, OffsetAndMetadata};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::offset_fetch::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized, group_refusal};
use std::collections::HashSet;

/// Kafka's `OffsetFetchResponse.INVALID_OFFSET`.
const INVALID_OFFSET: i64 = -1;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = OffsetFetchRequest::decode(d, version)?;
    let coordinator = &ctx.group_coordinator;
    let response = if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|topics| {
                    topics
                        .iter()
                        .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                        .collect::<Vec<_>>()
                });
                if let Some(error) = group_refusal(ctx, AclOperation::Describe, &g.group_id) {
                    return OffsetFetchResponseGroup {
                        group_id: g.group_id.clone(),
                        topics: Vec::new(),
                        error_code: error.code(),
                    };
                }
                let fetched = coordinator.fetch_offsets(&g.group_id, wanted.as_deref());
                let (fetched, denied) = authorize_topics(ctx, fetched, wanted.is_none());
                let unstable = |topic: &str, p: i32| {
                    request.require_stable
                        && coordinator.has_pending_txn_offset(&g.group_id, topic, p)
                };
                let mut topics = group_topics(fetched, unstable);
                for p in topics
                    .iter_mut()
                    .filter(|t| denied.contains(&t.name))
                    .flat_map(|t| &mut t.partitions)
                {
                    p.error_code = ErrorCode::TopicAuthorizationFailed.code();
                }
                OffsetFetchResponseGroup {
                    group_id: g.group_id.clone(),
                    topics,
                    error_code: ErrorCode::None.code(),
                }
            })
            .collect();
        OffsetFetchResponse {
            groups,
            ..OffsetFetchResponse::default()
        }
    } else {
        let wanted = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .map(|t| (t.name.clone(), t.partition_indexes.clone()))
                .collect::<Vec<_>>()
        });
        let refusal = group_refusal(ctx, AclOperation::Describe, &request.group_id);
        let fetched = match refusal {
            None => coordinator.fetch_offsets(&request.group_id, wanted.as_deref()),
            Some(_) => Vec::new(),
        };
        let (fetched, denied) = authorize_topics(ctx, fetched, wanted.is_none());
        let unstable = |topic: &str, p: i32| {
            request.require_stable
                && coordinator.has_pending_txn_offset(&request.group_id, topic, p)
        };
        let mut topics = single_group_topics(fetched, unstable);
        for p in topics
            .iter_mut()
            .filter(|t| denied.contains(&t.name))
            .flat_map(|t| &mut t.partitions)
        {
            p.error_code = ErrorCode::TopicAuthorizationFailed.code();
        }
        let mut error_code = ErrorCode::None.code();
        if let Some(error) = refusal {
            // v0 and v1 have no top-level error: the requested partitions carry it.
            if version < 2 {
                let none = wanted.unwrap_or_default().into_iter();
                let none = none.map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()));
                topics = single_group_topics(none.collect(), |_, _| false);
                for p in topics.iter_mut().flat_map(|t| &mut t.partitions) {
                    p.error_code = error.code();
                }
            }
            error_code = error.code();
        }
        OffsetFetchResponse {
            topics,
            error_code,
            ..OffsetFetchResponse::default()
        }
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// (offset, leader epoch, metadata) of a partition, with Kafka's values for "nothing committed".
/// Kafka's Describe check on each topic: with every topic asked for (`all`), the topics one may
/// not describe are left out; asked by name, they stay, without offsets, and are returned as
/// the set whose partitions get TOPIC_AUTHORIZATION_FAILED.
fn authorize_topics(
    ctx: &BrokerContext,
    fetched: FetchedOffsets,
    all: bool,
) -> (FetchedOffsets, HashSet<String>) {
    let mut denied = HashSet::new();
    let mut kept = Vec::with_capacity(fetched.len());
    for (topic, partitions) in fetched {
        if authorized(ctx, AclOperation::Describe, ResourceType::Topic, &topic) {
            kept.push((topic, partitions));
        } else if !all {
            let partitions = partitions.into_iter().map(|(p, _)| (p, None)).collect();
            denied.insert(topic.clone());
            kept.push((topic, partitions));
        }
    }
    (kept, denied)
}

fn committed(offset: Option<OffsetAndMetadata>) -> (i64, i32, String) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (INVALID_OFFSET, -1, String::new()),
    }
}

/// The partition's error: UNSTABLE_OFFSET_COMMIT while a transactional commit is pending.
fn partition_error(unstable: bool) -> i16 {
    if unstable {
        ErrorCode::UnstableOffsetCommit.code()
    } else {
        ErrorCode::None.code()
    }
}

fn single_group_topics(
    fetched: FetchedOffsets,
    unstable: impl Fn(&str, i32) -> bool,
) -> Vec<OffsetFetchResponseTopic> {
    fetched
        .into_iter()
        .map(|(name, partitions)| OffsetFetchResponseTopic {
            partitions: partitions
                .into_iter()
                .map(|(index, offset)| {
                    let error_code = partition_error(unstable(&name, index));
                    let (offset, epoch, metadata) = committed(offset);
                    OffsetFetchResponsePartition {
                        partition_index: index,
                        committed_offset: offset,
                        committed_leader_epoch: epoch,
                        metadata: Some(metadata),
                        error_code,
                    }
                })
                .collect(),
            name,
        })
        .collect()
}

fn group_topics(
    fetched: FetchedOffsets,
    unstable: impl Fn(&str, i32) -> bool,
) -> Vec<OffsetFetchResponseTopics> {
    fetched
        .into_iter()
        .map(|(name, partitions)| OffsetFetchResponseTopics {
            partitions: partitions
                .into_iter()
                .map(|(index, offset)| {
                    let error_code = partition_error(unstable(&name, index));
                    let (offset, epoch, metadata) = committed(offset);
                    OffsetFetchResponsePartitions {
                        partition_index: index,
                        committed_offset: offset,
                        committed_leader_epoch: epoch,
                        metadata: Some(metadata),
                        error_code,
                    }
                })
                .collect(),
            name,
        })
        .collect()
}
