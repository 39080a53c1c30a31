//! DescribeConfigs (key 32), versions 0-4: a topic's effective configs and the broker's own
//! settings, as admin clients show them, each with its source and (when asked) its synonyms in
//! Kafka's order of precedence: a topic override (DYNAMIC_TOPIC_CONFIG), this broker's dynamic
//! key (DYNAMIC_BROKER_CONFIG), the cluster-wide dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG),
//! `server.properties` (STATIC_BROKER_CONFIG), then Kafka's default (DEFAULT_CONFIG). Values of
//! sensitive keys (passwords, JAAS configs, private keys) are never sent.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::config::BrokerConfig;
use crate::controller::ConfigType;
use crate::dynamic_config;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_configs::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, config_refusal};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// ConfigSource values.
const SOURCE_TOPIC_CONFIG: i8 = 1;
const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
const SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// ConfigType values.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// A topic config: its name, type, the broker key it defaults from (if any), and the default.
struct TopicConfigDef {
    name: &'static str,
    config_type: i8,
    default: fn(&BrokerConfig) -> String,
}

const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        config_type: TYPE_LIST,
        default: |c| broker_value(c, "log.cleanup.policy", "delete"),
    },
    TopicConfigDef {
        name: "compression.type",
        config_type: TYPE_STRING,
        default: |c| broker_value(c, "compression.type", "producer"),
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        config_type: TYPE_LONG,
        default: |c| broker_value(c, "log.cleaner.delete.retention.ms", "86400000"),
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        config_type: TYPE_LONG,
        default: |c| broker_value(c, "log.segment.delete.delay.ms", "60000"),
    },
    TopicConfigDef {
        name: "flush.messages",
        config_type: TYPE_LONG,
        default: |c| c.log_flush_interval_messages.to_string(),
    },
    TopicConfigDef {
        name: "flush.ms",
        config_type: TYPE_LONG,
        default: |c| c.log_flush_interval_ms.unwrap_or(i64::MAX).to_string(),
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        config_type: TYPE_INT,
        default: |c| c.log_index_interval_bytes.to_string(),
    },
    TopicConfigDef {
        name: "max.message.bytes",
        config_type: TYPE_INT,
        default: |c| c.message_max_bytes.to_string(),
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        config_type: TYPE_STRING,
        default: |c| broker_value(c, "log.message.timestamp.type", "CreateTime"),
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        config_type: TYPE_DOUBLE,
        default: |c| broker_value(c, "log.cleaner.min.cleanable.ratio", "0.5"),
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        config_type: TYPE_INT,
        default: |c| broker_value(c, "min.insync.replicas", "1"),
    },
    TopicConfigDef {
        name: "preallocate",
        config_type: TYPE_BOOLEAN,
        default: |c| broker_value(c, "log.preallocate", "false"),
    },
    TopicConfigDef {
        name: "retention.bytes",
        config_type: TYPE_LONG,
        default: |c| c.log_retention_bytes.to_string(),
    },
    TopicConfigDef {
        name: "retention.ms",
        config_type: TYPE_LONG,
        default: |c| c.log_retention_ms.to_string(),
    },
    TopicConfigDef {
        name: "segment.bytes",
        config_type: TYPE_INT,
        default: |c| c.log_segment_bytes.to_string(),
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        config_type: TYPE_INT,
        default: |c| c.log_index_size_max_bytes.to_string(),
    },
    TopicConfigDef {
        name: "segment.ms",
        config_type: TYPE_LONG,
        default: |c| c.log_roll_ms.to_string(),
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        config_type: TYPE_BOOLEAN,
        default: |c| broker_value(c, "unclean.leader.election.enable", "false"),
    },
];

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeConfigsRequest::decode(d, version)?;
    // A resource asked for twice is described once: each description is a few kilobytes, so
    // repeating a few bytes of request must not multiply the response without bound.
    let mut seen = HashSet::with_capacity(request.resources.len());
    let results = request
        .resources
        .iter()
        .filter(|r| {
            seen.insert((
                r.resource_type,
                r.resource_name.as_str(),
                r.configuration_keys.as_deref(),
            ))
        })
        .map(|r| describe(ctx, r, request.include_synonyms && version >= 1))
        .collect();
    let response = DescribeConfigsResponse {
        results,
        ..DescribeConfigsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

fn describe(
    ctx: &BrokerContext,
    resource: &DescribeConfigsResource,
    include_synonyms: bool,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult {
        resource_type: resource.resource_type,
        resource_name: resource.resource_name.clone(),
        ..DescribeConfigsResult::default()
    };
    let (op, rtype) = (AclOperation::DescribeConfigs, resource.resource_type);
    if let Some((code, message)) = config_refusal(ctx, op, rtype, &resource.resource_name) {
        result.error_code = code.code();
        result.error_message = Some(message);
        return result;
    }
    let keys: Option<HashSet<&str>> = resource
        .configuration_keys
        .as_ref()
        .filter(|keys| !keys.is_empty())
        .map(|keys| keys.iter().map(String::as_str).collect());
    let wanted = |name: &str| keys.as_ref().is_none_or(|keys| keys.contains(name));
    match resource.resource_type {
        RESOURCE_TOPIC => match ctx.topic(&resource.resource_name) {
            None => {
                result.error_code = ErrorCode::UnknownTopicOrPartition.code();
                result.error_message = Some(format!(
                    "Topic '{}' does not exist.",
                    resource.resource_name
                ));
            }
            Some(topic) => {
                let levels = BrokerLevels::new(ctx);
                result.configs = topic_configs(&levels, &topic.configs, include_synonyms)
                    .into_iter()
                    .filter(|c| wanted(&c.name))
                    .collect();
            }
        },
        RESOURCE_BROKER
            if resource.resource_name.is_empty()
                || resource.resource_name == ctx.config.node_id.to_string() =>
        {
            let levels = BrokerLevels::new(ctx);
            result.configs =
                broker_configs(&levels, resource.resource_name.is_empty(), include_synonyms)
                    .into_iter()
                    .filter(|c| wanted(&c.name))
                    .collect();
        }
        RESOURCE_BROKER => {
            result.error_code = ErrorCode::InvalidRequest.code();
            result.error_message = Some(format!(
                "Unexpected broker id, expected {}",
                ctx.config.node_id
            ));
        }
        other => {
            result.error_code = ErrorCode::InvalidRequest.code();
            result.error_message = Some(format!("Unsupported resource type {other}"));
        }
    }
    result
}

/// A topic's whole effective configuration, sorted by name, as CreateTopics v5+ reports it.
pub(super) fn effective_topic_configs(
    ctx: &BrokerContext,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribeConfigsResourceResult> {
    topic_configs(&BrokerLevels::new(ctx), overrides, false)
}

/// The broker's configuration at each level: its dynamic keys (this node's and the cluster
/// default), its static ones, and the live configuration they make together.
struct BrokerLevels {
    node: BTreeMap<String, String>,
    cluster: BTreeMap<String, String>,
    live: Arc<BrokerConfig>,
    /// The static configuration (`server.properties` and overrides).
    raw: BTreeMap<String, String>,
}

impl BrokerLevels {
    fn new(ctx: &BrokerContext) -> BrokerLevels {
        let image = ctx.metadata.read();
        let level = |name: &str| image.broker_configs(name).cloned().unwrap_or_default();
        BrokerLevels {
            node: level(&ctx.config.node_id.to_string()),
            cluster: level(""),
            live: ctx.live_config(),
            raw: ctx.config.raw.clone(),
        }
    }

    /// Where `key` is set, highest precedence first: (source, value).
    fn sources(&self, key: &str) -> Vec<(i8, &str)> {
        [
            (SOURCE_DYNAMIC_BROKER_CONFIG, &self.node),
            (SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG, &self.cluster),
            (SOURCE_STATIC_BROKER_CONFIG, &self.raw),
        ]
        .into_iter()
        .filter_map(|(source, level)| level.get(key).map(|v| (source, v.as_str())))
        .collect()
    }
}

/// A topic's effective configs: its overrides, else the broker's value for the topic config
/// (with the source of the broker key it comes from), else Kafka's default.
fn topic_configs(
    levels: &BrokerLevels,
    overrides: &BTreeMap<String, String>,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let mut configs: Vec<_> = TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let broker_keys: Vec<&str> = dynamic_config::broker_synonyms(def.name).collect();
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(def.name) {
                synonyms.push((def.name.to_string(), v.clone(), SOURCE_TOPIC_CONFIG));
            }
            // Each level's keys in their order of precedence (ms before minutes before hours).
            for source in [
                SOURCE_DYNAMIC_BROKER_CONFIG,
                SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG,
                SOURCE_STATIC_BROKER_CONFIG,
            ] {
                for key in &broker_keys {
                    if let Some((_, v)) =
                        levels.sources(key).into_iter().find(|(s, _)| *s == source)
                    {
                        synonyms.push((key.to_string(), v.to_string(), source));
                    }
                }
            }
            let default = (def.default)(&BrokerConfig::default());
            synonyms.push((
                broker_keys.first().unwrap_or(&def.name).to_string(),
                default.clone(),
                SOURCE_DEFAULT_CONFIG,
            ));
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (v.clone(), SOURCE_TOPIC_CONFIG),
                None => ((def.default)(&levels.live), synonyms[0].2),
            };
            let mut e = entry(def.name, Some(value), source, def.config_type);
            if include_synonyms {
                e.synonyms = synonyms
                    .into_iter()
                    .map(|(name, value, source)| DescribeConfigsSynonym {
                        name,
                        value: Some(value),
                        source,
                    })
                    .collect();
            }
            e
        })
        .collect();
    for (name, value) in overrides {
        if !configs.iter().any(|c| &c.name == name) {
            configs.push(entry(
                name,
                Some(value.clone()),
                SOURCE_TOPIC_CONFIG,
                TYPE_STRING,
            ));
        }
    }
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs
}

