//! DescribeTopicPartitions (key 75): topics with their partitions, leaders and replica sets,
//! paginated by `response_partition_limit` and a cursor, as Kafka's KRaft metadata cache does.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::metadata::{MetadataImage, TopicMetadata};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_topic_partitions::*;
use crate::protocol::wire::{Decoder, Uuid};
use crate::security::acl::{AclOperation, ResourceType, authorized, topic_operations};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response lists.
const MAX_REQUEST_PARTITION_SIZE_LIMIT: i32 = 2000;

/// Kafka's authorized-operations bitfield for a topic when no authorizer is configured: READ,
/// WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS and ALTER_CONFIGS.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 = 0x0df8;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeTopicPartitionsRequest::decode(d, version)?;
    let describable =
        |name: &str| authorized(ctx, AclOperation::Describe, ResourceType::Topic, name);
    let mut response = {
        let image = ctx.metadata.read();
        describe(&image, &request, &describable)
    };
    for topic in &mut response.topics {
        if topic.error_code == ErrorCode::None.code() {
            let name = topic.name.as_deref().unwrap_or_default();
            let bits = topic_operations(ctx, name, TOPIC_AUTHORIZED_OPERATIONS);
            topic.topic_authorized_operations = bits;
        }
    }
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Builds the response: topics in name order, starting at the cursor, with at most the limit's
/// worth of partitions; `next_cursor` says where a cut-short listing continues.
pub fn describe(
    image: &MetadataImage,
    request: &DescribeTopicPartitionsRequest,
    describable: &dyn Fn(&str) -> bool,
) -> DescribeTopicPartitionsResponse {
    let mut names: Vec<String> = if request.topics.is_empty() {
        // Topics the principal may not describe are left out, as Kafka does.
        let names = image.topics().map(|t| t.name.clone());
        names.filter(|n| describable(n)).collect()
    } else {
        request.topics.iter().map(|t| t.name.clone()).collect()
    };
    names.sort();
    names.dedup();
    let cursor = request.cursor.as_ref();
    if let Some(c) = cursor {
        names.retain(|n| *n >= c.topic_name);
    }
    let mut remaining = request
        .response_partition_limit
        .clamp(0, MAX_REQUEST_PARTITION_SIZE_LIMIT) as usize;
    let mut response = DescribeTopicPartitionsResponse::default();
    for name in names {
        if remaining == 0 {
            response.next_cursor = Some(Cursor {
                topic_name: name,
                partition_index: 0,
            });
            break;
        }
        if !describable(&name) {
            let mut entry = unknown_topic(name);
            entry.error_code = ErrorCode::TopicAuthorizationFailed.code();
            response.topics.push(entry);
            continue;
        }
        let Some(topic) = image.topic(&name) else {
            if !request.topics.is_empty() {
                response.topics.push(unknown_topic(name));
            }
            continue;
        };
        let start = match cursor {
            Some(c) if c.topic_name == name => c.partition_index.max(0),
            _ => 0,
        };
        let (entry, next) = describe_topic(topic, start, remaining);
        remaining -= entry.partitions.len();
        response.topics.push(entry);
        if let Some(next) = next {
            response.next_cursor = Some(Cursor {
                topic_name: name,
                partition_index: next,
            });
            break;
        }
    }
    response
}

fn unknown_topic(name: String) -> DescribeTopicPartitionsResponseTopic {
    let error = if crate::metadata::topic_name_is_valid(&name) {
        ErrorCode::UnknownTopicOrPartition
    } else {
        ErrorCode::InvalidTopicException
    };
    DescribeTopicPartitionsResponseTopic {
        error_code: error.code(),
        name: Some(name),
        topic_id: Uuid::ZERO,
        is_internal: false,
        partitions: Vec::new(),
        topic_authorized_operations: TOPIC_AUTHORIZED_OPERATIONS,
    }
}

/// Describes up to `max` partitions of `topic` from index `start`. Returns the entry and, when
/// partitions remain, the index of the next one.
fn describe_topic(
    topic: &TopicMetadata,
    start: i32,
    max: usize,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let mut partitions = topic.partitions.range(start..);
    let listed: Vec<_> = partitions
        .by_ref()
        .take(max)
        .map(|(_, p)| DescribeTopicPartitionsResponsePartition {
            error_code: ErrorCode::None.code(),
            partition_index: p.partition_index,
            leader_id: p.leader_id,
            leader_epoch: p.leader_epoch,
            replica_nodes: p.replica_nodes.clone(),
            isr_nodes: p.isr_nodes.clone(),
            eligible_leader_replicas: Some(p.eligible_leader_replicas.clone().unwrap_or_default()),
            last_known_elr: Some(p.last_known_elr.clone().unwrap_or_default()),
            offline_replicas: Vec::new(),
        })
        .collect();
    let next = partitions.next().map(|(&index, _)| index);
    (
        DescribeTopicPartitionsResponseTopic {
            error_code: ErrorCode::None.code(),
            name: Some(topic.name.clone()),
            topic_id: topic.topic_id,
            is_internal: topic.is_internal(),
            partitions: listed,
            topic_authorized_operations: TOPIC_AUTHORIZED_OPERATIONS,
        },
        next,
    )
}
