//! AddPartitionsToTxn (key 24), versions 0-5: adds partitions to a transaction before the
//! producer writes to them. Versions 0-3 (clients) carry one transaction; versions 4+ (brokers)
//! carry several, each maybe `verify_only` (only ask which partitions are in it).
//!
//! As in Kafka's `KafkaApis`, a partition of an unknown topic fails with
//! UNKNOWN_TOPIC_OR_PARTITION and the others of the transaction with OPERATION_NOT_ATTEMPTED;
//! otherwise every partition gets the coordinator's answer. Before v2, PRODUCER_FENCED is answered
//! as INVALID_PRODUCER_EPOCH.
//!
//! With an authorizer, as in Kafka: v4+ needs ClusterAction on the cluster (else 31 at the top
//! level); v0-3 need Write on the transactional id (else 53 for every partition), then Write on
//! each topic (29 for its partitions, OPERATION_NOT_ATTEMPTED for the others).

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::add_partitions_to_txn::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{
    AclOperation, ResourceType, authorized, authorized_cluster, transactional_id_refusal,
};
use crate::storage::log::TopicPartition;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = AddPartitionsToTxnRequest::decode(d, version)?;
    let response = if version >= 4 && !authorized_cluster(ctx, AclOperation::ClusterAction) {
        AddPartitionsToTxnResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            ..AddPartitionsToTxnResponse::default()
        }
    } else if version >= 4 {
        AddPartitionsToTxnResponse {
            results_by_transaction: request
                .transactions
                .iter()
                .map(|t| AddPartitionsToTxnResult {
                    transactional_id: t.transactional_id.clone(),
                    topic_results: add(ctx, t, version),
                })
                .collect(),
            ..AddPartitionsToTxnResponse::default()
        }
    } else {
        let t = AddPartitionsToTxnTransaction {
            transactional_id: request.v3_and_below_transactional_id,
            producer_id: request.v3_and_below_producer_id,
            producer_epoch: request.v3_and_below_producer_epoch,
            verify_only: false,
            topics: request.v3_and_below_topics,
        };
        AddPartitionsToTxnResponse {
            results_by_topic_v3_and_below: add(ctx, &t, version),
            ..AddPartitionsToTxnResponse::default()
        }
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// One transaction's partitions: the error of each, by topic.
fn add(
    ctx: &BrokerContext,
    t: &AddPartitionsToTxnTransaction,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<TopicPartition> = t
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|&p| TopicPartition::new(topic.name.clone(), p))
        })
        .collect();
    let unknown: Vec<bool> = partitions
        .iter()
        .map(|tp| ctx.partition(tp).is_none())
        .collect();
    // Clients' versions are checked per transactional id and topic; brokers' (v4+) passed the
    // cluster check.
    let id_refusal = (version < 4)
        .then(|| transactional_id_refusal(ctx, AclOperation::Write, &t.transactional_id))
        .flatten();
    let denied: Vec<bool> = partitions
        .iter()
        .map(|tp| {
            version < 4 && !authorized(ctx, AclOperation::Write, ResourceType::Topic, &tp.topic)
        })
        .collect();
    let errors: Vec<ErrorCode> = if let Some(code) = id_refusal {
        vec![code; partitions.len()]
    } else if denied.iter().any(|&d| d) {
        denied
            .iter()
            .map(|&d| {
                if d {
                    ErrorCode::TopicAuthorizationFailed
                } else {
                    ErrorCode::OperationNotAttempted
                }
            })
            .collect()
    } else if unknown.iter().any(|&u| u) {
        unknown
            .iter()
            .map(|&u| {
                if u {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    ErrorCode::OperationNotAttempted
                }
            })
            .collect()
    } else {
        let coordinator = &ctx.transactions;
        let id = &t.transactional_id;
        let result = if t.verify_only {
            coordinator.verify_partitions(id, t.producer_id, t.producer_epoch, &partitions)
        } else {
            coordinator
                .add_partitions(ctx, id, t.producer_id, t.producer_epoch, &partitions)
                .map(|()| vec![ErrorCode::None; partitions.len()])
        };
        result.unwrap_or_else(|code| {
            let code = match code {
                ErrorCode::ProducerFenced if version < 2 => ErrorCode::InvalidProducerEpoch,
                other => other,
            };
            vec![code; partitions.len()]
        })
    };
    let mut results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, error) in partitions.into_iter().zip(errors) {
        let partition = AddPartitionsToTxnPartitionResult {
            partition_index: tp.partition,
            partition_error_code: error.code(),
        };
        match results.iter_mut().find(|r| r.name == tp.topic) {
            Some(r) => r.results_by_partition.push(partition),
            None => results.push(AddPartitionsToTxnTopicResult {
                name: tp.topic,
                results_by_partition: vec![partition],
            }),
        }
    }
    results
}
