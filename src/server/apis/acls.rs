//! DescribeAcls (key 29), CreateAcls (key 30) and DeleteAcls (key 31), versions 0-3: the ACL
//! bindings kept as AccessControlEntryRecord / RemoveAccessControlEntryRecord in the cluster
//! metadata log (Kafka's `AclApis` and `AclControlManager`).
//!
//! Without an authorizer every answer is SECURITY_DISABLED, as in Kafka. Creating and deleting
//! need Alter on the cluster, describing needs Describe on it. Versions 0 carry no pattern type,
//! so their bindings and filters are LITERAL (the field's default). A CreateAcls of more than
//! [`MAX_RECORDS_PER_USER_OP`] bindings is refused as a whole with POLICY_VIOLATION.

use super::{HandlerResult, respond};
use crate::broker::{BrokerContext, random_uuid};
use crate::controller::{EXCESSIVE_BATCH_MESSAGE, MAX_RECORDS_PER_USER_OP};
use crate::metadata::MetadataRecord;
use crate::metadata::records::access_control_entry_record::AccessControlEntryRecord;
use crate::metadata::records::remove_access_control_entry_record::RemoveAccessControlEntryRecord;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::create_acls as create;
use crate::protocol::messages::delete_acls as delete;
use crate::protocol::messages::describe_acls as describe;
use crate::protocol::wire::{Decoder, Uuid};
use crate::security::acl::{
    AclBinding, AclBindingFilter, AclOperation, authorized_cluster, validate_new_acl,
};
use crate::writer::WriterCommand;
use std::collections::{BTreeMap, BTreeSet};

const NO_AUTHORIZER: &str = "No Authorizer is configured.";

