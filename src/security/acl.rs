//! ACLs and the authorizer: Kafka's `StandardAuthorizer` and `StandardAuthorizerData` (how an
//! action is matched against ACL bindings), with `AclAuthorizer`'s implied operations.
//!
//! ACL bindings live in the cluster metadata log as AccessControlEntryRecord /
//! RemoveAccessControlEntryRecord and are applied to the [`crate::metadata::MetadataImage`];
//! the `log-writer` then hands the new [`AclSet`] to the [`Authorizer`], which keeps it behind its
//! own lock so that a handler may ask while it holds the metadata image's lock.
//!
//! An action (principal, host, operation, resource) is allowed when the principal is a super
//! user; otherwise any matching DENY wins, then any matching ALLOW allows, and with no ACL at all
//! on the resource `allow.everyone.if.no.acl.found` decides. An ACL matches a resource when it is
//! LITERAL with the same name or `*`, or PREFIXED with a prefix of the name; its principal is the
//! one asking or `User:*`, its host the client's address or `*`. ALLOW of Read, Write, Delete or
//! Alter implies Describe; ALLOW of AlterConfigs implies DescribeConfigs; All is every operation.
//! A DENY implies nothing but itself (and All).

use crate::broker::BrokerContext;
use crate::config::BrokerConfig;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::wire::Uuid;
use parking_lot::RwLock;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// The class names that turn authorization on (`authorizer.class.name`).
pub const AUTHORIZER_CLASS_NAMES: [&str; 2] = [
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The wildcard resource name, principal and host.
pub const WILDCARD: &str = "*";

/// The wildcard principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:expr, $text:expr;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            /// The code on the wire and in metadata records.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// The value of a code; `None` for codes Kafka calls UNKNOWN.
            pub fn from_code(code: i8) -> Option<$name> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name, as `kafka-acls.sh` prints it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
    };
}

code_enum!(
    /// Kafka's `ResourceType` (code 0 is UNKNOWN).
    ResourceType {
        Any = 1, "Any";
        Topic = 2, "Topic";
        Group = 3, "Group";
        Cluster = 4, "Cluster";
        TransactionalId = 5, "TransactionalId";
        DelegationToken = 6, "DelegationToken";
        User = 7, "User";
    }
);

code_enum!(
    /// Kafka's `PatternType` (code 0 is UNKNOWN). ANY and MATCH exist only in filters.
    PatternType {
        Any = 1, "Any";
        Match = 2, "Match";
        Literal = 3, "Literal";
        Prefixed = 4, "Prefixed";
    }
);

code_enum!(
    /// Kafka's `AclOperation` (code 0 is UNKNOWN). ANY exists only in filters.
    AclOperation {
        Any = 1, "Any";
        All = 2, "All";
        Read = 3, "Read";
        Write = 4, "Write";
        Create = 5, "Create";
        Delete = 6, "Delete";
        Alter = 7, "Alter";
        Describe = 8, "Describe";
        ClusterAction = 9, "ClusterAction";
        DescribeConfigs = 10, "DescribeConfigs";
        AlterConfigs = 11, "AlterConfigs";
        IdempotentWrite = 12, "IdempotentWrite";
        CreateTokens = 13, "CreateTokens";
        DescribeTokens = 14, "DescribeTokens";
    }
);

code_enum!(
    /// Kafka's `AclPermissionType` (code 0 is UNKNOWN). ANY exists only in filters.
    AclPermission {
        Any = 1, "Any";
        Deny = 2, "Deny";
        Allow = 3, "Allow";
    }
);

