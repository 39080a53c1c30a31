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
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
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
        let mut socket = socket;
        let started = Instant::now();
        let previous = socket.read_timeout()?;
        while conn.is_handshaking() {
            let left = deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake not finished within the authentication deadline",
                ));
            }
            socket.set_read_timeout(Some(left))?;
            let (read, written) = conn.complete_io(&mut socket)?;
            if read == 0 && written == 0 && conn.is_handshaking() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
        }
        socket.set_read_timeout(previous)?;
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
            ClientStream::Tls(s) => &s.sock,
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
    /// bytes rustls holds, or any bytes on the socket.
    pub fn more_to_read(&mut self) -> bool {
        if let ClientStream::Tls(s) = self
            && s.conn
                .process_new_packets()
                .is_ok_and(|state| state.plaintext_bytes_to_read() > 0)
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
