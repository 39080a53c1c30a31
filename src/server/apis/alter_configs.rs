//! AlterConfigs (key 33, versions 0-2) and IncrementalAlterConfigs (key 44, versions 0-1): topic
//! overrides and dynamic broker keys, planned and validated by [`crate::dynamic_config`] and
//! applied by the `log-writer` (ConfigRecords in `__cluster_metadata`, effective at once).
//!
//! AlterConfigs replaces a resource's whole set of dynamic keys; IncrementalAlterConfigs applies
//! SET, DELETE, APPEND and SUBTRACT to the keys it names. As in Kafka, a resource named twice is
//! refused (INVALID_REQUEST) and answered once, an unknown operation is INVALID_REQUEST, and
//! `validate_only` stops after the checks.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::controller::TopicError;
use crate::dynamic_config::{self, AlterResource, ConfigChange, ConfigOp};
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::{alter_configs as ac, incremental_alter_configs as iac};
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, config_refusal};
use crate::writer::WriterCommand;
use std::collections::{HashMap, HashSet};

/// One resource's answer: (type, name, outcome).
type Answer = (i8, String, Result<(), TopicError>);

/// AlterConfigs: every resource's keys replaced by those given.
pub fn handle_legacy(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = ac::AlterConfigsRequest::decode(d, version)?;
    let resources = request
        .resources
        .into_iter()
        .map(|r| {
            Ok(AlterResource {
                resource_type: r.resource_type,
                resource_name: r.resource_name,
                changes: r
                    .configs
                    .into_iter()
                    .map(|c| ConfigChange {
                        name: c.name,
                        op: ConfigOp::Set,
                        value: c.value,
                    })
                    .collect(),
                incremental: false,
            })
        })
        .collect();
    let responses = alter(ctx, resources, request.validate_only)
        .into_iter()
        .map(|(resource_type, resource_name, outcome)| {
            let (error_code, error_message) = code_and_message(outcome);
            ac::AlterConfigsResourceResponse {
                error_code,
                error_message,
                resource_type,
                resource_name,
            }
        })
        .collect();
    let response = ac::AlterConfigsResponse {
        responses,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// IncrementalAlterConfigs: the named keys changed by their operations.
pub fn handle_incremental(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = iac::IncrementalAlterConfigsRequest::decode(d, version)?;
    let resources = request
        .resources
        .into_iter()
        .map(|r| {
            let mut changes = Vec::with_capacity(r.configs.len());
            for c in r.configs {
                let Some(op) = ConfigOp::from_code(c.config_operation) else {
                    let message = format!("Unknown operations type {}", c.config_operation);
                    return Err((
                        r.resource_type,
                        r.resource_name,
                        (ErrorCode::InvalidRequest, message),
                    ));
                };
                changes.push(ConfigChange {
                    name: c.name,
                    op,
                    value: c.value,
                });
            }
            Ok(AlterResource {
                resource_type: r.resource_type,
                resource_name: r.resource_name,
                changes,
                incremental: true,
            })
        })
        .collect();
    let responses = alter(ctx, resources, request.validate_only)
        .into_iter()
        .map(|(resource_type, resource_name, outcome)| {
            let (error_code, error_message) = code_and_message(outcome);
            iac::AlterConfigsResourceResponse {
                error_code,
                error_message,
                resource_type,
                resource_name,
            }
        })
        .collect();
    let response = iac::IncrementalAlterConfigsResponse {
        responses,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Checks every resource, has the writer apply the valid ones (unless `validate_only`), and
/// gives one answer per distinct resource, those named twice last.
fn alter(
    ctx: &BrokerContext,
    resources: Vec<Result<AlterResource, (i8, String, TopicError)>>,
    validate_only: bool,
) -> Vec<Answer> {
    let key = |r: &Result<AlterResource, (i8, String, TopicError)>| match r {
        Ok(r) => (r.resource_type, r.resource_name.clone()),
        Err((t, n, _)) => (*t, n.clone()),
    };
    let mut counts: HashMap<(i8, String), usize> = HashMap::new();
    for r in &resources {
        *counts.entry(key(r)).or_default() += 1;
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(resources.len());
    let mut to_apply: Vec<(usize, AlterResource)> = Vec::new();
    let mut duplicates = Vec::new();
    let mut reported = HashSet::new();
    for r in resources {
        let k = key(&r);
        if counts[&k] > 1 {
            if reported.insert(k.clone()) {
                duplicates.push(k);
            }
            continue;
        }
        if let Some(refusal) = config_refusal(ctx, AclOperation::AlterConfigs, k.0, &k.1) {
            answers.push((k.0, k.1, Err(refusal)));
            continue;
        }
        match r {
            Err((t, n, e)) => answers.push((t, n, Err(e))),
            Ok(r) => {
                let planned = {
                    let image = ctx.metadata.read();
                    dynamic_config::plan(&image, &ctx.config, &r).map(|_| ())
                };
                if planned.is_ok() && !validate_only {
                    to_apply.push((answers.len(), r.clone()));
                }
                answers.push((r.resource_type, r.resource_name, planned));
            }
        }
    }
    if !to_apply.is_empty() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let resources = to_apply.iter().map(|(_, r)| r.clone()).collect();
        let outcome = ctx
            .writer
            .send(WriterCommand::AlterConfigs {
                resources,
                reply: tx,
            })
            .ok()
            .and_then(|_| rx.recv().ok());
        for (n, (i, _)) in to_apply.iter().enumerate() {
            answers[*i].2 = match outcome.as_ref().map(|r| &r[n]) {
                Some(r) => r.clone(),
                None => Err((
                    ErrorCode::KafkaStorageError,
                    "The broker is shutting down.".into(),
                )),
            };
        }
    }
    for (t, n) in duplicates {
        let message = format!("Duplicate resource {n} of type {t}.");
        answers.push((t, n, Err((ErrorCode::InvalidRequest, message))));
    }
    answers
}

fn code_and_message(outcome: Result<(), TopicError>) -> (i16, Option<String>) {
    match outcome {
        Ok(()) => (ErrorCode::None.code(), None),
        Err((code, message)) => (code.code(), Some(message)),
    }
}
