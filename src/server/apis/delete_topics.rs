//! DeleteTopics (key 20): topics by name (v0-5) or by name or id (v6+), removed by the
//! `log-writer` thread.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::delete_topics::*;
use crate::protocol::wire::{Decoder, Uuid};
use crate::writer::WriterCommand;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DeleteTopicsRequest::decode(d, version)?;
    let wanted: Vec<(Option<String>, Uuid)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.clone(), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.clone()), Uuid::ZERO))
            .collect()
    };
    let mut results = Vec::with_capacity(wanted.len());
    let mut to_delete = Vec::new();
    for (name, id) in wanted {
        let found = match &name {
            Some(n) if id.is_zero() => ctx.topic(n),
            _ => ctx.topic_by_id(&id),
        };
        let mut result = DeletableTopicResult {
            name: name.clone(),
            topic_id: id,
            ..DeletableTopicResult::default()
        };
        match found {
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
