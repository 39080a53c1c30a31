//! DeleteTopics (key 20): topics by name (v0-5) or by name or id (v6+), removed by the
//! `log-writer` thread.
//!
//! As in Kafka's `ControllerApis.deleteTopics`, an entry with neither a name nor an id, or with
//! both, is INVALID_REQUEST, and a name or id given more than once is not deleted but answered
//! once with INVALID_REQUEST; these answers come first.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::delete_topics::*;
use crate::protocol::wire::{Decoder, Uuid};
use crate::security::acl::{AclOperation, ResourceType, authorized};
use crate::writer::WriterCommand;
use std::collections::{HashMap, HashSet};

/// A topic named by the request: by name, or (v6+) by id.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Wanted {
    Name(String),
    Id(Uuid),
}

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DeleteTopicsRequest::decode(d, version)?;
    let mut results = Vec::new();
    let mut wanted: Vec<Wanted> = Vec::new();
    if version >= 6 {
        for topic in &request.topics {
            match (&topic.name, topic.topic_id.is_zero()) {
                (None, true) => results.push(refused(
                    None,
                    Uuid::ZERO,
                    "Neither topic name nor id were specified.",
                )),
                (Some(name), false) => results.push(refused(
                    Some(name.clone()),
                    topic.topic_id,
                    "You may not specify both topic name and topic id.",
                )),
                (Some(name), true) => wanted.push(Wanted::Name(name.clone())),
                (None, false) => wanted.push(Wanted::Id(topic.topic_id)),
            }
        }
    } else {
        wanted.extend(request.topic_names.iter().cloned().map(Wanted::Name));
    }
    let mut counts: HashMap<&Wanted, usize> = HashMap::with_capacity(wanted.len());
    for w in &wanted {
        *counts.entry(w).or_default() += 1;
    }
    let mut reported = HashSet::new();
    for w in &wanted {
        if counts[w] > 1 && reported.insert(w) {
            results.push(match w {
                Wanted::Name(name) => {
                    refused(Some(name.clone()), Uuid::ZERO, "Duplicate topic name.")
                }
                Wanted::Id(id) => refused(None, *id, "Duplicate topic id."),
            });
        }
    }
    let mut to_delete = Vec::new();
    for w in wanted.iter().filter(|w| counts[w] == 1) {
        let (name, id, found) = match w {
            Wanted::Name(name) => (Some(name.clone()), Uuid::ZERO, ctx.topic(name)),
            Wanted::Id(id) => (None, *id, ctx.topic_by_id(id)),
        };
        let mut result = DeletableTopicResult {
            name,
            topic_id: id,
            ..DeletableTopicResult::default()
        };
        // Delete on the topic, checked before existence for a name (an id names nothing).
        let target = found.as_ref().map(|t| &t.name).or(result.name.as_ref());
        let denied =
            target.is_some_and(|n| !authorized(ctx, AclOperation::Delete, ResourceType::Topic, n));
        match found {
            _ if denied => result.error_code = ErrorCode::TopicAuthorizationFailed.code(),
            Some(t) => {
                result.name = Some(t.name.clone());
                result.topic_id = t.topic_id;
                to_delete.push((results.len(), t.topic_id));
            }
            None => {
                let code = if id.is_zero() {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::UnknownTopicId
                };
                result.error_code = code.code();
            }
        }
        results.push(result);
    }
    if !to_delete.is_empty() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let topic_ids = to_delete.iter().map(|(_, id)| *id).collect();
        let outcome = ctx
            .writer
            .send(WriterCommand::DeleteTopics {
                topic_ids,
                reply: tx,
            })
            .ok()
            .and_then(|_| rx.recv().ok());
        for (n, (i, _)) in to_delete.iter().enumerate() {
            let code = match outcome.as_ref().map(|r| &r[n]) {
                Some(Ok(_)) => ErrorCode::None,
                Some(Err(code)) => *code,
                None => ErrorCode::KafkaStorageError,
            };
            results[*i].error_code = code.code();
        }
    }
    let response = DeleteTopicsResponse {
        responses: results,
        ..DeleteTopicsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// An entry refused with INVALID_REQUEST and Kafka's message.
fn refused(name: Option<String>, topic_id: Uuid, message: &str) -> DeletableTopicResult {
    DeletableTopicResult {
        name,
        topic_id,
        error_code: ErrorCode::InvalidRequest.code(),
        error_message: Some(message.to_string()),
    }
}
