//! The cluster metadata: which topics exist, their ids, partitions and configs.
//!
//! As in a KRaft broker, the source of truth is the `__cluster_metadata-0` log: a sequence of
//! record batches whose records are framed metadata records (TopicRecord, PartitionRecord, ...).
//! At start-up the log is replayed into a [`MetadataImage`]; topic creation and deletion append new
//! records to it (see [`log`]). The image is shared behind a lock; readers take a snapshot of what
//! they need and never hold the lock across I/O.

pub mod log;
pub mod records;

use crate::protocol::wire::{DecodeError, Decoder, Encoder, Uuid};
use records::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The internal topic that holds committed consumer group offsets.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The longest topic name Kafka allows.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's topic name rule: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn topic_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LENGTH
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// One partition as the metadata log describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionMetadata {
    pub partition_index: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replica_nodes: Vec<i32>,
    pub isr_nodes: Vec<i32>,
    pub eligible_leader_replicas: Option<Vec<i32>>,
    pub last_known_elr: Option<Vec<i32>>,
}

/// One topic: name, id, partitions in index order, and topic-level config overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionMetadata>,
    pub configs: BTreeMap<String, String>,
}

impl TopicMetadata {
    pub fn is_internal(&self) -> bool {
        self.name == CONSUMER_OFFSETS_TOPIC || self.name == "__transaction_state"
    }
}

/// A metadata record decoded from its frame.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataRecord {
    Topic(topic_record::TopicRecord),
    Partition(partition_record::PartitionRecord),
    PartitionChange(partition_change_record::PartitionChangeRecord),
    RemoveTopic(remove_topic_record::RemoveTopicRecord),
    FeatureLevel(feature_level_record::FeatureLevelRecord),
    Config(config_record::ConfigRecord),
    ProducerIds(producer_ids_record::ProducerIdsRecord),
    ClientQuota(client_quota_record::ClientQuotaRecord),
    UserScramCredential(user_scram_credential_record::UserScramCredentialRecord),
    RemoveUserScramCredential(remove_user_scram_credential_record::RemoveUserScramCredentialRecord),
    AccessControlEntry(access_control_entry_record::AccessControlEntryRecord),
    RemoveAccessControlEntry(remove_access_control_entry_record::RemoveAccessControlEntryRecord),
    /// A record type sprat does not need (broker registrations, ACLs, ...), kept by type only.
    Other {
        record_type: u16,
        version: i16,
    },
}

/// ConfigRecord's resource type for a topic (Kafka's `ConfigResource.Type.TOPIC`).
pub const CONFIG_RESOURCE_TOPIC: i8 = 2;

/// ConfigRecord's resource type for a broker (`ConfigResource.Type.BROKER`): the resource name is
/// the node id, or empty for the cluster-wide default.
pub const CONFIG_RESOURCE_BROKER: i8 = 4;

