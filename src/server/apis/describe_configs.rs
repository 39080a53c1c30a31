//! DescribeConfigs (key 32), versions 0-4: a topic's effective configs (its overrides on top of
//! the broker's defaults) and the broker's own settings, as admin clients show them.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::config::BrokerConfig;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_configs::*;
use crate::protocol::wire::Decoder;
use std::collections::HashSet;

/// ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// ConfigSource values.
const SOURCE_TOPIC_CONFIG: i8 = 1;
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
        default: |_| "delete".into(),
    },
    TopicConfigDef {
        name: "compression.type",
        config_type: TYPE_STRING,
        default: |_| "producer".into(),
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        config_type: TYPE_LONG,
        default: |_| "86400000".into(),
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        config_type: TYPE_LONG,
        default: |_| "60000".into(),
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
        default: |_| "CreateTime".into(),
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        config_type: TYPE_DOUBLE,
        default: |_| "0.5".into(),
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        config_type: TYPE_INT,
        default: |_| "1".into(),
    },
    TopicConfigDef {
        name: "preallocate",
        config_type: TYPE_BOOLEAN,
        default: |_| "false".into(),
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
        default: |_| "false".into(),
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
        .map(|r| describe(ctx, r))
        .collect();
    let response = DescribeConfigsResponse {
        results,
        ..DescribeConfigsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

fn describe(ctx: &BrokerContext, resource: &DescribeConfigsResource) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult {
        resource_type: resource.resource_type,
        resource_name: resource.resource_name.clone(),
        ..DescribeConfigsResult::default()
    };
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
                result.configs = effective_topic_configs(&ctx.config, &topic.configs)
                    .into_iter()
                    .filter(|c| wanted(&c.name))
                    .collect();
            }
        },
        RESOURCE_BROKER
            if resource.resource_name.is_empty()
                || resource.resource_name == ctx.config.node_id.to_string() =>
        {
            result.configs = ctx
                .config
                .raw
                .iter()
                .filter(|(k, _)| wanted(k))
                .map(|(k, v)| {
                    let mut e = entry(k, v.clone(), SOURCE_STATIC_BROKER_CONFIG, TYPE_STRING);
                    // Kafka answers a PASSWORD-type key with no value, marked sensitive.
                    if crate::security::is_sensitive_key(k) {
                        e.value = None;
                        e.is_sensitive = true;
                    }
                    e
                })
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

/// A topic's whole effective configuration, sorted by name: its overrides (source
/// TOPIC_CONFIG) over the broker's defaults (source DEFAULT_CONFIG). CreateTopics v5+ reports it.
pub(super) fn effective_topic_configs(
    config: &BrokerConfig,
    overrides: &std::collections::BTreeMap<String, String>,
) -> Vec<DescribeConfigsResourceResult> {
    let mut configs: Vec<_> = TOPIC_CONFIGS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(v) => entry(def.name, v.clone(), SOURCE_TOPIC_CONFIG, def.config_type),
            None => entry(
                def.name,
                (def.default)(config),
                SOURCE_DEFAULT_CONFIG,
                def.config_type,
            ),
        })
        .collect();
    for (name, value) in overrides {
        if !configs.iter().any(|c| &c.name == name) {
            configs.push(entry(name, value.clone(), SOURCE_TOPIC_CONFIG, TYPE_STRING));
        }
    }
    configs.sort_by(|a, b| a.name.cmp(&b.name));
    configs
}

fn entry(name: &str, value: String, source: i8, config_type: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult {
        name: name.to_string(),
        value: Some(value),
        read_only: source != SOURCE_TOPIC_CONFIG && source != SOURCE_DEFAULT_CONFIG,
        is_default: source == SOURCE_DEFAULT_CONFIG,
        config_source: source,
        is_sensitive: false,
        synonyms: Vec::new(),
        config_type,
        documentation: None,
    }
}
