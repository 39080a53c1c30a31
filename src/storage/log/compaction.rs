//! The log's side of compaction (Kafka's `UnifiedLog.replaceSegments` and `LogLoader`'s swap
//! handling): swapping a cleaned segment in for its source, and finishing or discarding a swap
//! that a crash interrupted.
//!
//! A cleaned segment has its source's base offset, so a swap replaces one segment's files in
//! place. The sequence, crash-safe at every step:
//! 1. the `log-cleaner` writes and fsyncs `<base>.log.cleaned`, and `<base>.txnindex.cleaned`
//!    when the cleaning removed ABORT markers (a crash: start-up deletes them);
//! 2. the writer renames the index `<base>.txnindex.swap`, then the log `<base>.log.swap`, and
//!    fsyncs the directory (from here on start-up completes the swap: the `.log.swap` file is
//!    whole);
//! 3. the source's files are retired and renamed `.deleted`;
//! 4. `<base>.txnindex.swap` is renamed `<base>.txnindex` (before the log: once the new log and
//!    its indexes are in place the segment is trusted, so its `.txnindex` must already be the
//!    new one), `<base>.log.swap` is renamed `<base>.log`; its indexes are rebuilt from its
//!    batch headers;
//! 5. the new segment is published under the write lock and the `.deleted` files are removed.
//!
//! A cleaned copy with no batch left replaces nothing: its source is removed (unless it is the
//! first segment), as a retention deletion removes one; a crash midway leaves `.deleted` files
//! and index files without a log, which start-up removes.
//!
//! Start-up, before it lists segments, renames each `<base>.log.swap` to `<base>.log` (replacing
//! the source if it is still there) and removes that base's index files so that they are
//! rebuilt; the recovery of that segment rebuilds its `.txnindex` from its markers too, and the
//! loader removes a `.txnindex.swap` left over. Readers that cloned the source keep their open descriptor and its bytes; one whose
//! descriptor the cache had closed gets `NotFound` from the retired file and looks again.

use super::{PartitionLog, sync_dir};
use crate::storage::cleaner::{CLEANED_FILE_SUFFIX, SWAP_FILE_SUFFIX};
use crate::storage::segment::{
    INDEX_FILE_SUFFIX, LOG_FILE_SUFFIX, LogSegment, TIME_INDEX_FILE_SUFFIX,
    parse_segment_file_name, segment_file_name,
};
use crate::storage::txn_index::TXN_INDEX_FILE_SUFFIX;
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

/// The path of a segment's cleaned aborted transaction index, written by the cleaner when it
/// removed ABORT markers.
pub fn cleaned_txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(segment_file_name(base_offset, TXN_INDEX_FILE_SUFFIX) + CLEANED_FILE_SUFFIX)
}

fn txn_index_swap_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(segment_file_name(base_offset, TXN_INDEX_FILE_SUFFIX) + SWAP_FILE_SUFFIX)
}

/// Removes `path`; a missing file is no error.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
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
            remove_if_present(&cleaned_txn_index_path(&dir, base))?;
            return Ok(false);
        };
        if self.offline {
            fs::remove_file(cleaned_path(&dir, base))?;
            remove_if_present(&cleaned_txn_index_path(&dir, base))?;
            return Ok(false);
        }
        if fs::metadata(cleaned_path(&dir, base))?.len() == 0 && self.drop_empty_segment(base)? {
            remove_if_present(&cleaned_txn_index_path(&dir, base))?;
            return Ok(true);
        }
        let new_txn_index = cleaned_txn_index_path(&dir, base).exists();
        if new_txn_index {
            fs::rename(
                cleaned_txn_index_path(&dir, base),
                txn_index_swap_path(&dir, base),
            )?;
        }
        fs::rename(cleaned_path(&dir, base), swap_path(&dir, base))?;
        sync_dir(&dir)?;
        crash_point("after-swap-rename");
        let deleted = source.retire_for_swap()?;
        crash_point("after-source-deleted");
        if new_txn_index {
            // Readers that hold the old index keep its bytes; a closed one looks again.
            source.files()[3].retire();
            fs::rename(
                txn_index_swap_path(&dir, base),
                dir.join(segment_file_name(base, TXN_INDEX_FILE_SUFFIX)),
            )?;
            crash_point("after-txn-index-swapped");
        }
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

