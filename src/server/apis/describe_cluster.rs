//! DescribeCluster (key 60), versions 0-1: the cluster id, this node as the one broker and the
//! controller, at the address of the listener clients use (as Metadata gives it).

use super::metadata::CLUSTER_AUTHORIZED_OPERATIONS;
use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_cluster::*;
use crate::protocol::wire::Decoder;

/// `EndpointType` values (v1): brokers, and the controllers, which a broker does not describe.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeClusterRequest::decode(d, version)?;
    let mut response = DescribeClusterResponse {
        endpoint_type: request.endpoint_type,
        cluster_id: ctx.cluster_id.clone(),
        controller_id: ctx.config.node_id,
        cluster_authorized_operations: if request.include_cluster_authorized_operations {
            crate::security::acl::cluster_operations(ctx, CLUSTER_AUTHORIZED_OPERATIONS)
        } else {
            i32::MIN
        },
        ..DescribeClusterResponse::default()
    };
    match request.endpoint_type {
        ENDPOINT_BROKERS => {
            let (host, port) = ctx.advertised_host_port();
            response.brokers = vec![DescribeClusterBroker {
                broker_id: ctx.config.node_id,
                host,
                port: i32::from(port),
                rack: None,
            }];
        }
        other => {
            // Kafka's brokers answer any other type this way; only a controller listener
            // lists controllers.
            let wanted = if other == ENDPOINT_CONTROLLERS {
                "CONTROLLER"
            } else {
                "UNKNOWN"
            };
            response.error_code = ErrorCode::UnsupportedEndpointType.code();
            response.error_message = Some(format!(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type {wanted}"
            ));
            response.controller_id = -1;
        }
    }
    Ok(respond(header, |e| response.encode(e, version)))
}
