//! EndTxn (key 26), versions 0-4: commits or aborts the producer's transaction. The answer comes
//! once the PrepareCommit/PrepareAbort record is stored and, normally, the markers and the
//! Complete* record too (see [`crate::txn::coordinator`]). Before v2, PRODUCER_FENCED is answered
//! as INVALID_PRODUCER_EPOCH. With an authorizer, the principal needs Write on the transactional
//! id (else 53).

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::end_txn::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, transactional_id_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = EndTxnRequest::decode(d, version)?;
    let result = match transactional_id_refusal(ctx, AclOperation::Write, &request.transactional_id)
    {
        Some(code) => Err(code),
        None => ctx.transactions.end_txn(
            ctx,
            &request.transactional_id,
            request.producer_id,
            request.producer_epoch,
            request.committed,
        ),
    };
    let error = match result {
        Ok(()) => ErrorCode::None,
        Err(ErrorCode::ProducerFenced) if version < 2 => ErrorCode::InvalidProducerEpoch,
        Err(code) => code,
    };
    let response = EndTxnResponse {
        error_code: error.code(),
        ..EndTxnResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