/// One ACL binding: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBinding {
    /// Whether this binding's resource pattern covers the resource `name` of `resource_type`
    /// (what [`AclIndex::covering`] finds, by a scan).
    #[cfg(test)]
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                PatternType::Any | PatternType::Match => false,
            }
    }

    /// Whether the entry applies to this principal and host.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == host || self.host == WILDCARD)
    }

    /// Whether the entry's operation grants (ALLOW) or refuses (DENY) `operation`.
    fn decides(&self, operation: AclOperation) -> bool {
        if self.operation == AclOperation::All || self.operation == operation {
            return true;
        }
        self.permission == AclPermission::Allow
            && match operation {
                AclOperation::Describe => matches!(
                    self.operation,
                    AclOperation::Read
                        | AclOperation::Write
                        | AclOperation::Delete
                        | AclOperation::Alter
                ),
                AclOperation::DescribeConfigs => self.operation == AclOperation::AlterConfigs,
                _ => false,
            }
    }
}

/// A filter over bindings (DescribeAcls, DeleteAcls): Kafka's `AclBindingFilter`. `None` fields
/// match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclBindingFilter {
    /// Builds a filter from wire codes; `Err` names the first UNKNOWN element, which Kafka
    /// refuses with INVALID_REQUEST.
    pub fn from_codes(
        resource_type: i8,
        resource_name: Option<String>,
        pattern_type: i8,
        principal: Option<String>,
        host: Option<String>,
        operation: i8,
        permission: i8,
    ) -> Result<AclBindingFilter, String> {
        let unknown = |what: &str, code: i8| format!("Unknown {what} {code} in the filter");
        Ok(AclBindingFilter {
            resource_type: ResourceType::from_code(resource_type)
                .ok_or_else(|| unknown("resource type", resource_type))?,
            resource_name,
            pattern_type: PatternType::from_code(pattern_type)
                .ok_or_else(|| unknown("pattern type", pattern_type))?,
            principal,
            host,
            operation: AclOperation::from_code(operation)
                .ok_or_else(|| unknown("operation", operation))?,
            permission: AclPermission::from_code(permission)
                .ok_or_else(|| unknown("permission type", permission))?,
        })
    }

    /// Kafka's `ResourcePatternFilter.matches` and `AccessControlEntryFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        self.matches_pattern(acl)
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission == AclPermission::Any || self.permission == acl.permission)
    }

    fn matches_pattern(&self, acl: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        let same_pattern =
            self.pattern_type == PatternType::Any || self.pattern_type == acl.pattern_type;
        if !same_pattern && self.pattern_type != PatternType::Match {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        if same_pattern {
            return *name == acl.resource_name;
        }
        // MATCH: the ACLs that would apply to the resource `name`.
        match acl.pattern_type {
            PatternType::Literal => *name == acl.resource_name || acl.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&acl.resource_name),
            PatternType::Any | PatternType::Match => false,
        }
    }
}

/// Why a new binding is refused (Kafka's `AclControlManager.validateNewAcl` and the checks of
/// `AclApis.handleCreateAcls`); the reason goes into an INVALID_REQUEST result.
pub fn validate_new_acl(
    resource_type: i8,
    resource_name: &str,
    pattern_type: i8,
    principal: &str,
    host: &str,
    operation: i8,
    permission: i8,
) -> Result<AclBinding, String> {
    let resource_type = match ResourceType::from_code(resource_type) {
        Some(ResourceType::Any) | None => {
            return Err(format!("Invalid resource type {resource_type}"));
        }
        Some(t) => t,
    };
    let pattern_type = match PatternType::from_code(pattern_type) {
        Some(p @ (PatternType::Literal | PatternType::Prefixed)) => p,
        _ => return Err(format!("Invalid patternType {pattern_type}")),
    };
    let operation = match AclOperation::from_code(operation) {
        Some(AclOperation::Any) | None => return Err(format!("Invalid operation {operation}")),
        Some(o) => o,
    };
    let permission = match AclPermission::from_code(permission) {
        Some(p @ (AclPermission::Allow | AclPermission::Deny)) => p,
        _ => return Err(format!("Invalid permissionType {permission}")),
    };
    if resource_name.is_empty() {
        return Err("Invalid empty resource name specified.".into());
    }
    if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if !principal.contains(':') {
        return Err(format!(
            "Could not parse principal from `{principal}` (no colon is present separating the principal type from the principal name)"
        ));
    }
    Ok(AclBinding {
        resource_type,
        resource_name: resource_name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: host.to_string(),
        operation,
        permission,
    })
}

