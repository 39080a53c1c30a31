//! The broker's budget of open segment files: a bounded cache of file descriptors, closed least
//! recently used first, as brokers built for many partitions keep it (Redpanda's open file handle
//! cache, Kafka's `LazyIndex` for the indexes).
//!
//! A [`SegmentFile`] names a segment's `.log`, `.index` or `.timeindex` file and opens it only
//! when somebody reads or writes it. Every open one is counted against [`OpenFiles`]'s capacity;
//! opening one more than the capacity closes the least recently used ones. So the descriptors the
//! logs hold are bounded by the capacity, however many partitions and segments there are: a log
//! directory with 10,000 idle partitions loads and serves within a small descriptor budget, and
//! the descriptors left over go to client connections.
//!
//! Closing a cached descriptor never disturbs a reader: [`SegmentFile::get`] hands out an
//! `Arc<File>`, and a reader that holds one keeps the descriptor open until it drops it, so the
//! process may briefly hold more than the capacity (by the reads in flight). Nothing is lost by
//! closing: written bytes belong to the file, not the descriptor, and `fsync` through a new
//! descriptor forces them to disk.
//!
//! When `open` fails for want of descriptors (EMFILE, ENFILE), half the cache is closed and the
//! open is tried once more; if that fails too, the error goes to the one request that needed the
//! file.
//!
//! Locking: each file's slot has its own mutex, held while it is opened; the cache's list of
//! open slots has another. A slot's lock may be held while taking the list's, never the other way
//! round: eviction only `try_lock`s a slot and skips a busy one (it is in use, so not idle).

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// The capacity until the broker sets one from its descriptor limit
/// ([`OpenFiles::set_capacity`]); also what unit tests run with.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The cache every [`SegmentFile`] counts against: one per process, like the descriptor table.
static OPEN_FILES: OpenFiles = OpenFiles::new(DEFAULT_CAPACITY);

/// The process's cache of open segment files.
pub fn open_files() -> &'static OpenFiles {
    &OPEN_FILES
}

/// Counters for the metrics and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesStats {
    pub capacity: usize,
    /// Descriptors the cache holds now.
    pub open: usize,
    /// Files opened since start-up (cache misses).
    pub opened: u64,
    /// Descriptors closed to stay within the capacity.
    pub evicted: u64,
}

/// See the module documentation.
pub struct OpenFiles {
    capacity: AtomicUsize,
    open: AtomicUsize,
    clock: AtomicU64,
    opened: AtomicU64,
    evicted: AtomicU64,
    /// The slots that hold a descriptor (and some that no longer do, pruned when evicting).
    slots: Mutex<Vec<Weak<SegmentFile>>>,
}

impl OpenFiles {
    const fn new(capacity: usize) -> OpenFiles {
        OpenFiles {
            capacity: AtomicUsize::new(capacity),
            open: AtomicUsize::new(0),
            clock: AtomicU64::new(1),
            opened: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Sets how many descriptors the cache may hold (at least 8), closing the excess.
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(8), Ordering::Relaxed);
        self.evict_over_capacity();
    }

    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> OpenFilesStats {
        OpenFilesStats {
            capacity: self.capacity(),
            open: self.open.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a descriptor that `slot` now holds, closing idle ones if that passes the capacity.
    fn admit(&self, slot: &Arc<SegmentFile>) {
        self.opened.fetch_add(1, Ordering::Relaxed);
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.slots.lock().push(Arc::downgrade(slot));
        if open > self.capacity() {
            self.evict_over_capacity();
        }
    }

    /// Closes the least recently used descriptors until the cache holds at most its capacity
    /// less a sixteenth (so that eviction runs once per many opens, not on every one).
    fn evict_over_capacity(&self) {
        let capacity = self.capacity();
        if self.open.load(Ordering::Relaxed) > capacity {
            self.shed(capacity - capacity / 16);
        }
    }

    /// Closes the least recently used descriptors until at most `keep` remain (slots in use
    /// right now are skipped). Returns how many were closed.
    pub fn shed(&self, keep: usize) -> usize {
        let mut slots = self.slots.lock();
        // Drop the entries of slots that are gone or closed, and note when the rest were used.
        let mut live: Vec<(u64, Arc<SegmentFile>)> = Vec::with_capacity(slots.len());
        for weak in slots.drain(..) {
            if let Some(slot) = weak.upgrade()
                && slot.maybe_open()
            {
                live.push((slot.last_used.load(Ordering::Relaxed), slot));
            }
        }
        let mut closed = 0;
        if live.len() > keep {
            let excess = live.len() - keep;
            live.select_nth_unstable_by_key(excess - 1, |(used, _)| *used);
            live[..excess].sort_unstable_by_key(|(used, _)| *used);
            for (_, slot) in &live[..excess] {
                if slot.try_close() {
                    closed += 1;
                }
            }
        }
        slots.extend(
            live.iter()
                .filter(|(_, s)| s.maybe_open())
                .map(|(_, s)| Arc::downgrade(s)),
        );
        drop(slots);
        self.evicted.fetch_add(closed as u64, Ordering::Relaxed);
        closed
    }
}

/// One segment file, opened on first use and closed when the cache needs its descriptor. See the
/// module documentation.
pub struct SegmentFile {
    cache: &'static OpenFiles,
    path: PathBuf,
    last_used: AtomicU64,
    file: Mutex<Option<Arc<File>>>,
    /// Written since the last [`SegmentFile::sync`].
    unsynced: AtomicBool,
    /// Held across a sync, so that a second syncer waits for the first one's fsync to finish
    /// instead of taking the cleared flag as proof that the bytes are on disk.
    syncing: Mutex<()>,
    /// Written since the last [`SegmentFile::take_written_since_trim`].
    written: AtomicBool,
    /// Replaced by another file at the same path (a cleaned segment): never opened again.
    retired: AtomicBool,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFile")
            .field("path", &self.path)
            .field("open", &self.is_open())
            .finish()
    }
}

impl SegmentFile {
    /// A file that exists and is opened (read-write) when first used.
    pub fn closed(path: PathBuf) -> Arc<SegmentFile> {
        SegmentFile::closed_in(&OPEN_FILES, path)
    }

