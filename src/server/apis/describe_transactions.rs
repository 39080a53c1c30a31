//! DescribeTransactions (key 65), version 0: the state of transactional ids. An unknown id gets
//! TRANSACTIONAL_ID_NOT_FOUND, as in Kafka. With an authorizer, an id the principal may not
//! Describe gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED, and partitions of topics it may not
//! Describe are left out.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_transactions::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, ResourceType, authorized, transactional_id_refusal};

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeTransactionsRequest::decode(d, version)?;
    let transaction_states = request
        .transactional_ids
        .iter()
        .map(
            |id| match transactional_id_refusal(ctx, AclOperation::Describe, id) {
                Some(code) => TransactionState {
                    error_code: code.code(),
                    transactional_id: id.clone(),
                    transaction_state: String::new(),
                    transaction_start_time_ms: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    ..TransactionState::default()
                },
                None => match ctx.transactions.describe(id) {
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
                            .filter(|(topic, _)| {
                                authorized(ctx, AclOperation::Describe, ResourceType::Topic, topic)
                            })
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
                },
            },
        )
        .collect();
    let response = DescribeTransactionsResponse {
        transaction_states,
        ..DescribeTransactionsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}