impl MetadataRecord {
    /// Decodes a record value: `frame version (uvarint) = 0 or 1, type (uvarint), version
    /// (uvarint), body`.
    pub fn decode(value: &[u8]) -> Result<MetadataRecord, DecodeError> {
        let mut d = Decoder::new(value);
        let _frame_version = d.uvarint()?;
        let record_type = d.uvarint()?;
        let version = d.uvarint()? as i16;
        let record = match record_type as u16 {
            topic_record::RECORD_TYPE => {
                MetadataRecord::Topic(topic_record::TopicRecord::decode(&mut d, version)?)
            }
            partition_record::RECORD_TYPE => MetadataRecord::Partition(
                partition_record::PartitionRecord::decode(&mut d, version)?,
            ),
            partition_change_record::RECORD_TYPE => MetadataRecord::PartitionChange(
                partition_change_record::PartitionChangeRecord::decode(&mut d, version)?,
            ),
            remove_topic_record::RECORD_TYPE => MetadataRecord::RemoveTopic(
                remove_topic_record::RemoveTopicRecord::decode(&mut d, version)?,
            ),
            feature_level_record::RECORD_TYPE => MetadataRecord::FeatureLevel(
                feature_level_record::FeatureLevelRecord::decode(&mut d, version)?,
            ),
            config_record::RECORD_TYPE => {
                MetadataRecord::Config(config_record::ConfigRecord::decode(&mut d, version)?)
            }
            producer_ids_record::RECORD_TYPE => MetadataRecord::ProducerIds(
                producer_ids_record::ProducerIdsRecord::decode(&mut d, version)?,
            ),
            client_quota_record::RECORD_TYPE => MetadataRecord::ClientQuota(
                client_quota_record::ClientQuotaRecord::decode(&mut d, version)?,
            ),
            user_scram_credential_record::RECORD_TYPE => MetadataRecord::UserScramCredential(
                user_scram_credential_record::UserScramCredentialRecord::decode(&mut d, version)?,
            ),
            remove_user_scram_credential_record::RECORD_TYPE => {
                MetadataRecord::RemoveUserScramCredential(
                    remove_user_scram_credential_record::RemoveUserScramCredentialRecord::decode(
                        &mut d, version,
                    )?,
                )
            }
            access_control_entry_record::RECORD_TYPE => MetadataRecord::AccessControlEntry(
                access_control_entry_record::AccessControlEntryRecord::decode(&mut d, version)?,
            ),
            remove_access_control_entry_record::RECORD_TYPE => {
                MetadataRecord::RemoveAccessControlEntry(
                    remove_access_control_entry_record::RemoveAccessControlEntryRecord::decode(
                        &mut d, version,
                    )?,
                )
            }
            other => MetadataRecord::Other {
                record_type: other,
                version,
            },
        };
        Ok(record)
    }

    /// Encodes the record with frame version 1, as Kafka writes it.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        let (record_type, version) = match self {
            MetadataRecord::Topic(_) => (topic_record::RECORD_TYPE, 0),
            MetadataRecord::Partition(_) => (partition_record::RECORD_TYPE, 0),
            MetadataRecord::PartitionChange(_) => (partition_change_record::RECORD_TYPE, 0),
            MetadataRecord::RemoveTopic(_) => (remove_topic_record::RECORD_TYPE, 0),
            MetadataRecord::FeatureLevel(_) => (feature_level_record::RECORD_TYPE, 0),
            MetadataRecord::Config(_) => (config_record::RECORD_TYPE, 0),
            MetadataRecord::ProducerIds(_) => (producer_ids_record::RECORD_TYPE, 0),
            MetadataRecord::ClientQuota(_) => (client_quota_record::RECORD_TYPE, 0),
            MetadataRecord::UserScramCredential(_) => {
                (user_scram_credential_record::RECORD_TYPE, 0)
            }
            MetadataRecord::RemoveUserScramCredential(_) => {
                (remove_user_scram_credential_record::RECORD_TYPE, 0)
            }
            MetadataRecord::AccessControlEntry(_) => (access_control_entry_record::RECORD_TYPE, 0),
            MetadataRecord::RemoveAccessControlEntry(_) => {
                (remove_access_control_entry_record::RECORD_TYPE, 0)
            }
            MetadataRecord::Other {
                record_type,
                version,
            } => (*record_type, *version),
        };
        e.uvarint(1);
        e.uvarint(u32::from(record_type));
        e.uvarint(version as u32);
        match self {
            MetadataRecord::Topic(r) => r.encode(&mut e, version),
            MetadataRecord::Partition(r) => r.encode(&mut e, version),
            MetadataRecord::PartitionChange(r) => r.encode(&mut e, version),
            MetadataRecord::RemoveTopic(r) => r.encode(&mut e, version),
            MetadataRecord::FeatureLevel(r) => r.encode(&mut e, version),
            MetadataRecord::Config(r) => r.encode(&mut e, version),
            MetadataRecord::ProducerIds(r) => r.encode(&mut e, version),
            MetadataRecord::ClientQuota(r) => r.encode(&mut e, version),
            MetadataRecord::UserScramCredential(r) => r.encode(&mut e, version),
            MetadataRecord::RemoveUserScramCredential(r) => r.encode(&mut e, version),
            MetadataRecord::AccessControlEntry(r) => r.encode(&mut e, version),
            MetadataRecord::RemoveAccessControlEntry(r) => r.encode(&mut e, version),
            MetadataRecord::Other { .. } => {}
        }
        e.into_inner()
    }
}

