//! One client connection: read a size-prefixed frame, decode the request header, dispatch, write
//! the response, repeat. Requests on a connection are answered strictly in order. On an SSL or
//! SASL_SSL listener the frames travel inside TLS ([`super::stream`]), whose handshake comes
//! first.
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

use super::apis::{self, Deferred, Outcome};
use super::limits::{MemoryPool, Reservation};
use super::stream::ClientStream;
use super::zero_copy;
use crate::broker::BrokerContext;
use crate::protocol::{self, RequestHeader, wire::Decoder};
use crate::security::sasl::{AUTHENTICATION_TIMEOUT, SaslSession};
use crate::security::{BoundListener, tls};
use byteorder::{BigEndian, ByteOrder};
use log::{debug, info, trace, warn};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a connection waits for request memory before it gives up and closes.
const MEMORY_WAIT: Duration = Duration::from_secs(30);

/// The most produce requests of one connection waiting for the `log-writer` at once.
const MAX_IN_FLIGHT: usize = 8;

/// A frame's buffer starts at most this large (a typical produce fits) and grows as its bytes
/// arrive. Frames up to this size reuse the connection's buffer; larger ones get a buffer that
/// is freed after the request, so an idle connection never pins a large allocation.
const RETAINED_BUFFER_BYTES: usize = 1 << 20;

