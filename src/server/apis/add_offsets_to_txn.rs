//! AddOffsetsToTxn (key 25), versions 0-4: adds the group's `__consumer_offsets` partition to the
//! transaction, before TxnOffsetCommit writes the group's offsets there. Before v2,
//! PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH. With an authorizer, the principal needs
//! Write on the transactional id (else 53) and Read on the group (else 30).

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::add_offsets_to_txn::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_refusal, transactional_id_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = AddOffsetsToTxnRequest::decode(d, version)?;
    // Kafka checks Write on the transactional id, then Read on the group.
    let refusal = transactional_id_refusal(ctx, AclOperation::Write, &request.transactional_id)
        .or_else(|| group_refusal(ctx, AclOperation::Read, &request.group_id));
    let result = match refusal {
        Some(code) => Err(code),
        None => ctx
            .group_coordinator
            .offsets_topic_partition(ctx, &request.group_id)
            .and_then(|tp| {
                ctx.transactions.add_partitions(
                    ctx,
                    &request.transactional_id,
                    request.producer_id,
                    request.producer_epoch,
                    &[tp],
                )
            }),
    };
    let error = match result {
        Ok(()) => ErrorCode::None,
        Err(ErrorCode::ProducerFenced) if version < 2 => ErrorCode::InvalidProducerEpoch,
        Err(code) => code,
    };
    let response = AddOffsetsToTxnResponse {
        error_code: error.code(),
        ..AddOffsetsToTxnResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
