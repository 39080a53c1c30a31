//! The socket server: a blocking accept loop that gives every client connection its own named OS
//! thread (`conn-<peer>`), which reads size-prefixed frames, hands each request to the API layer
//! ([`apis`]) and writes the responses back in order.

pub mod apis;
pub mod connection;

use crate::broker::BrokerContext;
use log::{error, warn};
use std::net::TcpListener;
use std::sync::Arc;

/// Accepts connections until the listener fails for good.
pub fn accept_loop(listener: TcpListener, ctx: Arc<BrokerContext>) {
    for stream in listener.incoming() {
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
        let ctx = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{peer}"))
            .spawn(move || connection::serve(stream, peer, ctx));
        if let Err(e) = spawned {
            error!("could not start a connection thread: {e}");
        }
    }
}
