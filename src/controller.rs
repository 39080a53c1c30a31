//! Topic creation and deletion: on a single node, the KRaft controller's job.
//!
//! Requests are validated here, on the connection thread; the `log-writer` thread then checks
//! existence (it is the one place where topic changes are serialised), appends the records to the
//! `__cluster_metadata-0` log, fsyncs it, creates or removes the partition logs, and only then
//! publishes the change in the shared metadata image.

use crate::config::BrokerConfig;
use crate::metadata::records::{
    config_record::ConfigRecord, partition_record::PartitionRecord, topic_record::TopicRecord,
};
use crate::metadata::{CONFIG_RESOURCE_TOPIC, MetadataRecord, topic_name_is_valid};
use crate::protocol::error_code::ErrorCode;
use crate::protocol::wire::Uuid;
use std::collections::BTreeMap;

/// The most metadata records one request may produce (Kafka's `MAX_RECORDS_PER_USER_OP`): a topic
/// takes one record, one per config and one per partition. Past it Kafka's controller refuses the
/// whole request with POLICY_VIOLATION, which keeps a request from creating millions of
/// partition directories.
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;

/// The message of Kafka's POLICY_VIOLATION for a request over [`MAX_RECORDS_PER_USER_OP`].
pub const EXCESSIVE_BATCH_MESSAGE: &str = "Unable to perform excessively large batch operation.";

/// The type and validator of a topic-level config, as Kafka's `LogConfig` defines it.
#[derive(Debug, Clone, Copy)]
pub enum ConfigType {
    /// A 32-bit integer of at least the bound, or within both bounds.
    Int(i64, i64),
    /// A 32-bit integer that is the default or within the bounds (Kafka's compression level
    /// validators): (default, min, max).
    Level(i64, i64, i64),
    /// A 64-bit integer of at least the bound.
    Long(i64),
    /// A floating-point number within the bounds.
    Double(f64, f64),
    Boolean,
    /// One of the strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of the strings.
    ListOf(&'static [&'static str]),
    /// Kafka's `ThrottledReplicaListValidator`: empty, `*`, or `partition:broker` pairs.
    ThrottledReplicas,
    /// A message format version such as `2.8` or `3.0-IV1`.
    Version,
    /// `max.connections.per.ip.overrides`: comma-separated `host:count` entries.
    IpCountOverrides,
}

pub use ConfigType::*;

const NO_MAX: i64 = i64::MAX;

/// Every topic-level config Kafka 3.9 accepts at creation, with its type and validator.
pub(crate) const TOPIC_CONFIGS: &[(&str, ConfigType)] = &[
    ("cleanup.policy", ListOf(&["compact", "delete"])),
    (
        "compression.type",
        OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    ("compression.gzip.level", Level(-1, 1, 9)),
    ("compression.lz4.level", Int(1, 17)),
    ("compression.zstd.level", Int(-131_072, 22)),
    ("delete.retention.ms", Long(0)),
    ("file.delete.delay.ms", Long(0)),
    ("flush.messages", Long(1)),
    ("flush.ms", Long(0)),
    ("follower.replication.throttled.replicas", ThrottledReplicas),
    ("index.interval.bytes", Int(0, NO_MAX)),
    ("leader.replication.throttled.replicas", ThrottledReplicas),
    ("local.retention.bytes", Long(-2)),
    ("local.retention.ms", Long(-2)),
    ("max.compaction.lag.ms", Long(1)),
    ("max.message.bytes", Int(0, NO_MAX)),
    ("message.downconversion.enable", Boolean),
    ("message.format.version", Version),
    ("message.timestamp.after.max.ms", Long(0)),
    ("message.timestamp.before.max.ms", Long(0)),
    ("message.timestamp.difference.max.ms", Long(0)),
    (
        "message.timestamp.type",
        OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    ("min.cleanable.dirty.ratio", Double(0.0, 1.0)),
    ("min.compaction.lag.ms", Long(0)),
    ("min.insync.replicas", Int(1, NO_MAX)),
    ("preallocate", Boolean),
    ("remote.log.copy.disable", Boolean),
    ("remote.log.delete.on.disable", Boolean),
    ("remote.storage.enable", Boolean),
    ("retention.bytes", Long(i64::MIN)),
    ("retention.ms", Long(-1)),
    // At least Kafka's `LegacyRecord.RECORD_OVERHEAD_V0`.
    ("segment.bytes", Int(14, NO_MAX)),
    ("segment.index.bytes", Int(4, NO_MAX)),
    ("segment.jitter.ms", Long(0)),
    ("segment.ms", Long(1)),
    ("unclean.leader.election.enable", Boolean),
];

/// A validated topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// How many metadata records creating the topic takes (see [`MAX_RECORDS_PER_USER_OP`]).
    pub fn record_count(&self) -> usize {
        1 + self.configs.len() + self.num_partitions.max(0) as usize
    }
}

/// An error to report for one topic: the code and Kafka-style message.
pub type TopicError = (ErrorCode, String);

/// Kafka's `Topic.validate`: the error message for an illegal topic name.
pub fn topic_name_error(name: &str) -> Option<String> {
    if topic_name_is_valid(name) {
        return None;
    }
    Some(if name.is_empty() {
        "Topic name is illegal, it can't be empty".to_string()
    } else if name == "." || name == ".." {
        "Topic name cannot be \".\" or \"..\"".to_string()
    } else if name.chars().count() > crate::metadata::MAX_TOPIC_NAME_LENGTH {
        format!(
            "Topic name is illegal, it can't be longer than {} characters, Topic name: {name}",
            crate::metadata::MAX_TOPIC_NAME_LENGTH
        )
    } else {
        format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )
    })
}

