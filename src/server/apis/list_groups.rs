//! ListGroups (key 16), versions 0-5: every group this coordinator knows. v4+ may filter by state
//! and v5+ by type (all of sprat's groups are "classic"); both filters ignore case.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::list_groups::*;
use crate::protocol::wire::Decoder;

/// The type of groups that use the classic (JoinGroup/SyncGroup) protocol.
const CLASSIC_GROUP_TYPE: &str = "classic";

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ListGroupsRequest::decode(d, version)?;
    let type_wanted = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
    let groups = if type_wanted {
        ctx.group_coordinator
            .list_groups()
            .into_iter()
            .filter(|g| {
                request.states_filter.is_empty()
                    || request
                        .states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.as_str()))
            })
            .map(|g| ListedGroup {
                group_id: g.group_id,
                protocol_type: g.protocol_type,
                group_state: g.state.as_str().to_string(),
                group_type: CLASSIC_GROUP_TYPE.to_string(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let response = ListGroupsResponse {
        error_code: ErrorCode::None.code(),
        groups,
        ..ListGroupsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