/// The broker's configs: every key set statically or dynamically, with the source of the value
/// in effect. `cluster_default` describes the cluster-wide resource (name `""`), which, as in
/// Kafka, lists only the dynamic defaults.
fn broker_configs(
    levels: &BrokerLevels,
    cluster_default: bool,
    include_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let keys: BTreeSet<&String> = if cluster_default {
        levels.cluster.keys().collect()
    } else {
        levels
            .node
            .keys()
            .chain(levels.cluster.keys())
            .chain(levels.raw.keys())
            .collect()
    };
    keys.into_iter()
        .map(|key| {
            let mut sources = levels.sources(key);
            if cluster_default {
                sources.retain(|(s, _)| *s == SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG);
            }
            let sensitive = is_sensitive(key);
            let dynamic = dynamic_config::dynamic_broker_key(key);
            let config_type = dynamic.map_or(TYPE_STRING, |k| type_of(k.kind));
            let (source, value) = sources[0];
            let shown = |v: &str| (!sensitive).then(|| v.to_string());
            let mut e = entry(key, shown(value), source, config_type);
            e.read_only = dynamic.is_none();
            e.is_sensitive = sensitive;
            if include_synonyms {
                e.synonyms = sources
                    .iter()
                    .map(|(source, v)| DescribeConfigsSynonym {
                        name: key.clone(),
                        value: shown(v),
                        source: *source,
                    })
                    .collect();
            }
            e
        })
        .collect()
}

