//! ListPartitionReassignments (key 46), version 0: a single node never moves replicas, so no
//! reassignment is ever ongoing.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::messages::list_partition_reassignments::*;
use crate::protocol::wire::Decoder;

pub fn handle(_ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    ListPartitionReassignmentsRequest::decode(d, version)?;
    let response = ListPartitionReassignmentsResponse::default();
    Ok(respond(header, |e| response.encode(e, version)))
}
