//! ListPartitionReassignments (key 46), version 0: a single node never moves replicas, so no
//! reassignment is ever ongoing.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::list_partition_reassignments::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, authorized_cluster};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    ListPartitionReassignmentsRequest::decode(d, version)?;
    let mut response = ListPartitionReassignmentsResponse::default();
    if !authorized_cluster(ctx, AclOperation::Describe) {
        response.error_code = ErrorCode::ClusterAuthorizationFailed.code();
        response.error_message = Some("Cluster authorization failed.".into());
    }
    Ok(respond(header, |e| response.encode(e, version)))
}
