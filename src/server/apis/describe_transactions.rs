//! DescribeTransactions (key 65), version 0: the state of transactional ids. An unknown id gets
//! TRANSACTIONAL_ID_NOT_FOUND, as in Kafka.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_transactions::*;
use crate::protocol::wire::Decoder;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeTransactionsRequest::decode(d, version)?;
    let transaction_states = request
        .transactional_ids
        .iter()
        .map(|id| match ctx.transactions.describe(id) {
            Some(m) => TransactionState {
                error_code: ErrorCode::None.code(),
                transactional_id: id.clone(),
                transaction_state: m.state.name().to_string(),
                transaction_timeout_ms: m.timeout_ms,
                transaction_start_time_ms: m.start_ms,
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                topics: m
                    .partitions_by_topic()
                    .into_iter()
                    .map(|(topic, partitions)| TopicData { topic, partitions })
                    .collect(),
            },
            None => TransactionState {
                error_code: ErrorCode::TransactionalIdNotFound.code(),
                transactional_id: id.clone(),
                transaction_state: String::new(),
                transaction_start_time_ms: -1,
                producer_id: -1,
                producer_epoch: -1,
                ..TransactionState::default()
            },
        })
        .collect();
    let response = DescribeTransactionsResponse {
        transaction_states,
        ..DescribeTransactionsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
