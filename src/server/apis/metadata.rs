//! Metadata (key 3), versions 0-12: this broker, the cluster id, and topics with their partitions.
//!
//! Unknown topics are created on the fly when the request allows it (v4+ `allow_auto_topic_creation`,
//! always before v4) and `auto.create.topics.enable` is set, as Kafka does; otherwise they get
//! UNKNOWN_TOPIC_OR_PARTITION. Consumers and admin clients ask with auto-creation off.
//!
//! As in Kafka's `KafkaApis.handleTopicMetadataRequest`, the requested topics are a set: a topic
//! named twice is described once. From v12, when any topic is given by id, only the ids count.
//! Before v12 a topic without a name, or with an id, fails the whole request with
//! INVALID_REQUEST.

use super::describe_topic_partitions::TOPIC_AUTHORIZED_OPERATIONS;
use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::controller::validate_new_topic;
use crate::metadata::{TopicMetadata, topic_name_is_valid};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::metadata::*;
use crate::protocol::wire::{Decoder, Uuid};
use crate::security::acl::{
    AclOperation, ResourceType, authorized, authorized_cluster, cluster_operations,
    topic_operations,
};
use crate::writer::WriterCommand;
use log::info;
use std::collections::HashSet;

/// Kafka's authorized-operations bitfield for the cluster when no authorizer is configured.
pub(super) const CLUSTER_AUTHORIZED_OPERATIONS: i32 = 0x0fb6;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = MetadataRequest::decode(d, version)?;
    let (host, port) = ctx.advertised_host_port();
    let allow_auto_create =
        (version < 4 || request.allow_auto_topic_creation) && ctx.config.auto_create_topics_enable;
    let topics = match &request.topics {
        // v0 uses an empty list, later versions null, to mean "all topics".
        None => all_topics(ctx),
        Some(list) if list.is_empty() && version == 0 => all_topics(ctx),
        Some(list)
            if version < 12
                && list
                    .iter()
                    .any(|t| t.name.is_none() || !t.topic_id.is_zero()) =>
        {
            let response = refuse_all(list, ErrorCode::InvalidRequest);
            return Ok(respond(header, |e| response.encode(e, version)));
        }
        Some(list) => distinct(list)
            .iter()
            .map(|t| describe(ctx, t, allow_auto_create))
            .collect(),
    };
    let topics = topics
        .into_iter()
        .map(|mut t| {
            t.topic_authorized_operations = if request.include_topic_authorized_operations {
                let name = t.name.as_deref().unwrap_or_default();
                topic_operations(ctx, name, TOPIC_AUTHORIZED_OPERATIONS)
            } else {
                i32::MIN
            };
            t
        })
        .collect();
    let response = MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: ctx.config.node_id,
            host,
            port: i32::from(port),
            rack: None,
        }],
        cluster_id: Some(ctx.cluster_id.clone()),
        controller_id: ctx.config.node_id,
        topics,
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            cluster_operations(ctx, CLUSTER_AUTHORIZED_OPERATIONS)
        } else {
            i32::MIN
        },
        ..MetadataResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// The requested topics as a set, in request order: by id when any id is given, else by name.
fn distinct(list: &[MetadataRequestTopic]) -> Vec<MetadataRequestTopic> {
    let by_id = list.iter().any(|t| !t.topic_id.is_zero());
    let mut seen_ids = HashSet::new();
    let mut seen_names = HashSet::new();
    list.iter()
        .filter(|t| {
            if by_id {
                !t.topic_id.is_zero() && seen_ids.insert(t.topic_id)
            } else {
                seen_names.insert(t.name.as_deref())
            }
        })
        .map(|t| MetadataRequestTopic {
            name: if by_id { None } else { t.name.clone() },
            topic_id: t.topic_id,
        })
        .collect()
}

/// Kafka's `MetadataRequest.getErrorResponse`: every requested topic with the error.
fn refuse_all(list: &[MetadataRequestTopic], error: ErrorCode) -> MetadataResponse {
    MetadataResponse {
        topics: list
            .iter()
            .map(|t| error_entry(Some(t.name.clone().unwrap_or_default()), t.topic_id, error))
            .collect(),
        ..MetadataResponse::default()
    }
}