/// Every ACL binding, by the id its AccessControlEntryRecord gave it.
pub type AclSet = BTreeMap<Uuid, AclBinding>;

/// `authorizer.class.name`, `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizerConfig {
    /// Whether `authorizer.class.name` names Kafka's authorizer; without it everything is
    /// allowed.
    pub enabled: bool,
    pub super_users: BTreeSet<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

impl AuthorizerConfig {
    /// Reads the authorizer keys; an authorizer class sprat does not have is an error, since
    /// serving without the checks it promises would be worse than not starting.
    pub fn from_config(config: &BrokerConfig) -> Result<AuthorizerConfig, String> {
        let class = config.get("authorizer.class.name").unwrap_or("").trim();
        let enabled = match class {
            "" => false,
            c if AUTHORIZER_CLASS_NAMES.contains(&c) => true,
            c => {
                return Err(format!(
                    "authorizer.class.name {c} is not one sprat has; use {}",
                    AUTHORIZER_CLASS_NAMES[0]
                ));
            }
        };
        let super_users = config
            .get("super.users")
            .unwrap_or("")
            .split(';')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        let allow_everyone_if_no_acl_found =
            match config.get("allow.everyone.if.no.acl.found").map(str::trim) {
                None => false,
                Some(v) if v.eq_ignore_ascii_case("true") => true,
                Some(v) if v.eq_ignore_ascii_case("false") => false,
                Some(v) => {
                    return Err(format!(
                        "allow.everyone.if.no.acl.found {v:?}: expected true or false"
                    ));
                }
            };
        Ok(AuthorizerConfig {
            enabled,
            super_users,
            allow_everyone_if_no_acl_found,
        })
    }
}

/// The bindings indexed by resource as `StandardAuthorizerData` finds them: literal names
/// (`*` included) and prefixes, each by resource type, so that a check looks at the bindings of
/// its resource only, whatever the number of ACLs.
#[derive(Debug, Default)]
struct AclIndex {
    literal: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    prefixed: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
}

impl AclIndex {
    fn new(acls: &AclSet) -> AclIndex {
        let mut index = AclIndex::default();
        for acl in acls.values() {
            let by_name = match acl.pattern_type {
                PatternType::Literal => &mut index.literal,
                PatternType::Prefixed => &mut index.prefixed,
                PatternType::Any | PatternType::Match => continue,
            };
            by_name
                .entry(acl.resource_type)
                .or_default()
                .entry(acl.resource_name.clone())
                .or_default()
                .push(acl.clone());
        }
        index
    }

    /// Every binding whose pattern covers the resource.
    fn covering<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let literals = self.literal.get(&resource_type);
        let literal = |n: &str| literals.and_then(|by_name| by_name.get(n));
        let exact = literal(name).into_iter().flatten();
        let wildcard = (name != WILDCARD)
            .then(|| literal(WILDCARD))
            .flatten()
            .into_iter()
            .flatten();
        let prefixes = self.prefixed.get(&resource_type);
        let prefixed = prefixes.into_iter().flat_map(move |by_prefix| {
            (1..=name.len())
                .filter(|&end| name.is_char_boundary(end))
                .filter_map(move |end| by_prefix.get(&name[..end]))
                .flatten()
        });
        exact.chain(wildcard).chain(prefixed)
    }
}

/// The authorizer: its configuration and the ACLs last applied to the metadata image.
/// Thread-safe; a check takes a read lock only long enough to copy an `Arc`.
#[derive(Debug, Default)]
pub struct Authorizer {
    pub config: AuthorizerConfig,
    acls: RwLock<(Arc<AclSet>, Arc<AclIndex>)>,
}

