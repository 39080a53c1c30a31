//! SyncGroup (key 14), versions 0-5. The leader sends the assignment it computed; every member
//! gets its own. A follower that arrives first blocks until the leader's assignment is in.
//! v5 carries the protocol type and name, which must match the group's.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::SyncRequest;
use crate::protocol::RequestHeader;
use crate::protocol::messages::sync_group::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = SyncGroupRequest::decode(d, version)?;
    if let Some(error) = group_refusal(ctx, AclOperation::Read, &request.group_id) {
        let response = SyncGroupResponse {
            error_code: error.code(),
            ..SyncGroupResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let sync = SyncRequest {
        member_id: request.member_id,
        group_instance_id: request.group_instance_id,
        generation_id: request.generation_id,
        protocol_type: request.protocol_type,
        protocol_name: request.protocol_name,
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id, a.assignment))
            .collect(),
    };
    let result = ctx.group_coordinator.sync_group(&request.group_id, sync);
    let response = SyncGroupResponse {
        error_code: result.error.code(),
        protocol_type: result.protocol_type,
        protocol_name: result.protocol_name,
        assignment: result.assignment,
        ..SyncGroupResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