/// Every topic the principal may describe (Kafka leaves the others out).
fn all_topics(ctx: &BrokerContext) -> Vec<MetadataResponseTopic> {
    let topics: Vec<_> = ctx.metadata.read().topics().map(topic_entry).collect();
    topics
        .into_iter()
        .filter(|t| describable(ctx, t.name.as_deref().unwrap_or_default()))
        .collect()
}

fn describable(ctx: &BrokerContext, name: &str) -> bool {
    authorized(ctx, AclOperation::Describe, ResourceType::Topic, name)
}

fn describe(
    ctx: &BrokerContext,
    requested: &MetadataRequestTopic,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    let found = match &requested.name {
        Some(name) => ctx.topic(name),
        None => ctx.topic_by_id(&requested.topic_id),
    };
    let name = found.as_ref().map(|t| &t.name).or(requested.name.as_ref());
    if name.is_some_and(|n| !describable(ctx, n)) {
        let id = found.as_ref().map_or(Uuid::ZERO, |t| t.topic_id);
        // Asked by id, the name stays unsaid (ids are not secret, names may be).
        let error = ErrorCode::TopicAuthorizationFailed;
        return error_entry(requested.name.clone(), id, error);
    }
    if let Some(t) = found {
        return topic_entry(&t);
    }
    let Some(name) = requested.name.clone() else {
        return error_entry(None, requested.topic_id, ErrorCode::UnknownTopicId);
    };
    if !topic_name_is_valid(&name) {
        return error_entry(Some(name), Uuid::ZERO, ErrorCode::InvalidTopicException);
    }
    if !allow_auto_create {
        return error_entry(Some(name), Uuid::ZERO, ErrorCode::UnknownTopicOrPartition);
    }
    if !authorized_cluster(ctx, AclOperation::Create)
        && !authorized(ctx, AclOperation::Create, ResourceType::Topic, &name)
    {
        return error_entry(Some(name), Uuid::ZERO, ErrorCode::TopicAuthorizationFailed);
    }
    auto_create(ctx, name)
}

/// Creates a topic with the broker's default partition count, as Kafka's auto-creation does.
fn auto_create(ctx: &BrokerContext, name: String) -> MetadataResponseTopic {
    let new = match validate_new_topic(&ctx.config, &name, -1, -1, &[], &[]) {
        Ok(t) => t,
        Err((code, _)) => return error_entry(Some(name), Uuid::ZERO, code),
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    let created = ctx
        .writer
        .send(WriterCommand::CreateTopics {
            topics: vec![new],
            reply: tx,
        })
        .ok()
        .and_then(|_| rx.recv().ok());
    match created.as_ref().and_then(|r| r.first()) {
        Some(Ok(_)) => info!("auto-created topic {name}"),
        // Another client created it first: describe it as it is.
        Some(Err((ErrorCode::TopicAlreadyExists, _))) => {}
        _ => return error_entry(Some(name), Uuid::ZERO, ErrorCode::LeaderNotAvailable),
    }
    match ctx.topic(&name) {
        Some(t) => topic_entry(&t),
        None => error_entry(Some(name), Uuid::ZERO, ErrorCode::LeaderNotAvailable),
    }
}

fn topic_entry(topic: &TopicMetadata) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: ErrorCode::None.code(),
        name: Some(topic.name.clone()),
        topic_id: topic.topic_id,
        is_internal: topic.is_internal(),
        partitions: topic
            .partitions
            .values()
            .map(|p| MetadataResponsePartition {
                error_code: ErrorCode::None.code(),
                partition_index: p.partition_index,
                leader_id: p.leader_id,
                leader_epoch: p.leader_epoch,
                replica_nodes: p.replica_nodes.clone(),
                isr_nodes: p.isr_nodes.clone(),
                offline_replicas: Vec::new(),
            })
            .collect(),
        topic_authorized_operations: i32::MIN,
    }
}

fn error_entry(name: Option<String>, topic_id: Uuid, error: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: error.code(),
        name,
        topic_id,
        is_internal: false,
        partitions: Vec::new(),
        topic_authorized_operations: i32::MIN,
    }
}
