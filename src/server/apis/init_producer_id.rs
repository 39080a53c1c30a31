//! InitProducerId (key 22), versions 0-5: a producer id and epoch for an idempotent producer.
//!
//! As in Kafka, a producer without a transactional id always gets a fresh producer id with epoch 0
//! (also when it asks to bump the epoch of its old id, v3+). sprat has no transaction coordinator,
//! so a transactional id is refused (after Kafka's own checks of it: an empty id is
//! INVALID_REQUEST, a timeout outside 1..=`transaction.max.timeout.ms` INVALID_TRANSACTION_TIMEOUT).
//! From v3, a producer id without an epoch, or an epoch without a producer id, is INVALID_REQUEST.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::init_producer_id::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{
    AclOperation, ResourceType, authorized, authorized_any, authorized_cluster,
};
use crate::writer::WriterCommand;

/// Kafka's default `transaction.max.timeout.ms`.
const DEFAULT_TRANSACTION_MAX_TIMEOUT_MS: i32 = 900_000;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = InitProducerIdRequest::decode(d, version)?;
    let mut response = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..InitProducerIdResponse::default()
    };
    let max_timeout_ms = ctx
        .config
        .get("transaction.max.timeout.ms")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_TRANSACTION_MAX_TIMEOUT_MS);
    // Kafka's `KafkaApis.handleInitProducerIdRequest`, then `TransactionCoordinator`.
    let half_given = (request.producer_id == -1) != (request.producer_epoch == -1);
    let refusal = match request.transactional_id.as_deref() {
        // Kafka authorizes first: Write on the transactional id, or for an idempotent producer
        // IdempotentWrite on the cluster or Write on some topic.
        Some(id) if !authorized(ctx, AclOperation::Write, ResourceType::TransactionalId, id) => {
            Some(ErrorCode::TransactionalIdAuthorizationFailed)
        }
        None if !authorized_cluster(ctx, AclOperation::IdempotentWrite)
            && !authorized_any(ctx, AclOperation::Write, ResourceType::Topic) =>
        {
            Some(ErrorCode::ClusterAuthorizationFailed)
        }
        _ if half_given => Some(ErrorCode::InvalidRequest),
        None => None,
        Some("") => Some(ErrorCode::InvalidRequest),
        Some(_) if !(1..=max_timeout_ms).contains(&request.transaction_timeout_ms) => {
            Some(ErrorCode::InvalidTransactionTimeout)
        }
        Some(_) => Some(ErrorCode::TransactionalIdAuthorizationFailed),
    };
    if let Some(code) = refusal {
        response.error_code = code.code();
    } else {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let allocated = ctx
            .writer
            .send(WriterCommand::AllocateProducerId { reply: tx })
            .ok()
            .and_then(|_| rx.recv().ok())
            .unwrap_or(Err(ErrorCode::CoordinatorNotAvailable));
        match allocated {
            Ok(id) => {
                response.producer_id = id;
                response.producer_epoch = 0;
            }
            Err(code) => response.error_code = code.code(),
        }
    }
    Ok(respond(header, |e| response.encode(e, version)))
}
