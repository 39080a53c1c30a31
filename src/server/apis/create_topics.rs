//! CreateTopics (key 19): validates each topic here and asks the `log-writer` thread to create the
//! valid ones. `validate_only` stops after validation (and the existence check).

use super::describe_configs::effective_topic_configs;
use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::controller::{NewTopic, TopicError, validate_new_topic};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::create_topics::*;
use crate::protocol::wire::{Decoder, Uuid};
use crate::writer::WriterCommand;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = CreateTopicsRequest::decode(d, version)?;
    let mut results: Vec<CreatableTopicResult> = Vec::with_capacity(request.topics.len());
    let mut to_create: Vec<(usize, NewTopic)> = Vec::new();
    for topic in &request.topics {
        let duplicate = request
            .topics
            .iter()
            .filter(|t| t.name == topic.name)
            .count()
            > 1;
        let validated = if duplicate {
            Err((
                ErrorCode::InvalidRequest,
                format!("Duplicate topic name {} in the request.", topic.name),
            ))
        } else {
            validate(ctx, topic)
        };
        let result = match validated {
            Ok(new) if request.validate_only => match ctx.topic(&new.name) {
                Some(_) => failed(
                    topic,
                    (
                        ErrorCode::TopicAlreadyExists,
                        format!("Topic '{}' already exists.", new.name),
                    ),
                ),
                None => created(ctx, topic, &new, Uuid::ZERO),
            },
            Ok(new) => {
                to_create.push((results.len(), new));
                CreatableTopicResult::default()
            }
            Err(e) => failed(topic, e),
        };
        results.push(result);
    }
    if !to_create.is_empty() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let topics = to_create.iter().map(|(_, t)| t.clone()).collect();
        let outcome = ctx
            .writer
            .send(WriterCommand::CreateTopics { topics, reply: tx })
            .ok()
            .and_then(|_| rx.recv().ok());
        for (n, (i, new)) in to_create.iter().enumerate() {
            let request_topic = &request.topics[*i];
            results[*i] = match outcome.as_ref().map(|r| &r[n]) {
                Some(Ok(id)) => created(ctx, request_topic, new, *id),
                Some(Err(e)) => failed(request_topic, e.clone()),
                None => failed(
                    request_topic,
                    (
                        ErrorCode::KafkaStorageError,
                        "The broker is shutting down.".into(),
                    ),
                ),
            };
        }
    }
    let response = CreateTopicsResponse {
        topics: results,
        ..CreateTopicsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
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
    CreatableTopicResult {
        name: topic.name.clone(),
        topic_id,
        error_code: ErrorCode::None.code(),
        num_partitions: new.num_partitions,
        replication_factor: 1,
        // Since KIP-525 Kafka answers with the topic's whole effective configuration.
        configs: Some(
            effective_topic_configs(&ctx.config, &new.configs)
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

fn failed(topic: &CreatableTopic, (code, message): TopicError) -> CreatableTopicResult {
    CreatableTopicResult {
        name: topic.name.clone(),
        error_code: code.code(),
        error_message: Some(message),
        num_partitions: -1,
        replication_factor: -1,
        configs: Some(Vec::new()),
        ..CreatableTopicResult::default()
    }
}