/// The name two topics share when they differ only in `.` versus `_`, which Kafka forbids
/// because both map to the same metric names (`Topic.unifyCollisionChars`).
pub fn collision_name(name: &str) -> String {
    name.replace('.', "_")
}

/// Kafka's answer for a topic that exists already.
pub fn topic_exists(name: &str) -> TopicError {
    (
        ErrorCode::TopicAlreadyExists,
        format!("Topic '{name}' already exists."),
    )
}

/// Kafka's answer for a topic whose name collides with `existing`'s (see [`collision_name`]).
pub fn topic_collides(name: &str, existing: &str) -> TopicError {
    (
        ErrorCode::InvalidTopicException,
        format!("Topic '{name}' collides with existing topic: {existing}"),
    )
}

/// Validates one CreateTopics entry against Kafka's rules for a single-broker cluster, in the
/// order of Kafka's controller: the name, the configs, then the replica assignments or the
/// replication factor and partition count. `num_partitions`/`replication_factor` of -1 mean the
/// broker defaults; explicit assignments must name this node only and be numbered 0..n.
pub fn validate_new_topic(
    config: &BrokerConfig,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
    configs: &[(String, Option<String>)],
) -> Result<NewTopic, TopicError> {
    if let Some(message) = topic_name_error(name) {
        return Err((ErrorCode::InvalidTopicException, message));
    }
    let configs = validate_configs(configs)?;
    let num_partitions = if !assignments.is_empty() {
        if replication_factor != -1 {
            return Err((
                ErrorCode::InvalidRequest,
                "A manual partition assignment was specified, but replication factor was not set to -1.".into(),
            ));
        }
        if num_partitions != -1 {
            return Err((
                ErrorCode::InvalidRequest,
                "A manual partition assignment was specified, but numPartitions was not set to -1."
                    .into(),
            ));
        }
        validate_assignments(config.node_id, assignments)?
    } else {
        if replication_factor < -1 || replication_factor == 0 {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value."
                    .to_string(),
            ));
        }
        if num_partitions < -1 || num_partitions == 0 {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("Number of partitions was set to an invalid value: {num_partitions}"),
            ));
        }
        let factor = if replication_factor == -1 {
            config.default_replication_factor
        } else {
            replication_factor
        };
        if factor > 1 {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only 1 broker(s) are registered."
                ),
            ));
        }
        if num_partitions == -1 {
            config.num_partitions
        } else {
            num_partitions
        }
    };
    Ok(NewTopic {
        name: name.to_string(),
        num_partitions,
        configs,
    })
}

