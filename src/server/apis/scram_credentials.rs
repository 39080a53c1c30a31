//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), version 0: the
//! SCRAM users, kept as UserScramCredentialRecord / RemoveUserScramCredentialRecord in the
//! cluster metadata log (Kafka's `ScramControlManager`). The client sends a salted password it
//! derived itself; the broker keeps only salt, stored key, server key and iterations.
//!
//! Describing needs Describe on the cluster, altering Alter on it (without an authorizer,
//! anyone may).

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::metadata::MetadataRecord;
use crate::metadata::records::remove_user_scram_credential_record::RemoveUserScramCredentialRecord;
use crate::metadata::records::user_scram_credential_record::UserScramCredentialRecord;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::alter_user_scram_credentials as alter;
use crate::protocol::messages::describe_user_scram_credentials as describe;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, authorized_cluster};
use crate::security::scram::{MAX_ITERATIONS, MIN_ITERATIONS, ScramMechanism};
use crate::writer::WriterCommand;
use std::collections::{BTreeMap, BTreeSet};

pub fn handle_describe(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = describe::DescribeUserScramCredentialsRequest::decode(d, version)?;
    if !authorized_cluster(ctx, AclOperation::Describe) {
        let response = describe::DescribeUserScramCredentialsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            error_message: Some("Cluster authorization failed.".into()),
            ..Default::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    let mut infos: BTreeMap<String, Vec<describe::CredentialInfo>> = BTreeMap::new();
    for ((user, mechanism), credential) in &ctx.metadata.read().scram_credentials {
        infos
            .entry(user.clone())
            .or_default()
            .push(describe::CredentialInfo {
                mechanism: *mechanism,
                iterations: credential.iterations,
            });
    }
    let wanted: Vec<String> = match request.users {
        Some(users) if !users.is_empty() => users.into_iter().map(|u| u.name).collect(),
        _ => infos.keys().cloned().collect(),
    };
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<&String> = wanted.iter().filter(|u| !seen.insert(*u)).collect();
    let mut reported = BTreeSet::new();
    let mut results = Vec::new();
    for user in &wanted {
        if !reported.insert(user) {
            continue;
        }
        let mut result = describe::DescribeUserScramCredentialsResult {
            user: user.clone(),
            ..Default::default()
        };
        if duplicates.contains(user) {
            result.error_code = ErrorCode::DuplicateResource.code();
            result.error_message = Some(
                "Cannot describe SCRAM credentials for the same user twice in a single request"
                    .into(),
            );
        } else if let Some(credential_infos) = infos.remove(user) {
            result.credential_infos = credential_infos;
        } else {
            result.error_code = ErrorCode::ResourceNotFound.code();
            result.error_message =
                Some("Attempt to describe a user credential that does not exist".into());
        }
        results.push(result);
    }
    let response = describe::DescribeUserScramCredentialsResponse {
        results,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

pub fn handle_alter(
    ctx: &BrokerContext,
    header: &RequestHeader,
    d: &mut Decoder<'_>,
) -> HandlerResult {
    let version = header.api_version;
    let request = alter::AlterUserScramCredentialsRequest::decode(d, version)?;
    // One result per user, in the order users first appear; a user named twice is refused.
    let mut order: Vec<String> = Vec::new();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let names = request
        .deletions
        .iter()
        .map(|x| &x.name)
        .chain(request.upsertions.iter().map(|x| &x.name));
    for name in names {
        let n = count.entry(name.clone()).or_default();
        if *n == 0 {
            order.push(name.clone());
        }
        *n += 1;
    }
    let mut errors: BTreeMap<String, (ErrorCode, String)> = BTreeMap::new();
    if !authorized_cluster(ctx, AclOperation::Alter) {
        for name in &order {
            let refusal = (
                ErrorCode::ClusterAuthorizationFailed,
                "Cluster authorization failed.",
            );
            errors.insert(name.clone(), (refusal.0, refusal.1.into()));
        }
    }
    for (name, n) in &count {
        if *n > 1 {
            let message = "A user credential cannot be altered twice in the same request";
            errors.insert(name.clone(), (ErrorCode::DuplicateResource, message.into()));
        }
    }
    let mut records: Vec<(String, MetadataRecord)> = Vec::new();
    {
        let image = ctx.metadata.read();
        for deletion in &request.deletions {
            if errors.contains_key(&deletion.name) {
                continue;
            }
            let refusal = match ScramMechanism::from_type(deletion.mechanism) {
                _ if deletion.name.is_empty() => Some(empty_name()),
                None => Some(unknown_mechanism()),
                Some(_)
                    if !image
                        .scram_credentials
                        .contains_key(&(deletion.name.clone(), deletion.mechanism)) =>
                {
                    Some((
                        ErrorCode::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist".into(),
                    ))
                }
                Some(_) => None,
            };
            match refusal {
                Some(refusal) => {
                    errors.insert(deletion.name.clone(), refusal);
                }
                None => records.push((
                    deletion.name.clone(),
                    MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
                        name: deletion.name.clone(),
                        mechanism: deletion.mechanism,
                    }),
                )),
            }
        }
    }
    for upsertion in &request.upsertions {
        if errors.contains_key(&upsertion.name) {
            continue;
        }
        match upsertion_record(upsertion) {
            Ok(record) => records.push((upsertion.name.clone(), record)),
            Err(refusal) => {
                errors.insert(upsertion.name.clone(), refusal);
            }
        }
    }
    if !records.is_empty() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let command = WriterCommand::AppendMetadata {
            records: records.iter().map(|(_, r)| r.clone()).collect(),
            reply: tx,
        };
        let result = match ctx.writer.send(command) {
            Ok(()) => rx.recv().unwrap_or(Err(ErrorCode::KafkaStorageError)),
            Err(_) => Err(ErrorCode::KafkaStorageError),
        };
        if let Err(code) = result {
            for (name, _) in &records {
                let message = "the credential could not be stored".to_string();
                errors.entry(name.clone()).or_insert((code, message));
            }
        } else {
            for (name, record) in &records {
                let action = match record {
                    MetadataRecord::RemoveUserScramCredential(_) => "removed",
                    _ => "stored",
                };
                log::info!("SCRAM credential {action} for user {name}");
            }
        }
    }
    let results = order
        .into_iter()
        .map(|user| {
            let (error_code, error_message) = match errors.remove(&user) {
                Some((code, message)) => (code.code(), Some(message)),
                None => (ErrorCode::None.code(), None),
            };
            alter::AlterUserScramCredentialsResult {
                user,
                error_code,
                error_message,
            }
        })
        .collect();
    let response = alter::AlterUserScramCredentialsResponse {
        results,
        ..Default::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

fn empty_name() -> (ErrorCode, String) {
    (
        ErrorCode::UnacceptableCredential,
        "Username must not be empty".into(),
    )
}

fn unknown_mechanism() -> (ErrorCode, String) {
    (
        ErrorCode::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".into(),
    )
}

/// Checks an upsertion as Kafka's `ScramControlManager` does and derives the stored credential.
fn upsertion_record(
    upsertion: &alter::ScramCredentialUpsertion,
) -> Result<MetadataRecord, (ErrorCode, String)> {
    if upsertion.name.is_empty() {
        return Err(empty_name());
    }
    let mechanism = ScramMechanism::from_type(upsertion.mechanism).ok_or_else(unknown_mechanism)?;
    let unacceptable = |m: &str| (ErrorCode::UnacceptableCredential, m.to_string());
    if upsertion.iterations < MIN_ITERATIONS {
        return Err(unacceptable("Too few iterations"));
    }
    if upsertion.iterations > MAX_ITERATIONS {
        return Err(unacceptable("Too many iterations"));
    }
    if upsertion.salt.is_empty() || upsertion.salted_password.is_empty() {
        return Err(unacceptable("Salt and salted password must not be empty"));
    }
    let credential = mechanism.credential(
        &upsertion.salt,
        &upsertion.salted_password,
        upsertion.iterations,
    );
    Ok(MetadataRecord::UserScramCredential(
        UserScramCredentialRecord {
            name: upsertion.name.clone(),
            mechanism: upsertion.mechanism,
            salt: credential.salt,
            stored_key: credential.stored_key,
            server_key: credential.server_key,
            iterations: credential.iterations,
        },
    ))
}
