//! Fetch (key 1), versions 4-17: topics by name up to v12 and by topic id from v13.
//!
//! Records are returned verbatim from the log: whole batches starting with the one that holds the
//! fetch offset, bounded by the partition's and the request's max bytes, with Kafka's rule that the
//! first non-empty partition always gets at least one whole batch. When less than `min_bytes` is
//! available the connection thread sleeps until an append arrives or `max_wait_ms` passes; it never
//! polls. sprat does not keep incremental fetch sessions: every response has session id 0, which
//! tells clients to send full fetch requests.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::fetch::*;
use crate::protocol::wire::Decoder;
use crate::storage::log::{ReadError, TopicPartition};
use log::error;
use std::time::{Duration, Instant};

/// Fetch isolation level READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = FetchRequest::decode(d, version)?;
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let response = loop {
        let seen = ctx.appends.sequence();
        let (response, bytes, errors) = read_all(ctx, &request, version);
        if bytes >= request.min_bytes.max(0) as usize || errors || Instant::now() >= deadline {
            break response;
        }
        ctx.appends.wait_past(seen, deadline);
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Reads every requested partition once. Returns the response, the record bytes in it, and
/// whether any partition had an error (which makes Kafka answer at once).
fn read_all(
    ctx: &BrokerContext,
    request: &FetchRequest,
    version: i16,
) -> (FetchResponse, usize, bool) {
    let mut remaining = request.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut errors = false;
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let metadata = if version >= 13 {
            ctx.topic_by_id(&topic.topic_id)
        } else {
            ctx.topic(&topic.topic)
        };
        let unknown_topic = if version >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in &topic.partitions {
            let data = match &metadata {
                None => error_partition(p.partition, unknown_topic),
                Some(t) => {
                    let tp = TopicPartition::new(t.name.clone(), p.partition);
                    let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                    let data =
                        read_partition(ctx, &tp, p, limit, total == 0, request.isolation_level);
                    let len = data.records.as_ref().map_or(0, Vec::len);
                    total += len;
                    remaining = remaining.saturating_sub(len);
                    data
                }
            };
            errors |= data.error_code != ErrorCode::None.code();
            partitions.push(data);
        }
        responses.push(FetchableTopicResponse {
            topic: topic.topic.clone(),
            topic_id: topic.topic_id,
            partitions,
        });
    }
    let response = FetchResponse {
        responses,
        ..FetchResponse::default()
    };
    (response, total, errors)
}

fn read_partition(
    ctx: &BrokerContext,
    tp: &TopicPartition,
    request: &FetchPartition,
    max_bytes: usize,
    min_one_batch: bool,
    isolation_level: i8,
) -> PartitionData {
    let Some(partition) = ctx.partition(tp) else {
        return error_partition(tp.partition, ErrorCode::UnknownTopicOrPartition);
    };
    match partition.read(request.fetch_offset, max_bytes, min_one_batch) {
        Ok(Ok(read)) => PartitionData {
            partition_index: tp.partition,
            error_code: ErrorCode::None.code(),
            high_watermark: read.high_watermark,
            last_stable_offset: read.high_watermark,
            log_start_offset: read.log_start_offset,
            // Kafka lists aborted transactions only for read_committed consumers.
            aborted_transactions: (isolation_level == READ_COMMITTED).then(Vec::new),
            preferred_read_replica: -1,
            records: Some(read.records),
            ..PartitionData::default()
        },
        Ok(Err(ReadError::OffsetOutOfRange)) => {
            error_partition(tp.partition, ErrorCode::OffsetOutOfRange)
        }
        Err(e) => {
            error!("reading {tp} failed: {e}");
            error_partition(tp.partition, ErrorCode::KafkaStorageError)
        }
    }
}

/// A partition answered with an error, as Kafka fills it in: offsets -1, no records.
fn error_partition(partition_index: i32, error: ErrorCode) -> PartitionData {
    PartitionData {
        partition_index,
        error_code: error.code(),
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        aborted_transactions: Some(Vec::new()),
        preferred_read_replica: -1,
        records: Some(Vec::new()),
        ..PartitionData::default()
    }
}
