//! Config changes at run time (AlterConfigs and IncrementalAlterConfigs): topic overrides and the
//! broker's dynamic keys.
//!
//! As in Kafka's `ConfigurationControlManager`, a change is planned against the current metadata
//! image into ConfigRecords (a null value deletes the key); the `log-writer` plans again when it
//! applies the change, so that two concurrent changes of one resource serialise, appends the
//! records to `__cluster_metadata` and only then publishes them. Topic overrides are stored under
//! resource type TOPIC; broker keys under resource type BROKER, with the name `""` for the
//! cluster-wide default and the node id for this broker. The broker's *live* configuration is the
//! static one (`server.properties` and overrides) with the dynamic keys on top (cluster default,
//! then this node's), built by [`live_config`].

use crate::config::BrokerConfig;
use crate::controller::{
    ConfigType::{self, *},
    TOPIC_CONFIGS, TopicError, check_config_value, validate_configs,
};
use crate::metadata::records::config_record::ConfigRecord;
use crate::metadata::{
    CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC, MetadataImage, MetadataRecord,
};
use crate::protocol::error_code::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

/// An IncrementalAlterConfigs operation (`AlterConfigOp.OpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_code(code: i8) -> Option<ConfigOp> {
        match code {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConfigOp::Set => "SET",
            ConfigOp::Delete => "DELETE",
            ConfigOp::Append => "APPEND",
            ConfigOp::Subtract => "SUBTRACT",
        }
    }
}

/// One key's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
    pub value: Option<String>,
}

/// The changes to one resource. An `incremental` change (IncrementalAlterConfigs) touches only
/// the keys it names; a legacy AlterConfigs change replaces the resource's whole set of dynamic
/// keys, deleting those it does not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterResource {
    pub resource_type: i8,
    pub resource_name: String,
    pub changes: Vec<ConfigChange>,
    pub incremental: bool,
}

/// A broker key that Kafka 3.9 lets AlterConfigs change at run time (its `DynamicBrokerConfig`
/// lists): its validator and, for log settings, the topic config it is the broker default of.
pub struct DynamicBrokerKey {
    pub name: &'static str,
    pub kind: ConfigType,
    pub topic_config: Option<&'static str>,
}

const fn key(
    name: &'static str,
    kind: ConfigType,
    topic_config: Option<&'static str>,
) -> DynamicBrokerKey {
    DynamicBrokerKey {
        name,
        kind,
        topic_config,
    }
}

