//! DeleteGroups (key 42), versions 0-2: deletes Empty groups and their committed offsets.
//! A group with members gets NON_EMPTY_GROUP, an unknown one GROUP_ID_NOT_FOUND.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::messages::delete_groups::*;
use crate::protocol::wire::Decoder;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DeleteGroupsRequest::decode(d, version)?;
    let errors = ctx
        .group_coordinator
        .delete_groups(ctx, &request.groups_names);
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
