//! DeleteGroups (key 42), versions 0-2: deletes Empty groups and their committed offsets.
//! A group with members gets NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::delete_groups::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DeleteGroupsRequest::decode(d, version)?;
    // Groups the principal may not delete are answered here; the others go to the coordinator.
    let (allowed, denied): (Vec<String>, Vec<String>) = request
        .groups_names
        .iter()
        .cloned()
        .partition(|g| group_refusal(ctx, AclOperation::Delete, g).is_none());
    let mut deleted = ctx
        .group_coordinator
        .delete_groups(ctx, &allowed)
        .into_iter();
    let errors: Vec<ErrorCode> = request
        .groups_names
        .iter()
        .map(|g| {
            if denied.contains(g) {
                ErrorCode::GroupAuthorizationFailed
            } else {
                deleted.next().unwrap_or(ErrorCode::UnknownServerError)
            }
        })
        .collect();
    let response = DeleteGroupsResponse {
        results: request
            .groups_names
            .into_iter()
            .zip(errors)
            .map(|(group_id, error)| DeletableGroupResult {
                group_id,
                error_code: error.code(),
            })
            .collect(),
        ..DeleteGroupsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
