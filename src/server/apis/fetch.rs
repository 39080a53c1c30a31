//! Fetch (key 1), versions 4-17: topics by name up to v12 and by topic id from v13.
//!
//! A read_committed fetch (isolation level 1) stops at the partition's last stable offset and lists
//! the aborted transactions that overlap what it returns (from the `.txnindex` files); both
//! isolation levels answer `last_stable_offset` with the LSO, as Kafka does.
//!
//! Records are returned verbatim from the log: whole batches starting with the one that holds the
//! fetch offset, bounded by the partition's and the request's max bytes, with Kafka's rule that the
//! first non-empty partition always gets at least one whole batch. When less than `min_bytes` is
//! available the connection thread sleeps until an append arrives or `max_wait_ms` passes; it never
//! polls. sprat does not keep incremental fetch sessions: every response has session id 0, which
//! tells clients to send full fetch requests, and a request that continues a session gets
//! FETCH_SESSION_ID_NOT_FOUND, as Kafka answers for a session it does not have.
//!
//! Hostile values get Kafka's answers: `max_bytes` is capped by `fetch.max.bytes` and `min_bytes` by
//! that; a negative size limit on a partition with records to return is UNKNOWN_SERVER_ERROR (Kafka's
//! `LogSegment.read` refuses a negative size); an isolation level other than 0 and 1 fails the whole
//! request. A wait longer than `connections.max.idle.ms` is cut there and the connection closed, as
//! Kafka's selector expires a connection that long without activity.