thread_local! {
    /// The client address of the connection this thread serves, as Kafka shows client hosts.
    static CLIENT_HOST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The host of the client whose request this thread is handling (`/127.0.0.1`).
pub fn client_host() -> String {
    CLIENT_HOST.with(|h| h.borrow().clone())
}

/// Serves one connection until the peer closes it, it stays idle for `connections.max.idle.ms`,
/// or framing is lost.
///
/// Produce requests are pipelined: once a produce has gone to the `log-writer`, the connection
/// reads the client's next request if one has already arrived, and submits it too when it is
/// another produce (up to [`MAX_IN_FLIGHT`]), so that a client with several requests in flight
/// gets them appended and fsynced as one group. Responses still go out strictly in request
/// order, and any other request first waits for the produces before it, so it sees their effects
/// as it would in Kafka.
pub fn serve(socket: TcpStream, peer: String, ctx: Arc<BrokerContext>, pool: Arc<MemoryPool>) {
    if let Ok(addr) = socket.peer_addr() {
        CLIENT_HOST.with(|h| *h.borrow_mut() = format!("/{}", addr.ip()));
    }
    let _ = socket.set_nodelay(true);
    let idle = Duration::from_millis(ctx.config.connections_max_idle_ms.max(1));
    let _ = socket.set_read_timeout(Some(idle));
    let _ = socket.set_write_timeout(Some(idle));
    let listener = crate::security::current_listener();
    let Some(mut stream) = open_stream(socket, listener.as_deref(), idle, &peer) else {
        return;
    };
    let max_frame = ctx.config.socket_request_max_bytes;
    let mut frame = Vec::new();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    // On a SASL listener, requests go through the authenticator first.
    let mut sasl = listener
        .and_then(|l| l.sasl.clone())
        .map(|config| SaslSession::new(config, idle));
    let mut read_timeout = idle;
    loop {
        mute(&mut in_flight, &mut stream, &peer, &ctx);
        if let Some(session) = &sasl {
            // Until it authenticates, a client has what is left of the authentication deadline.
            let timeout = session.read_timeout(idle);
            if timeout != read_timeout {
                let _ = stream.socket().set_read_timeout(Some(timeout));
                read_timeout = timeout;
            }
        }
        let max_frame = sasl
            .as_ref()
            .map_or(max_frame, |s| s.frame_limit(max_frame));
        if !in_flight.is_empty() && (in_flight.len() >= MAX_IN_FLIGHT || !stream.more_to_read()) {
            if !finish_oldest(&mut stream, &peer, &ctx, &mut in_flight) {
                return;
            }
            continue;
        }
        let size = match read_size(&mut stream, max_frame) {
            Ok(Some(size)) => size,
            Ok(None) => {
                debug!("{peer} closed the connection");
                finish_all(&mut stream, &peer, &ctx, &mut in_flight);
                return;
            }
            Err(e) => {
                drop_connection(&peer, &e, idle);
                return;
            }
        };
        // Waiting for memory while holding some is how deadlocks start: finish our own
        // in-flight requests first, which frees theirs.
        let reservation = loop {
            let wait = if in_flight.is_empty() {
                MEMORY_WAIT
            } else {
                Duration::ZERO
            };
            if let Some(r) = pool.reserve(size, wait) {
                break r;
            }
            if in_flight.is_empty() {
                warn!(
                    "dropping {peer}: no memory for a {size}-byte request within {} s (queued.max.request.bytes)",
                    MEMORY_WAIT.as_secs()
                );
                return;
            }
            if !finish_oldest(&mut stream, &peer, &ctx, &mut in_flight) {
                return;
            }
        };
        if let Err(e) = read_body(&mut stream, &mut frame, size) {
            drop_connection(&peer, &e, idle);
            return;
        }
        let arrived = Instant::now();
        trace!("{peer} request bytes: {:02x?}", frame);
        let api_key = if frame.len() >= 2 {
            BigEndian::read_i16(&frame)
        } else {
            -1
        };
        let is_produce = api_key == protocol::messages::produce::API_KEY;
        if !is_produce && !finish_all(&mut stream, &peer, &ctx, &mut in_flight) {
            return;
        }
        let outcome = guarded(|| {
            let intercepted = sasl.as_mut().and_then(|s| s.intercept(&ctx, &peer, &frame));
            intercepted.unwrap_or_else(|| handle_frame(&ctx, &peer, &frame))
        });
        match outcome {
            Outcome::Deferred(deferred) => in_flight.push_back(InFlight {
                deferred,
                reservation,
                api_key,
                arrived,
            }),
            outcome => {
                drop(reservation);
                let answered = !matches!(outcome, Outcome::Close(_));
                if !deliver(&mut stream, &peer, outcome) {
                    return;
                }
                if answered {
                    ctx.metrics.record_request(api_key, arrived.elapsed());
                }
            }
        }
        if sasl.as_ref().is_some_and(SaslSession::must_close) {
            warn!("closing connection to {peer}: SASL authentication failed");
            return;
        }
        if frame.capacity() > RETAINED_BUFFER_BYTES {
            frame = Vec::new();
        }
    }
}

/// The connection's stream: the socket itself, or on an SSL or SASL_SSL listener a TLS session
/// whose handshake has finished within the authentication deadline. On an SSL listener a client
/// certificate's subject becomes the connection's principal; on SASL_SSL the SASL exchange
/// decides it. `None` when the handshake failed (closing only this connection).
fn open_stream(
    socket: TcpStream,
    listener: Option<&BoundListener>,
    idle: Duration,
    peer: &str,
) -> Option<ClientStream> {
    let Some(tls) = listener.and_then(|l| l.tls.clone()) else {
        return Some(ClientStream::Plain(socket));
    };
    let stream = match ClientStream::accept_tls(socket, tls, idle.min(AUTHENTICATION_TIMEOUT)) {
        Ok(stream) => stream,
        Err(e) => {
            // Garbage, a plaintext client or a client that does not trust us.
            info!("closing connection to {peer}: TLS handshake failed: {e}");
            return None;
        }
    };
    let uses_sasl = listener.is_some_and(|l| l.sasl.is_some());
    if !uses_sasl
        && let Some(principal) = stream
            .peer_certificate()
            .and_then(|c| tls::principal_of(&c))
    {
        info!("{peer} authenticated as {principal} by its certificate");
        crate::security::set_current_principal(&principal);
    }
    Some(stream)
}

/// Runs a request's code, turning a panic (a bug in sprat) into a close of this connection only.
fn guarded(handle: impl FnOnce() -> Outcome) -> Outcome {
    panic::catch_unwind(AssertUnwindSafe(handle)).unwrap_or_else(|_| {
        Outcome::Close("internal error while handling the request (see the panic above)".into())
    })
}

/// Writes an outcome to the client. Returns false when the connection must end.
fn deliver(stream: &mut ClientStream, peer: &str, outcome: Outcome) -> bool {
    let written = match outcome {
        Outcome::Respond(response) => {
            trace!("{peer} response bytes: {:02x?}", response);
            stream.write_all(&response).and_then(|()| stream.flush())
        }
        Outcome::RespondChunks(chunks) => {
            trace!("{peer} response chunks: {:02x?}", chunks);
            zero_copy::write_chunks(stream, &chunks)
        }
        Outcome::NoResponse => return true,
        Outcome::Close(reason) => {
            warn!("closing connection to {peer}: {reason}");
            return false;
        }
        Outcome::Deferred(_) => unreachable!("deferred outcomes are finished before delivery"),
    };
    match written {
        Ok(()) => true,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            warn!(
                "dropping {peer}: a response could not be written within connections.max.idle.ms; the client is not reading"
            );
            false
        }
        Err(e) => {
            warn!("dropping {peer}: write failed: {e}");
            false
        }
    }
}