/// Kafka's PASSWORD-typed keys and JAAS configs: described without their values.
fn is_sensitive(key: &str) -> bool {
    crate::security::is_sensitive_key(key) || key.contains("password") || key.ends_with(".secret")
}

fn type_of(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Int(..) | ConfigType::Level(..) => TYPE_INT,
        ConfigType::Long(_) => TYPE_LONG,
        ConfigType::Double(..) => TYPE_DOUBLE,
        ConfigType::Boolean => TYPE_BOOLEAN,
        ConfigType::ListOf(_) | ConfigType::ThrottledReplicas => TYPE_LIST,
        ConfigType::OneOf(_) | ConfigType::Version | ConfigType::IpCountOverrides => TYPE_STRING,
    }
}

/// A broker key's value in `config`, else `default`: the broker default of a topic config.
fn broker_value(config: &BrokerConfig, key: &str, default: &str) -> String {
    config.get(key).map_or(default, str::trim).to_string()
}

fn entry(
    name: &str,
    value: Option<String>,
    source: i8,
    config_type: i8,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult {
        name: name.to_string(),
        value,
        read_only: false,
        is_default: source == SOURCE_DEFAULT_CONFIG,
        config_source: source,
        is_sensitive: false,
        synonyms: Vec::new(),
        config_type,
        documentation: None,
    }
}
