//! The API layer (Kafka's `KafkaApis`): decodes a request body, does the work, encodes the response.
//! One module per API. Handlers return Kafka error codes inside their responses; only framing
//! problems and undecodable bodies close the connection.

mod alter_configs;
mod api_versions;
mod client_quotas;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_topic_partitions;
mod elect_leaders;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod sasl;
mod scram_credentials;
mod sync_group;

/// The produce path's pure record checks, public so that the `record_batch` fuzz target and the
/// replay of its corpus (`tests/fuzz_corpus.rs`) run exactly what a produce request runs.
pub use produce::{Refusal, check_batch, check_request_records};

use crate::broker::BrokerContext;
use crate::protocol::messages::{self, api_versions as av};
use crate::protocol::wire::{DecodeResult, Decoder, Encoder};
use crate::protocol::{self, RequestHeader};

/// What the connection does after a request.
pub enum Outcome {
    /// Write this frame (size prefix included).
    Respond(Vec<u8>),
    /// Write this frame, whose record regions are sent from their files (see
    /// [`crate::server::zero_copy`]).
    RespondChunks(Vec<crate::server::zero_copy::Chunk>),
    /// Write nothing (Produce with acks=0).
    NoResponse,
    /// Close the connection, logging why.
    Close(String),
    /// A produce whose appends went to the `log-writer`: [`Deferred::finish`] waits for the
    /// writer and gives the real outcome. The connection may read and submit the next produce
    /// in the meantime, so that one client's pipelined requests share a group commit.
    Deferred(Deferred),
}

/// The second half of a request that waits for the `log-writer`.
pub struct Deferred(Box<dyn FnOnce(&BrokerContext) -> Outcome>);

impl Deferred {
    pub fn new(finish: impl FnOnce(&BrokerContext) -> Outcome + 'static) -> Deferred {
        Deferred(Box::new(finish))
    }

    /// Waits for the writer's answer and builds the response.
    pub fn finish(self, ctx: &BrokerContext) -> Outcome {
        (self.0)(ctx)
    }
}

/// Dispatches one request whose header has been read. `supported` is false only for an ApiVersions
/// request of a version sprat does not implement.
pub fn handle(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
    supported: bool,
) -> Outcome {
    let version = header.api_version;
    let result = match header.api_key {
        av::API_KEY if !supported => Ok(api_versions::unsupported_version(header)),
        av::API_KEY => api_versions::handle(ctx, header, d),
        messages::produce::API_KEY => produce::handle(ctx, header, d),
        messages::fetch::API_KEY => fetch::handle(ctx, header, d),
        messages::describe_topic_partitions::API_KEY => {
            describe_topic_partitions::handle(ctx, header, d)
        }
        messages::list_offsets::API_KEY => list_offsets::handle(ctx, header, d),
        messages::metadata::API_KEY => metadata::handle(ctx, header, d),
        messages::create_topics::API_KEY => create_topics::handle(ctx, header, d),
        messages::delete_topics::API_KEY => delete_topics::handle(ctx, header, d),
        messages::delete_records::API_KEY => delete_records::handle(ctx, header, d),
        messages::offset_commit::API_KEY => offset_commit::handle(ctx, header, d),
        messages::offset_fetch::API_KEY => offset_fetch::handle(ctx, header, d),
        messages::find_coordinator::API_KEY => find_coordinator::handle(ctx, header, d),
        messages::join_group::API_KEY => join_group::handle(ctx, header, d),
        messages::heartbeat::API_KEY => heartbeat::handle(ctx, header, d),
        messages::leave_group::API_KEY => leave_group::handle(ctx, header, d),
        messages::sync_group::API_KEY => sync_group::handle(ctx, header, d),
        messages::describe_groups::API_KEY => describe_groups::handle(ctx, header, d),
        messages::list_groups::API_KEY => list_groups::handle(ctx, header, d),
        messages::delete_groups::API_KEY => delete_groups::handle(ctx, header, d),
        messages::offset_delete::API_KEY => offset_delete::handle(ctx, header, d),
        messages::init_producer_id::API_KEY => init_producer_id::handle(ctx, header, d),
        messages::describe_configs::API_KEY => describe_configs::handle(ctx, header, d),
        messages::create_partitions::API_KEY => create_partitions::handle(ctx, header, d),
        messages::alter_configs::API_KEY => alter_configs::handle_legacy(ctx, header, d),
        messages::incremental_alter_configs::API_KEY => {
            alter_configs::handle_incremental(ctx, header, d)
        }
        messages::describe_cluster::API_KEY => describe_cluster::handle(ctx, header, d),
        messages::describe_producers::API_KEY => describe_producers::handle(ctx, header, d),
        messages::describe_client_quotas::API_KEY => client_quotas::handle_describe(ctx, header, d),
        messages::alter_client_quotas::API_KEY => client_quotas::handle_alter(ctx, header, d),
        messages::consumer_group_heartbeat::API_KEY => {
            consumer_group_heartbeat::handle(ctx, header, d)
        }
        messages::consumer_group_describe::API_KEY => {
            consumer_group_describe::handle(ctx, header, d)
        }
        messages::describe_log_dirs::API_KEY => describe_log_dirs::handle(ctx, header, d),
        messages::elect_leaders::API_KEY => elect_leaders::handle(ctx, header, d),
        messages::list_partition_reassignments::API_KEY => {
            list_partition_reassignments::handle(ctx, header, d)
        }
        messages::offset_for_leader_epoch::API_KEY => {
            offset_for_leader_epoch::handle(ctx, header, d)
        }
        messages::sasl_handshake::API_KEY => sasl::handle_handshake(ctx, header, d),
        messages::sasl_authenticate::API_KEY => sasl::handle_authenticate(ctx, header, d),
        messages::describe_user_scram_credentials::API_KEY => {
            scram_credentials::handle_describe(ctx, header, d)
        }
        messages::alter_user_scram_credentials::API_KEY => {
            scram_credentials::handle_alter(ctx, header, d)
        }
        key => return Outcome::Close(format!("no handler for API key {key} v{version}")),
    };
    result.unwrap_or_else(|e| {
        Outcome::Close(format!(
            "malformed {} v{version} request: {e}",
            protocol::api_name(header.api_key)
        ))
    })
}

/// Encodes a complete response frame: size, response header (v0 or v1 as the API and version
/// require) and body.
pub fn respond(header: &RequestHeader, body: impl FnOnce(&mut Encoder)) -> Outcome {
    let mut e = Encoder::with_capacity(64);
    e.i32(0);
    let flexible = protocol::response_header_is_flexible(header.api_key, header.api_version);
    protocol::encode_response_header(&mut e, header.correlation_id, flexible);
    body(&mut e);
    let mut frame = e.into_inner();
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(frame)
}

/// The result type of handlers: a decode error closes the connection.
pub type HandlerResult = DecodeResult<Outcome>;

/// The current wall-clock time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