impl PartitionLog {
    /// Removes sealed segment `base`, which cleaning emptied, unless it is the first (whose base
    /// is the log start). Reads of offsets in its range then find the next segment's first batch,
    /// as they find the next batch after any gap. Returns whether it was removed.
    fn drop_empty_segment(&mut self, base: i64) -> io::Result<bool> {
        let removed = {
            let mut state = self.partition.state.write();
            match state.segments.iter().position(|s| s.base_offset() == base) {
                Some(i) if i > 0 && i < state.segments.len() - 1 => state.segments.remove(i),
                _ => return Ok(false),
            }
        };
        removed.delete()?;
        fs::remove_file(cleaned_path(&self.partition.dir, base))?;
        // As Kafka does when it deletes segments: keep the snapshots at segment bases and the
        // latest one.
        super::remove_stray_snapshots(&self.partition)?;
        self.dir_dirty = true;
        info!(
            "{}: removed segment {base}, which cleaning emptied",
            self.partition.topic_partition
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
            remove_if_present(&dir.join(segment_file_name(base, suffix)))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::cleaner::{OffsetMap, TxnCleaning, clean_segment, records};
    use crate::storage::log::{LoadOptions, LogConfig, TopicPartition};
    use crate::storage::record_batch::{BatchHeader, Batches, Record, build_batch};
    use std::collections::HashMap;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sprat-compaction-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn keyed(key: &str, value: Option<&str>) -> Vec<u8> {
        build_batch(
            &BatchHeader::default(),
            &[Record {
                key: Some(key.as_bytes().to_vec()),
                value: value.map(|v| v.as_bytes().to_vec()),
                ..Record::default()
            }],
        )
    }

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 300,
            index_interval_bytes: 1,
            max_index_size: 4096,
            ..LogConfig::default()
        }
    }

