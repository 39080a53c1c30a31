//! LeaveGroup (key 13), versions 0-5. Versions 0-2 name one member and answer with one error
//! code (the first member error when there is no group error, as Kafka's `LeaveGroupResponse`
//! does); versions 3+ name several members, by member id or group instance id, and answer for each.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::LeavingMember;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::leave_group::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_refusal};
use log::debug;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = LeaveGroupRequest::decode(d, version)?;
    if let Some(error) = group_refusal(ctx, AclOperation::Read, &request.group_id) {
        let response = LeaveGroupResponse {
            error_code: error.code(),
            ..LeaveGroupResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let leaving: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.clone(),
            group_instance_id: None,
        }]
    };
    for m in request.members.iter().filter(|m| m.reason.is_some()) {
        debug!(
            "member {} leaves group {}: {}",
            m.member_id,
            request.group_id,
            m.reason.as_deref().unwrap_or("")
        );
    }
    let result = ctx
        .group_coordinator
        .leave_group(&request.group_id, &leaving);
    let response = if version >= 3 {
        let (error, members) = match result {
            Ok(errors) => (
                ErrorCode::None,
                leaving
                    .into_iter()
                    .zip(errors)
                    .map(|(m, error)| MemberResponse {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        error_code: error.code(),
                    })
                    .collect(),
            ),
            Err(error) => (error, Vec::new()),
        };
        LeaveGroupResponse {
            error_code: error.code(),
            members,
            ..LeaveGroupResponse::default()
        }
    } else {
        let error = match result {
            Ok(errors) => errors
                .into_iter()
                .find(|e| *e != ErrorCode::None)
                .unwrap_or(ErrorCode::None),
            Err(error) => error,
        };
        LeaveGroupResponse {
            error_code: error.code(),
            ..LeaveGroupResponse::default()
        }
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
