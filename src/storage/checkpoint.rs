//! The files Kafka keeps at the top of a log directory to start quickly and safely:
//!
//! - `recovery-point-offset-checkpoint`: per partition, the offset below which the log is known to
//!   be on disk. After an unclean shutdown only the segments from there on are recovered.
//! - `log-start-offset-checkpoint`: per partition, the log start offset, which retention and
//!   DeleteRecords move forward (possibly into the middle of a segment).
//! - `.kafka_cleanshutdown`: written last by a clean shutdown and removed at start-up; while it
//!   exists, every log is trusted as it is and nothing is scanned.
//!
//! The offset checkpoints use Kafka's text format (`OffsetCheckpointFile`): a version line `0`, a
//! count line, then one `topic partition offset` line per partition. Every file is written to
//! `<name>.tmp`, fsynced, renamed over the old one and the directory fsynced, so that a crash at
//! any moment leaves the old file or the new one, never a mix. A stray `.tmp` from such a crash
//! is ignored and overwritten by the next write.

use super::log::TopicPartition;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

const CHECKPOINT_VERSION: i32 = 0;

/// Encodes entries in Kafka's offset checkpoint format.
pub fn encode_offset_checkpoint(entries: &[(TopicPartition, i64)]) -> String {
    let mut text = format!("{CHECKPOINT_VERSION}\n{}\n", entries.len());
    for (tp, offset) in entries {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    text
}

/// Parses Kafka's offset checkpoint format, checking the version and that the count matches.
pub fn parse_offset_checkpoint(text: &str) -> Result<HashMap<TopicPartition, i64>, String> {
    let mut lines = text.lines();
    let version = lines.next().ok_or("empty file")?;
    if version.trim() != CHECKPOINT_VERSION.to_string() {
        return Err(format!("unknown checkpoint version {version:?}"));
    }
    let count: usize = lines
        .next()
        .ok_or("no count line")?
        .trim()
        .parse()
        .map_err(|e| format!("bad count line: {e}"))?;
    let mut entries = HashMap::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [topic, partition, offset] = parts[..] else {
            return Err(format!(
                "line {}: expected `topic partition offset`: {line:?}",
                n + 3
            ));
        };
        let partition = partition
            .parse()
            .map_err(|e| format!("line {}: bad partition: {e}", n + 3))?;
        let offset = offset
            .parse()
            .map_err(|e| format!("line {}: bad offset: {e}", n + 3))?;
        entries.insert(TopicPartition::new(topic, partition), offset);
    }
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    Ok(entries)
}

/// Reads an offset checkpoint file. A missing file is an empty checkpoint; an unreadable one is
/// an `InvalidData` error naming the file.
pub fn read_offset_checkpoint(path: &Path) -> io::Result<HashMap<TopicPartition, i64>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    parse_offset_checkpoint(&text).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is malformed: {e}", path.display()),
        )
    })
}

/// Writes an offset checkpoint file atomically.
pub fn write_offset_checkpoint(path: &Path, entries: &[(TopicPartition, i64)]) -> io::Result<()> {
    write_atomically(path, encode_offset_checkpoint(entries).as_bytes())
}

/// The temporary file a checkpoint is written to before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `content` to `<path>.tmp`, fsyncs it, renames it to `path` and fsyncs the directory.
pub fn write_atomically(path: &Path, content: &[u8]) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp)?;
    file.write_all(content)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    sync_parent_dir(path)
}

/// fsyncs the directory holding `path`, so that a create, rename or removal in it is durable.
pub fn sync_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes the clean shutdown marker with the content Kafka 3.9's `CleanShutdownFileHandler`
/// writes: a JSON map of strings.
pub fn write_clean_shutdown_marker(log_dir: &Path, broker_epoch: i64) -> io::Result<()> {
    let content = format!("{{\"broker_epoch\":\"{broker_epoch}\",\"version\":\"0\"}}");
    write_atomically(&log_dir.join(CLEAN_SHUTDOWN_FILE), content.as_bytes())
}

/// Whether the last shutdown was clean.
pub fn had_clean_shutdown(log_dir: &Path) -> bool {
    log_dir.join(CLEAN_SHUTDOWN_FILE).exists()
}

/// Removes the clean shutdown marker (durably), once the logs are loaded: from then on the logs
/// change, and a crash must not be mistaken for a clean shutdown.
pub fn remove_clean_shutdown_marker(log_dir: &Path) -> io::Result<()> {
    match fs::remove_file(log_dir.join(CLEAN_SHUTDOWN_FILE)) {
        Ok(()) => sync_dir(log_dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Forces every file of the file system holding `dir` to disk (Linux `syncfs`), reporting a
/// write-back error of any of them.
pub fn sync_file_system(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = File::open(dir)?;
    // SAFETY: syncfs takes a descriptor, which `handle` keeps open for the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_format_is_kafkas() {
        let entries = vec![
            (TopicPartition::new("orders", 0), 42),
            (TopicPartition::new("orders", 1), 0),
            (
                TopicPartition::new("__consumer_offsets", 17),
                1_234_567_890_123,
            ),
        ];
        let text = encode_offset_checkpoint(&entries);
        assert_eq!(
            text,
            "0\n3\norders 0 42\norders 1 0\n__consumer_offsets 17 1234567890123\n"
        );
        let parsed = parse_offset_checkpoint(&text).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[&TopicPartition::new("orders", 0)], 42);
        assert_eq!(parse_offset_checkpoint("0\n0\n").unwrap().len(), 0);
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("empty", ""),
            ("wrong version", "1\n0\n"),
            ("no count", "0\n"),
            ("count too high", "0\n2\nt 0 1\n"),
            ("count too low", "0\n0\nt 0 1\n"),
            ("missing field", "0\n1\nt 0\n"),
            ("extra field", "0\n1\nt 0 1 2\n"),
            ("bad offset", "0\n1\nt 0 x\n"),
            ("bad partition", "0\n1\nt -x 4\n"),
            ("torn line", "0\n2\nt 0 1\nt 1"),
        ];
        for (name, text) in cases {
            assert!(parse_offset_checkpoint(text).is_err(), "{name}: {text:?}");
        }
    }

    #[test]
    fn a_stray_temp_file_does_not_hide_the_checkpoint() {
        let dir = std::env::temp_dir().join(format!("sprat-checkpoint-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(RECOVERY_POINT_CHECKPOINT_FILE);
        assert!(read_offset_checkpoint(&path).unwrap().is_empty(), "missing");
        let entries = vec![(TopicPartition::new("t", 0), 7)];
        write_offset_checkpoint(&path, &entries).unwrap();
        // A crash between writing the temp file and the rename leaves both.
        fs::write(temp_path(&path), "0\n5\nt 0 9").unwrap();
        assert_eq!(read_offset_checkpoint(&path).unwrap()[&entries[0].0], 7);
        write_offset_checkpoint(&path, &[(TopicPartition::new("t", 0), 8)]).unwrap();
        assert_eq!(read_offset_checkpoint(&path).unwrap()[&entries[0].0], 8);
        assert!(!temp_path(&path).exists());
        write_clean_shutdown_marker(&dir, 0).unwrap();
        assert!(had_clean_shutdown(&dir));
        remove_clean_shutdown_marker(&dir).unwrap();
        assert!(!had_clean_shutdown(&dir));
        remove_clean_shutdown_marker(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