/// Kafka's `ReplicationControlManager.createTopic` for manual assignments on a one-broker
/// cluster: every partition once, each with a replica list of this node only.
fn validate_assignments(node_id: i32, assignments: &[(i32, Vec<i32>)]) -> Result<i32, TopicError> {
    let invalid = |message: String| Err((ErrorCode::InvalidReplicaAssignment, message));
    let mut seen = std::collections::HashSet::with_capacity(assignments.len());
    let mut replication_factor = None;
    for (partition, brokers) in assignments {
        if !seen.insert(*partition) {
            return invalid(format!(
                "Found multiple manual partition assignments for partition {partition}"
            ));
        }
        if brokers.is_empty() {
            return invalid(
                "The manual partition assignment includes an empty replica list.".into(),
            );
        }
        let mut sorted = brokers.clone();
        sorted.sort_unstable();
        for (i, broker) in sorted.iter().enumerate() {
            if *broker != node_id {
                return invalid(format!(
                    "The manual partition assignment includes broker {broker}, but no such broker is registered."
                ));
            }
            if i > 0 && sorted[i - 1] == *broker {
                return invalid(format!(
                    "The manual partition assignment includes the broker {broker} more than once."
                ));
            }
        }
        if let Some(factor) = replication_factor.filter(|&f| f != sorted.len()) {
            return invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {factor} replica(s).",
                sorted.len()
            ));
        }
        replication_factor = Some(sorted.len());
    }
    if (0..assignments.len() as i32).any(|i| !seen.contains(&i)) {
        return invalid("partitions should be a consecutive 0-based integer sequence".into());
    }
    Ok(assignments.len() as i32)
}

/// Validates a new topic's configs as Kafka's controller does: no null values, then every name
/// known and every value of its type and within its bounds.
pub(crate) fn validate_configs(
    configs: &[(String, Option<String>)],
) -> Result<BTreeMap<String, String>, TopicError> {
    let nulls: Vec<&str> = configs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect();
    if !nulls.is_empty() {
        return Err((
            ErrorCode::InvalidConfig,
            format!(
                "Null value not supported for topic configs: {}",
                nulls.join(",")
            ),
        ));
    }
    let mut validated = BTreeMap::new();
    for (key, value) in configs {
        let value = value.as_deref().unwrap_or_default();
        validated.insert(key.clone(), value.to_string());
    }
    for (key, value) in &validated {
        let Some((_, kind)) = TOPIC_CONFIGS.iter().find(|(name, _)| name == key) else {
            return Err((
                ErrorCode::InvalidConfig,
                format!("Unknown topic config name: {key}"),
            ));
        };
        if let Err(reason) = check_config_value(*kind, value) {
            return Err((
                ErrorCode::InvalidConfig,
                format!("Invalid value {value} for configuration {key}: {reason}"),
            ));
        }
    }
    if validated
        .get("remote.storage.enable")
        .map(|v| v.trim().to_ascii_lowercase())
        == Some("true".into())
    {
        return Err((
            ErrorCode::InvalidConfig,
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.".into(),
        ));
    }
    Ok(validated)
}

