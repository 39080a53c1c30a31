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

/// The most partitions one topic may have here (a guard against requests that would create
/// millions of directories).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// Topic-level configs sprat accepts at creation, with Kafka's names.
const KNOWN_TOPIC_CONFIGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.difference.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
    "message.downconversion.enable",
    "local.retention.bytes",
    "local.retention.ms",
    "remote.storage.enable",
];

/// A validated topic to create.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub num_partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// An error to report for one topic: the code and Kafka-style message.
pub type TopicError = (ErrorCode, String);

/// Validates one CreateTopics entry against Kafka's rules for a single-broker cluster.
/// `num_partitions`/`replication_factor` of -1 mean the broker defaults; explicit assignments
/// must name this node only and be numbered 0..n.
pub fn validate_new_topic(
    config: &BrokerConfig,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
    configs: &[(String, Option<String>)],
) -> Result<NewTopic, TopicError> {
    if !topic_name_is_valid(name) {
        return Err((
            ErrorCode::InvalidTopicException,
            format!("Topic name '{name}' is illegal."),
        ));
    }
    let num_partitions = if !assignments.is_empty() {
        if num_partitions != -1 || replication_factor != -1 {
            return Err((
                ErrorCode::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        validate_assignments(config.node_id, assignments)?
    } else {
        let partitions = if num_partitions == -1 {
            config.num_partitions
        } else {
            num_partitions
        };
        if partitions <= 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
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
        if factor <= 0 {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value."
                    .to_string(),
            ));
        }
        if factor > 1 {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} cannot be reached because only 1 broker(s) are registered."
                ),
            ));
        }
        partitions
    };
    let mut validated = BTreeMap::new();
    for (key, value) in configs {
        if !KNOWN_TOPIC_CONFIGS.contains(&key.as_str()) {
            return Err((
                ErrorCode::InvalidConfig,
                format!("Unknown topic config name: {key}"),
            ));
        }
        if let Some(v) = value {
            validate_config_value(key, v)?;
            validated.insert(key.clone(), v.clone());
        }
    }
    Ok(NewTopic {
        name: name.to_string(),
        num_partitions,
        configs: validated,
    })
}

fn validate_assignments(node_id: i32, assignments: &[(i32, Vec<i32>)]) -> Result<i32, TopicError> {
    let mut indexes: Vec<i32> = assignments.iter().map(|(i, _)| *i).collect();
    indexes.sort_unstable();
    if indexes.iter().enumerate().any(|(i, &p)| p != i as i32) {
        return Err((
            ErrorCode::InvalidReplicaAssignment,
            "Partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    for (_, brokers) in assignments {
        if brokers.is_empty() || brokers.iter().any(|&b| b != node_id) || brokers.len() > 1 {
            return Err((
                ErrorCode::InvalidReplicaAssignment,
                format!(
                    "The manual partition assignment includes a broker other than {node_id}, or repeats it."
                ),
            ));
        }
    }
    Ok(assignments.len() as i32)
}

/// Checks the values of the configs sprat acts on.
fn validate_config_value(key: &str, value: &str) -> Result<(), TopicError> {
    let bad = || {
        (
            ErrorCode::InvalidConfig,
            format!("Invalid value {value} for configuration {key}"),
        )
    };
    match key {
        "retention.ms"
        | "retention.bytes"
        | "segment.ms"
        | "local.retention.ms"
        | "local.retention.bytes" => {
            value.parse::<i64>().map_err(|_| bad())?;
        }
        "max.message.bytes" | "segment.bytes" | "index.interval.bytes" | "segment.index.bytes" => {
            let v = value.parse::<i32>().map_err(|_| bad())?;
            if v < 0 {
                return Err(bad());
            }
        }
        "cleanup.policy"
            if !value
                .split(',')
                .all(|p| matches!(p.trim(), "delete" | "compact")) =>
        {
            return Err(bad());
        }
        "message.timestamp.type" if !matches!(value, "CreateTime" | "LogAppendTime") => {
            return Err(bad());
        }
        "compression.type"
            if !matches!(
                value,
                "uncompressed" | "producer" | "gzip" | "snappy" | "lz4" | "zstd"
            ) =>
        {
            return Err(bad());
        }
        _ => {}
    }
    Ok(())
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
    for partition in 0..topic.num_partitions {
        records.push(MetadataRecord::Partition(PartitionRecord {
            partition_id: partition,
            topic_id,
            replicas: vec![node_id],
            isr: vec![node_id],
            leader: node_id,
            leader_epoch: 0,
            partition_epoch: 0,
            ..PartitionRecord::default()
        }));
    }
    records
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