impl Authorizer {
    pub fn new(config: AuthorizerConfig, acls: Arc<AclSet>) -> Authorizer {
        let index = Arc::new(AclIndex::new(&acls));
        Authorizer {
            config,
            acls: RwLock::new((acls, index)),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Replaces the ACLs (the `log-writer` does, after applying ACL records); the index is
    /// rebuilt only when they changed.
    pub fn set_acls(&self, acls: Arc<AclSet>) {
        if Arc::ptr_eq(&self.acls.read().0, &acls) {
            return;
        }
        let index = Arc::new(AclIndex::new(&acls));
        *self.acls.write() = (acls, index);
    }

    pub fn acls(&self) -> Arc<AclSet> {
        self.acls.read().0.clone()
    }

    fn index(&self) -> Arc<AclIndex> {
        self.acls.read().1.clone()
    }

    /// Kafka's `StandardAuthorizerData.authorize` for one action.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.config.enabled || self.config.super_users.contains(principal) {
            return true;
        }
        let index = self.index();
        let mut found_resource_acls = false;
        let mut allowed = false;
        for acl in index.covering(resource_type, name) {
            found_resource_acls = true;
            if !acl.applies_to(principal, host) || !acl.decides(operation) {
                continue;
            }
            match acl.permission {
                AclPermission::Deny => return false,
                AclPermission::Allow => allowed = true,
                AclPermission::Any => {}
            }
        }
        allowed || (!found_resource_acls && self.config.allow_everyone_if_no_acl_found)
    }

    /// Kafka's `Authorizer.authorizeByResourceType`: whether the principal may do `operation` on
    /// at least one resource of the type, i.e. some ALLOW is not dominated by a DENY (used by
    /// InitProducerId: Write on any topic).
    pub fn authorize_by_resource_type(
        &self,
        principal: &str,
        host: &str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        // Kafka checks a made-up name first, so super users pass whatever the DENYs say.
        if self.authorize(principal, host, operation, resource_type, "hardcode") {
            return true;
        }
        let acls = self.acls();
        let relevant = acls.values().filter(|a| {
            a.resource_type == resource_type
                && a.applies_to(principal, host)
                && (a.operation == operation || a.operation == AclOperation::All)
        });
        let mut denied_literals = BTreeSet::new();
        let mut denied_prefixes = Vec::new();
        let mut allowed = Vec::new();
        for acl in relevant {
            match (acl.permission, acl.pattern_type) {
                (AclPermission::Deny, PatternType::Literal) if acl.resource_name == WILDCARD => {
                    return false;
                }
                (AclPermission::Deny, PatternType::Literal) => {
                    denied_literals.insert(acl.resource_name.as_str());
                }
                (AclPermission::Deny, PatternType::Prefixed) => {
                    denied_prefixes.push(acl.resource_name.as_str());
                }
                (AclPermission::Allow, PatternType::Literal) if acl.resource_name == WILDCARD => {
                    return true;
                }
                (AclPermission::Allow, _) => allowed.push(acl),
                _ => {}
            }
        }
        allowed.iter().any(|acl| {
            let name = acl.resource_name.as_str();
            let literal_denied =
                acl.pattern_type == PatternType::Literal && denied_literals.contains(name);
            !literal_denied && !denied_prefixes.iter().any(|p| name.starts_with(p))
        })
    }
}

/// The client's address as ACL hosts name it (`127.0.0.1`, without the leading `/`).
fn current_host() -> String {
    let host = crate::server::connection::client_host();
    match host.strip_prefix('/') {
        Some(h) => h.to_string(),
        None => host,
    }
}

/// Whether the calling connection's principal may do `operation` on the resource: the one
/// check every handler makes (true at once when no authorizer is configured).
pub fn authorized(
    ctx: &BrokerContext,
    operation: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    let authorizer = &ctx.authorizer;
    !authorizer.enabled()
        || authorizer.authorize(
            &crate::security::current_principal(),
            &current_host(),
            operation,
            resource_type,
            name,
        )
}