/// Checks one value as Kafka's `ConfigDef` parses and validates it; `Err` is ConfigException's
/// reason.
pub(crate) fn check_config_value(kind: ConfigType, value: &str) -> Result<(), String> {
    let value = value.trim();
    let at_least = |n: i64, min: i64| {
        if n < min {
            Err(format!("Value must be at least {min}"))
        } else {
            Ok(())
        }
    };
    match kind {
        Int(min, max) => {
            let n = i64::from(
                value
                    .parse::<i32>()
                    .map_err(|_| "Not a number of type INT".to_string())?,
            );
            at_least(n, min)?;
            if n > max {
                return Err(format!("Value must be no more than {max}"));
            }
            Ok(())
        }
        Level(default, min, max) => {
            let n = i64::from(
                value
                    .parse::<i32>()
                    .map_err(|_| "Not a number of type INT".to_string())?,
            );
            if n == default || (min..=max).contains(&n) {
                Ok(())
            } else {
                Err(format!(
                    "Value must be between {min} and {max}, or {default}"
                ))
            }
        }
        Long(min) => at_least(
            value
                .parse::<i64>()
                .map_err(|_| "Not a number of type LONG".to_string())?,
            min,
        ),
        Double(min, max) => {
            let x = value
                .parse::<f64>()
                .map_err(|_| "Not a number of type DOUBLE".to_string())?;
            if x < min {
                Err(format!("Value must be at least {min}"))
            } else if x > max {
                Err(format!("Value must be no more than {max}"))
            } else {
                Ok(())
            }
        }
        Boolean if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") => {
            Ok(())
        }
        Boolean => Err("Expected value to be either true or false".into()),
        OneOf(allowed) if allowed.contains(&value) => Ok(()),
        OneOf(allowed) => Err(format!("String must be one of: {}", allowed.join(", "))),
        ListOf(allowed) => {
            let items = value.split(',').map(str::trim).filter(|s| !s.is_empty());
            match items.clone().find(|item| !allowed.contains(item)) {
                None => Ok(()),
                Some(_) => Err(format!("String must be one of: {}", allowed.join(", "))),
            }
        }
        IpCountOverrides => crate::server::limits::parse_per_ip_overrides(value).map(drop),
        ThrottledReplicas => {
            let valid = value.is_empty()
                || value == "*"
                || value.split(',').map(str::trim).all(|pair| {
                    pair.split_once(':').is_some_and(|(p, b)| {
                        !p.is_empty()
                            && !b.is_empty()
                            && p.bytes().all(|c| c.is_ascii_digit())
                            && b.bytes().all(|c| c.is_ascii_digit())
                    })
                });
            if valid {
                Ok(())
            } else {
                Err("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into())
            }
        }
        Version => {
            let (release, iv) = value.split_once("-IV").unwrap_or((value, "0"));
            let numbers = release.split('.').collect::<Vec<_>>();
            let valid = (2..=3).contains(&numbers.len())
                && numbers
                    .iter()
                    .chain(std::iter::once(&iv))
                    .all(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
            if valid {
                Ok(())
            } else {
                Err(format!("Unknown metadata.version '{value}'"))
            }
        }
    }
}

/// The metadata records that create `topic` with id `topic_id`, every partition led by `node_id`.
pub fn topic_records(node_id: i32, topic_id: Uuid, topic: &NewTopic) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::Topic(TopicRecord {
        name: topic.name.clone(),
        topic_id,
    })];
    for (key, value) in &topic.configs {
        records.push(MetadataRecord::Config(ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: topic.name.clone(),
            name: key.clone(),
            value: Some(value.clone()),
        }));
    }
    records.extend((0..topic.num_partitions).map(|p| partition_record(node_id, topic_id, p)));
    records
}

/// The PartitionRecord of a new partition led by `node_id`, its only replica.
pub fn partition_record(node_id: i32, topic_id: Uuid, partition: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: partition,
        topic_id,
        replicas: vec![node_id],
        isr: vec![node_id],
        leader: node_id,
        leader_epoch: 0,
        partition_epoch: 0,
        ..PartitionRecord::default()
    })
}

