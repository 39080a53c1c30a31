//! A client connection's byte stream: the TCP socket itself on PLAINTEXT and SASL_PLAINTEXT
//! listeners, or a rustls server session over it on SSL and SASL_SSL ones (Kafka's
//! `PlaintextTransportLayer` and `SslTransportLayer`). Timeouts are the socket's: a TLS read or
//! write that makes no progress for as long fails as a plaintext one does.

use log::debug;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, BufferedSocket>>),
}

/// The bytes a [`BufferedSocket`] reads from its socket at most at once.
const SOCKET_READ_BYTES: usize = 64 << 10;

/// A TCP socket whose reads are buffered. rustls asks its transport for 4 KiB at a time; through
/// this, a large request arriving over TLS costs one read system call per 64 KiB that have
/// arrived rather than one per 4 KiB. The buffer is freed whenever it has been drained, so an idle
/// connection holds none. Writes go straight to the socket.
pub struct BufferedSocket {
    socket: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl BufferedSocket {
    pub fn new(socket: TcpStream) -> BufferedSocket {
        BufferedSocket {
            socket,
            buf: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Bytes read from the socket and not yet taken.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }
}

impl Read for BufferedSocket {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if out.len() >= SOCKET_READ_BYTES {
                return self.socket.read(out);
            }
            self.buf.resize(SOCKET_READ_BYTES, 0);
            let n = self.socket.read(&mut self.buf);
            self.start = 0;
            self.end = *n.as_ref().unwrap_or(&0);
            if self.end == 0 {
                self.buf = Vec::new();
                return n;
            }
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if self.start == self.end {
            self.buf = Vec::new();
        }
        Ok(n)
    }
}

impl Write for BufferedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.socket.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

impl ClientStream {
    /// Completes a TLS handshake on `socket` within `deadline` (the authentication deadline).
    /// Garbage, a plaintext client, or a handshake that does not finish in time is an error; the
    /// caller closes the connection.
    pub fn accept_tls(
        socket: TcpStream,
        config: Arc<ServerConfig>,
        deadline: Duration,
    ) -> io::Result<ClientStream> {
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let started = Instant::now();
        let previous = socket.read_timeout()?;
        let mut socket = BufferedSocket::new(socket);
        while conn.is_handshaking() {
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake not finished within the authentication deadline",
                ));
            }
            socket.socket.set_read_timeout(Some(left))?;
            let (read, written) = conn.complete_io(&mut socket)?;
            if read == 0 && written == 0 && conn.is_handshaking() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
        }
        socket.socket.set_read_timeout(previous)?;
        debug!(
            "TLS handshake done: {:?}, {:?}",
            conn.protocol_version(),
            conn.negotiated_cipher_suite().map(|s| s.suite())
        );
        Ok(ClientStream::Tls(Box::new(StreamOwned::new(conn, socket))))
    }

    /// The TCP socket under the stream, for its options and timeouts.
    pub fn socket(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => &s.sock.socket,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }

    /// The client's end-entity certificate (DER), if it presented one over TLS.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => s
                .conn
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|c| c.as_ref().to_vec()),
        }
    }

    /// Whether the client has sent more bytes that can be read without waiting: decrypted
    /// bytes rustls holds, bytes read from the socket but not yet decrypted, or any bytes on
    /// the socket.
    pub fn more_to_read(&mut self) -> bool {
        if let ClientStream::Tls(s) = self
            && (s.sock.buffered() > 0
                || s.conn
                    .process_new_packets()
                    .is_ok_and(|state| state.plaintext_bytes_to_read() > 0))
        {
            return true;
        }
        socket_has_bytes(self.socket())
    }
}

fn socket_has_bytes(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let ready = matches!(stream.peek(&mut byte), Ok(n) if n > 0);
    if let Err(e) = stream.set_nonblocking(false) {
        // Reads would fail as if idle and drop the connection: say why.
        log::warn!("could not make a client socket blocking again: {e}");
    }
    ready
}

/// The longest a closing TLS connection waits to send its close_notify alert.
const CLOSE_NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

impl Drop for ClientStream {
    /// Ends a TLS session with close_notify, as Kafka's `SslTransportLayer.close` does, so that
    /// the client sees a clean end rather than a truncated stream. Only writes: a client that
    /// does not read gets at most [`CLOSE_NOTIFY_TIMEOUT`].
    fn drop(&mut self) {
        let ClientStream::Tls(s) = self else {
            return;
        };
        s.conn.send_close_notify();
        let _ = s.sock.socket.set_write_timeout(Some(CLOSE_NOTIFY_TIMEOUT));
        while s.conn.wants_write() {
            if s.conn.write_tls(&mut s.sock).is_err() {
                break;
            }
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }

    /// Sends what rustls has encrypted but not yet written (nothing to do in plaintext).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn buffered_socket_returns_every_byte_in_order_and_frees_its_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sent: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let to_send = sent.clone();
        let writer = std::thread::spawn(move || {
            let mut peer = TcpStream::connect(addr).unwrap();
            peer.write_all(&to_send).unwrap();
        });
        let (socket, _) = listener.accept().unwrap();
        let mut buffered = BufferedSocket::new(socket);
        let mut got = Vec::new();
        // Reads of rustls's size, one larger than the buffer, and single bytes.
        for size in [4096, SOCKET_READ_BYTES + 1, 1].into_iter().cycle() {
            let mut chunk = vec![0u8; size];
            let n = buffered.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
            if buffered.buffered() == 0 {
                assert!(buffered.buf.capacity() == 0, "a drained buffer is freed");
            }
        }
        writer.join().unwrap();
        assert_eq!(got, sent);
    }
}
