//! JoinGroup (key 11), versions 0-9. The connection thread blocks until the rebalance completes
//! (every known member rejoined, or the rebalance timeout passed), but never longer than
//! `connections.max.idle.ms`; see [`crate::group`].
//!
//! v0 has no rebalance timeout: the session timeout stands in for it. From v4 a member without
//! an id first gets MEMBER_ID_REQUIRED with one, and joins again with it.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::JoinRequest;
use crate::protocol::RequestHeader;
use crate::protocol::messages::join_group::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_refusal};
use log::debug;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = JoinGroupRequest::decode(d, version)?;
    if let Some(error) = group_refusal(ctx, AclOperation::Read, &request.group_id) {
        let response = JoinGroupResponse {
            error_code: error.code(),
            generation_id: -1,
            ..JoinGroupResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    if let Some(reason) = &request.reason {
        debug!(
            "member {:?} joins group {}: {reason}",
            request.member_id, request.group_id
        );
    }
    let join = JoinRequest {
        member_id: request.member_id,
        group_instance_id: request.group_instance_id,
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: client_host(),
        rebalance_timeout_ms: if version == 0 {
            request.session_timeout_ms
        } else {
            request.rebalance_timeout_ms
        },
        session_timeout_ms: request.session_timeout_ms,
        protocol_type: request.protocol_type,
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name, p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        new_member_id: String::new(),
    };
    let result = ctx.group_coordinator.join_group(&request.group_id, join);
    let response = JoinGroupResponse {
        error_code: result.error.code(),
        generation_id: result.generation_id,
        protocol_type: result.protocol_type,
        protocol_name: result.protocol_name,
        leader: result.leader_id,
        skip_assignment: false,
        member_id: result.member_id,
        members: result
            .members
            .into_iter()
            .map(|m| JoinGroupResponseMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                metadata: m.metadata,
            })
            .collect(),
        ..JoinGroupResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// The client's address as Kafka reports it in DescribeGroups (`/127.0.0.1`). The connection
/// thread is named `conn-<peer>` by the socket server, so the address is read from its name.
fn client_host() -> String {
    std::thread::current()
        .name()
        .and_then(|name| name.strip_prefix("conn-"))
        .and_then(|peer| peer.parse::<std::net::SocketAddr>().ok())
        .map(|addr| format!("/{}", addr.ip()))
        .unwrap_or_default()
}