/// Validates one CreatePartitions entry as Kafka's `ReplicationControlManager.createPartitions`
/// does on a one-broker cluster: the topic grows (never shrinks or stays), and explicit
/// assignments, when given, are one per new partition, each naming this node only. Returns how
/// many partitions to add.
pub fn validate_new_partitions(
    node_id: i32,
    name: &str,
    current: i32,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
) -> Result<i32, TopicError> {
    if count < current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!(
                "The topic {name} currently has {current} partition(s); {count} would not be an increase."
            ),
        ));
    }
    if count == current {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    let additional = count - current;
    if let Some(assignments) = assignments {
        if assignments.len() != additional as usize {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                ),
            ));
        }
        // Each new partition's replica list must hold this node only (which also makes its
        // replication factor that of the existing partitions, one).
        for brokers in assignments {
            validate_assignments(node_id, &[(0, brokers.clone())])?;
        }
    }
    Ok(additional)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(name: &str, partitions: i32, factor: i16) -> Result<NewTopic, TopicError> {
        validate_new_topic(&BrokerConfig::default(), name, partitions, factor, &[], &[])
    }

    #[test]
    fn validation_follows_kafka() {
        assert_eq!(validate("t", 3, 1).unwrap().num_partitions, 3);
        assert_eq!(validate("t", -1, -1).unwrap().num_partitions, 1);
        assert_eq!(
            validate("bad name", 1, 1).unwrap_err().0,
            ErrorCode::InvalidTopicException
        );
        assert_eq!(
            validate("t", 0, 1).unwrap_err().0,
            ErrorCode::InvalidPartitions
        );
        assert_eq!(
            validate("t", -5, 1).unwrap_err().0,
            ErrorCode::InvalidPartitions
        );
        assert_eq!(
            validate("t", 1, 3).unwrap_err().0,
            ErrorCode::InvalidReplicationFactor
        );
        assert_eq!(
            validate("t", 1, 0).unwrap_err().0,
            ErrorCode::InvalidReplicationFactor
        );
    }

    #[test]
    fn assignments_and_configs() {
        let config = BrokerConfig::default();
        let ok =
            validate_new_topic(&config, "t", -1, -1, &[(0, vec![1]), (1, vec![1])], &[]).unwrap();
        assert_eq!(ok.num_partitions, 2);
        let gap = validate_new_topic(&config, "t", -1, -1, &[(0, vec![1]), (2, vec![1])], &[]);
        assert_eq!(gap.unwrap_err().0, ErrorCode::InvalidReplicaAssignment);
        let other = validate_new_topic(&config, "t", -1, -1, &[(0, vec![2])], &[]);
        assert_eq!(other.unwrap_err().0, ErrorCode::InvalidReplicaAssignment);
        let both = validate_new_topic(&config, "t", 1, -1, &[(0, vec![1])], &[]);
        assert_eq!(both.unwrap_err().0, ErrorCode::InvalidRequest);
        let twice = validate_new_topic(&config, "t", -1, -1, &[(0, vec![1]), (0, vec![1])], &[]);
        assert_eq!(twice.unwrap_err().0, ErrorCode::InvalidReplicaAssignment);
        let configs = [("retention.ms".to_string(), Some("1000".to_string()))];
        let t = validate_new_topic(&config, "t", 1, 1, &[], &configs).unwrap();
        assert_eq!(t.configs["retention.ms"], "1000");
        let unknown = [("no.such".to_string(), Some("1".to_string()))];
        assert_eq!(
            validate_new_topic(&config, "t", 1, 1, &[], &unknown)
                .unwrap_err()
                .0,
            ErrorCode::InvalidConfig
        );
        let bad = [("retention.ms".to_string(), Some("soon".to_string()))];
        assert_eq!(
            validate_new_topic(&config, "t", 1, 1, &[], &bad)
                .unwrap_err()
                .0,
            ErrorCode::InvalidConfig
        );
        // Kafka's gzip level is its default (-1) or 1 to 9: 0 is refused.
        for (level, ok) in [
            ("-1", true),
            ("0", false),
            ("1", true),
            ("9", true),
            ("10", false),
        ] {
            let gzip = [(
                "compression.gzip.level".to_string(),
                Some(level.to_string()),
            )];
            let result = validate_new_topic(&config, "t", 1, 1, &[], &gzip);
            assert_eq!(result.is_ok(), ok, "gzip level {level}");
        }
    }

    #[test]
    fn records_create_topic_then_partitions() {
        let topic = NewTopic {
            name: "t".into(),
            num_partitions: 2,
            configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
        };
        let records = topic_records(1, Uuid([3; 16]), &topic);
        assert_eq!(records.len(), 4);
        let mut image = crate::metadata::MetadataImage::default();
        for r in &records {
            image.apply(r);
        }
        let t = image.topic("t").unwrap();
        assert_eq!(t.partitions.len(), 2);
        assert_eq!(t.partitions[&1].leader_id, 1);
        assert_eq!(t.configs["retention.ms"], "5");
    }
}
