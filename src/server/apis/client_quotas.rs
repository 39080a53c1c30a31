//! DescribeClientQuotas (key 48) and AlterClientQuotas (key 49), versions 0-1: the quotas of
//! users, client ids and IPs, kept as ClientQuotaRecords in `__cluster_metadata` and enforced by
//! [`crate::quota`].

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::metadata::records::client_quota_record::{self as record, ClientQuotaRecord};
use crate::metadata::{MetadataRecord, QuotaEntity};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::{alter_client_quotas as acq, describe_client_quotas as dcq};
use crate::protocol::wire::Decoder;
use crate::quota;
use crate::security::acl::{AclOperation, authorized_cluster};
use crate::writer::WriterCommand;

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

pub fn handle_describe(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = dcq::DescribeClientQuotasRequest::decode(d, version)?;
    let mut response = dcq::DescribeClientQuotasResponse::default();
    let denied = !authorized_cluster(ctx, AclOperation::DescribeConfigs);
    match check_filter(&request.components) {
        _ if denied => {
            response.error_code = ErrorCode::ClusterAuthorizationFailed.code();
            response.error_message = Some("Cluster authorization failed.".into());
            response.entries = None;
        }
        Err(message) => {
            response.error_code = ErrorCode::InvalidRequest.code();
            response.error_message = Some(message);
            response.entries = None;
        }
        Ok(()) => {
            let image = ctx.metadata.read();
            let entries = image
                .client_quotas
                .iter()
                .filter(|(entity, _)| matches(entity, &request.components, request.strict))
                .map(|(entity, values)| dcq::EntryData {
                    entity: entity
                        .iter()
                        .map(|(t, n)| dcq::EntityData {
                            entity_type: t.clone(),
                            entity_name: n.clone(),
                        })
                        .collect(),
                    values: values
                        .iter()
                        .map(|(k, v)| dcq::ValueData {
                            key: k.clone(),
                            value: *v,
                        })
                        .collect(),
                })
                .collect();
            response.entries = Some(entries);
        }
    }
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Kafka's checks of a describe filter: known match types, an exact match with a name, and each
/// entity type once.
fn check_filter(components: &[dcq::ComponentData]) -> Result<(), String> {
    let mut seen = Vec::new();
    for c in components {
        if seen.contains(&c.entity_type) {
            return Err(format!(
                "Entity type {} cannot appear more than once in the filter.",
                c.entity_type
            ));
        }
        seen.push(c.entity_type.clone());
        match c.match_type {
            MATCH_EXACT if c.match_.is_none() => {
                return Err(format!(
                    "Request specified MATCH_TYPE_EXACT, but set match string to null for entity type {}",
                    c.entity_type
                ));
            }
            MATCH_EXACT | MATCH_DEFAULT | MATCH_SPECIFIED => {}
            other => return Err(format!("Unknown match type {other}")),
        }
    }
    Ok(())
}

/// Whether `entity` matches every component (and, when `strict`, has no other entity type).
fn matches(entity: &QuotaEntity, components: &[dcq::ComponentData], strict: bool) -> bool {
    if strict && entity.len() != components.len() {
        return false;
    }
    components.iter().all(|c| {
        let Some((_, name)) = entity.iter().find(|(t, _)| *t == c.entity_type) else {
            return false;
        };
        match c.match_type {
            MATCH_EXACT => name == &c.match_,
            MATCH_DEFAULT => name.is_none(),
            _ => name.is_some(),
        }
    })
}

pub fn handle_alter(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = acq::AlterClientQuotasRequest::decode(d, version)?;
    let mut responses = Vec::with_capacity(request.entries.len());
    let mut records = Vec::new();
    let mut planned: Vec<usize> = Vec::new();
    let denied = !authorized_cluster(ctx, AclOperation::AlterConfigs);
    for entry in &request.entries {
        let mut entity: QuotaEntity = entry
            .entity
            .iter()
            .map(|e| (e.entity_type.clone(), e.entity_name.clone()))
            .collect();
        entity.sort();
        let checked = check_entry(&entity, &entry.ops);
        if denied {
            responses.push(acq::EntryDataResponse {
                error_code: ErrorCode::ClusterAuthorizationFailed.code(),
                error_message: Some("Cluster authorization failed.".into()),
                entity: entry.entity.clone(),
            });
            continue;
        }
        if checked.is_ok() {
            planned.push(responses.len());
            records.extend(entry.ops.iter().map(|op| {
                MetadataRecord::ClientQuota(ClientQuotaRecord {
                    entity: entity
                        .iter()
                        .map(|(t, n)| record::EntityData {
                            entity_type: t.clone(),
                            entity_name: n.clone(),
                        })
                        .collect(),
                    key: op.key.clone(),
                    value: op.value,
                    remove: op.remove,
                })
            }));
        }
        let (error_code, error_message) = match checked {
            Ok(()) => (ErrorCode::None.code(), None),
            Err(message) => (ErrorCode::InvalidRequest.code(), Some(message)),
        };
        responses.push(acq::EntryDataResponse {
            error_code,
            error_message,
            entity: entry.entity.clone(),
        });
    }
    if !records.is_empty() && !request.validate_only {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let outcome = ctx
            .writer
            .send(WriterCommand::AppendMetadata { records, reply: tx })
            .ok()
            .and_then(|_| rx.recv().ok())
            .unwrap_or(Err(ErrorCode::KafkaStorageError));
        if let Err(code) = outcome {
            for i in planned {
                responses[i].error_code = code.code();
            }
        }
    }
    let response = acq::AlterClientQuotasResponse {
        entries: responses,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Checks one AlterClientQuotas entry; `Err` is INVALID_REQUEST's message.
fn check_entry(entity: &QuotaEntity, ops: &[acq::OpData]) -> Result<(), String> {
    quota::validate_entity(entity)?;
    let types: Vec<&str> = entity.iter().map(|(t, _)| t.as_str()).collect();
    let mut keys = Vec::new();
    for op in ops {
        if keys.contains(&&op.key) {
            return Err(format!(
                "Duplicate quota key {} not updating quota.",
                op.key
            ));
        }
        keys.push(&op.key);
        let Some(kind) = quota::quota_key(&types, &op.key) else {
            return Err(format!("Invalid configuration key {}", op.key));
        };
        if !op.remove {
            quota::validate_value(kind, &op.key, op.value)?;
        }
    }
    Ok(())
}
