//! DescribeGroups (key 15), versions 0-5: state, protocol and members of each group. Member
//! metadata and assignments are filled in only for a Stable group, and a group that does not
//! exist is reported as Dead with no error, as Kafka does. So is a KIP-848 consumer group: Kafka
//! 4.0's `GroupMetadataManager.describeGroups` describes classic groups only, and before v6
//! answers any other id as Dead with no error (ConsumerGroupDescribe describes those).

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::GroupSummary;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_groups::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_operations, group_refusal};
use std::collections::HashSet;

/// Kafka's authorized-operations bitfield for a group when no authorizer is configured: READ,
/// DELETE and DESCRIBE (bits 3, 6 and 8).
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeGroupsRequest::decode(d, version)?;
    // A group asked for twice is described once, so that repeating a group id cannot multiply
    // its members' metadata in the response without bound.
    let mut seen = HashSet::with_capacity(request.groups.len());
    let groups = request
        .groups
        .iter()
        .filter(|group_id| seen.insert(group_id.as_str()))
        .map(|group_id| {
            if let Some(error) = group_refusal(ctx, AclOperation::Describe, group_id) {
                return DescribedGroup {
                    error_code: error.code(),
                    group_id: group_id.clone(),
                    ..DescribedGroup::default()
                };
            }
            let summary = if ctx.group_coordinator.is_consumer_group(group_id) {
                GroupSummary::dead()
            } else {
                ctx.group_coordinator.describe_group(group_id)
            };
            DescribedGroup {
                error_code: ErrorCode::None.code(),
                group_id: group_id.clone(),
                group_state: summary.state.as_str().to_string(),
                protocol_type: summary.protocol_type,
                protocol_data: summary.protocol_name,
                members: summary
                    .members
                    .into_iter()
                    .map(|m| DescribedGroupMember {
                        member_id: m.member_id,
                        group_instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        member_metadata: m.metadata,
                        member_assignment: m.assignment,
                    })
                    .collect(),
                authorized_operations: if request.include_authorized_operations {
                    group_operations(ctx, group_id, GROUP_AUTHORIZED_OPERATIONS)
                } else {
                    i32::MIN
                },
            }
        })
        .collect();
    let response = DescribeGroupsResponse {
        groups,
        ..DescribeGroupsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
