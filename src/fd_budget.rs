//! The process's file-descriptor budget: how many descriptors it may hold (RLIMIT_NOFILE, raised
//! from the soft to the hard limit at start-up, as Kafka's deployment guides ask operators to do
//! by hand) and how they are shared between segment files and client connections.
//!
//! Segment files go through a bounded cache ([`crate::storage::open_files`]) sized here; every
//! other descriptor (sockets, the listener, checkpoint and snapshot files, which are open only
//! while written) comes from what is left. With `max.connections` set, the connections get that
//! many; without it, the cache takes a quarter of the limit (at most
//! [`MAX_DEFAULT_CACHE`]) and the connections the rest.

use log::{info, warn};

/// Descriptors kept aside for what is neither a segment file nor a connection: standard streams,
/// the listener, the metadata log's snapshot and checkpoint files, files opened briefly during
/// recovery, `/proc` reads.
pub const RESERVED: usize = 64;

/// The largest cache chosen without `sprat.open.files.cache.size`: beyond this many open segment
/// files the hit rate gains little and the kernel memory for them grows.
pub const MAX_DEFAULT_CACHE: usize = 16_384;

/// The smallest cache: below this, a fetch over a few partitions would thrash it.
pub const MIN_CACHE: usize = 16;

/// The soft and hard RLIMIT_NOFILE before and after [`raise_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and logs both. On failure the soft limit stays
/// as it is.
pub fn raise_limit() -> Limits {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let e = std::io::Error::last_os_error();
        warn!("cannot read the open file limit ({e}); assuming 1024");
        return Limits {
            soft_before: 1024,
            soft: 1024,
            hard: 1024,
        };
    }
    let before = limit.rlim_cur;
    let hard = limit.rlim_max;
    let mut soft = before;
    if before < hard {
        let raised = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            soft = hard;
        } else {
            let e = std::io::Error::last_os_error();
            warn!("cannot raise the open file limit from {before} to {hard}: {e}");
        }
    }
    let show = |v: u64| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    info!(
        "open file limit: soft {} (was {}), hard {}",
        show(soft),
        show(before),
        show(hard)
    );
    Limits {
        soft_before: before,
        soft,
        hard,
    }
}

/// How many segment files may be open at once, given the descriptor limit, `max.connections`
/// (`usize::MAX`-like when unset) and `sprat.open.files.cache.size` when set.
pub fn cache_capacity(limit: u64, max_connections: usize, configured: Option<usize>) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let usable = limit.saturating_sub(RESERVED);
    let capacity = match configured {
        Some(n) => n,
        // Kafka's default max.connections, Int.MaxValue, means no limit.
        None if max_connections < i32::MAX as usize && max_connections < usable => {
            (usable - max_connections).min(MAX_DEFAULT_CACHE.max(usable / 4))
        }
        None => (usable / 4).min(MAX_DEFAULT_CACHE),
    };
    capacity.max(MIN_CACHE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_takes_a_quarter_without_a_connection_limit() {
        let unlimited = i32::MAX as usize;
        assert_eq!(cache_capacity(1024, unlimited, None), (1024 - RESERVED) / 4);
        assert_eq!(
            cache_capacity(16_384, unlimited, None),
            (16_384 - RESERVED) / 4
        );
        assert_eq!(cache_capacity(1 << 20, unlimited, None), MAX_DEFAULT_CACHE);
        assert_eq!(
            cache_capacity(libc::RLIM_INFINITY, unlimited, None),
            MAX_DEFAULT_CACHE
        );
        assert_eq!(cache_capacity(32, unlimited, None), MIN_CACHE);
    }

    #[test]
    fn connections_get_what_max_connections_asks_for() {
        assert_eq!(
            cache_capacity(16_384, 10_000, None),
            16_384 - RESERVED - 10_000
        );
        // A small connection limit leaves the rest to the cache, within reason.
        assert_eq!(
            cache_capacity(1 << 20, 100, None),
            (1 << 20) / 4 - RESERVED / 4
        );
        assert_eq!(cache_capacity(1024, 5000, None), (1024 - RESERVED) / 4);
        assert_eq!(cache_capacity(1024, 5000, Some(500)), 500);
    }
}
