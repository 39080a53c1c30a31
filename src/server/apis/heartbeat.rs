//! Heartbeat (key 12), versions 0-4: keeps a member's session alive, and tells it when the group
//! is rebalancing (REBALANCE_IN_PROGRESS), so that it rejoins.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::messages::heartbeat::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = HeartbeatRequest::decode(d, version)?;
    if let Some(error) = group_refusal(ctx, AclOperation::Read, &request.group_id) {
        let response = HeartbeatResponse {
            error_code: error.code(),
            ..HeartbeatResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let error = ctx.group_coordinator.heartbeat(
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    let response = HeartbeatResponse {
        error_code: error.code(),
        ..HeartbeatResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
