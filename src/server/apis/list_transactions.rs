//! ListTransactions (key 66), versions 0-1: every transactional id, filtered by state names,
//! producer ids and (v1) how long the transaction has been running. A state filter that names
//! no state is returned in `unknown_state_filters`, as in Kafka. With an authorizer, only the ids
//! the principal may Describe are listed.

use super::{HandlerResult, now_ms, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::messages::list_transactions::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized};
use crate::txn::metadata::TxnState;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = ListTransactionsRequest::decode(d, version)?;
    let unknown_state_filters: Vec<String> = request
        .state_filters
        .iter()
        .filter(|s| TxnState::from_name(s).is_none())
        .cloned()
        .collect();
    let now = now_ms();
    let transaction_states = ctx
        .transactions
        .list()
        .into_iter()
        .filter(|m| {
            request.state_filters.is_empty()
                || request.state_filters.iter().any(|s| s == m.state.name())
        })
        .filter(|m| {
            request.producer_id_filters.is_empty()
                || request.producer_id_filters.contains(&m.producer_id)
        })
        .filter(|m| {
            // As Kafka: with a duration, only transactions started longer ago than that.
            m.state != TxnState::Dead
                && (request.duration_filter < 0 || now - m.start_ms > request.duration_filter)
        })
        .filter(|m| {
            authorized(
                ctx,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| TransactionState {
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            transaction_state: m.state.name().to_string(),
        })
        .collect();
    let response = ListTransactionsResponse {
        unknown_state_filters,
        transaction_states,
        ..ListTransactionsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
