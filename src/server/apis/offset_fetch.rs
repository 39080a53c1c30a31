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
                let fetched = coordinator.fetch_offsets(&g.group_id, wanted.as_deref());
                let unstable = |topic: &str, p: i32| {
                    request.require_stable
                        && coordinator.has_pending_txn_offset(&g.group_id, topic, p)
                };
                OffsetFetchResponseGroup {
                    group_id: g.group_id.clone(),
                    topics: group_topics(fetched, unstable),
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
        let fetched = coordinator.fetch_offsets(&request.group_id, wanted.as_deref());
        let unstable = |topic: &str, p: i32| {
            request.require_stable
                && coordinator.has_pending_txn_offset(&request.group_id, topic, p)
        };
        OffsetFetchResponse {
            topics: single_group_topics(fetched, unstable),
            error_code: ErrorCode::None.code(),
            ..OffsetFetchResponse::default()
        }
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// (offset, leader epoch, metadata) of a partition, with Kafka's values for "nothing committed".
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