    /// Every (offset, key) in the log, read batch by batch from the start.
    fn contents(log: &PartitionLog) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let read = log.partition.read(offset, 1 << 20, true).unwrap().unwrap();
            let Some(last) = Batches::new(&read.records)
                .filter_map(Result::ok)
                .map(|b| {
                    for r in records(&b).unwrap() {
                        out.push((r.offset, String::from_utf8_lossy(r.key.unwrap()).into()));
                    }
                    b.last_offset()
                })
                .last()
            else {
                break;
            };
            offset = last + 1;
        }
        out
    }

    /// Writes a,b,a,b,... as one-record batches, then cleans and swaps every sealed segment.
    fn cleaned_log(dir: &Path) -> PartitionLog {
        let mut log = PartitionLog::open(dir, TopicPartition::new("t", 0), config()).unwrap();
        for i in 0..20 {
            let key = if i % 2 == 0 { "a" } else { "b" };
            log.append(&mut keyed(key, Some("v"))).unwrap();
        }
        let sealed = log.partition.sealed_segments();
        assert!(sealed.len() >= 2);
        let mut map = OffsetMap::new(1 << 20);
        for s in &sealed {
            assert!(
                crate::storage::cleaner::map_segment(
                    s,
                    &mut map,
                    &mut HashMap::new(),
                    &mut TxnCleaning::default()
                )
                .unwrap()
            );
        }
        for s in &sealed {
            clean_segment(
                s,
                &cleaned_path(dir, s.base_offset()),
                &map,
                &HashMap::new(),
                false,
                &mut TxnCleaning::default(),
            )
            .unwrap();
            let swapped = log
                .replace_cleaned_segment(&CleanedSegment {
                    base_offset: s.base_offset(),
                    source_size: s.size(),
                })
                .unwrap();
            assert!(swapped);
        }
        log
    }

    #[test]
    fn swapped_segments_keep_the_latest_records_at_their_offsets_across_recovery() {
        let dir = temp_dir("swap");
        let log = cleaned_log(&dir);
        let end = log.log_end_offset();
        let active_base = *log.partition.segment_base_offsets().last().unwrap();
        let read = contents(&log);
        // Below the active segment only the latest a and b are left; the active one is untouched.
        let sealed: Vec<_> = read.iter().filter(|(o, _)| *o < active_base).collect();
        assert!(sealed.len() <= 2, "{read:?}");
        assert!(read.iter().all(|(o, k)| (o % 2 == 0) == (k == "a")));
        assert_eq!(read.last().unwrap().0, end - 1);
        drop(log);
        // An unclean start recovers every segment: the gaps are accepted, nothing is cut.
        let reopened = PartitionLog::load(
            &dir,
            TopicPartition::new("t", 0),
            config(),
            LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(reopened.log_end_offset(), end);
        assert_eq!(contents(&reopened), read);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_swap_keeps_the_aborted_transaction_index() {
        let dir = temp_dir("swap-txnindex");
        let mut log = PartitionLog::open(&dir, TopicPartition::new("t", 0), config()).unwrap();
        for key in ["a", "b"] {
            log.append(&mut keyed(key, Some("v"))).unwrap();
        }
        // An abort with no transaction open here: an entry at the marker's offset, in the
        // segment the marker (written now, long after the keyed batches' timestamps) rolled.
        let marker = log.append_marker(5, 0, false, 0, 0).unwrap().first_offset;
        for i in 0..20 {
            log.append(&mut keyed(if i % 2 == 0 { "a" } else { "b" }, Some("v")))
                .unwrap();
        }
        let index = dir.join(segment_file_name(
            marker,
            crate::storage::txn_index::TXN_INDEX_FILE_SUFFIX,
        ));
        let before = fs::read(&index).unwrap();
        assert_eq!(before.len(), 34);
        let sealed = log.partition.sealed_segments();
        let mut map = OffsetMap::new(1 << 20);
        for s in &sealed {
            crate::storage::cleaner::map_segment(
                s,
                &mut map,
                &mut HashMap::new(),
                &mut TxnCleaning::default(),
            )
            .unwrap();
        }
        let source = sealed.iter().find(|s| s.base_offset() == marker).unwrap();
        clean_segment(
            source,
            &cleaned_path(&dir, marker),
            &map,
            &HashMap::new(),
            false,
            &mut TxnCleaning::default(),
        )
        .unwrap();
        let swapped = log
            .replace_cleaned_segment(&CleanedSegment {
                base_offset: marker,
                source_size: source.size(),
            })
            .unwrap();
        assert!(swapped);
        assert_eq!(fs::read(&index).unwrap(), before);
        let found = log.partition.aborted_transactions(0, marker + 1).unwrap();
        assert_eq!(
            found
                .iter()
                .map(|a| (a.producer_id, a.last_offset))
                .collect::<Vec<_>>(),
            vec![(5, marker)]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn start_up_completes_a_swap_a_crash_interrupted() {
        let dir = temp_dir("interrupted");
        let log = cleaned_log(&dir);
        let expected = contents(&log);
        let first = log.partition.sealed_segments()[0].clone();
        drop(log);
        // As if the crash came between the rename to .swap and the rename to .log, with the
        // source still in place: the source holds every record, the .swap file only the latest.
        let log_path = dir.join(segment_file_name(first.base_offset(), LOG_FILE_SUFFIX));
        fs::rename(&log_path, swap_path(&dir, first.base_offset())).unwrap();
        let mut source = Vec::new();
        for i in 0..first_segment_records(&dir) {
            let key = if i % 2 == 0 { "a" } else { "b" };
            let mut b = keyed(key, Some("v"));
            crate::storage::record_batch::set_base_offset(&mut b, i);
            source.extend_from_slice(&b);
        }
        fs::write(&log_path, &source).unwrap();
        fs::write(
            dir.join(format!("{}.cleaned", segment_file_name(9, LOG_FILE_SUFFIX))),
            b"junk",
        )
        .unwrap();
        let reopened = PartitionLog::load(
            &dir,
            TopicPartition::new("t", 0),
            config(),
            LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(contents(&reopened), expected);
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".swap") || n.ends_with(".cleaned"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// How many offsets the first segment spans (the second segment's base).
    fn first_segment_records(dir: &Path) -> i64 {
        let mut bases: Vec<i64> = fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                parse_segment_file_name(&e.unwrap().file_name().into_string().unwrap(), ".log")
            })
            .collect();
        bases.sort_unstable();
        bases[1]
    }
}
