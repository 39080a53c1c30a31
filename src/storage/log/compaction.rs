//! The log's side of compaction (Kafka's `UnifiedLog.replaceSegments` and `LogLoader`'s swap
//! handling): swapping a cleaned segment in for its source, and finishing or discarding a swap
//! that a crash interrupted.
//!
//! A cleaned segment has its source's base offset, so a swap replaces one segment's files in
//! place. The sequence, crash-safe at every step:
//! 1. the `log-cleaner` writes and fsyncs `<base>.log.cleaned` (a crash: start-up deletes it);
//! 2. the writer renames it `<base>.log.swap` and fsyncs the directory (from here on start-up
//!    completes the swap: the `.swap` file is whole);
//! 3. the source's files are retired and renamed `.deleted`;
//! 4. `<base>.log.swap` is renamed `<base>.log`; its indexes are rebuilt from its batch headers;
//! 5. the new segment is published under the write lock and the `.deleted` files are removed.
//!
//! Start-up, before it lists segments, renames each `<base>.log.swap` to `<base>.log` (replacing
//! the source if it is still there) and removes that base's index files so that they are
//! rebuilt. Readers that cloned the source keep their open descriptor and its bytes; one whose
//! descriptor the cache had closed gets `NotFound` from the retired file and looks again.

use super::{PartitionLog, sync_dir};
use crate::storage::cleaner::{CLEANED_FILE_SUFFIX, SWAP_FILE_SUFFIX};
use crate::storage::segment::{
    INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, LogSegment, TIME_INDEX_FILE_SUFFIX,
    parse_segment_file_name, segment_file_name,
};
use log::{debug, info};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The test-only hook that kills the broker at a named step of a swap
/// (`SPRAT_TEST_CRASH_POINT`), so that tests can prove each step is crash-safe.
pub const CRASH_POINT_ENV: &str = "SPRAT_TEST_CRASH_POINT";

/// A cleaned copy of one sealed segment, written by the cleaner.
#[derive(Debug, Clone)]
pub struct CleanedSegment {
    pub base_offset: i64,
    /// The source segment's size when it was read: a segment that changed meanwhile (it cannot,
    /// sealed segments are never written, but retention may have deleted it) is not replaced.
    pub source_size: u64,
}

/// The path of a segment's `.cleaned` log file.
pub fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(segment_file_name(base_offset, LOG_FILE_SUFFIX) + CLEANED_FILE_SUFFIX)
}

fn swap_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(segment_file_name(base_offset, LOG_FILE_SUFFIX) + SWAP_FILE_SUFFIX)
}

/// Kills the process at `point` when the test hook names it.
fn crash_point(point: &str) {
    if std::env::var(CRASH_POINT_ENV).is_ok_and(|p| p == point) {
        log::error!("{CRASH_POINT_ENV}={point}: killing the broker");
        // SAFETY: kill(2) with our own pid and SIGKILL has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

impl PartitionLog {
    /// Swaps the cleaned copy of segment `cleaned.base_offset` in (see the module
    /// documentation). Returns false, removing the `.cleaned` file, when the source is no longer
    /// a sealed segment of this size.
    pub fn replace_cleaned_segment(&mut self, cleaned: &CleanedSegment) -> io::Result<bool> {
        let dir = self.partition.dir.clone();
        let base = cleaned.base_offset;
        let source = {
            let state = self.partition.state.read();
            let last = state.segments.len() - 1;
            state
                .segments
                .iter()
                .position(|s| s.base_offset() == base)
                .filter(|&i| i < last && state.segments[i].size() == cleaned.source_size)
                .map(|i| state.segments[i].clone())
        };
        let Some(source) = source else {
            debug!(
                "{}: segment {base} changed while it was cleaned; discarding the cleaned copy",
                self.partition.topic_partition
            );
            fs::remove_file(cleaned_path(&dir, base))?;
            return Ok(false);
        };
        if self.offline {
            fs::remove_file(cleaned_path(&dir, base))?;
            return Ok(false);
        }
        fs::rename(cleaned_path(&dir, base), swap_path(&dir, base))?;
        sync_dir(&dir)?;
        crash_point("after-swap-rename");
        let deleted = source.retire_for_swap()?;
        crash_point("after-source-deleted");
        fs::rename(
            swap_path(&dir, base),
            dir.join(segment_file_name(base, LOG_FILE_SUFFIX)),
        )?;
        let mut segment = LogSegment::open_for_recovery(&dir, base, &self.config, super::now_ms())?;
        segment.recover(self.config.index_interval_bytes, i64::MAX)?;
        segment.flush(true)?;
        sync_dir(&dir)?;
        crash_point("after-swap-complete");
        let size = segment.size();
        {
            let mut state = self.partition.state.write();
            let i = state
                .segments
                .iter()
                .position(|s| s.base_offset() == base)
                .expect("only the writer removes segments");
            state.segments[i] = segment;
        }
        for path in deleted {
            fs::remove_file(path)?;
        }
        info!(
            "{}: swapped in cleaned segment {base}: {} -> {size} bytes",
            self.partition.topic_partition, cleaned.source_size
        );
        Ok(true)
    }
}

/// Completes the swaps a crash interrupted: each `<base>.log.swap` becomes `<base>.log`, and
/// that base's index files are removed so that the loader rebuilds them. Called by the loader
/// before it lists the directory.
pub(super) fn complete_swaps(dir: &Path, tp: &impl std::fmt::Display) -> io::Result<()> {
    let mut swapped = false;
    for entry in fs::read_dir(dir)? {
        let Ok(name) = entry?.file_name().into_string() else {
            continue;
        };
        let Some(base) = name
            .strip_suffix(SWAP_FILE_SUFFIX)
            .and_then(|n| parse_segment_file_name(n, LOG_FILE_SUFFIX))
        else {
            continue;
        };
        info!("{tp}: completing the interrupted swap of cleaned segment {base}");
        for suffix in [INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX] {
            match fs::remove_file(dir.join(segment_file_name(base, suffix))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        fs::rename(
            dir.join(&name),
            dir.join(segment_file_name(base, LOG_FILE_SUFFIX)),
        )?;
        swapped = true;
    }
    if swapped {
        sync_dir(dir)?;
    }
    Ok(())
}
