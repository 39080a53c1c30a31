//! FindCoordinator (key 10), versions 0-6: this node coordinates every group (key type 0) and
//! every transactional id (key type 1). Versions 4+ ask for several keys at once.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::find_coordinator::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized};

/// Kafka's `CoordinatorType.GROUP`.
const KEY_TYPE_GROUP: i8 = 0;
/// Kafka's `CoordinatorType.TRANSACTION`.
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = FindCoordinatorRequest::decode(d, version)?;
    let (host, port) = ctx.advertised_host_port();
    let node_id = ctx.config.node_id;
    if request.key_type == KEY_TYPE_GROUP {
        // As Kafka does: the offsets topic exists before a group needs it, so that a SyncGroup
        // (which stores the group) does not wait for 50 partitions to be created.
        ctx.group_coordinator.ensure_offsets_topic(ctx);
    }
    let (error, message) = if matches!(request.key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION) {
        // Kafka sends the error's message even on success, which for NONE is "NONE".
        (ErrorCode::None, "NONE".to_string())
    } else {
        (
            ErrorCode::InvalidRequest,
            format!("Unknown coordinator type received: {}", request.key_type),
        )
    };
    let found = error == ErrorCode::None;
    let response = if version >= 4 {
        FindCoordinatorResponse {
            coordinators: request
                .coordinator_keys
                .iter()
                .map(|key| {
                    let denied = found
                        .then(|| key_refusal(ctx, request.key_type, key))
                        .flatten();
                    let found = found && denied.is_none();
                    let (error, message) = denied.unwrap_or((error, message.clone()));
                    Coordinator {
                        key: key.clone(),
                        node_id: if found { node_id } else { -1 },
                        host: if found { host.clone() } else { String::new() },
                        port: if found { i32::from(port) } else { -1 },
                        error_code: error.code(),
                        error_message: Some(message),
                    }
                })
                .collect(),
            ..FindCoordinatorResponse::default()
        }
    } else {
        let denied = found
            .then(|| key_refusal(ctx, request.key_type, &request.key))
            .flatten();
        let found = found && denied.is_none();
        let (error, message) = denied.unwrap_or((error, message));
        FindCoordinatorResponse {
            error_code: error.code(),
            error_message: Some(message),
            node_id: if found { node_id } else { -1 },
            host: if found { host } else { String::new() },
            port: if found { i32::from(port) } else { -1 },
            ..FindCoordinatorResponse::default()
        }
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Describe on the group or transactional id the client looks for.
fn key_refusal(ctx: &BrokerContext, key_type: i8, key: &str) -> Option<(ErrorCode, String)> {
    let (resource_type, error) = if key_type == KEY_TYPE_TRANSACTION {
        let error = ErrorCode::TransactionalIdAuthorizationFailed;
        (ResourceType::TransactionalId, error)
    } else {
        (ResourceType::Group, ErrorCode::GroupAuthorizationFailed)
    };
    let allowed = authorized(ctx, AclOperation::Describe, resource_type, key);
    (!allowed).then(|| {
        (
            error,
            format!("{} authorization failed.", resource_type.name()),
        )
    })
}