/// The current state of the cluster metadata, built by replaying metadata records in order.
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    /// Shared, so that a request's lookup is a pointer copy; a record changes a topic by
    /// copy-on-write (`Arc::make_mut`), which is free while no request holds it.
    topics: BTreeMap<String, Arc<TopicMetadata>>,
    names_by_id: HashMap<Uuid, String>,
    pub feature_levels: BTreeMap<String, i16>,
    /// The first producer id not yet handed out in a block (ProducerIdsRecord).
    pub next_producer_id: i64,
    /// Config records that arrived before their topic, applied when it appears.
    pending_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Dynamic broker configs by resource name (`""`: the cluster-wide default, or a node id).
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Client quotas (ClientQuotaRecord) by entity, each with its keys and values.
    pub client_quotas: BTreeMap<QuotaEntity, BTreeMap<String, f64>>,
    /// SCRAM credentials by (user name, mechanism type): salted hashes, never passwords
    /// (UserScramCredentialRecord).
    pub scram_credentials: BTreeMap<(String, i8), ScramCredential>,
    /// ACL bindings by id (AccessControlEntryRecord), shared with the authorizer: a record
    /// changes them by copy-on-write.
    pub acls: Arc<crate::security::acl::AclSet>,
    /// Moves whenever a topic is created or removed, so that what is derived from the topic
    /// names (a consumer group's resolved regexes) knows when to derive it again.
    topic_names_version: u64,
}

/// One user's SCRAM credential for one mechanism, as RFC 5802 has the server keep it.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ScramCredential(iterations {})", self.iterations)
    }
}

/// A client quota entity: (entity type, name) pairs sorted by type, a `None` name being the
/// type's default (`user`, `client-id`, `ip`).
pub type QuotaEntity = Vec<(String, Option<String>)>;