const ANY_INT: ConfigType = Int(i32::MIN as i64, i32::MAX as i64);
const NO_MAX: i64 = i32::MAX as i64;
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// The dynamic broker keys. Those with a topic config take effect at once on every topic that
/// does not override it (the log settings and `message.max.bytes`); sprat accepts, stores and
/// describes the others (thread pools, cleaner and connection settings) as Kafka does.
pub const DYNAMIC_BROKER_KEYS: &[DynamicBrokerKey] = &[
    key("log.segment.bytes", Int(14, NO_MAX), Some("segment.bytes")),
    key("log.roll.ms", Long(1), Some("segment.ms")),
    key("log.roll.hours", Int(1, NO_MAX), Some("segment.ms")),
    key("log.roll.jitter.ms", Long(0), Some("segment.jitter.ms")),
    key(
        "log.roll.jitter.hours",
        Int(0, NO_MAX),
        Some("segment.jitter.ms"),
    ),
    key(
        "log.index.size.max.bytes",
        Int(4, NO_MAX),
        Some("segment.index.bytes"),
    ),
    key(
        "log.flush.interval.messages",
        Long(1),
        Some("flush.messages"),
    ),
    key("log.flush.interval.ms", Long(0), Some("flush.ms")),
    key(
        "log.retention.bytes",
        Long(i64::MIN),
        Some("retention.bytes"),
    ),
    key("log.retention.ms", Long(i64::MIN), Some("retention.ms")),
    key("log.retention.minutes", ANY_INT, Some("retention.ms")),
    key("log.retention.hours", ANY_INT, Some("retention.ms")),
    key(
        "log.index.interval.bytes",
        Int(0, NO_MAX),
        Some("index.interval.bytes"),
    ),
    key(
        "log.cleaner.delete.retention.ms",
        Long(0),
        Some("delete.retention.ms"),
    ),
    key(
        "log.cleaner.min.compaction.lag.ms",
        Long(0),
        Some("min.compaction.lag.ms"),
    ),
    key(
        "log.cleaner.max.compaction.lag.ms",
        Long(1),
        Some("max.compaction.lag.ms"),
    ),
    key(
        "log.segment.delete.delay.ms",
        Long(0),
        Some("file.delete.delay.ms"),
    ),
    key(
        "log.cleaner.min.cleanable.ratio",
        Double(0.0, 1.0),
        Some("min.cleanable.dirty.ratio"),
    ),
    key(
        "log.cleanup.policy",
        ListOf(&["compact", "delete"]),
        Some("cleanup.policy"),
    ),
    key(
        "unclean.leader.election.enable",
        Boolean,
        Some("unclean.leader.election.enable"),
    ),
    key(
        "min.insync.replicas",
        Int(1, NO_MAX),
        Some("min.insync.replicas"),
    ),
    key(
        "compression.type",
        OneOf(COMPRESSION_TYPES),
        Some("compression.type"),
    ),
    key(
        "compression.gzip.level",
        Level(-1, 1, 9),
        Some("compression.gzip.level"),
    ),
    key(
        "compression.lz4.level",
        Int(1, 17),
        Some("compression.lz4.level"),
    ),
    key(
        "compression.zstd.level",
        Int(-131_072, 22),
        Some("compression.zstd.level"),
    ),
    key("log.preallocate", Boolean, Some("preallocate")),
    key(
        "log.message.timestamp.type",
        OneOf(&["CreateTime", "LogAppendTime"]),
        Some("message.timestamp.type"),
    ),
    key(
        "log.message.timestamp.difference.max.ms",
        Long(0),
        Some("message.timestamp.difference.max.ms"),
    ),
    key(
        "log.message.timestamp.before.max.ms",
        Long(0),
        Some("message.timestamp.before.max.ms"),
    ),
    key(
        "log.message.timestamp.after.max.ms",
        Long(0),
        Some("message.timestamp.after.max.ms"),
    ),
    key(
        "log.message.downconversion.enable",
        Boolean,
        Some("message.downconversion.enable"),
    ),
    key(
        "message.max.bytes",
        Int(0, NO_MAX),
        Some("max.message.bytes"),
    ),
    key(
        "log.local.retention.ms",
        Long(-2),
        Some("local.retention.ms"),
    ),
    key(
        "log.local.retention.bytes",
        Long(-2),
        Some("local.retention.bytes"),
    ),
    key("num.io.threads", Int(1, NO_MAX), None),
    key("num.network.threads", Int(1, NO_MAX), None),
    key("num.replica.fetchers", Int(1, NO_MAX), None),
    key("num.recovery.threads.per.data.dir", Int(1, NO_MAX), None),
    key("background.threads", Int(1, NO_MAX), None),
    key("log.cleaner.threads", Int(0, NO_MAX), None),
    key("log.cleaner.dedupe.buffer.size", Long(0), None),
    key("log.cleaner.io.buffer.size", Int(0, NO_MAX), None),
    key(
        "log.cleaner.io.buffer.load.factor",
        Double(0.0, f64::MAX),
        None,
    ),
    key(
        "log.cleaner.io.max.bytes.per.second",
        Double(0.0, f64::MAX),
        None,
    ),
    key("log.cleaner.backoff.ms", Long(0), None),
    key("producer.id.expiration.ms", Int(1, NO_MAX), None),
    key("max.connections", Int(0, NO_MAX), None),
    key("max.connections.per.ip", Int(0, NO_MAX), None),
    key("max.connections.per.ip.overrides", IpCountOverrides, None),
    key("max.connection.creation.rate", Int(0, NO_MAX), None),
    key("leader.replication.throttled.rate", Long(0), None),
    key("follower.replication.throttled.rate", Long(0), None),
    key(
        "replica.alter.log.dirs.io.max.bytes.per.second",
        Long(0),
        None,
    ),
    key("transaction.partition.verification.enable", Boolean, None),
];

/// The dynamic broker key `name`, if it is one.
pub fn dynamic_broker_key(name: &str) -> Option<&'static DynamicBrokerKey> {
    DYNAMIC_BROKER_KEYS.iter().find(|k| k.name == name)
}

/// The broker keys that are defaults of topic config `topic_config`, in Kafka's order of
/// precedence (e.g. `log.retention.ms`, `log.retention.minutes`, `log.retention.hours`).
pub fn broker_synonyms(topic_config: &str) -> impl Iterator<Item = &'static str> + '_ {
    DYNAMIC_BROKER_KEYS
        .iter()
        .filter(move |k| k.topic_config == Some(topic_config))
        .map(|k| k.name)
}

