//! ConsumerGroupDescribe (key 69), version 0: a KIP-848 group's epochs, assignor and members,
//! each with its current and target assignment.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::consumer::Partitions;
use crate::metadata::MetadataImage;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::consumer_group_describe::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, group_operations, group_refusal};

/// Kafka's group authorized-operations bitfield without an authorizer: READ, DESCRIBE, DELETE.
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ConsumerGroupDescribeRequest::decode(d, version)?;
    let image = ctx.metadata.read();
    let config = ctx.group_coordinator.consumer_group_config().clone();
    let groups = request
        .group_ids
        .iter()
        .map(|id| {
            if let Some(error) = group_refusal(ctx, AclOperation::Describe, id) {
                return DescribedGroup {
                    group_id: id.clone(),
                    error_code: error.code(),
                    error_message: Some("Group authorization failed.".into()),
                    authorized_operations: i32::MIN,
                    ..DescribedGroup::default()
                };
            }
            let described = ctx
                .group_coordinator
                .with_consumer_group(id, |g| DescribedGroup {
                    group_id: id.clone(),
                    group_state: g.state().to_string(),
                    group_epoch: g.epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor_name: g.assignor(&config),
                    members: g
                        .members
                        .values()
                        .map(|m| Member {
                            member_id: m.member_id.clone(),
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.epoch,
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            subscribed_topic_names: m.subscribed.clone(),
                            subscribed_topic_regex: m.subscribed_regex.clone(),
                            assignment: assignment(&image, &m.assigned),
                            target_assignment: assignment(
                                &image,
                                g.target.get(&m.member_id).unwrap_or(&Partitions::new()),
                            ),
                        })
                        .collect(),
                    authorized_operations: if request.include_authorized_operations {
                        group_operations(ctx, id, GROUP_AUTHORIZED_OPERATIONS)
                    } else {
                        i32::MIN
                    },
                    ..DescribedGroup::default()
                });
            described.unwrap_or_else(|| DescribedGroup {
                group_id: id.clone(),
                error_code: ErrorCode::GroupIdNotFound.code(),
                error_message: Some(format!("Group {id} not found.")),
                group_state: "Dead".into(),
                authorized_operations: i32::MIN,
                ..DescribedGroup::default()
            })
        })
        .collect();
    let response = ConsumerGroupDescribeResponse {
        groups,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

fn assignment(image: &MetadataImage, partitions: &Partitions) -> Assignment {
    Assignment {
        topic_partitions: partitions
            .iter()
            .map(|(id, ps)| TopicPartitions {
                topic_id: *id,
                topic_name: image
                    .topic_by_id(id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                partitions: ps.iter().copied().collect(),
            })
            .collect(),
    }
}