/// Waits for the oldest in-flight produce and answers it.
fn finish_oldest(
    stream: &mut ClientStream,
    peer: &str,
    ctx: &BrokerContext,
    in_flight: &mut VecDeque<InFlight>,
) -> bool {
    let Some(request) = in_flight.pop_front() else {
        return true;
    };
    let outcome = guarded(|| request.deferred.finish(ctx));
    drop(request.reservation);
    let answered = !matches!(outcome, Outcome::Close(_));
    let delivered = deliver(stream, peer, outcome);
    if delivered && answered {
        ctx.metrics
            .record_request(request.api_key, request.arrived.elapsed());
    }
    delivered
}

/// A client over its quota (see [`crate::quota`]): once its in-flight answers are written, the
/// connection reads nothing for the throttle time, as Kafka mutes a throttled channel.
fn mute(
    in_flight: &mut VecDeque<InFlight>,
    stream: &mut ClientStream,
    peer: &str,
    ctx: &BrokerContext,
) {
    let mut mute = crate::quota::take_mute();
    if mute.is_zero() {
        return;
    }
    if !in_flight.is_empty() && !finish_all(stream, peer, ctx, in_flight) {
        return;
    }
    mute = mute.max(crate::quota::take_mute());
    debug!(
        "{peer} is over its quota: muted for {} ms",
        mute.as_millis()
    );
    std::thread::sleep(mute);
}

/// A produce waiting for the `log-writer`, with what its answer needs.
struct InFlight {
    deferred: Deferred,
    /// The request's memory, held until it is answered.
    reservation: Reservation,
    api_key: i16,
    /// When its frame had been read, for the request latency metric.
    arrived: Instant,
}

/// Answers every in-flight produce, oldest first.
fn finish_all(
    stream: &mut ClientStream,
    peer: &str,
    ctx: &BrokerContext,
    in_flight: &mut VecDeque<InFlight>,
) -> bool {
    while !in_flight.is_empty() {
        if !finish_oldest(stream, peer, ctx, in_flight) {
            return false;
        }
    }
    true
}

fn drop_connection(peer: &str, e: &io::Error, idle: Duration) {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        warn!(
            "dropping {peer}: idle for more than {} ms (connections.max.idle.ms)",
            idle.as_millis()
        );
    } else {
        warn!("dropping {peer}: {e}");
    }
}

/// Reads a frame's size prefix and checks it against `socket.request.max.bytes`. Returns
/// `Ok(None)` on a clean end of stream before a frame.
fn read_size(stream: &mut ClientStream, max_frame: usize) -> io::Result<Option<usize>> {
    let mut size_bytes = [0u8; 4];
    let mut read = 0;
    while read < 4 {
        match stream.read(&mut size_bytes[read..]) {
            Ok(0) if read == 0 => return Ok(None),
            // A TLS client that closes its socket without close_notify, between requests.
            Err(e) if read == 0 && e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
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
    Ok(Some(size as usize))
}

/// Reads a frame body of `size` bytes (its memory already reserved) into `frame`. The buffer
/// starts at no more than [`RETAINED_BUFFER_BYTES`] and grows as bytes arrive, so a client that
/// declares a large frame and trickles it does not make sprat allocate it all up front; the
/// bytes are read into spare capacity without zeroing it first.
fn read_body(stream: &mut ClientStream, frame: &mut Vec<u8>, size: usize) -> io::Result<()> {
    frame.clear();
    frame.reserve(size.min(RETAINED_BUFFER_BYTES));
    let read = stream.take(size as u64).read_to_end(frame)?;
    if read < size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed after {read} of {size} bytes of a request"),
        ));
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