/// [`authorized`] on the cluster resource.
pub fn authorized_cluster(ctx: &BrokerContext, operation: AclOperation) -> bool {
    authorized(ctx, operation, ResourceType::Cluster, CLUSTER_NAME)
}

/// Whether the principal may do `operation` on some resource of the type (see
/// [`Authorizer::authorize_by_resource_type`]).
pub fn authorized_any(
    ctx: &BrokerContext,
    operation: AclOperation,
    resource_type: ResourceType,
) -> bool {
    let authorizer = &ctx.authorizer;
    !authorizer.enabled()
        || authorizer.authorize_by_resource_type(
            &crate::security::current_principal(),
            &current_host(),
            operation,
            resource_type,
        )
}

/// GROUP_AUTHORIZATION_FAILED when `operation` on the group is not allowed.
pub fn group_refusal(
    ctx: &BrokerContext,
    operation: AclOperation,
    group: &str,
) -> Option<ErrorCode> {
    let allowed = authorized(ctx, operation, ResourceType::Group, group);
    (!allowed).then_some(ErrorCode::GroupAuthorizationFailed)
}

/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED when `operation` on the transactional id is not
/// allowed. What Kafka 3.9's transaction APIs check, in order:
/// - AddPartitionsToTxn v0-3: Write on the id (53 for every partition), then Write on each
///   topic (29 for its partitions, OPERATION_NOT_ATTEMPTED for the others); v4+ batches from
///   brokers: ClusterAction on the cluster (31 at the top level).
/// - AddOffsetsToTxn: Write on the id (53), then Read on the group (30).
/// - EndTxn: Write on the id (53).
/// - TxnOffsetCommit: Write on the id (53), then Read on the group (30), then Read on each topic
///   (29 for its partitions).
/// - DescribeTransactions: Describe on each id (53 in its state); partitions of topics the
///   principal may not Describe are left out.
/// - ListTransactions: only the ids the principal may Describe are listed.
/// - DescribeProducers: Read on each topic (29 for its partitions).
pub fn transactional_id_refusal(
    ctx: &BrokerContext,
    operation: AclOperation,
    transactional_id: &str,
) -> Option<ErrorCode> {
    let allowed = authorized(
        ctx,
        operation,
        ResourceType::TransactionalId,
        transactional_id,
    );
    (!allowed).then_some(ErrorCode::TransactionalIdAuthorizationFailed)
}

/// The error a config resource (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs) gets
/// when `operation` is not allowed on it: a topic is checked as itself, broker and broker-logger
/// resources as the cluster, a group as itself. `None` when allowed, or for a resource type the
/// handler refuses on its own.
pub fn config_refusal(
    ctx: &BrokerContext,
    operation: AclOperation,
    config_resource_type: i8,
    name: &str,
) -> Option<(ErrorCode, String)> {
    let (resource_type, name, error) = match config_resource_type {
        2 => (
            ResourceType::Topic,
            name,
            ErrorCode::TopicAuthorizationFailed,
        ),
        4 | 8 | 16 => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ErrorCode::ClusterAuthorizationFailed,
        ),
        32 => (
            ResourceType::Group,
            name,
            ErrorCode::GroupAuthorizationFailed,
        ),
        _ => return None,
    };
    if authorized(ctx, operation, resource_type, name) {
        return None;
    }
    Some((
        error,
        format!("{} authorization failed.", resource_type.name()),
    ))
}

/// The operations Kafka reports in a topic's authorized-operations bitfield.
const TOPIC_OPERATIONS: [AclOperation; 8] = [
    AclOperation::Read,
    AclOperation::Write,
    AclOperation::Create,
    AclOperation::Describe,
    AclOperation::Delete,
    AclOperation::Alter,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
];

/// The operations Kafka reports for the cluster.
const CLUSTER_OPERATIONS: [AclOperation; 7] = [
    AclOperation::Create,
    AclOperation::ClusterAction,
    AclOperation::DescribeConfigs,
    AclOperation::AlterConfigs,
    AclOperation::IdempotentWrite,
    AclOperation::Alter,
    AclOperation::Describe,
];

