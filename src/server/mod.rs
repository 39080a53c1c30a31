//! The socket server: a blocking accept loop that gives every client connection its own named OS
//! thread (`conn-<peer>`), which reads size-prefixed frames, hands each request to the API layer
//! ([`apis`]) and writes the responses back in order.

pub mod apis;
pub mod connection;
pub mod limits;

use crate::broker::BrokerContext;
use limits::{ConnectionLimits, MemoryPool};
use log::{debug, error, warn};
use std::net::TcpListener;
use std::sync::Arc;

/// Kafka's `queued.max.request.bytes` is unbounded by default; sprat bounds the request bytes held
/// in memory at once to this unless configured.
pub const DEFAULT_QUEUED_MAX_REQUEST_BYTES: usize = 512 << 20;

/// Accepts connections until the broker shuts down ([`BrokerContext::shutting_down`]).
pub fn accept_loop(listener: TcpListener, ctx: Arc<BrokerContext>) {
    let limits = ConnectionLimits::new(
        ctx.config.max_connections,
        ctx.config.max_connections_per_ip,
    );
    let pool_bytes = ctx
        .config
        .get("queued.max.request.bytes")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&v| v > 0)
        .map_or(DEFAULT_QUEUED_MAX_REQUEST_BYTES, |v| v as usize);
    let pool = MemoryPool::new(pool_bytes);
    for stream in listener.incoming() {
        if ctx.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            // Dropping the listener refuses further connections.
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Per-connection failures (a peer that reset before accept, out of descriptors)
                // must not stop the broker; back off briefly to avoid a hot loop.
                warn!("accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown".into());
        let slot = match stream.peer_addr().map(|a| limits.acquire(a.ip())) {
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
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{peer}"))
            .spawn(move || {
                let _slot = slot;
                connection::serve(stream, peer, ctx, pool);
            });
        if let Err(e) = spawned {
            error!("could not start a connection thread: {e}");
        }
    }
}
