//! The socket server: a blocking accept loop that gives every client connection its own named OS
//! thread (`conn-<peer>`), which reads size-prefixed frames, hands each request to the API layer
//! ([`apis`]) and writes the responses back in order.

pub mod apis;
pub mod connection;
pub mod limits;
pub mod stream;
pub mod zero_copy;

use crate::broker::BrokerContext;
use crate::security::BoundListener;
use crate::storage::open_files;
use limits::{ConnectionLimits, ConnectionQuotas, MemoryPool};
use log::{debug, error, info, warn};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kafka's `queued.max.request.bytes` is unbounded by default; sprat bounds the request bytes held
/// in memory at once to this unless configured.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 512 << 20;

/// Accepts connections until the broker shuts down ([`BrokerContext::shutting_down`]).
/// `limits` counts the connections of every listener; the limits come from the live
/// configuration, read again whenever it changes.
pub fn accept_loop(
    listener: TcpListener,
    bound: Arc<BoundListener>,
    ctx: Arc<BrokerContext>,
    limits: Arc<ConnectionLimits>,
) {
    let mut live = ctx.live_config();
    let mut quotas = ConnectionQuotas::from_config(&live);
    let pool_bytes = ctx
        .config
        .get("queued.max.request.bytes")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&v| v > 0)
        .map_or(DEFAULT_QUEUED_MAX_REQUEST_BYTES, |v| v as usize);
    let pool = MemoryPool::new(pool_bytes);
    let mut starved = AcceptStarvation::default();
    for stream in listener.incoming() {
        if ctx.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            // Dropping the listener refuses further connections.
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) if open_files::is_out_of_descriptors(&e) => {
                // Connections already served go on; new ones wait in the listen backlog until
                // descriptors free up. Idle segment files give theirs back first.
                std::thread::sleep(starved.failed(&e));
                continue;
            }
            Err(e) => {
                // A peer that reset before accept, and such: not the listener's problem. Back off
                // briefly to avoid a hot loop on anything persistent.
                warn!("accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        starved.recovered();
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown".into());
        let now_live = ctx.live_config();
        if !Arc::ptr_eq(&now_live, &live) {
            quotas = ConnectionQuotas::from_config(&now_live);
            live = now_live;
        }
        let slot = match stream.peer_addr().map(|a| limits.acquire(a.ip(), &quotas)) {
            Ok(Ok(slot)) => slot,
            Ok(Err(reason)) => {
                warn!("refusing connection from {peer}: {reason}");
                continue;
            }
            Err(e) => {
                debug!("connection closed before it could be served: {e}");
                continue;
            }
        };
        let ctx = ctx.clone();
        let pool = pool.clone();
        let bound = bound.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{peer}"))
            .stack_size(CONNECTION_THREAD_STACK_BYTES)
            .spawn(move || {
                let _slot = slot;
                let metrics = ctx.clone();
                let _open = metrics.metrics.connection_opened();
                crate::security::set_current_listener(bound);
                connection::serve(stream, peer, ctx, pool);
            });
        if let Err(e) = spawned {
            error!("could not start a connection thread: {e}");
        }
    }
}

/// The stack of each connection thread. Rust's default (2 MiB) would be reserved 10,000 times
/// over with as many connections; a request's deepest path (decoding nested request fields,
/// the group coordinator) needs a small fraction of this, with room for debug builds, whose
/// frames are several times larger.
pub const CONNECTION_THREAD_STACK_BYTES: usize = 512 << 10;

/// The first pause after `accept` fails for want of descriptors; it doubles up to
/// [`MAX_ACCEPT_BACKOFF`] while they stay short.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// A run of `accept` failures with EMFILE or ENFILE, with a pause between attempts that grows
/// while it lasts. Its start is logged, and its end, but a new run within
/// [`STARVATION_LOG_INTERVAL`] of the last logged one is not: a broker at its limit
/// alternates between failing and accepting one connection per descriptor freed.
#[derive(Default)]
struct AcceptStarvation {
    since: Option<Instant>,
    failures: u64,
    backoff: Duration,
    /// When a run was last logged, and whether the current run was.
    logged_at: Option<Instant>,
    logged: bool,
}

/// The least time between two logged runs of accept failures.
const STARVATION_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl AcceptStarvation {
    /// Counts a failure and returns how long to wait before accepting again.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.failures += 1;
        if self.since.is_some() {
            self.backoff = (self.backoff * 2).min(MAX_ACCEPT_BACKOFF);
            return self.backoff;
        }
        self.since = Some(Instant::now());
        self.backoff = MIN_ACCEPT_BACKOFF;
        let cache = open_files::open_files();
        let closed = cache.shed(cache.stats().open / 2);
        self.logged = self
            .logged_at
            .is_none_or(|at| at.elapsed() >= STARVATION_LOG_INTERVAL);
        if self.logged {
            self.logged_at = Some(Instant::now());
            warn!(
                "accept failed: {e}; existing connections are still served, new ones wait in the backlog (closed {closed} idle segment files; raise the open file limit or lower max.connections)"
            );
        } else {
            debug!("accept failed again: {e} (closed {closed} idle segment files)");
        }
        self.backoff
    }

    /// Notes a successful accept, ending a run of failures.
    fn recovered(&mut self) {
        if let Some(since) = self.since.take()
            && self.logged
        {
            info!(
                "accepting connections again after {} ms ({} attempts failed for want of file descriptors)",
                since.elapsed().as_millis(),
                self.failures
            );
            self.failures = 0;
        }
    }
}