impl MetadataImage {
    /// Applies one record. Records that refer to unknown topics are ignored, as a replay of a
    /// log whose earlier part was deleted would produce them.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Topic(r) => {
                if let Some(old) = self.topics.get(&r.name) {
                    self.names_by_id.remove(&old.topic_id);
                }
                let configs = self.pending_configs.remove(&r.name).unwrap_or_default();
                self.names_by_id.insert(r.topic_id, r.name.clone());
                self.topic_names_version += 1;
                self.topics.insert(
                    r.name.clone(),
                    Arc::new(TopicMetadata {
                        name: r.name.clone(),
                        topic_id: r.topic_id,
                        partitions: BTreeMap::new(),
                        configs,
                    }),
                );
            }
            MetadataRecord::Partition(r) => {
                if let Some(topic) = self.topic_by_id_mut(&r.topic_id) {
                    topic.partitions.insert(
                        r.partition_id,
                        PartitionMetadata {
                            partition_index: r.partition_id,
                            leader_id: r.leader,
                            leader_epoch: r.leader_epoch,
                            partition_epoch: r.partition_epoch,
                            replica_nodes: r.replicas.clone(),
                            isr_nodes: r.isr.clone(),
                            eligible_leader_replicas: r.eligible_leader_replicas.clone(),
                            last_known_elr: r.last_known_elr.clone(),
                        },
                    );
                }
            }
            MetadataRecord::PartitionChange(r) => self.apply_partition_change(r),
            MetadataRecord::RemoveTopic(r) => {
                if let Some(name) = self.names_by_id.remove(&r.topic_id) {
                    self.topics.remove(&name);
                    self.topic_names_version += 1;
                }
            }
            MetadataRecord::FeatureLevel(r) => {
                self.feature_levels.insert(r.name.clone(), r.feature_level);
            }
            MetadataRecord::Config(r) if r.resource_type == CONFIG_RESOURCE_TOPIC => {
                let configs = match self.topics.get_mut(&r.resource_name) {
                    Some(topic) => &mut Arc::make_mut(topic).configs,
                    None => self
                        .pending_configs
                        .entry(r.resource_name.clone())
                        .or_default(),
                };
                match &r.value {
                    Some(v) => configs.insert(r.name.clone(), v.clone()),
                    None => configs.remove(&r.name),
                };
            }
            MetadataRecord::Config(r) if r.resource_type == CONFIG_RESOURCE_BROKER => {
                let configs = self
                    .broker_configs
                    .entry(r.resource_name.clone())
                    .or_default();
                match &r.value {
                    Some(v) => configs.insert(r.name.clone(), v.clone()),
                    None => configs.remove(&r.name),
                };
            }
            MetadataRecord::ProducerIds(r) => {
                self.next_producer_id = self.next_producer_id.max(r.next_producer_id);
            }
            MetadataRecord::ClientQuota(r) => {
                let mut entity: QuotaEntity = r
                    .entity
                    .iter()
                    .map(|e| (e.entity_type.clone(), e.entity_name.clone()))
                    .collect();
                entity.sort();
                let values = self.client_quotas.entry(entity.clone()).or_default();
                if r.remove {
                    values.remove(&r.key);
                    if values.is_empty() {
                        self.client_quotas.remove(&entity);
                    }
                } else {
                    values.insert(r.key.clone(), r.value);
                }
            }
            MetadataRecord::UserScramCredential(r) => {
                let credential = ScramCredential {
                    salt: r.salt.clone(),
                    stored_key: r.stored_key.clone(),
                    server_key: r.server_key.clone(),
                    iterations: r.iterations,
                };
                self.scram_credentials
                    .insert((r.name.clone(), r.mechanism), credential);
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                self.scram_credentials
                    .remove(&(r.name.clone(), r.mechanism));
            }
            MetadataRecord::AccessControlEntry(r) => match acl_binding(r) {
                Some(binding) => {
                    Arc::make_mut(&mut self.acls).insert(r.id, binding);
                }
                None => ::log::warn!("ignoring an AccessControlEntryRecord with unknown codes"),
            },
            MetadataRecord::RemoveAccessControlEntry(r) => {
                Arc::make_mut(&mut self.acls).remove(&r.id);
            }
            MetadataRecord::Config(_) | MetadataRecord::Other { .. } => {}
        }
    }

    fn apply_partition_change(&mut self, r: &partition_change_record::PartitionChangeRecord) {
        let Some(topic) = self.topic_by_id_mut(&r.topic_id) else {
            return;
        };
        let Some(p) = topic.partitions.get_mut(&r.partition_id) else {
            return;
        };
        if let Some(isr) = &r.isr {
            p.isr_nodes = isr.clone();
        }
        if let Some(replicas) = &r.replicas {
            p.replica_nodes = replicas.clone();
        }
        // Leader -2 means "unchanged"; a new leader starts a new leader epoch.
        if r.leader != -2 {
            p.leader_id = r.leader;
            p.leader_epoch = p.leader_epoch.saturating_add(1);
        }
        if r.eligible_leader_replicas.is_some() {
            p.eligible_leader_replicas = r.eligible_leader_replicas.clone();
        }
        if r.last_known_elr.is_some() {
            p.last_known_elr = r.last_known_elr.clone();
        }
        p.partition_epoch = p.partition_epoch.saturating_add(1);
    }

    fn topic_by_id_mut(&mut self, id: &Uuid) -> Option<&mut TopicMetadata> {
        let name = self.names_by_id.get(id)?;
        self.topics.get_mut(name).map(Arc::make_mut)
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMetadata>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMetadata>> {
        self.topics.get(self.names_by_id.get(id)?)
    }

    /// A number that moves whenever a topic is created or removed.
    pub fn topic_names_version(&self) -> u64 {
        self.topic_names_version
    }

    /// All topics, ordered by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicMetadata> {
        self.topics.values().map(|t| &**t)
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// The dynamic broker configs stored under one resource name (`""` or a node id).
    pub fn broker_configs(&self, resource_name: &str) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(resource_name)
    }

    /// The dynamic broker configs in effect on node `node_id`: its own over the cluster default.
    pub fn dynamic_broker_configs(&self, node_id: i32) -> BTreeMap<String, String> {
        let mut merged = self.broker_configs("").cloned().unwrap_or_default();
        if let Some(own) = self.broker_configs(&node_id.to_string()) {
            merged.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        merged
    }
}

