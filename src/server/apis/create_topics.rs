//! CreateTopics (key 19): validates each topic here and asks the `log-writer` thread to create the
//! valid ones. `validate_only` stops after validation (and the existence check).
//!
//! As in Kafka's `ControllerApis.createTopics`, a name given more than once is not created and is
//! answered once, at the end, with INVALID_REQUEST; a name that differs from an existing topic's
//! only in `.` versus `_` is INVALID_TOPIC_EXCEPTION; and a request whose topics would take more
//! than [`MAX_RECORDS_PER_USER_OP`] metadata records fails as a whole with POLICY_VIOLATION.

use super::describe_configs::effective_topic_configs;
use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::controller::{
    EXCESSIVE_BATCH_MESSAGE, MAX_RECORDS_PER_USER_OP, NewTopic, TopicError, collision_name,
    topic_collides, topic_exists, validate_new_topic,
};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::create_topics::*;
use crate::protocol::wire::{Decoder, Uuid};
use crate::security::acl::{AclOperation, ResourceType, authorized, authorized_cluster};
use crate::writer::WriterCommand;
use std::collections::{HashMap, HashSet};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = CreateTopicsRequest::decode(d, version)?;
    let mut counts: HashMap<&str, usize> = HashMap::with_capacity(request.topics.len());
    for topic in &request.topics {
        *counts.entry(topic.name.as_str()).or_default() += 1;
    }
    let topics: Vec<&CreatableTopic> = request
        .topics
        .iter()
        .filter(|t| counts[t.name.as_str()] == 1)
        .collect();
    let mut results: Vec<CreatableTopicResult> = Vec::with_capacity(request.topics.len());
    let mut to_create: Vec<(usize, NewTopic)> = Vec::new();
    let mut records = 0usize;
    let existing = existing_collision_names(ctx);
    for topic in &topics {
        let exists = ctx.topic(&topic.name).is_some();
        let validated = if !may_create(ctx, &topic.name) {
            Err((
                ErrorCode::TopicAuthorizationFailed,
                "Authorization failed.".to_string(),
            ))
        } else if exists {
            Err(topic_exists(&topic.name))
        } else {
            validate(ctx, topic).and_then(|new| match existing.get(&collision_name(&new.name)) {
                Some(other) => Err(topic_collides(&new.name, other)),
                None => Ok(new),
            })
        };
        let result = match validated {
            Ok(new) => {
                records += new.record_count();
                if records > MAX_RECORDS_PER_USER_OP {
                    let response = refuse_all(&request, ErrorCode::PolicyViolation);
                    return Ok(respond(header, |e| response.encode(e, version)));
                }
                if request.validate_only {
                    created(ctx, topic, &new, Uuid::ZERO)
                } else {
                    to_create.push((results.len(), new));
                    CreatableTopicResult::default()
                }
            }
            Err(e) => failed(&topic.name, e),
        };
        results.push(result);
    }
    if !to_create.is_empty() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let new_topics = to_create.iter().map(|(_, t)| t.clone()).collect();
        let outcome = ctx
            .writer
            .send(WriterCommand::CreateTopics {
                topics: new_topics,
                reply: tx,
            })
            .ok()
            .and_then(|_| rx.recv().ok());
        for (n, (i, new)) in to_create.iter().enumerate() {
            let request_topic = topics[*i];
            results[*i] = match outcome.as_ref().map(|r| &r[n]) {
                Some(Ok(id)) => created(ctx, request_topic, new, *id),
                Some(Err(e)) => failed(&request_topic.name, e.clone()),
                None => failed(
                    &request_topic.name,
                    (
                        ErrorCode::KafkaStorageError,
                        "The broker is shutting down.".into(),
                    ),
                ),
            };
        }
    }
    let mut duplicates = HashSet::new();
    for topic in &request.topics {
        if counts[topic.name.as_str()] > 1 && duplicates.insert(topic.name.as_str()) {
            results.push(failed(
                &topic.name,
                (ErrorCode::InvalidRequest, "Duplicate topic name.".into()),
            ));
        }
    }
    let response = CreateTopicsResponse {
        topics: results,
        ..CreateTopicsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Existing topics by the name they collide on (see [`collision_name`]).
fn existing_collision_names(ctx: &BrokerContext) -> HashMap<String, String> {
    ctx.metadata
        .read()
        .topics()
        .filter(|t| t.name.contains(['.', '_']))
        .map(|t| (collision_name(&t.name), t.name.clone()))
        .collect()
}

/// Every topic of the request refused with one error (Kafka's `CreateTopicsRequest.getErrorResponse`).
fn refuse_all(request: &CreateTopicsRequest, code: ErrorCode) -> CreateTopicsResponse {
    CreateTopicsResponse {
        topics: request
            .topics
            .iter()
            .map(|t| failed(&t.name, (code, EXCESSIVE_BATCH_MESSAGE.to_string())))
            .collect(),
        ..CreateTopicsResponse::default()
    }
}

/// Kafka's rule: Create on the cluster, or on the topic.
fn may_create(ctx: &BrokerContext, name: &str) -> bool {
    authorized_cluster(ctx, AclOperation::Create)
        || authorized(ctx, AclOperation::Create, ResourceType::Topic, name)
}

fn validate(ctx: &BrokerContext, topic: &CreatableTopic) -> Result<NewTopic, TopicError> {
    let assignments: Vec<(i32, Vec<i32>)> = topic
        .assignments
        .iter()
        .map(|a| (a.partition_index, a.broker_ids.clone()))
        .collect();
    let configs: Vec<(String, Option<String>)> = topic
        .configs
        .iter()
        .map(|c| (c.name.clone(), c.value.clone()))
        .collect();
    validate_new_topic(
        &ctx.config,
        &topic.name,
        topic.num_partitions,
        topic.replication_factor,
        &assignments,
        &configs,
    )
}

fn created(
    ctx: &BrokerContext,
    topic: &CreatableTopic,
    new: &NewTopic,
    topic_id: Uuid,
) -> CreatableTopicResult {
    // The configuration is shown only to a principal that may describe it.
    if !authorized(
        ctx,
        AclOperation::DescribeConfigs,
        ResourceType::Topic,
        &topic.name,
    ) {
        return CreatableTopicResult {
            name: topic.name.clone(),
            topic_id,
            num_partitions: new.num_partitions,
            replication_factor: 1,
            topic_config_error_code: ErrorCode::TopicAuthorizationFailed.code(),
            configs: Some(Vec::new()),
            ..CreatableTopicResult::default()
        };
    }
    CreatableTopicResult {
        name: topic.name.clone(),
        topic_id,
        error_code: ErrorCode::None.code(),
        num_partitions: new.num_partitions,
        replication_factor: 1,
        // Since KIP-525 Kafka answers with the topic's whole effective configuration.
        configs: Some(
            effective_topic_configs(ctx, &new.configs)
                .into_iter()
                .map(|c| CreatableTopicConfigs {
                    name: c.name,
                    value: c.value,
                    read_only: c.read_only,
                    config_source: c.config_source,
                    is_sensitive: c.is_sensitive,
                })
                .collect(),
        ),
        ..CreatableTopicResult::default()
    }
}

fn failed(name: &str, (code, message): TopicError) -> CreatableTopicResult {
    CreatableTopicResult {
        name: name.to_string(),
        error_code: code.code(),
        error_message: Some(message),
        num_partitions: -1,
        replication_factor: -1,
        configs: Some(Vec::new()),
        ..CreatableTopicResult::default()
    }
}
