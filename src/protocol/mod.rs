//! The Kafka wire protocol: primitives ([`wire`]), generated message codecs ([`messages`]), error
//! codes, request and response headers, and the table of APIs and versions sprat serves.
//!
//! Everything here is pure: it turns bytes into values and values into bytes, with no I/O, so every
//! API version can be tested from bytes alone.

#[cfg(test)]
mod codec_tests;
pub mod decode;
pub mod error_code;
pub mod messages;
pub mod wire;

use messages::*;
use wire::{DecodeResult, Decoder, Encoder};

/// One API sprat serves: its key, name, and the versions it implements.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: i16,
    pub name: &'static str,
    pub min_version: i16,
    pub max_version: i16,
    /// From this version on, the API uses compact encodings and request header v2.
    pub first_flexible_version: i16,
}

macro_rules! api {
    ($module:ident, $name:expr, $min:expr, $max:expr) => {
        ApiSupport {
            key: $module::API_KEY,
            name: $name,
            min_version: $min,
            max_version: $max,
            first_flexible_version: $module::FIRST_FLEXIBLE_VERSION,
        }
    };
}

/// Every API and version range sprat implements, in API key order. ApiVersions advertises exactly
/// this table; a request for anything else is refused.
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    api!(produce, "Produce", 0, 11),
    api!(fetch, "Fetch", 4, 17),
    api!(list_offsets, "ListOffsets", 0, 9),
    api!(metadata, "Metadata", 0, 12),
    api!(offset_commit, "OffsetCommit", 0, 9),
    api!(offset_fetch, "OffsetFetch", 0, 9),
    api!(find_coordinator, "FindCoordinator", 0, 6),
    api!(join_group, "JoinGroup", 0, 9),
    api!(heartbeat, "Heartbeat", 0, 4),
    api!(leave_group, "LeaveGroup", 0, 5),
    api!(sync_group, "SyncGroup", 0, 5),
    api!(describe_groups, "DescribeGroups", 0, 5),
    api!(list_groups, "ListGroups", 0, 5),
    api!(sasl_handshake, "SaslHandshake", 0, 1),
    api!(api_versions, "ApiVersions", 0, 4),
    api!(create_topics, "CreateTopics", 0, 7),
    api!(delete_topics, "DeleteTopics", 0, 6),
    api!(delete_records, "DeleteRecords", 0, 2),
    api!(init_producer_id, "InitProducerId", 0, 5),
    api!(offset_for_leader_epoch, "OffsetForLeaderEpoch", 0, 4),
    api!(describe_configs, "DescribeConfigs", 0, 4),
    api!(alter_configs, "AlterConfigs", 0, 2),
    api!(describe_log_dirs, "DescribeLogDirs", 0, 4),
    api!(sasl_authenticate, "SaslAuthenticate", 0, 2),
    api!(create_partitions, "CreatePartitions", 0, 3),
    api!(delete_groups, "DeleteGroups", 0, 2),
    api!(elect_leaders, "ElectLeaders", 0, 2),
    api!(incremental_alter_configs, "IncrementalAlterConfigs", 0, 1),
    api!(
        list_partition_reassignments,
        "ListPartitionReassignments",
        0,
        0
    ),
    api!(offset_delete, "OffsetDelete", 0, 0),
    api!(describe_client_quotas, "DescribeClientQuotas", 0, 1),
    api!(alter_client_quotas, "AlterClientQuotas", 0, 1),
    api!(
        describe_user_scram_credentials,
        "DescribeUserScramCredentials",
        0,
        0
    ),
    api!(
        alter_user_scram_credentials,
        "AlterUserScramCredentials",
        0,
        0
    ),
    api!(describe_cluster, "DescribeCluster", 0, 1),
    api!(describe_producers, "DescribeProducers", 0, 0),
    api!(consumer_group_heartbeat, "ConsumerGroupHeartbeat", 0, 1),
    api!(consumer_group_describe, "ConsumerGroupDescribe", 0, 0),
    api!(describe_topic_partitions, "DescribeTopicPartitions", 0, 0),
];