/// The broker's live configuration: `config` (the static one) with the dynamic keys of `image`
/// on top.
pub fn live_config(
    config: &BrokerConfig,
    image: &MetadataImage,
) -> Result<BrokerConfig, crate::config::ConfigError> {
    config.with_dynamic(&image.dynamic_broker_configs(config.node_id))
}

/// Plans a change against the current image: the ConfigRecords that make it, or the error Kafka
/// gives for the resource. An empty plan is a change that changes nothing.
pub fn plan(
    image: &MetadataImage,
    config: &BrokerConfig,
    resource: &AlterResource,
) -> Result<Vec<MetadataRecord>, TopicError> {
    // As Kafka's ConfigAdminManager, before anything else: only a DELETE may have a null value.
    let nulls: Vec<&str> = resource
        .changes
        .iter()
        .filter(|c| c.op != ConfigOp::Delete && c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Null value not supported for : {}", nulls.join(", ")),
        ));
    }
    let mut names = BTreeSet::new();
    if resource.changes.iter().any(|c| !names.insert(&c.name)) {
        return Err((
            ErrorCode::InvalidRequest,
            "Error due to duplicate config keys".into(),
        ));
    }
    match resource.resource_type {
        CONFIG_RESOURCE_TOPIC => plan_topic(image, resource),
        CONFIG_RESOURCE_BROKER => plan_broker(image, config, resource),
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// The new set of keys of a resource whose current set is `current`.
fn apply_changes(
    current: &BTreeMap<String, String>,
    resource: &AlterResource,
    is_list: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, TopicError> {
    let mut new = if resource.incremental {
        current.clone()
    } else {
        BTreeMap::new()
    };
    for change in &resource.changes {
        match change.op {
            ConfigOp::Delete => {
                new.remove(&change.name);
            }
            ConfigOp::Set => {
                // Null values were refused by `plan`.
                new.insert(
                    change.name.clone(),
                    change.value.clone().unwrap_or_default(),
                );
            }
            op @ (ConfigOp::Append | ConfigOp::Subtract) => {
                if !is_list(&change.name) {
                    return Err((
                        ErrorCode::InvalidConfig,
                        format!(
                            "Can't {} to key {} because its type is not LIST.",
                            op.name(),
                            change.name
                        ),
                    ));
                }
                // An unset key starts from its default, as in Kafka's `getParts`.
                let mut items: Vec<String> = new
                    .get(&change.name)
                    .map(String::as_str)
                    .or_else(|| list_default(&change.name))
                    .map(|v| {
                        v.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                for item in change.value.as_deref().unwrap_or_default().split(',') {
                    let item = item.trim();
                    if op == ConfigOp::Append {
                        if !item.is_empty() && !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                new.insert(change.name.clone(), items.join(","));
            }
        }
    }
    Ok(new)
}

/// Kafka's default of a LIST-typed key, where it has one.
fn list_default(key: &str) -> Option<&'static str> {
    match key {
        "cleanup.policy" | "log.cleanup.policy" => Some("delete"),
        _ => None,
    }
}

/// The records that turn `current` into `new` for one resource: a record per changed key.
fn diff(
    resource_type: i8,
    resource_name: &str,
    current: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let keys: BTreeSet<&String> = current.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|k| current.get(*k) != new.get(*k))
        .map(|k| {
            MetadataRecord::Config(ConfigRecord {
                resource_type,
                resource_name: resource_name.to_string(),
                name: k.clone(),
                value: new.get(k).cloned(),
            })
        })
        .collect()
}

fn plan_topic(
    image: &MetadataImage,
    resource: &AlterResource,
) -> Result<Vec<MetadataRecord>, TopicError> {
    let name = &resource.resource_name;
    let Some(topic) = image.topic(name) else {
        return Err((
            ErrorCode::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    };
    if let Some(unknown) = resource
        .changes
        .iter()
        .find(|c| !TOPIC_CONFIGS.iter().any(|(k, _)| *k == c.name))
    {
        return Err((
            ErrorCode::InvalidConfig,
            format!("Unknown topic config name: {}", unknown.name),
        ));
    }
    let is_list = |key: &str| {
        TOPIC_CONFIGS
            .iter()
            .any(|(k, kind)| *k == key && matches!(kind, ListOf(_) | ThrottledReplicas))
    };
    let new = apply_changes(&topic.configs, resource, is_list)?;
    let entries: Vec<(String, Option<String>)> = new
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    validate_configs(&entries)?;
    Ok(diff(CONFIG_RESOURCE_TOPIC, name, &topic.configs, &new))
}

fn plan_broker(
    image: &MetadataImage,
    config: &BrokerConfig,
    resource: &AlterResource,
) -> Result<Vec<MetadataRecord>, TopicError> {
    let name = &resource.resource_name;
    if !name.is_empty() && *name != config.node_id.to_string() {
        return Err((
            ErrorCode::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                config.node_id
            ),
        ));
    }
    let static_only: Vec<&str> = resource
        .changes
        .iter()
        .filter(|c| dynamic_broker_key(&c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !static_only.is_empty() {
        return Err((
            ErrorCode::InvalidConfig,
            format!(
                "Cannot update these configs dynamically: Set({})",
                static_only.join(", ")
            ),
        ));
    }
    let current = image.broker_configs(name).cloned().unwrap_or_default();
    let is_list = |key: &str| dynamic_broker_key(key).is_some_and(|k| matches!(k.kind, ListOf(_)));
    let new = apply_changes(&current, resource, is_list)?;
    for (key, value) in &new {
        let Some(def) = dynamic_broker_key(key) else {
            continue;
        };
        if let Err(reason) = check_config_value(def.kind, value) {
            return Err((
                ErrorCode::InvalidConfig,
                format!("Invalid value {value} for configuration {key}: {reason}"),
            ));
        }
    }
    let records = diff(CONFIG_RESOURCE_BROKER, name, &current, &new);
    // The live configuration must still be one the broker can run with: the cluster default,
    // then this node's keys, with `new` in place of the level it changes.
    let level = |level: &str| {
        if level == name.as_str() {
            new.clone()
        } else {
            image.broker_configs(level).cloned().unwrap_or_default()
        }
    };
    let mut dynamic = level("");
    dynamic.extend(level(&config.node_id.to_string()));
    config
        .with_dynamic(&dynamic)
        .map_err(|e| (ErrorCode::InvalidConfig, e.to_string()))?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::records::topic_record::TopicRecord;
    use crate::protocol::wire::Uuid;

    fn image_with_topic(configs: &[(&str, &str)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: Uuid([1; 16]),
        }));
        for (k, v) in configs {
            image.apply(&MetadataRecord::Config(ConfigRecord {
                resource_type: CONFIG_RESOURCE_TOPIC,
                resource_name: "t".into(),
                name: k.to_string(),
                value: Some(v.to_string()),
            }));
        }
        image
    }

    fn change(name: &str, op: ConfigOp, value: Option<&str>) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            op,
            value: value.map(String::from),
        }
    }

    fn resource(
        kind: i8,
        name: &str,
        changes: Vec<ConfigChange>,
        incremental: bool,
    ) -> AlterResource {
        AlterResource {
            resource_type: kind,
            resource_name: name.into(),
            changes,
            incremental,
        }
    }

    fn values(records: &[MetadataRecord]) -> Vec<(String, Option<String>)> {
        records
            .iter()
            .map(|r| match r {
                MetadataRecord::Config(c) => (c.name.clone(), c.value.clone()),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn incremental_topic_changes() {
        let image = image_with_topic(&[("cleanup.policy", "delete"), ("retention.ms", "5")]);
        let config = BrokerConfig::default();
        let r = resource(
            CONFIG_RESOURCE_TOPIC,
            "t",
            vec![
                change("cleanup.policy", ConfigOp::Append, Some("compact")),
                change("retention.ms", ConfigOp::Delete, None),
                change("segment.bytes", ConfigOp::Set, Some("1000")),
            ],
            true,
        );
        assert_eq!(
            values(&plan(&image, &config, &r).unwrap()),
            [
                ("cleanup.policy".into(), Some("delete,compact".into())),
                ("retention.ms".into(), None),
                ("segment.bytes".into(), Some("1000".into())),
            ]
        );
        let subtract = resource(
            CONFIG_RESOURCE_TOPIC,
            "t",
            vec![change("cleanup.policy", ConfigOp::Subtract, Some("delete"))],
            true,
        );
        assert_eq!(
            values(&plan(&image, &config, &subtract).unwrap()),
            [("cleanup.policy".into(), Some(String::new()))]
        );
        let not_list = resource(
            CONFIG_RESOURCE_TOPIC,
            "t",
            vec![change("retention.ms", ConfigOp::Append, Some("1"))],
            true,
        );
        assert_eq!(
            plan(&image, &config, &not_list).unwrap_err(),
            (
                ErrorCode::InvalidConfig,
                "Can't APPEND to key retention.ms because its type is not LIST.".into()
            )
        );
    }

    #[test]
    fn legacy_alter_replaces_the_whole_set() {
        let image = image_with_topic(&[("retention.ms", "5"), ("segment.ms", "9")]);
        let r = resource(
            CONFIG_RESOURCE_TOPIC,
            "t",
            vec![change("retention.ms", ConfigOp::Set, Some("6"))],
            false,
        );
        assert_eq!(
            values(&plan(&image, &BrokerConfig::default(), &r).unwrap()),
            [
                ("retention.ms".into(), Some("6".into())),
                ("segment.ms".into(), None)
            ]
        );
    }

    #[test]
    fn refusals_follow_kafka() {
        let image = image_with_topic(&[]);
        let config = BrokerConfig::default();
        let cases = [
            (
                resource(CONFIG_RESOURCE_TOPIC, "nope", vec![], true),
                ErrorCode::UnknownTopicOrPartition,
            ),
            (
                resource(
                    CONFIG_RESOURCE_TOPIC,
                    "t",
                    vec![change("no.such", ConfigOp::Set, Some("1"))],
                    true,
                ),
                ErrorCode::InvalidConfig,
            ),
            (
                resource(
                    CONFIG_RESOURCE_TOPIC,
                    "t",
                    vec![change("retention.ms", ConfigOp::Set, Some("soon"))],
                    true,
                ),
                ErrorCode::InvalidConfig,
            ),
            (
                resource(
                    CONFIG_RESOURCE_TOPIC,
                    "t",
                    vec![
                        change("retention.ms", ConfigOp::Set, Some("1")),
                        change("retention.ms", ConfigOp::Delete, None),
                    ],
                    true,
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                resource(
                    CONFIG_RESOURCE_TOPIC,
                    "t",
                    vec![
                        change("retention.ms", ConfigOp::Set, None),
                        change("segment.ms", ConfigOp::Delete, None),
                    ],
                    true,
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                resource(
                    CONFIG_RESOURCE_BROKER,
                    "",
                    vec![change("log.dirs", ConfigOp::Set, Some("/x"))],
                    true,
                ),
                ErrorCode::InvalidConfig,
            ),
            (
                resource(
                    CONFIG_RESOURCE_BROKER,
                    "7",
                    vec![change("log.retention.ms", ConfigOp::Set, Some("1"))],
                    true,
                ),
                ErrorCode::InvalidRequest,
            ),
            (
                resource(
                    CONFIG_RESOURCE_BROKER,
                    "1",
                    vec![change("message.max.bytes", ConfigOp::Set, Some("big"))],
                    true,
                ),
                ErrorCode::InvalidConfig,
            ),
        ];
        for (r, code) in cases {
            assert_eq!(plan(&image, &config, &r).unwrap_err().0, code, "{r:?}");
        }
    }

    #[test]
    fn broker_keys_make_the_live_config() {
        let mut image = MetadataImage::default();
        let config = BrokerConfig::default();
        let r = resource(
            CONFIG_RESOURCE_BROKER,
            "",
            vec![
                change("log.retention.ms", ConfigOp::Set, Some("1000")),
                change("message.max.bytes", ConfigOp::Set, Some("2000")),
            ],
            true,
        );
        for record in plan(&image, &config, &r).unwrap() {
            image.apply(&record);
        }
        let node = resource(
            CONFIG_RESOURCE_BROKER,
            "1",
            vec![change("message.max.bytes", ConfigOp::Set, Some("3000"))],
            true,
        );
        for record in plan(&image, &config, &node).unwrap() {
            image.apply(&record);
        }
        let live = live_config(&config, &image).unwrap();
        assert_eq!(live.log_retention_ms, 1000);
        assert_eq!(live.message_max_bytes, 3000, "the node's value wins");
        assert_eq!(
            broker_synonyms("retention.ms").collect::<Vec<_>>(),
            [
                "log.retention.ms",
                "log.retention.minutes",
                "log.retention.hours"
            ]
        );
    }
}