/// The operations Kafka reports for a group.
const GROUP_OPERATIONS: [AclOperation; 3] = [
    AclOperation::Read,
    AclOperation::Describe,
    AclOperation::Delete,
];

/// An authorized-operations bitfield (bit `code` set for each operation allowed); without an
/// authorizer, `without_authorizer` (what sprat answered before ACLs existed).
fn operations(
    ctx: &BrokerContext,
    resource_type: ResourceType,
    name: &str,
    candidates: &[AclOperation],
    without_authorizer: i32,
) -> i32 {
    if !ctx.authorizer.enabled() {
        return without_authorizer;
    }
    candidates
        .iter()
        .filter(|op| authorized(ctx, **op, resource_type, name))
        .fold(0, |bits, op| bits | (1 << op.code()))
}

/// A topic's authorized-operations bitfield (Metadata, DescribeTopicPartitions).
pub fn topic_operations(ctx: &BrokerContext, name: &str, without_authorizer: i32) -> i32 {
    let ops = &TOPIC_OPERATIONS;
    operations(ctx, ResourceType::Topic, name, ops, without_authorizer)
}

/// The cluster's authorized-operations bitfield (Metadata, DescribeCluster): 0 for a principal
/// that may not describe the cluster, as in Kafka.
pub fn cluster_operations(ctx: &BrokerContext, without_authorizer: i32) -> i32 {
    if ctx.authorizer.enabled() && !authorized_cluster(ctx, AclOperation::Describe) {
        return 0;
    }
    let ops = &CLUSTER_OPERATIONS;
    operations(
        ctx,
        ResourceType::Cluster,
        CLUSTER_NAME,
        ops,
        without_authorizer,
    )
}

