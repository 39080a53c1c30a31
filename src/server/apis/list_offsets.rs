//! ListOffsets (key 2), versions 0-9: earliest (-2), latest (-1), max timestamp (-3), earliest
//! local (-4), or the first offset at or after a timestamp (any other value, negative ones too,
//! is searched for as a timestamp, as Kafka's `UnifiedLog.fetchOffsetByTimestamp` does).
//!
//! As in Kafka's `KafkaApis`: from v1 a partition named more than once is INVALID_REQUEST at every
//! mention; an isolation level other than 0 and 1 fails the whole request with
//! UNKNOWN_SERVER_ERROR once a consumer's request reaches a partition; and a v0 request's
//! `max_num_offsets` caps the offsets listed (a negative one is UNKNOWN_SERVER_ERROR).
//! A read_committed consumer (isolation level 1) sees the log up to the last stable offset:
//! latest is the LSO, and timestamp lookups find nothing at or past it.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::list_offsets::*;
use crate::protocol::wire::Decoder;
use crate::storage::log::{Partition, TopicPartition};
use log::error;
use std::collections::HashMap;
use std::io;

pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// ListOffsets isolation level READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

/// The replica id of a consumer's request (Kafka's `ListOffsetsRequest.CONSUMER_REPLICA_ID`).
const CONSUMER_REPLICA_ID: i32 = -1;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ListOffsetsRequest::decode(d, version)?;
    let mut mentions: HashMap<(&str, i32), usize> = HashMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            *mentions
                .entry((topic.name.as_str(), p.partition_index))
                .or_default() += 1;
        }
    }
    let duplicate = |name: &str, p: &ListOffsetsPartition| {
        version >= 1 && mentions[&(name, p.partition_index)] > 1
    };
    let reads_a_partition = request.topics.iter().any(|topic| {
        topic.partitions.iter().any(|p| {
            !duplicate(&topic.name, p)
                && ctx
                    .partition(&TopicPartition::new(topic.name.clone(), p.partition_index))
                    .is_some()
        })
    });
    let bad_isolation = version >= 2
        && request.replica_id == CONSUMER_REPLICA_ID
        && !matches!(request.isolation_level, 0 | 1);
    let request_error =
        (bad_isolation && reads_a_partition).then_some(ErrorCode::UnknownServerError);
    // The isolation level exists from v2; Kafka applies it to consumers' requests only.
    let read_committed = version >= 2
        && request.replica_id == CONSUMER_REPLICA_ID
        && request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .iter()
        .map(|topic| ListOffsetsTopicResponse {
            name: topic.name.clone(),
            partitions: topic
                .partitions
                .iter()
                .map(|p| {
                    if let Some(code) = request_error {
                        return refused(p.partition_index, code);
                    }
                    if duplicate(&topic.name, p) {
                        return refused(p.partition_index, ErrorCode::InvalidRequest);
                    }
                    let tp = TopicPartition::new(topic.name.clone(), p.partition_index);
                    list_partition(ctx, &tp, p, version, read_committed)
                })
                .collect(),
        })
        .collect();
    let response = ListOffsetsResponse {
        topics,
        ..ListOffsetsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// A partition answered with an error only: offset and timestamp -1.
fn refused(partition_index: i32, code: ErrorCode) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse {
        partition_index,
        error_code: code.code(),
        timestamp: -1,
        offset: -1,
        leader_epoch: -1,
        ..ListOffsetsPartitionResponse::default()
    }
}

fn list_partition(
    ctx: &BrokerContext,
    tp: &TopicPartition,
    request: &ListOffsetsPartition,
    version: i16,
    read_committed: bool,
) -> ListOffsetsPartitionResponse {
    let mut response = ListOffsetsPartitionResponse {
        partition_index: tp.partition,
        timestamp: -1,
        offset: -1,
        leader_epoch: -1,
        ..ListOffsetsPartitionResponse::default()
    };
    let Some(partition) = ctx.partition(tp) else {
        response.error_code = ErrorCode::UnknownTopicOrPartition.code();
        return response;
    };
    if version == 0 && request.max_num_offsets < 0 {
        // Kafka sizes an array by it and fails on the negative size.
        response.error_code = ErrorCode::UnknownServerError.code();
        return response;
    }
    match lookup(&partition, request.timestamp, read_committed) {
        Ok(Some((offset, timestamp))) => {
            response.offset = offset;
            response.timestamp = timestamp;
            response.leader_epoch = 0;
            if version == 0 && request.max_num_offsets > 0 {
                response.old_style_offsets = vec![offset];
            }
        }
        Ok(None) => {}
        Err(e) => {
            error!("ListOffsets on {tp} failed: {e}");
            response.error_code = ErrorCode::KafkaStorageError.code();
        }
    }
    response
}

/// The (offset, timestamp) a ListOffsets timestamp asks for; `None` when no record matches.
/// A read_committed request (isolation level 1) sees the log up to the last stable offset, a
/// read_uncommitted one up to the high watermark (Kafka's `lastFetchableOffset`).
fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> io::Result<Option<(i64, i64)>> {
    let last_fetchable = if read_committed {
        partition.last_stable_offset()
    } else {
        partition.high_watermark()
    };
    let visible = |found: Option<(i64, i64)>| below(last_fetchable, found);
    match timestamp {
        LATEST_TIMESTAMP => Ok(Some((last_fetchable, -1))),
        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
            Ok(Some((partition.log_start_offset(), -1)))
        }
        MAX_TIMESTAMP => Ok(visible(partition.max_timestamp_offset()?)),
        // No tiered storage: nothing has been uploaded.
        LATEST_TIERED_TIMESTAMP => Ok(Some((-1, -1))),
        t => Ok(visible(partition.offset_for_timestamp(t)?)),
    }
}

/// As Kafka's `fetchOffsetForTimestamp`: a record at or past the last fetchable offset (the high
/// watermark, which with `sprat.log.flush.on.ack` holds back what is not on disk yet, or for
/// read_committed the LSO) is not visible yet, so it is not found.
fn below(last_fetchable: i64, found: Option<(i64, i64)>) -> Option<(i64, i64)> {
    found.filter(|&(offset, _)| offset < last_fetchable)
}
