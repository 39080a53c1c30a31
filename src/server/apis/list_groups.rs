//! ListGroups (key 16), versions 0-5: every group this coordinator knows, classic and KIP-848
//! ("consumer", protocol type "consumer"). v4+ may filter by state and v5+ by type; both filters
//! ignore case.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::list_groups::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized, authorized_cluster};

/// The type of groups that use the classic (JoinGroup/SyncGroup) protocol.
const CLASSIC_GROUP_TYPE: &str = "classic";

/// The type (and protocol type) of KIP-848 groups.
const CONSUMER_GROUP_TYPE: &str = "consumer";

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ListGroupsRequest::decode(d, version)?;
    let type_wanted = |kind: &str| {
        request.types_filter.is_empty()
            || request
                .types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case(kind))
    };
    let state_wanted = |state: &str| {
        request.states_filter.is_empty()
            || request
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
    };
    let consumer_groups = ctx.group_coordinator.list_consumer_groups();
    let mut groups: Vec<ListedGroup> = Vec::new();
    if type_wanted(CLASSIC_GROUP_TYPE) {
        groups.extend(
            ctx.group_coordinator
                .list_groups()
                .into_iter()
                // A consumer group's offsets are kept by an empty classic group of its id.
                .filter(|g| !consumer_groups.iter().any(|(id, _)| *id == g.group_id))
                .filter(|g| state_wanted(g.state.as_str()))
                .map(|g| ListedGroup {
                    group_id: g.group_id,
                    protocol_type: g.protocol_type,
                    group_state: g.state.as_str().to_string(),
                    group_type: CLASSIC_GROUP_TYPE.to_string(),
                }),
        );
    }
    if type_wanted(CONSUMER_GROUP_TYPE) {
        groups.extend(
            consumer_groups
                .into_iter()
                .filter(|(_, state)| state_wanted(state))
                .map(|(group_id, state)| ListedGroup {
                    group_id,
                    protocol_type: CONSUMER_GROUP_TYPE.to_string(),
                    group_state: state.to_string(),
                    group_type: CONSUMER_GROUP_TYPE.to_string(),
                }),
        );
    }
    // Describe on the cluster lists every group; otherwise only the groups one may describe.
    if !authorized_cluster(ctx, AclOperation::Describe) {
        groups.retain(|g| {
            authorized(
                ctx,
                AclOperation::Describe,
                ResourceType::Group,
                &g.group_id,
            )
        });
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let response = ListGroupsResponse {
        error_code: ErrorCode::None.code(),
        groups,
        ..ListGroupsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