/// Whether the ACL APIs answer at all, and with which error if not.
fn refusal(ctx: &BrokerContext, operation: AclOperation) -> Option<(ErrorCode, &'static str)> {
    if !ctx.authorizer.enabled() {
        Some((ErrorCode::SecurityDisabled, NO_AUTHORIZER))
    } else if !authorized_cluster(ctx, operation) {
        Some((
            ErrorCode::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}

pub fn handle_describe(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = describe::DescribeAclsRequest::decode(d, version)?;
    let mut response = describe::DescribeAclsResponse::default();
    let filter = AclBindingFilter::from_codes(
        request.resource_type_filter,
        request.resource_name_filter,
        request.pattern_type_filter,
        request.principal_filter,
        request.host_filter,
        request.operation,
        request.permission_type,
    );
    match (refusal(ctx, AclOperation::Describe), filter) {
        (Some((code, message)), _) => {
            response.error_code = code.code();
            response.error_message = Some(message.into());
        }
        (None, Err(message)) => {
            response.error_code = ErrorCode::InvalidRequest.code();
            response.error_message = Some(message);
        }
        (None, Ok(filter)) => response.resources = describe_resources(ctx, &filter),
    }
    Ok(respond(header, |e| response.encode(e, version)))
}

/// The matching bindings grouped by resource pattern, in a stable order.
fn describe_resources(
    ctx: &BrokerContext,
    filter: &AclBindingFilter,
) -> Vec<describe::DescribeAclsResource> {
    let acls = ctx.authorizer.acls();
    let mut by_resource: BTreeMap<(i8, &str, i8), BTreeSet<&AclBinding>> = BTreeMap::new();
    for acl in acls.values().filter(|a| filter.matches(a)) {
        let key = (
            acl.resource_type.code(),
            acl.resource_name.as_str(),
            acl.pattern_type.code(),
        );
        by_resource.entry(key).or_default().insert(acl);
    }
    by_resource
        .into_iter()
        .map(
            |((resource_type, name, pattern_type), acls)| describe::DescribeAclsResource {
                resource_type,
                resource_name: name.to_string(),
                pattern_type,
                acls: acls
                    .into_iter()
                    .map(|a| describe::AclDescription {
                        principal: a.principal.clone(),
                        host: a.host.clone(),
                        operation: a.operation.code(),
                        permission_type: a.permission.code(),
                    })
                    .collect(),
            },
        )
        .collect()
}

pub fn handle_create(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = create::CreateAclsRequest::decode(d, version)?;
    let mut results: Vec<create::AclCreationResult> = request
        .creations
        .iter()
        .map(|_| create::AclCreationResult::default())
        .collect();
    let refused = refusal(ctx, AclOperation::Alter).or_else(|| {
        // As for topics, one request writes at most this many metadata records.
        (request.creations.len() > MAX_RECORDS_PER_USER_OP)
            .then_some((ErrorCode::PolicyViolation, EXCESSIVE_BATCH_MESSAGE))
    });
    if let Some((code, message)) = refused {
        for result in &mut results {
            result.error_code = code.code();
            result.error_message = Some(message.into());
        }
    } else {
        create_acls(ctx, &request.creations, &mut results);
    }
    let response = create::CreateAclsResponse {
        results,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Validates each creation, stores the new bindings in one metadata append, and fills in
/// `results` (one per creation). A binding that already exists is a success that stores nothing.
fn create_acls(
    ctx: &BrokerContext,
    creations: &[create::AclCreation],
    results: &mut [create::AclCreationResult],
) {
    let existing: BTreeSet<AclBinding> = ctx.authorizer.acls().values().cloned().collect();
    let mut new: BTreeSet<AclBinding> = BTreeSet::new();
    let mut records = Vec::new();
    let mut stored = Vec::new();
    for (i, c) in creations.iter().enumerate() {
        let binding = validate_new_acl(
            c.resource_type,
            &c.resource_name,
            c.resource_pattern_type,
            &c.principal,
            &c.host,
            c.operation,
            c.permission_type,
        );
        match binding {
            Err(message) => {
                results[i].error_code = ErrorCode::InvalidRequest.code();
                results[i].error_message = Some(message);
            }
            Ok(binding) if existing.contains(&binding) || new.contains(&binding) => {}
            Ok(binding) => {
                records.push(MetadataRecord::AccessControlEntry(entry_record(
                    random_uuid(),
                    &binding,
                )));
                stored.push(i);
                new.insert(binding);
            }
        }
    }
    if let Err(code) = append(ctx, records) {
        for i in stored {
            results[i].error_code = code.code();
            results[i].error_message = Some("the ACL could not be stored".into());
        }
    } else {
        for binding in &new {
            log::info!("ACL created: {}", describe_binding(binding));
        }
    }
}

pub fn handle_delete(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = delete::DeleteAclsRequest::decode(d, version)?;
    let filter_results = match refusal(ctx, AclOperation::Alter) {
        Some((code, message)) => request
            .filters
            .iter()
            .map(|_| delete::DeleteAclsFilterResult {
                error_code: code.code(),
                error_message: Some(message.into()),
                matching_acls: Vec::new(),
            })
            .collect(),
        None => delete_acls(ctx, &request.filters),
    };
    let response = delete::DeleteAclsResponse {
        filter_results,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// Removes every binding some filter matches, in one metadata append; a binding matched by two
/// filters is reported under both and removed once.
fn delete_acls(
    ctx: &BrokerContext,
    filters: &[delete::DeleteAclsFilter],
) -> Vec<delete::DeleteAclsFilterResult> {
    let acls = ctx.authorizer.acls();
    let mut removed: BTreeSet<Uuid> = BTreeSet::new();
    let mut results = Vec::new();
    let mut matched: Vec<Vec<Uuid>> = Vec::new();
    for f in filters {
        let filter = AclBindingFilter::from_codes(
            f.resource_type_filter,
            f.resource_name_filter.clone(),
            f.pattern_type_filter,
            f.principal_filter.clone(),
            f.host_filter.clone(),
            f.operation,
            f.permission_type,
        );
        let mut result = delete::DeleteAclsFilterResult::default();
        let mut ids = Vec::new();
        match filter {
            Err(message) => {
                result.error_code = ErrorCode::InvalidRequest.code();
                result.error_message = Some(message);
            }
            Ok(filter) => {
                for (id, acl) in acls.iter().filter(|(_, a)| filter.matches(a)) {
                    ids.push(*id);
                    removed.insert(*id);
                    result.matching_acls.push(matching_acl(acl));
                }
            }
        }
        results.push(result);
        matched.push(ids);
    }
    let records = removed
        .iter()
        .map(|id| {
            MetadataRecord::RemoveAccessControlEntry(RemoveAccessControlEntryRecord { id: *id })
        })
        .collect();
    match append(ctx, records) {
        Ok(()) => {
            for id in &removed {
                log::info!("ACL deleted: {}", describe_binding(&acls[id]));
            }
        }
        Err(code) => {
            for (result, ids) in results.iter_mut().zip(&matched) {
                if !ids.is_empty() {
                    result.error_code = code.code();
                    result.error_message = Some("the ACLs could not be deleted".into());
                    result.matching_acls.clear();
                }
            }
        }
    }
    results
}

/// Appends records through the `log-writer`, which fsyncs them and applies them to the image
/// and the authorizer before answering.
fn append(ctx: &BrokerContext, records: Vec<MetadataRecord>) -> Result<(), ErrorCode> {
    if records.is_empty() {
        return Ok(());
    }
    let (tx, rx) = crossbeam_channel::bounded(1);
    let command = WriterCommand::AppendMetadata { records, reply: tx };
    match ctx.writer.send(command) {
        Ok(()) => rx.recv().unwrap_or(Err(ErrorCode::KafkaStorageError)),
        Err(_) => Err(ErrorCode::KafkaStorageError),
    }
}

fn entry_record(id: Uuid, b: &AclBinding) -> AccessControlEntryRecord {
    AccessControlEntryRecord {
        id,
        resource_type: b.resource_type.code(),
        resource_name: b.resource_name.clone(),
        pattern_type: b.pattern_type.code(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.code(),
        permission_type: b.permission.code(),
    }
}

fn matching_acl(b: &AclBinding) -> delete::DeleteAclsMatchingAcl {
    delete::DeleteAclsMatchingAcl {
        error_code: 0,
        error_message: None,
        resource_type: b.resource_type.code(),
        resource_name: b.resource_name.clone(),
        pattern_type: b.pattern_type.code(),
        principal: b.principal.clone(),
        host: b.host.clone(),
        operation: b.operation.code(),
        permission_type: b.permission.code(),
    }
}

/// A binding as `kafka-acls.sh` would print it, for the log.
fn describe_binding(b: &AclBinding) -> String {
    format!(
        "{} {} {} from host {} on {}:{}:{}",
        b.principal,
        b.permission.name(),
        b.operation.name(),
        b.host,
        b.resource_type.name(),
        b.pattern_type.name(),
        b.resource_name
    )
}
