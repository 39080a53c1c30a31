//! InitProducerId (key 22), versions 0-5: a producer id and epoch for an idempotent producer.
//!
//! As in Kafka, a producer without a transactional id always gets a fresh producer id with epoch 0
//! (also when it asks to bump the epoch of its old id, v3+). A transactional id goes to the
//! transaction coordinator ([`crate::txn`]): an empty id is INVALID_REQUEST, a timeout outside
//! 1..=`transaction.max.timeout.ms` INVALID_TRANSACTION_TIMEOUT; otherwise the id gets its
//! producer id with a bumped epoch, fencing any previous instance. From v3, a producer id without
//! an epoch, or an epoch without a producer id, is INVALID_REQUEST. Before v4, PRODUCER_FENCED is
//! answered as INVALID_PRODUCER_EPOCH, which those clients know.

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

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = InitProducerIdRequest::decode(d, version)?;
    let mut response = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..InitProducerIdResponse::default()
    };
    let max_timeout_ms = ctx.transactions.max_timeout_ms();
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
        Some(_) => None,
    };
    if let Some(code) = refusal {
        response.error_code = code.code();
    } else if let Some(id) = request.transactional_id.as_deref() {
        let expected =
            (request.producer_id != -1).then_some((request.producer_id, request.producer_epoch));
        match ctx
            .transactions
            .init_producer_id(ctx, id, request.transaction_timeout_ms, expected)
        {
            Ok((producer_id, epoch)) => {
                response.producer_id = producer_id;
                response.producer_epoch = epoch;
            }
            Err(ErrorCode::ProducerFenced) if version < 4 => {
                response.error_code = ErrorCode::InvalidProducerEpoch.code();
            }
            Err(code) => response.error_code = code.code(),
        }
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