/// A group's authorized-operations bitfield (DescribeGroups, ConsumerGroupDescribe).
pub fn group_operations(ctx: &BrokerContext, group: &str, without_authorizer: i32) -> i32 {
    let ops = &GROUP_OPERATIONS;
    operations(ctx, ResourceType::Group, group, ops, without_authorizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: WILDCARD.into(),
            operation,
            permission,
        }
    }

    fn authorizer(acls: Vec<AclBinding>, super_users: &[&str], everyone: bool) -> Authorizer {
        let set = acls
            .into_iter()
            .enumerate()
            .map(|(i, a)| (Uuid([i as u8 + 1; 16]), a))
            .collect();
        let config = AuthorizerConfig {
            enabled: true,
            super_users: super_users.iter().map(|s| s.to_string()).collect(),
            allow_everyone_if_no_acl_found: everyone,
        };
        Authorizer::new(config, Arc::new(set))
    }

    use AclOperation::*;
    use AclPermission::*;
    use PatternType::*;
    use ResourceType::*;

    #[test]
    fn no_acl_denies_unless_everyone_is_allowed() {
        let a = authorizer(vec![], &[], false);
        assert!(!a.authorize("User:alice", "1.2.3.4", Read, Topic, "t"));
        let a = authorizer(vec![], &[], true);
        assert!(a.authorize("User:alice", "1.2.3.4", Read, Topic, "t"));
        // An ACL on the resource for someone else takes the "no ACL" rule away.
        let a = authorizer(
            vec![acl(Topic, "t", Literal, "User:bob", Read, Allow)],
            &[],
            true,
        );
        assert!(!a.authorize("User:alice", "1.2.3.4", Read, Topic, "t"));
        assert!(a.authorize("User:alice", "1.2.3.4", Read, Topic, "u"));
    }

    #[test]
    fn literal_wildcard_and_prefixed_patterns_match() {
        let a = authorizer(
            vec![
                acl(Topic, "orders", Literal, "User:alice", Write, Allow),
                acl(Topic, "*", Literal, "User:bob", Read, Allow),
                acl(Topic, "logs-", Prefixed, "User:*", Read, Allow),
            ],
            &[],
            false,
        );
        assert!(a.authorize("User:alice", "h", Write, Topic, "orders"));
        assert!(!a.authorize("User:alice", "h", Write, Topic, "orders2"));
        assert!(a.authorize("User:bob", "h", Read, Topic, "anything"));
        assert!(!a.authorize("User:bob", "h", Read, Group, "anything"));
        assert!(a.authorize("User:carol", "h", Read, Topic, "logs-app"));
        assert!(!a.authorize("User:carol", "h", Read, Topic, "log"));
    }

    #[test]
    fn deny_wins_and_implies_only_itself() {
        let a = authorizer(
            vec![
                acl(Topic, "pay", Prefixed, "User:alice", All, Allow),
                acl(Topic, "payroll", Literal, "User:alice", Read, Deny),
            ],
            &[],
            false,
        );
        assert!(a.authorize("User:alice", "h", Read, Topic, "payments"));
        assert!(!a.authorize("User:alice", "h", Read, Topic, "payroll"));
        // DENY Read does not deny Describe.
        assert!(a.authorize("User:alice", "h", Describe, Topic, "payroll"));
    }

    #[test]
    fn allowed_operations_imply_describe() {
        for (op, implied) in [
            (Read, Describe),
            (Write, Describe),
            (Delete, Describe),
            (Alter, Describe),
            (AlterConfigs, DescribeConfigs),
        ] {
            let a = authorizer(
                vec![acl(Topic, "t", Literal, "User:u", op, Allow)],
                &[],
                false,
            );
            assert!(a.authorize("User:u", "h", implied, Topic, "t"), "{op:?}");
            assert!(!a.authorize("User:u", "h", Create, Topic, "t"), "{op:?}");
        }
        let a = authorizer(
            vec![acl(Topic, "t", Literal, "User:u", Describe, Allow)],
            &[],
            false,
        );
        assert!(!a.authorize("User:u", "h", Read, Topic, "t"));
    }

    #[test]
    fn hosts_and_super_users() {
        let mut only_here = acl(Topic, "t", Literal, "User:u", Read, Allow);
        only_here.host = "10.0.0.1".into();
        let a = authorizer(vec![only_here], &["User:admin"], false);
        assert!(a.authorize("User:u", "10.0.0.1", Read, Topic, "t"));
        assert!(!a.authorize("User:u", "10.0.0.2", Read, Topic, "t"));
        assert!(a.authorize("User:admin", "10.0.0.2", Alter, Cluster, CLUSTER_NAME));
    }

    #[test]
    fn by_resource_type_needs_an_undominated_allow() {
        let a = authorizer(
            vec![
                acl(Topic, "a-", Prefixed, "User:u", Write, Allow),
                acl(Topic, "a", Prefixed, "User:u", Write, Deny),
            ],
            &[],
            false,
        );
        assert!(!a.authorize_by_resource_type("User:u", "h", Write, Topic));
        let a = authorizer(
            vec![
                acl(Topic, "a-1", Literal, "User:u", Write, Allow),
                acl(Topic, "b", Prefixed, "User:u", Write, Deny),
            ],
            &[],
            false,
        );
        assert!(a.authorize_by_resource_type("User:u", "h", Write, Topic));
        assert!(!a.authorize_by_resource_type("User:v", "h", Write, Topic));
        let a = authorizer(vec![], &["User:admin"], false);
        assert!(a.authorize_by_resource_type("User:admin", "h", Write, Topic));
    }

    fn config(props: &[(&str, &str)]) -> Result<AuthorizerConfig, String> {
        let props: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AuthorizerConfig::from_config(&BrokerConfig::from_properties(&props).unwrap())
    }

    #[test]
    fn authorizer_keys_are_read_as_kafka_reads_them() {
        assert!(!config(&[]).unwrap().enabled);
        for class in AUTHORIZER_CLASS_NAMES {
            let c = config(&[
                ("authorizer.class.name", class),
                ("super.users", " User:admin ; User:ops;"),
                ("allow.everyone.if.no.acl.found", "TRUE"),
            ])
            .unwrap();
            assert!(c.enabled && c.allow_everyone_if_no_acl_found);
            let users: Vec<_> = c.super_users.iter().map(String::as_str).collect();
            assert_eq!(users, ["User:admin", "User:ops"]);
        }
        assert!(config(&[("authorizer.class.name", "com.example.Mine")]).is_err());
        assert!(config(&[("allow.everyone.if.no.acl.found", "yes")]).is_err());
    }

    #[test]
    fn the_index_finds_what_a_scan_finds() {
        let mut acls = AclSet::new();
        let names = ["a", "ab", "abc", "b", "*", "é", "éa", "x-1", "x-"];
        let mut id = 0u8;
        for t in [Topic, Group] {
            for p in [Literal, Prefixed] {
                for n in names {
                    id += 1;
                    acls.insert(Uuid([id; 16]), acl(t, n, p, "User:u", Read, Allow));
                }
            }
        }
        let index = AclIndex::new(&acls);
        for t in [Topic, Group, Cluster] {
            for n in ["", "a", "abcd", "b", "*", "é", "éab", "x-12", "zzz"] {
                let mut found: Vec<_> = index.covering(t, n).collect();
                let mut scanned: Vec<_> = acls.values().filter(|a| a.covers(t, n)).collect();
                found.sort();
                scanned.sort();
                assert_eq!(found, scanned, "{t:?} {n:?}");
            }
        }
    }

    #[test]
    fn filters_match_as_kafkas_do() {
        let literal = acl(Topic, "orders", Literal, "User:a", Read, Allow);
        let wildcard = acl(Topic, "*", Literal, "User:a", Read, Allow);
        let prefixed = acl(Topic, "ord", Prefixed, "User:a", Read, Allow);
        let filter = |pattern: PatternType, name: Option<&str>| AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: name.map(str::to_string),
            pattern_type: pattern,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        };
        let hits = |f: &AclBindingFilter| {
            [&literal, &wildcard, &prefixed]
                .iter()
                .filter(|a| f.matches(a))
                .count()
        };
        assert_eq!(hits(&filter(PatternType::Any, None)), 3);
        assert_eq!(hits(&filter(Literal, Some("orders"))), 1);
        assert_eq!(hits(&filter(PatternType::Any, Some("ord"))), 1);
        assert_eq!(hits(&filter(Match, Some("orders"))), 3);
        assert_eq!(hits(&filter(Prefixed, None)), 1);
        let mut by_principal = filter(PatternType::Any, None);
        by_principal.principal = Some("User:b".into());
        assert_eq!(hits(&by_principal), 0);
    }

    #[test]
    fn new_acls_are_validated() {
        let ok = |t, n: &str, p, pr: &str, o, perm| validate_new_acl(t, n, p, pr, "*", o, perm);
        assert!(ok(2, "t", 3, "User:a", 3, 3).is_ok());
        assert!(ok(4, "kafka-cluster", 4, "User:a", 7, 2).is_ok());
        for (t, n, p, pr, o, perm) in [
            (0, "t", 3, "User:a", 3, 3),
            (1, "t", 3, "User:a", 3, 3),
            (2, "t", 1, "User:a", 3, 3),
            (2, "t", 2, "User:a", 3, 3),
            (2, "t", 3, "User:a", 1, 3),
            (2, "t", 3, "User:a", 3, 1),
            (2, "", 3, "User:a", 3, 3),
            (2, "t", 3, "alice", 3, 3),
            (4, "other", 3, "User:a", 3, 3),
            (2, "t", 9, "User:a", 99, 3),
        ] {
            assert!(
                ok(t, n, p, pr, o, perm).is_err(),
                "{t} {n} {p} {pr} {o} {perm}"
            );
        }
    }
}
