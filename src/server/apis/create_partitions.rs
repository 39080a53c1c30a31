//! CreatePartitions (key 37), versions 0-3: grows topics, as Kafka's controller does. Each topic is
//! checked here (Kafka's messages and codes: INVALID_PARTITIONS, INVALID_REPLICA_ASSIGNMENT,
//! UNKNOWN_TOPIC_OR_PARTITION) and the `log-writer` adds the partitions: PartitionRecords in
//! `__cluster_metadata`, then the new logs, usable as soon as the answer arrives. A topic named
//! more than once is not changed and is answered once with INVALID_REQUEST; `validate_only`
//! stops after the checks.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::controller::{
    EXCESSIVE_BATCH_MESSAGE, MAX_RECORDS_PER_USER_OP, TopicError, validate_new_partitions,
};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::create_partitions::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized};
use crate::writer::WriterCommand;
use std::collections::{HashMap, HashSet};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = CreatePartitionsRequest::decode(d, version)?;
    let mut counts: HashMap<&str, usize> = HashMap::with_capacity(request.topics.len());
    for topic in &request.topics {
        *counts.entry(topic.name.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    let mut to_create: Vec<(usize, String, i32)> = Vec::new();
    let mut records = 0usize;
    for topic in request
        .topics
        .iter()
        .filter(|t| counts[t.name.as_str()] == 1)
    {
        match validate(ctx, topic) {
            Ok(additional) => {
                records += additional as usize;
                if records > MAX_RECORDS_PER_USER_OP {
                    let response = CreatePartitionsResponse {
                        results: request
                            .topics
                            .iter()
                            .map(|t| {
                                result(
                                    &t.name,
                                    Err((
                                        ErrorCode::PolicyViolation,
                                        EXCESSIVE_BATCH_MESSAGE.to_string(),
                                    )),
                                )
                            })
                            .collect(),
                        ..CreatePartitionsResponse::default()
                    };
                    return Ok(respond(header, |e| response.encode(e, version)));
                }
                if !request.validate_only {
                    to_create.push((results.len(), topic.name.clone(), topic.count));
                }
                results.push(result(&topic.name, Ok(())));
            }
            Err(e) => results.push(result(&topic.name, Err(e))),
        }
    }
    if !to_create.is_empty() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let topics = to_create.iter().map(|(_, n, c)| (n.clone(), *c)).collect();
        let outcome = ctx
            .writer
            .send(WriterCommand::CreatePartitions { topics, reply: tx })
            .ok()
            .and_then(|_| rx.recv().ok());
        for (n, (i, name, _)) in to_create.iter().enumerate() {
            results[*i] = match outcome.as_ref().map(|r| &r[n]) {
                Some(r) => result(name, r.clone()),
                None => result(
                    name,
                    Err((
                        ErrorCode::KafkaStorageError,
                        "The broker is shutting down.".into(),
                    )),
                ),
            };
        }
    }
    let mut reported = HashSet::new();
    for topic in &request.topics {
        if counts[topic.name.as_str()] > 1 && reported.insert(topic.name.as_str()) {
            results.push(result(
                &topic.name,
                Err((ErrorCode::InvalidRequest, "Duplicate topic name.".into())),
            ));
        }
    }
    let response = CreatePartitionsResponse {
        results,
        ..CreatePartitionsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Checks one entry against the topic as it is now; `Ok` is the number of partitions to add.
fn validate(ctx: &BrokerContext, topic: &CreatePartitionsTopic) -> Result<i32, TopicError> {
    if !authorized(ctx, AclOperation::Alter, ResourceType::Topic, &topic.name) {
        let message = "Topic authorization failed.".to_string();
        return Err((ErrorCode::TopicAuthorizationFailed, message));
    }
    let Some(existing) = ctx.topic(&topic.name) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("The topic '{}' does not exist.", topic.name),
        ));
    };
    let assignments: Option<Vec<Vec<i32>>> = topic
        .assignments
        .as_ref()
        .map(|a| a.iter().map(|a| a.broker_ids.clone()).collect());
    validate_new_partitions(
        ctx.config.node_id,
        &topic.name,
        existing.partitions.len() as i32,
        topic.count,
        assignments.as_deref(),
    )
}

fn result(name: &str, outcome: Result<(), TopicError>) -> CreatePartitionsTopicResult {
    let (error_code, error_message) = match outcome {
        Ok(()) => (ErrorCode::None.code(), None),
        // Kafka's controller gives no message for a topic that does not exist.
        Err((ErrorCode::UnknownTopicOrPartition, _)) => {
            (ErrorCode::UnknownTopicOrPartition.code(), None)
        }
        Err((code, message)) => (code.code(), Some(message)),
    };
    CreatePartitionsTopicResult {
        name: name.to_string(),
        error_code,
        error_message,
    }
}