use super::{HandlerResult, Outcome, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::fetch::*;
use crate::protocol::wire::Decoder;
use crate::quota;
use crate::security::acl::{AclOperation, ResourceType, authorized, authorized_cluster};
use crate::server::zero_copy::{self, Splice};
use crate::storage::log::{ReadError, TopicPartition};
use log::{debug, error};
use std::time::{Duration, Instant};

/// Fetch isolation level READ_UNCOMMITTED.
const READ_UNCOMMITTED: i8 = 0;
/// Fetch isolation level READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

/// The session epoch of a full fetch request that opens a session (Kafka's `INITIAL_EPOCH`).
const INITIAL_EPOCH: i32 = 0;
/// The session epoch of a full fetch request without a session (Kafka's `FINAL_EPOCH`).
const FINAL_EPOCH: i32 = -1;

/// Kafka's default for `fetch.max.bytes`: the most record bytes one response carries (except for
/// the first batch, which is returned whole).
const DEFAULT_FETCH_MAX_BYTES: i32 = 55 << 20;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = FetchRequest::decode(d, version)?;
    if version >= 7 && !matches!(request.session_epoch, INITIAL_EPOCH | FINAL_EPOCH) {
        let response = FetchResponse {
            error_code: ErrorCode::FetchSessionIdNotFound.code(),
            ..FetchResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let max_bytes = request.max_bytes.min(fetch_max_bytes(ctx));
    let min_bytes = request.min_bytes.min(max_bytes);
    let valid_isolation = matches!(request.isolation_level, READ_UNCOMMITTED | READ_COMMITTED);
    if !valid_isolation && reads_any_partition(ctx, &request, version) {
        let response = request_error(&request, version, ErrorCode::UnknownServerError);
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let wait_ms = request.max_wait_ms.max(0) as u64;
    let idle_ms = ctx.config.connections_max_idle_ms;
    let deadline = Instant::now() + Duration::from_millis(wait_ms.min(idle_ms));
    let mut splice = ctx.zero_copy_fetch.then(Splice::default);
    let (mut response, sent, per_topic) = loop {
        let seen = ctx.appends.sequence();
        if let Some(splice) = &mut splice {
            splice.clear();
        }
        let (response, bytes, errors, per_topic) =
            read_all(ctx, &request, version, max_bytes, splice.as_mut());
        if bytes >= min_bytes.max(0) as usize || errors {
            break (response, bytes, per_topic);
        }
        if Instant::now() >= deadline {
            if wait_ms > idle_ms {
                return Ok(Outcome::Close(format!(
                    "a fetch with max_wait_ms {wait_ms} saw no data for {idle_ms} ms \
                     (connections.max.idle.ms)"
                )));
            }
            break (response, bytes, per_topic);
        }
        ctx.appends.wait_past(seen, deadline);
    };
    for (topic, bytes) in &per_topic {
        ctx.metrics.record_fetch(topic, *bytes as u64);
    }
    // Consumer quotas count the record bytes sent; fetches of followers have no quota.
    let throttle = if request.replica_id < 0 {
        ctx.quotas.record(
            &ctx.metadata.read(),
            quota::CONSUMER_BYTE_RATE,
            quota::quota_user(&crate::security::current_principal()),
            header.client_id.as_deref().unwrap_or_default(),
            sent,
            Instant::now(),
        )
    } else {
        Duration::ZERO
    };
    response.throttle_time_ms = quota::throttle_ms(throttle);
    // Since KIP-219 (v8) the client waits out the throttle itself and the broker mutes the
    // connection after answering; before it, the answer itself is delayed.
    quota::throttle(throttle, version >= 8);
    let outcome = respond(header, |e| response.encode(e, version));
    match (splice, outcome) {
        (Some(splice), Outcome::Respond(frame)) if !splice.is_empty() => {
            // Flexible versions (12 and up) give records fields compact length prefixes.
            match splice.finish(frame, version >= 12) {
                Ok(chunks) => Ok(Outcome::RespondChunks(chunks)),
                Err(e) => Ok(Outcome::Close(format!("cannot send a fetch response: {e}"))),
            }
        }
        (_, outcome) => Ok(outcome),
    }
}

/// `fetch.max.bytes`, Kafka's cap on a fetch response's `max_bytes`.
fn fetch_max_bytes(ctx: &BrokerContext) -> i32 {
    ctx.config
        .get("fetch.max.bytes")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|&v| v >= 0)
        .unwrap_or(DEFAULT_FETCH_MAX_BYTES)
}

/// A consumer needs Read on the topic; a follower (replica id 0 or more) ClusterAction.
fn fetch_authorized(ctx: &BrokerContext, replica_id: i32, topic: &str) -> bool {
    if replica_id >= 0 {
        authorized_cluster(ctx, AclOperation::ClusterAction)
    } else {
        authorized(ctx, AclOperation::Read, ResourceType::Topic, topic)
    }
}

/// Whether any requested partition exists, so that Kafka would go on to read the logs.
fn reads_any_partition(ctx: &BrokerContext, request: &FetchRequest, version: i16) -> bool {
    request.topics.iter().any(|topic| {
        let metadata = if version >= 13 {
            ctx.topic_by_id(&topic.topic_id)
        } else {
            ctx.topic(&topic.topic)
        };
        metadata.is_some_and(|t| {
            topic
                .partitions
                .iter()
                .any(|p| t.partitions.contains_key(&p.partition))
        })
    })
}

/// The answer to a request that failed as a whole (Kafka's `FetchRequest.getErrorResponse`): the
/// error at the top level and, before v13, on every partition too, with the request's session id.
fn request_error(request: &FetchRequest, version: i16, error: ErrorCode) -> FetchResponse {
    let responses = if version >= 13 {
        Vec::new()
    } else {
        request
            .topics
            .iter()
            .map(|topic| FetchableTopicResponse {
                topic: topic.topic.clone(),
                topic_id: topic.topic_id,
                partitions: topic
                    .partitions
                    .iter()
                    // Kafka's error response carries null records here.
                    .map(|p| PartitionData {
                        records: None,
                        ..error_partition(p.partition, error)
                    })
                    .collect(),
            })
            .collect()
    };
    FetchResponse {
        error_code: error.code(),
        session_id: request.session_id,
        responses,
        ..FetchResponse::default()
    }
}

/// Reads every requested partition once. Returns the response, the record bytes in it, and
/// whether any partition had an error (which makes Kafka answer at once).
///
/// As in Kafka's `ReplicaManager.readFromLocalLog`, the request's byte limit shrinks by what each
/// partition returns and never goes below zero once a partition has been read; until records
/// are found, the first batch is returned whole whatever the limits.
fn read_all(
    ctx: &BrokerContext,
    request: &FetchRequest,
    version: i16,
    max_bytes: i32,
    mut splice: Option<&mut Splice>,
) -> (FetchResponse, usize, bool, Vec<(String, usize)>) {
    let mut remaining = i64::from(max_bytes);
    let mut total = 0usize;
    let mut per_topic = Vec::new();
    let mut errors = false;
    let mut all_denied = true;
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
        let name = metadata.as_ref().map_or(&topic.topic, |t| &t.name);
        // Kafka checks Read before existence, except for an id it cannot name.
        let denied = (version < 13 || metadata.is_some())
            && !fetch_authorized(ctx, request.replica_id, name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        let mut topic_bytes = 0;
        for p in &topic.partitions {
            let data = match &metadata {
                _ if denied => error_partition(p.partition, ErrorCode::TopicAuthorizationFailed),
                None => error_partition(p.partition, unknown_topic),
                Some(t) => {
                    let tp = TopicPartition::new(t.name.clone(), p.partition);
                    let limit = i64::from(p.partition_max_bytes).min(remaining);
                    let (data, len) = read_partition(
                        ctx,
                        &tp,
                        p,
                        limit,
                        total == 0,
                        request.isolation_level,
                        splice.as_deref_mut(),
                    );
                    total += len;
                    topic_bytes += len;
                    // Kafka answers a partition it does not know before reading, so such a
                    // partition leaves the limit alone.
                    if t.partitions.contains_key(&p.partition) {
                        remaining = (remaining - len as i64).max(0);
                    }
                    data
                }
            };
            // As in Kafka, refused partitions are added to the answer without cutting the wait
            // for the others short.
            errors |= !denied && data.error_code != ErrorCode::None.code();
            all_denied &= denied;
            partitions.push(data);
        }
        if let Some(t) = metadata.as_ref().filter(|_| topic_bytes > 0) {
            per_topic.push((t.name.clone(), topic_bytes));
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
    // With nothing left to read, there is nothing to wait for.
    errors |= all_denied && request.topics.iter().any(|t| !t.partitions.is_empty());
    (response, total, errors, per_topic)
}

fn read_partition(
    ctx: &BrokerContext,
    tp: &TopicPartition,
    request: &FetchPartition,
    max_bytes: i64,
    min_one_batch: bool,
    isolation_level: i8,
    splice: Option<&mut Splice>,
) -> (PartitionData, usize) {
    let Some(partition) = ctx.partition(tp) else {
        return (
            error_partition(tp.partition, ErrorCode::UnknownTopicOrPartition),
            0,
        );
    };
    // Kafka checks the offset first, answers an empty read at the high watermark, and only then
    // refuses a negative size in `LogSegment.read`.
    let read_bytes = usize::try_from(max_bytes).unwrap_or(0);
    let read_committed = isolation_level == READ_COMMITTED;
    let result = partition.read_region_isolated(
        request.fetch_offset,
        read_bytes,
        min_one_batch && max_bytes >= 0,
        read_committed,
    );
    if let (true, Ok(Ok(read))) = (max_bytes < 0, &result)
        && request.fetch_offset < read.high_watermark
    {
        debug!("fetch of {tp} with a negative size limit {max_bytes}");
        return (
            error_partition(tp.partition, ErrorCode::UnknownServerError),
            0,
        );
    }
    let storage_error = |e: std::io::Error| {
        error!("reading {tp} failed: {e}");
        (
            error_partition(tp.partition, ErrorCode::KafkaStorageError),
            0,
        )
    };
    let read = match result {
        Ok(Ok(read)) => read,
        Ok(Err(ReadError::OffsetOutOfRange)) => {
            return (
                error_partition(tp.partition, ErrorCode::OffsetOutOfRange),
                0,
            );
        }
        Err(e) => return storage_error(e),
    };
    let len = read.region.as_ref().map_or(0, |r| r.len as usize);
    // Kafka lists aborted transactions only for read_committed consumers, and none for an empty
    // read. The upper bound is where the read stopped at the latest: the LSO or the end of the
    // segment read. An entry past the returned batches names no record in them, and clients
    // pass it over.
    let aborted_transactions = match (read_committed, &read.region) {
        (false, _) => None,
        (true, None) => Some(Vec::new()),
        (true, Some(_)) => {
            let upper = read
                .last_stable_offset
                .min(partition.read_upper_bound(request.fetch_offset));
            match partition.aborted_transactions(request.fetch_offset, upper) {
                Ok(found) => Some(
                    found
                        .into_iter()
                        .map(|a| AbortedTransaction {
                            producer_id: a.producer_id,
                            first_offset: a.first_offset,
                        })
                        .collect(),
                ),
                Err(e) => return storage_error(e),
            }
        }
    };
    // The records go out from the file when they are worth a sendfile, else copied.
    let records = match (read.region, splice) {
        (Some(region), Some(splice)) if region.len >= zero_copy::MIN_SPLICED_BYTES => {
            splice.placeholder(region)
        }
        (Some(region), _) => match region.read() {
            Ok(bytes) => bytes,
            Err(e) => return storage_error(e),
        },
        (None, _) => Vec::new(),
    };
    let data = PartitionData {
        partition_index: tp.partition,
        error_code: ErrorCode::None.code(),
        high_watermark: read.high_watermark,
        last_stable_offset: read.last_stable_offset,
        log_start_offset: read.log_start_offset,
        aborted_transactions,
        preferred_read_replica: -1,
        records: Some(records),
        ..PartitionData::default()
    };
    (data, len)
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