    fn closed_in(cache: &'static OpenFiles, path: PathBuf) -> Arc<SegmentFile> {
        Arc::new(SegmentFile {
            cache,
            path,
            last_used: AtomicU64::new(0),
            file: Mutex::new(None),
            unsynced: AtomicBool::new(false),
            syncing: Mutex::new(()),
            written: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        })
    }

    /// A file just opened (typically created) by the caller, counted against the cache.
    pub fn opened(path: PathBuf, file: File) -> Arc<SegmentFile> {
        SegmentFile::opened_in(&OPEN_FILES, path, file)
    }

    fn opened_in(cache: &'static OpenFiles, path: PathBuf, file: File) -> Arc<SegmentFile> {
        let slot = Arc::new(SegmentFile {
            cache,
            path,
            last_used: AtomicU64::new(cache.tick()),
            file: Mutex::new(Some(Arc::new(file))),
            // Just created or opened by the caller: not known to be on disk.
            unsynced: AtomicBool::new(true),
            syncing: Mutex::new(()),
            written: AtomicBool::new(false),
            retired: AtomicBool::new(false),
        });
        cache.admit(&slot);
        slot
    }

    /// Creates (or empties) the file at `path` and returns it open.
    pub fn create(path: PathBuf) -> io::Result<Arc<SegmentFile>> {
        let file = open_with_retry(&OPEN_FILES, &path, |p| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(p)
        })?;
        Ok(SegmentFile::opened(path, file))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opening it if the cache had closed it. The error of a failed open names
    /// the file.
    pub fn get(self: &Arc<Self>) -> io::Result<Arc<File>> {
        self.last_used.store(self.cache.tick(), Ordering::Relaxed);
        let mut file = self.file.lock();
        if let Some(f) = &*file {
            return Ok(f.clone());
        }
        if self.retired.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: replaced by a cleaned segment", self.path.display()),
            ));
        }
        let opened = open_with_retry(self.cache, &self.path, |p| {
            OpenOptions::new().read(true).write(true).open(p)
        })
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))?;
        let opened = Arc::new(opened);
        *file = Some(opened.clone());
        // Lock order: this slot, then the cache's list (see the module documentation).
        self.cache.admit(self);
        drop(file);
        Ok(opened)
    }

    /// Notes that the file is about to be written (call before writing, so that a failed write
    /// still counts).
    pub fn mark_written(&self) {
        self.unsynced.store(true, Ordering::Release);
        self.written.store(true, Ordering::Release);
    }

    /// Whether the file was written since the last call (for trimming an index).
    pub fn take_written_since_trim(&self) -> bool {
        self.written.swap(false, Ordering::AcqRel)
    }

    /// fsyncs the file if it was written (or created) since its last sync; a file that was only
    /// read is not opened for this. `data_only` uses `fdatasync`.
    pub fn sync(self: &Arc<Self>, data_only: bool) -> io::Result<()> {
        let _syncing = self.syncing.lock();
        if !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = match self.get() {
            Ok(file) => file,
            Err(e) => {
                self.unsynced.store(true, Ordering::Release);
                return Err(io::Error::new(e.kind(), OpenFailed(e.to_string())));
            }
        };
        let result = if data_only {
            file.sync_data()
        } else {
            file.sync_all()
        };
        if result.is_err() {
            self.unsynced.store(true, Ordering::Release);
        }
        result
    }

    /// Notes that the file is on disk by other means (a `syncfs` of its file system).
    pub fn mark_synced(&self) {
        self.unsynced.store(false, Ordering::Release);
    }

    /// Whether the cache holds a descriptor for this file now.
    pub fn is_open(&self) -> bool {
        self.file.lock().is_some()
    }

    /// Closes the cached descriptor (readers holding the file keep theirs), as before the file is
    /// renamed or removed.
    pub fn close(&self) {
        if self.file.lock().take().is_some() {
            self.cache.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Marks the file as replaced by another at its path (a cleaned segment swapped in): the
    /// descriptor it holds stays usable until the cache closes it, after which a reader that
    /// still holds this slot gets `NotFound` instead of the new file's bytes, and looks the
    /// segment up again.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether the slot holds a descriptor, or is busy (its lock is held, perhaps by the thread
    /// that is evicting from inside [`SegmentFile::get`]), which counts as holding one.
    fn maybe_open(&self) -> bool {
        self.file.try_lock().is_none_or(|file| file.is_some())
    }

    /// Closes the descriptor unless another thread is using the slot right now.
    fn try_close(&self) -> bool {
        let Some(mut file) = self.file.try_lock() else {
            return false;
        };
        if file.take().is_some() {
            self.cache.open.fetch_sub(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

impl Drop for SegmentFile {
    fn drop(&mut self) {
        if self.file.get_mut().take().is_some() {
            self.cache.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// The error of a [`SegmentFile::sync`] that could not open the file: unlike a failed fsync it
/// says nothing about the data (no write-back error was consumed), so the sync can simply be
/// tried again later.
#[derive(Debug)]
pub struct OpenFailed(String);

impl std::fmt::Display for OpenFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot open the file to fsync it: {}", self.0)
    }
}

impl std::error::Error for OpenFailed {}

/// Whether `e` is an [`OpenFailed`].
pub fn is_open_failure(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OpenFailed>())
}

/// Whether an error means the process or the system is out of file descriptors.
pub fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// Opens `path`; when the process is out of descriptors, closes half the cache and tries once
/// more.
fn open_with_retry(
    cache: &OpenFiles,
    path: &Path,
    open: impl Fn(&Path) -> io::Result<File>,
) -> io::Result<File> {
    match open(path) {
        Err(e) if is_out_of_descriptors(&e) => {
            let open_now = cache.open.load(Ordering::Relaxed);
            let closed = cache.shed(open_now / 2);
            log::warn!(
                "out of file descriptors opening {}: closed {closed} cached segment files and trying again",
                path.display()
            );
            open(path)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sprat-open-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn files_open_lazily_and_reopen_after_eviction() {
        let dir = temp_dir("lazy");
        let path = dir.join("a.log");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"hello")
            .unwrap();
        let slot = SegmentFile::closed(path);
        assert!(!slot.is_open());
        let mut buf = [0u8; 5];
        slot.get().unwrap().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(slot.is_open());
        slot.close();
        assert!(!slot.is_open());
        slot.get().unwrap().write_all_at(b"J", 0).unwrap();
        slot.get().unwrap().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"Jello");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn shedding_closes_the_least_recently_used_first() {
        let dir = temp_dir("lru");
        let cache: &'static OpenFiles = Box::leak(Box::new(OpenFiles::new(100)));
        let slots: Vec<_> = (0..6)
            .map(|i| {
                let path = dir.join(format!("{i}.log"));
                SegmentFile::opened_in(cache, path.clone(), File::create(path).unwrap())
            })
            .collect();
        // Use 0, 2 and 4 after the others: they are the most recent.
        for i in [0, 2, 4] {
            slots[i].get().unwrap();
        }
        assert_eq!(cache.stats().open, 6);
        assert_eq!(cache.shed(3), 3);
        let open: Vec<bool> = slots.iter().map(|s| s.is_open()).collect();
        assert_eq!(open, [true, false, true, false, true, false]);
        // Reopening one counts against the capacity again; dropping slots gives theirs back.
        slots[1].get().unwrap();
        assert_eq!(cache.stats().open, 4);
        assert_eq!(cache.stats().evicted, 3);
        drop(slots);
        assert_eq!(cache.stats().open, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn opening_past_the_capacity_closes_idle_files() {
        let dir = temp_dir("capacity");
        let cache: &'static OpenFiles = Box::leak(Box::new(OpenFiles::new(16)));
        let slots: Vec<_> = (0..40)
            .map(|i| {
                let path = dir.join(format!("{i}.log"));
                SegmentFile::opened_in(cache, path.clone(), File::create(path).unwrap())
            })
            .collect();
        assert!(cache.stats().open <= 16, "{:?}", cache.stats());
        // The newest is still open, the oldest is not.
        assert!(slots[39].is_open());
        assert!(!slots[0].is_open());
        // Every one still works.
        for s in &slots {
            s.get().unwrap();
            assert!(cache.stats().open <= 16, "{:?}", cache.stats());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_sync_that_cannot_open_the_file_is_not_an_fsync_failure() {
        let slot =
            SegmentFile::closed(PathBuf::from("/nonexistent/sprat/00000000000000000001.log"));
        // Never written: nothing to sync, nothing opened.
        slot.sync(true).unwrap();
        slot.mark_written();
        let e = slot.sync(true).unwrap_err();
        assert!(is_open_failure(&e), "{e}");
        // Still owed: the next sync tries again.
        assert!(is_open_failure(&slot.sync(true).unwrap_err()));
        assert!(!is_open_failure(&io::Error::other("fsync: EIO")));
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let slot =
            SegmentFile::closed(PathBuf::from("/nonexistent/sprat/00000000000000000000.log"));
        let e = slot.get().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("00000000000000000000.log"), "{e}");
    }
}
