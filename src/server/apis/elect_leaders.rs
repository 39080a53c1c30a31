//! ElectLeaders (key 43), versions 0-2: on one node every partition is already led by its only,
//! preferred replica, so each named partition is ELECTION_NOT_NEEDED (or
//! UNKNOWN_TOPIC_OR_PARTITION), as Kafka answers for a partition whose leader is preferred; a
//! request for all partitions (null) lists none, since Kafka lists only elections that happened.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::elect_leaders::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, authorized_cluster};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ElectLeadersRequest::decode(d, version)?;
    let mut response = ElectLeadersResponse::default();
    if !matches!(request.election_type, 0 | 1) {
        response.error_code = ErrorCode::InvalidRequest.code();
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let denied = !authorized_cluster(ctx, AclOperation::Alter);
    if denied {
        response.error_code = ErrorCode::ClusterAuthorizationFailed.code();
    }
    for topic in request.topic_partitions.iter().flatten() {
        let metadata = ctx.topic(&topic.topic);
        let partition_result = topic
            .partitions
            .iter()
            .map(|&partition_id| {
                if denied {
                    return PartitionResult {
                        partition_id,
                        error_code: ErrorCode::ClusterAuthorizationFailed.code(),
                        error_message: Some("Cluster authorization failed.".into()),
                    };
                }
                let exists = metadata
                    .as_ref()
                    .is_some_and(|t| t.partitions.contains_key(&partition_id));
                if exists {
                    PartitionResult {
                        partition_id,
                        error_code: ErrorCode::ElectionNotNeeded.code(),
                        error_message: Some(
                            "Leader election not needed for topic partition.".into(),
                        ),
                    }
                } else {
                    PartitionResult {
                        partition_id,
                        error_code: ErrorCode::UnknownTopicOrPartition.code(),
                        error_message: Some(
                            "This server does not host this topic-partition.".into(),
                        ),
                    }
                }
            })
            .collect();
        response
            .replica_election_results
            .push(ReplicaElectionResult {
                topic: topic.topic.clone(),
                partition_result,
            });
    }
    Ok(respond(header, |e| response.encode(e, version)))
}
