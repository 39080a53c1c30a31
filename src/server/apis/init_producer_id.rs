//! InitProducerId (key 22), versions 0-5: a producer id and epoch for an idempotent producer.
//!
//! As in Kafka, a producer without a transactional id always gets a fresh producer id with epoch 0
//! (also when it asks to bump the epoch of its old id, v3+). sprat has no transaction coordinator,
//! so a transactional id is refused.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::init_producer_id::*;
use crate::protocol::wire::Decoder;
use crate::writer::WriterCommand;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = InitProducerIdRequest::decode(d, version)?;
    let mut response = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..InitProducerIdResponse::default()
    };
    if request.transactional_id.is_some() {
        response.error_code = ErrorCode::TransactionalIdAuthorizationFailed.code();
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