/// The binding an AccessControlEntryRecord stores; `None` if a code is unknown to sprat.
fn acl_binding(
    r: &access_control_entry_record::AccessControlEntryRecord,
) -> Option<crate::security::acl::AclBinding> {
    use crate::security::acl::*;
    Some(AclBinding {
        resource_type: ResourceType::from_code(r.resource_type)?,
        resource_name: r.resource_name.clone(),
        pattern_type: PatternType::from_code(r.pattern_type)?,
        principal: r.principal.clone(),
        host: r.host.clone(),
        operation: AclOperation::from_code(r.operation)?,
        permission: AclPermission::from_code(r.permission_type)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, id: u8) -> MetadataRecord {
        MetadataRecord::Topic(topic_record::TopicRecord {
            name: name.into(),
            topic_id: Uuid([id; 16]),
        })
    }

    fn partition(id: u8, index: i32) -> MetadataRecord {
        MetadataRecord::Partition(partition_record::PartitionRecord {
            partition_id: index,
            topic_id: Uuid([id; 16]),
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            ..Default::default()
        })
    }

    #[test]
    fn records_round_trip_through_their_frame() {
        for record in [topic("a", 1), partition(1, 3)] {
            let bytes = record.encode();
            assert_eq!(bytes[0], 1, "frame version");
            assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
        }
        // TopicRecord: frame 1, type 2, version 0, compact name, uuid, no tagged fields.
        let bytes = topic("ab", 9).encode();
        let mut expected = vec![1, 2, 0, 3, b'a', b'b'];
        expected.extend_from_slice(&[9; 16]);
        expected.push(0);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn replay_builds_topics_and_partitions() {
        let mut image = MetadataImage::default();
        for r in [
            topic("b", 2),
            topic("a", 1),
            partition(1, 1),
            partition(1, 0),
            partition(2, 0),
        ] {
            image.apply(&r);
        }
        let names: Vec<_> = image.topics().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        let a = image.topic_by_id(&Uuid([1; 16])).unwrap();
        assert_eq!(a.partitions.keys().copied().collect::<Vec<_>>(), [0, 1]);
        image.apply(&MetadataRecord::RemoveTopic(
            remove_topic_record::RemoveTopicRecord {
                topic_id: Uuid([1; 16]),
            },
        ));
        assert!(image.topic("a").is_none());
        assert!(image.topic_by_id(&Uuid([1; 16])).is_none());
        assert_eq!(image.topic_count(), 1);
    }

    #[test]
    fn configs_and_partition_changes_apply() {
        let mut image = MetadataImage::default();
        image.apply(&topic("t", 5));
        image.apply(&partition(5, 0));
        image.apply(&MetadataRecord::Config(config_record::ConfigRecord {
            resource_type: CONFIG_RESOURCE_TOPIC,
            resource_name: "t".into(),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        }));
        image.apply(&MetadataRecord::PartitionChange(
            partition_change_record::PartitionChangeRecord {
                partition_id: 0,
                topic_id: Uuid([5; 16]),
                leader: 1,
                ..Default::default()
            },
        ));
        let t = image.topic("t").unwrap();
        assert_eq!(t.configs["retention.ms"], "1000");
        assert_eq!(t.partitions[&0].leader_epoch, 1);
        assert_eq!(t.partitions[&0].partition_epoch, 1);
    }

    #[test]
    fn topic_name_rules() {
        for ok in ["a", "foo.bar", "x_y-z", "A9", &"t".repeat(249)] {
            assert!(topic_name_is_valid(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"t".repeat(250)] {
            assert!(!topic_name_is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_record_types_are_kept_by_type() {
        let bytes = [1, 17, 0, 0];
        assert_eq!(
            MetadataRecord::decode(&bytes).unwrap(),
            MetadataRecord::Other {
                record_type: 17,
                version: 0
            }
        );
    }
}
