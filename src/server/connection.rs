//! One client connection: read a size-prefixed frame, decode the request header, dispatch, write
//! the response, repeat. Requests on a connection are answered strictly in order.
//!
//! Framing rules: a size prefix that is negative or larger than `socket.request.max.bytes` is
//! refused before anything is allocated, and the connection is closed, because the start of the
//! next request can no longer be known. A request for an unknown API or an unsupported version
//! (other than ApiVersions, which answers with error 35) also closes the connection, as Kafka does.
//!
//! Idleness: `connections.max.idle.ms` bounds every read and every write. A client that stops
//! sending mid-frame, or stops reading its responses so that a write cannot progress, is dropped
//! after that long, as Kafka's selector expires a channel without activity. A frame's buffer grows
//! with the bytes that actually arrive, so a client that declares a large frame and trickles it
//! holds its share of `queued.max.request.bytes` but not the memory itself.

use super::apis::{self, Outcome};
use super::limits::{MemoryPool, Reservation};
use crate::broker::BrokerContext;
use crate::protocol::{self, RequestHeader, wire::Decoder};
use byteorder::{BigEndian, ByteOrder};
use log::{debug, trace, warn};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

/// How long a connection waits for request memory before it gives up and closes.
const MEMORY_WAIT: Duration = Duration::from_secs(30);

/// Frames up to this size reuse the connection's buffer; larger ones get a buffer that is freed
/// after the request, so an idle connection never pins a large allocation.
const RETAINED_BUFFER_BYTES: usize = 1 << 20;

/// A frame's buffer first grows to this many bytes, then doubles as its bytes arrive.
const FIRST_READ_BYTES: usize = 64 << 10;

/// The most bytes one read asks for (and zero-fills ahead of it).
const READ_CHUNK_BYTES: usize = 256 << 10;

/// Serves one connection until the peer closes it, it stays idle for `connections.max.idle.ms`,
/// or framing is lost.
pub fn serve(mut stream: TcpStream, peer: String, ctx: Arc<BrokerContext>, pool: Arc<MemoryPool>) {
    let _ = stream.set_nodelay(true);
    let idle = Duration::from_millis(ctx.config.connections_max_idle_ms.max(1));
    let _ = stream.set_read_timeout(Some(idle));
    let _ = stream.set_write_timeout(Some(idle));
    let max_frame = ctx.config.socket_request_max_bytes;
    let mut frame = Vec::new();
    loop {
        let reservation = match read_frame(&mut stream, &mut frame, max_frame, &pool) {
            Ok(Some(r)) => r,
            Ok(None) => {
                debug!("{peer} closed the connection");
                return;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                warn!(
                    "dropping {peer}: idle for more than {} ms (connections.max.idle.ms)",
                    idle.as_millis()
                );
                return;
            }
            Err(e) => {
                warn!("dropping {peer}: {e}");
                return;
            }
        };
        trace!("{peer} request bytes: {:02x?}", frame);
        // A panic here is a bug in sprat: it must cost this connection only.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| handle_frame(&ctx, &peer, &frame)))
            .unwrap_or_else(|_| {
                Outcome::Close(
                    "internal error while handling the request (see the panic above)".into(),
                )
            });
        match outcome {
            Outcome::Respond(response) => {
                trace!("{peer} response bytes: {:02x?}", response);
                if let Err(e) = stream.write_all(&response) {
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) {
                        warn!(
                            "dropping {peer}: a response could not be written for {} ms \
                             (connections.max.idle.ms); the client is not reading",
                            idle.as_millis()
                        );
                    } else {
                        warn!("dropping {peer}: write failed: {e}");
                    }
                    return;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                warn!("closing connection to {peer}: {reason}");
                return;
            }
        }
        if frame.capacity() > RETAINED_BUFFER_BYTES {
            frame = Vec::new();
        }
        drop(reservation);
    }
}

/// Reads one frame into `frame`, reserving its size from the request memory pool first. Returns
/// `Ok(None)` on a clean end of stream before a frame.
fn read_frame(
    stream: &mut TcpStream,
    frame: &mut Vec<u8>,
    max_frame: usize,
    pool: &Arc<MemoryPool>,
) -> io::Result<Option<Reservation>> {
    let mut size_bytes = [0u8; 4];
    let mut read = 0;
    while read < 4 {
        match stream.read(&mut size_bytes[read..]) {
            Ok(0) if read == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a size prefix",
                ));
            }
            Ok(n) => read += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let size = BigEndian::read_i32(&size_bytes);
    if size < 0 || size as usize > max_frame {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame size {size} is outside 0..={max_frame} (socket.request.max.bytes)"),
        ));
    }
    let size = size as usize;
    let Some(reservation) = pool.reserve(size, MEMORY_WAIT) else {
        return Err(io::Error::other(format!(
            "no memory for a {size}-byte request within {} s (queued.max.request.bytes)",
            MEMORY_WAIT.as_secs()
        )));
    };
    read_body(stream, frame, size)?;
    Ok(Some(reservation))
}

/// Reads exactly `size` bytes into `frame`, growing it as they arrive rather than allocating
/// `size` bytes up front.
fn read_body(stream: &mut TcpStream, frame: &mut Vec<u8>, size: usize) -> io::Result<()> {
    frame.clear();
    while frame.len() < size {
        if frame.len() == frame.capacity() {
            let target = (frame.capacity() * 2).max(FIRST_READ_BYTES).min(size);
            frame.reserve_exact(target - frame.len());
        }
        let start = frame.len();
        let end = frame.capacity().min(size).min(start + READ_CHUNK_BYTES);
        frame.resize(end, 0);
        match stream.read(&mut frame[start..]) {
            Ok(0) => {
                frame.truncate(start);
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {start} of {size} bytes of a request"),
                ));
            }
            Ok(n) => frame.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => frame.truncate(start),
            Err(e) => {
                frame.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Decodes the header of one frame and dispatches it. Returns the full response frame.
pub fn handle_frame(ctx: &BrokerContext, peer: &str, frame: &[u8]) -> Outcome {
    if frame.len() < 8 {
        return Outcome::Close(format!(
            "request of {} bytes is too short for a header",
            frame.len()
        ));
    }
    let api_key = BigEndian::read_i16(&frame[0..]);
    let api_version = BigEndian::read_i16(&frame[2..]);
    let correlation_id = BigEndian::read_i32(&frame[4..]);
    let Some(api) = protocol::api_support(api_key) else {
        return Outcome::Close(format!(
            "unknown API key {api_key} (correlation id {correlation_id})"
        ));
    };
    let supported = (api.min_version..=api.max_version).contains(&api_version);
    if !supported && api_key != protocol::messages::api_versions::API_KEY {
        return Outcome::Close(format!(
            "unsupported version {api_version} of {} (supported {}-{})",
            api.name, api.min_version, api.max_version
        ));
    }
    // An ApiVersions request of a version newer than ours is read with the newest header we know.
    let flexible = protocol::is_flexible(api_key, api_version.min(api.max_version));
    let mut d = Decoder::new(frame);
    let header = match RequestHeader::decode(&mut d, flexible) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("malformed {} request header: {e}", api.name)),
    };
    debug!(
        "{peer} {} v{} correlation_id={} client_id={:?} size={}",
        api.name,
        api_version,
        correlation_id,
        header.client_id.as_deref().unwrap_or(""),
        frame.len()
    );
    apis::handle(ctx, &header, &mut d, supported)
}
