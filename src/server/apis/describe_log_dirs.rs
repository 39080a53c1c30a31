//! DescribeLogDirs (key 35), versions 0-4: the log directory with each partition's size and
//! offset lag, and (v4) the file system's total and usable bytes.

use super::{HandlerResult, respond};
use crate::broker::BrokerContext;
use crate::protocol::RequestHeader;
use crate::protocol::error_code::ErrorCode;
use crate::protocol::messages::describe_log_dirs::*;
use crate::protocol::wire::Decoder;
use crate::security::acl::{AclOperation, authorized_cluster};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

pub fn handle(ctx: &BrokerContext, header: &RequestHeader, d: &mut Decoder<'_>) -> HandlerResult {
    let version = header.api_version;
    let request = DescribeLogDirsRequest::decode(d, version)?;
    if !authorized_cluster(ctx, AclOperation::Describe) {
        let response = DescribeLogDirsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            ..DescribeLogDirsResponse::default()
        };
        return Ok(respond(header, |e| response.encode(e, version)));
    }
    // Null asks for every partition; otherwise only those named (and present) are listed.
    let wanted: Option<HashSet<(&str, i32)>> = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic.as_str(), p)))
            .collect()
    });
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (tp, partition) in ctx.partitions.read().iter() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&(tp.topic.as_str(), tp.partition)))
        {
            continue;
        }
        topics
            .entry(tp.topic.clone())
            .or_default()
            .push(DescribeLogDirsPartition {
                partition_index: tp.partition,
                partition_size: partition.size_in_bytes() as i64,
                // Kafka's lag of a current replica: how far its end is behind the high
                // watermark, which a single node's never is.
                offset_lag: (partition.high_watermark() - partition.log_end_offset()).max(0),
                is_future_key: false,
            });
    }
    let log_dir = ctx.config.log_dir();
    let (total_bytes, usable_bytes) = file_system_space(log_dir).unwrap_or((-1, -1));
    let result = DescribeLogDirsResult {
        error_code: ErrorCode::None.code(),
        log_dir: std::fs::canonicalize(log_dir)
            .unwrap_or_else(|_| log_dir.to_path_buf())
            .display()
            .to_string(),
        topics: topics
            .into_iter()
            .map(|(name, mut partitions)| {
                partitions.sort_by_key(|p| p.partition_index);
                DescribeLogDirsTopic { name, partitions }
            })
            .collect(),
        total_bytes,
        usable_bytes,
    };
    let response = DescribeLogDirsResponse {
        results: vec![result],
        ..DescribeLogDirsResponse::default()
    };
    Ok(respond(header, |e| response.encode(e, version)))
}

/// The total and available bytes of the file system holding `path` (statvfs).
fn file_system_space(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let fragment = stat.f_frsize as i64;
    Some((
        (stat.f_blocks as i64).saturating_mul(fragment),
        (stat.f_bavail as i64).saturating_mul(fragment),
    ))
}
