//! ConsumerGroupHeartbeat (key 68), versions 0-1 (v1 as Kafka 4.0 defines it, with
//! SubscribedTopicRegex): joining, staying in and leaving a KIP-848
//! consumer group (see [`crate::group::consumer`]).

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::group::consumer::{self, Heartbeat, Partitions};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::consumer_group_heartbeat::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized, group_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ConsumerGroupHeartbeatRequest::decode(d, version)?;
    let denied = heartbeat_refusal(ctx, &request);
    let owned = request.topic_partitions.map(|tps| {
        let mut out = Partitions::new();
        for tp in tps {
            out.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        out
    });
    let heartbeat = Heartbeat {
        group_id: request.group_id,
        member_id: request.member_id,
        member_epoch: request.member_epoch,
        instance_id: request.instance_id,
        rack_id: request.rack_id,
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed: request.subscribed_topic_names,
        subscribed_regex: request.subscribed_topic_regex,
        regex_authorized: None,
        assignor: request.server_assignor,
        owned,
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: crate::server::connection::client_host(),
    };
    // Since v1 (KIP-1082) the member names itself.
    let checked = if version >= 1 && heartbeat.member_id.is_empty() {
        Err((
            ErrorCode::InvalidRequest,
            "MemberId can't be empty.".to_string(),
        ))
    } else {
        consumer::validate(&heartbeat)
            .map_err(|m| (ErrorCode::InvalidRequest, m))
            .and_then(|()| regex_check(&heartbeat))
    };
    let result = match checked {
        _ if denied.is_some() => consumer::HeartbeatResult {
            error: denied,
            ..Default::default()
        },
        Err(error) => consumer::HeartbeatResult {
            error: Some(error),
            ..Default::default()
        },
        Ok(()) => ctx.group_coordinator.consumer_heartbeat(ctx, heartbeat),
    };
    let (error_code, error_message) = match result.error {
        Some((code, message)) => (code.code(), Some(message)),
        None => (ErrorCode::None.code(), None),
    };
    let response = ConsumerGroupHeartbeatResponse {
        error_code,
        error_message,
        member_id: result.member_id,
        member_epoch: result.member_epoch,
        heartbeat_interval_ms: result.heartbeat_interval_ms,
        assignment: result.assignment.map(|a| Assignment {
            topic_partitions: a
                .into_iter()
                .map(|(topic_id, partitions)| TopicPartitions {
                    topic_id,
                    partitions: partitions.into_iter().collect(),
                })
                .collect(),
        }),
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// A regex that does not compile is Kafka's INVALID_REGULAR_EXPRESSION, before the member
/// joins or changes (`Utils.throwIfRegularExpressionIsInvalid`).
fn regex_check(h: &Heartbeat) -> Result<(), (ErrorCode, String)> {
    match h.subscribed_regex.as_deref() {
        Some(r) if !r.is_empty() => consumer::compile_topic_regex(r)
            .map(drop)
            .map_err(|m| (ErrorCode::InvalidRegularExpression, m)),
        _ => Ok(()),
    }
}

/// Kafka's checks: Read on the group, then Describe on every subscribed topic.
fn heartbeat_refusal(
    ctx: &BrokerContext,
    request: &ConsumerGroupHeartbeatRequest,
) -> Option<(ErrorCode, String)> {
    if let Some(error) = group_refusal(ctx, AclOperation::Read, &request.group_id) {
        return Some((error, "Group authorization failed.".into()));
    }
    let topics = request.subscribed_topic_names.iter().flatten();
    let denied: Vec<&str> = topics
        .filter(|t| !authorized(ctx, AclOperation::Describe, ResourceType::Topic, t))
        .map(String::as_str)
        .collect();
    (!denied.is_empty()).then(|| {
        let message = format!("Topic authorization failed for topics {denied:?}");
        (ErrorCode::TopicAuthorizationFailed, message)
    })
}