/// Looks up an API by key.
pub fn api_support(key: i16) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|a| a.key == key)
}

/// The name of any API key, for logs.
pub fn api_name(key: i16) -> &'static str {
    api_support(key).map_or("Unknown", |a| a.name)
}

/// A decoded request header (v1 or v2; v0 is only used by ControlledShutdown v0, which sprat does
/// not serve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

impl RequestHeader {
    /// Decodes a header. `flexible` says whether this (API, version) uses header v2, which adds a
    /// tagged-field section. The client id is a classic nullable string in both versions.
    pub fn decode(d: &mut Decoder<'_>, flexible: bool) -> DecodeResult<RequestHeader> {
        let api_key = d.i16()?;
        let api_version = d.i16()?;
        let correlation_id = d.i32()?;
        let client_id = d.nullable_string(false)?;
        if flexible {
            d.skip_tagged_fields()?;
        }
        Ok(RequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id,
        })
    }

    pub fn encode(&self, e: &mut Encoder, flexible: bool) {
        e.i16(self.api_key);
        e.i16(self.api_version);
        e.i32(self.correlation_id);
        e.nullable_string(false, self.client_id.as_deref());
        if flexible {
            e.no_tagged_fields();
        }
    }
}

/// Whether `version` of API `key` uses flexible encodings (request header v2, response header v1).
/// Unknown APIs are treated as not flexible.
pub fn is_flexible(key: i16, version: i16) -> bool {
    match api_support(key) {
        Some(api) => api.first_flexible_version >= 0 && version >= api.first_flexible_version,
        None => false,
    }
}

/// Whether the response to (key, version) carries response header v1 (with tagged fields).
/// ApiVersions always answers with header v0, so that a client can read it before it knows what
/// the broker supports.
pub fn response_header_is_flexible(key: i16, version: i16) -> bool {
    key != api_versions::API_KEY && is_flexible(key, version)
}

/// Writes a response header (v0: correlation id; v1: plus an empty tagged-field section).
pub fn encode_response_header(e: &mut Encoder, correlation_id: i32, flexible: bool) {
    e.i32(correlation_id);
    if flexible {
        e.no_tagged_fields();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_v1_and_v2() {
        let header = RequestHeader {
            api_key: 18,
            api_version: 4,
            correlation_id: 0x1234_5678,
            client_id: Some("kcat".into()),
        };
        let mut e = Encoder::new();
        header.encode(&mut e, true);
        assert_eq!(
            e.buf,
            [
                0, 18, 0, 4, 0x12, 0x34, 0x56, 0x78, 0, 4, b'k', b'c', b'a', b't', 0
            ]
        );
        assert_eq!(
            RequestHeader::decode(&mut Decoder::new(&e.buf), true).unwrap(),
            header
        );
        let mut e = Encoder::new();
        let header = RequestHeader {
            client_id: None,
            ..header
        };
        header.encode(&mut e, false);
        assert_eq!(e.buf, [0, 18, 0, 4, 0x12, 0x34, 0x56, 0x78, 0xff, 0xff]);
        let mut d = Decoder::new(&e.buf);
        assert_eq!(RequestHeader::decode(&mut d, false).unwrap(), header);
        d.finish().unwrap();
    }

    #[test]
    fn response_header_versions() {
        assert!(!response_header_is_flexible(api_versions::API_KEY, 4));
        assert!(response_header_is_flexible(fetch::API_KEY, 12));
        assert!(!response_header_is_flexible(fetch::API_KEY, 11));
        assert!(response_header_is_flexible(produce::API_KEY, 9));
        assert!(response_header_is_flexible(
            describe_topic_partitions::API_KEY,
            0
        ));
        let mut e = Encoder::new();
        encode_response_header(&mut e, 7, true);
        assert_eq!(e.buf, [0, 0, 0, 7, 0]);
    }

    #[test]
    fn supported_table_is_sorted_and_consistent() {
        for pair in SUPPORTED_APIS.windows(2) {
            assert!(pair[0].key < pair[1].key);
        }
        for api in SUPPORTED_APIS {
            assert!(api.min_version <= api.max_version, "{}", api.name);
        }
    }
}
