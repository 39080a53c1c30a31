//! The `GET /metrics` endpoint: a minimal synchronous HTTP/1.1 server on its own listener
//! (`sprat.metrics.listener`), one short-lived thread per scrape. It reads at most
//! [`MAX_REQUEST_BYTES`] of request head within [`IO_TIMEOUT`], answers once and closes: 200 with
//! the exposition for `GET /metrics`, 404 for another path, 405 for another method, 400 for
//! anything that is not an HTTP request line, 503 past [`MAX_SCRAPES`] at once.

use crate::broker::BrokerContext;
use log::{debug, info, warn};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The most request-head bytes read from a scraper.
const MAX_REQUEST_BYTES: usize = 8 << 10;

/// How long a scraper may take to send its request or read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Scrapes served at once; more are answered 503.
const MAX_SCRAPES: usize = 8;

/// Binds `addr` and serves scrapes on a `metrics` thread; returns the bound address.
pub fn start(addr: &str, ctx: Arc<BrokerContext>) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("sprat.metrics.listener {addr}: {e}")))?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || accept_loop(listener, ctx))?;
    info!("serving metrics on http://{local}/metrics");
    Ok(local)
}

fn accept_loop(listener: TcpListener, ctx: Arc<BrokerContext>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if ctx.shutting_down.load(Ordering::SeqCst) {
            break;
        }
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                debug!("metrics accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_SCRAPES {
            active.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(
                &mut stream,
                503,
                "Service Unavailable",
                "too many scrapes\n",
            );
            continue;
        }
        let ctx = ctx.clone();
        let done = active.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-scrape".into())
            .stack_size(256 << 10)
            .spawn(move || {
                if let Err(e) = serve(&mut stream, &ctx) {
                    debug!("metrics scrape failed: {e}");
                }
                done.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            active.fetch_sub(1, Ordering::SeqCst);
            warn!("could not start a metrics thread: {e}");
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Reads the head (up to the blank line) of one request.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() >= MAX_REQUEST_BYTES {
            return Ok(None);
        }
        let room = (MAX_REQUEST_BYTES - head.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room])?;
        if n == 0 {
            // The peer stopped sending: judge what arrived.
            return Ok(Some(head));
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// Parses the request line: `METHOD SP TARGET SP HTTP/1.x`.
fn parse(head: &[u8]) -> Asked {
    let Ok(text) = std::str::from_utf8(head) else {
        return Asked::BadRequest;
    };
    let line = text.split(['\r', '\n']).next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::BadRequest;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphabetic());
    if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Asked::BadRequest;
    }
    if method != "GET" {
        return Asked::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == "/metrics" {
        Asked::Metrics
    } else {
        Asked::NotFound
    }
}

fn serve(stream: &mut TcpStream, ctx: &BrokerContext) -> io::Result<()> {
    let request = match read_head(stream)? {
        Some(head) => parse(&head),
        None => Asked::BadRequest,
    };
    match request {
        Asked::Metrics => {
            let body = super::render(ctx);
            respond(stream, 200, "OK", &body)
        }
        Asked::NotFound => respond(stream, 404, "Not Found", "try /metrics\n"),
        Asked::MethodNotAllowed => respond(stream, 405, "Method Not Allowed", "GET only\n"),
        Asked::BadRequest => respond(stream, 400, "Bad Request", "not an HTTP request\n"),
    }?;
    linger(stream);
    Ok(())
}

/// Closes gracefully: the answer sent, what the scraper still sends (a body, an oversized head)
/// is read and dropped for a moment, so that the close does not reset the connection before the
/// answer is read.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < (256 << 10) {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, reason: &str, body: &str) -> io::Result<()> {
    let content_type = if status == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let cases: [(&[u8], Asked); 8] = [
            (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Asked::Metrics),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", Asked::Metrics),
            (b"GET / HTTP/1.1\r\n\r\n", Asked::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Asked::MethodNotAllowed),
            (b"GET /metrics\r\n\r\n", Asked::BadRequest),
            (b"\x00\x00\x00\x10garbage", Asked::BadRequest),
            (b"GET metrics HTTP/1.1\r\n\r\n", Asked::BadRequest),
            (b"\xff\xfe", Asked::BadRequest),
        ];
        for (head, expected) in cases {
            assert_eq!(parse(head), expected, "{head:?}");
        }
    }
}
