//! Zero-copy fetch responses: record bytes go from the segment file to the socket with
//! `sendfile`, never through this process's memory, as Kafka's `FileRecords.writeTo` does with
//! `FileChannel.transferTo`.
//!
//! The Fetch handler encodes its response as usual, except that each partition's records field
//! holds a short placeholder ([`Splice::placeholder`]) instead of the batches. [`Splice::finish`]
//! then finds the placeholders in the encoded frame (they are unique: a random per-process prefix
//! and a sequence number), replaces each with the real length prefix, and cuts the frame into
//! [`Chunk`]s: encoded bytes, then a region of a segment file, then more encoded bytes. The frame
//! size is corrected for the difference. [`write_chunks`] writes them with `write` and
//! `sendfile`, corked so that the small pieces leave in full packets.
//!
//! A region that is small is cheaper to copy than to send by itself: below
//! [`MIN_SPLICED_BYTES`] the handler reads it into the frame instead.

use super::stream::ClientStream;
use crate::storage::segment::FileRegion;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// Regions shorter than this are copied into the response rather than sent from the file.
pub const MIN_SPLICED_BYTES: u64 = 16 << 10;

/// The most bytes one `sendfile` call is asked for (Linux sends at most about 2 GiB per call).
const MAX_SENDFILE_BYTES: usize = 1 << 30;

const MARKER_LEN: usize = 12;

/// One piece of a response frame.
#[derive(Debug)]
pub enum Chunk {
    Bytes(Vec<u8>),
    File(FileRegion),
}

/// The record regions of one response, see the module documentation.
#[derive(Debug, Default)]
pub struct Splice {
    regions: Vec<FileRegion>,
}

/// The random first 8 bytes of every placeholder, fixed for the process.
fn marker_prefix() -> [u8; 8] {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish().to_be_bytes()
    })
}

impl Splice {
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Forgets the regions taken so far (a long-polling fetch that reads again).
    pub fn clear(&mut self) {
        self.regions.clear();
    }

    /// The bytes to put in a records field in place of `region`.
    pub fn placeholder(&mut self, region: FileRegion) -> Vec<u8> {
        let mut marker = Vec::with_capacity(MARKER_LEN);
        marker.extend_from_slice(&marker_prefix());
        marker.extend_from_slice(&(self.regions.len() as u32).to_be_bytes());
        self.regions.push(region);
        marker
    }

    /// Cuts `frame` (size prefix included) at the placeholders; `compact` says whether the
    /// records fields have compact (varint) length prefixes, as in flexible versions. A
    /// placeholder that is not where it must be is an error (a bug: the frame is not sent).
    pub fn finish(self, frame: Vec<u8>, compact: bool) -> io::Result<Vec<Chunk>> {
        if self.regions.is_empty() {
            return Ok(vec![Chunk::Bytes(frame)]);
        }
        let old_prefix: Vec<u8> = if compact {
            vec![(MARKER_LEN + 1) as u8]
        } else {
            (MARKER_LEN as i32).to_be_bytes().to_vec()
        };
        let prefix = marker_prefix();
        let mut chunks = Vec::with_capacity(self.regions.len() * 2 + 1);
        let mut size = frame.len() as i64 - 4;
        let mut cursor = 4;
        let mut head = frame[..4].to_vec();
        for (i, region) in self.regions.iter().enumerate() {
            let mut marker = prefix.to_vec();
            marker.extend_from_slice(&(i as u32).to_be_bytes());
            let found = find(&frame[cursor..], &marker).map(|at| cursor + at);
            let Some(at) = found.filter(|&at| {
                at >= cursor + old_prefix.len()
                    && frame[at - old_prefix.len()..at] == old_prefix[..]
            }) else {
                return Err(io::Error::other(format!(
                    "placeholder {i} of a fetch response is missing"
                )));
            };
            head.extend_from_slice(&frame[cursor..at - old_prefix.len()]);
            let new_prefix = length_prefix(region.len, compact);
            head.extend_from_slice(&new_prefix);
            size += new_prefix.len() as i64 + region.len as i64
                - (old_prefix.len() + MARKER_LEN) as i64;
            chunks.push(Chunk::Bytes(std::mem::take(&mut head)));
            chunks.push(Chunk::File(region.clone()));
            cursor = at + MARKER_LEN;
        }
        head.extend_from_slice(&frame[cursor..]);
        chunks.push(Chunk::Bytes(head));
        let size = i32::try_from(size)
            .map_err(|_| io::Error::other("a fetch response is larger than 2 GiB"))?;
        let Some(Chunk::Bytes(first)) = chunks.first_mut() else {
            unreachable!("the first chunk holds the size prefix");
        };
        first[..4].copy_from_slice(&size.to_be_bytes());
        Ok(chunks)
    }
}

/// The length prefix of a (non-null) records field of `len` bytes.
fn length_prefix(len: u64, compact: bool) -> Vec<u8> {
    if compact {
        let mut v = len + 1;
        let mut out = Vec::with_capacity(5);
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    } else {
        (len as i32).to_be_bytes().to_vec()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes a response's chunks to the client: bytes with `write`, file regions with `sendfile`
/// on a plaintext socket, or read and written through TLS, which must encrypt them, on a TLS
/// one. A file shorter than its region (which a published batch never is) is an error, and the
/// connection must then be closed: the frame's size was already sent.
pub fn write_chunks(stream: &mut ClientStream, chunks: &[Chunk]) -> io::Result<()> {
    let ClientStream::Plain(socket) = stream else {
        return write_chunks_copied(stream, chunks);
    };
    let corked = chunks.len() > 1 && set_cork(socket, true).is_ok();
    let result = chunks.iter().try_for_each(|chunk| match chunk {
        Chunk::Bytes(bytes) => socket.write_all(bytes),
        Chunk::File(region) => send_file(socket, &region.file, region.position, region.len),
    });
    if corked {
        let _ = set_cork(socket, false);
    }
    result
}

/// The bytes read from a segment file at a time for a TLS connection.
const COPY_BUFFER_BYTES: usize = 64 << 10;

fn write_chunks_copied(stream: &mut ClientStream, chunks: &[Chunk]) -> io::Result<()> {
    let mut buffer = Vec::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => stream.write_all(bytes)?,
            Chunk::File(region) => {
                buffer.resize(COPY_BUFFER_BYTES.min(region.len as usize), 0);
                let mut position = region.position;
                let end = region.position + region.len;
                while position < end {
                    let n = ((end - position) as usize).min(buffer.len());
                    region.file.read_exact_at(&mut buffer[..n], position)?;
                    stream.write_all(&buffer[..n])?;
                    position += n as u64;
                }
            }
        }
    }
    stream.flush()
}

/// Sends `len` bytes of `file` from `position`. The socket is made non-blocking for the
/// while, and each wait for room is bounded by its write timeout: a blocking `sendfile` does not
/// give up after SO_SNDTIMEO the way `write` does, so a client that stops reading would hold the
/// thread for good.
fn send_file(stream: &TcpStream, file: &File, position: u64, len: u64) -> io::Result<()> {
    let timeout = stream.write_timeout()?;
    stream.set_nonblocking(true)?;
    let result = send_file_nonblocking(stream, file, position, len, timeout);
    stream.set_nonblocking(false)?;
    result
}

fn send_file_nonblocking(
    stream: &TcpStream,
    file: &File,
    position: u64,
    len: u64,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    let mut offset = libc::off_t::try_from(position).map_err(io::Error::other)?;
    let mut left = len;
    while left > 0 {
        let count = left.min(MAX_SENDFILE_BYTES as u64) as usize;
        // SAFETY: both descriptors are open for the call (the stream and the file are borrowed),
        // and `offset` is a valid off_t that sendfile advances.
        let sent =
            unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
        match sent {
            n if n > 0 => left -= n as u64,
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the segment file ended inside a region being sent",
                ));
            }
            _ => {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => {}
                    io::ErrorKind::WouldBlock => wait_writable(stream, timeout)?,
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Waits until the socket can take more bytes, at most `timeout` (forever without one).
fn wait_writable(stream: &TcpStream, timeout: Option<std::time::Duration>) -> io::Result<()> {
    let millis = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
    let mut poll = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: poll reads and writes the one pollfd it is given.
        match unsafe { libc::poll(&mut poll, 1, millis) } {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no bytes within the write timeout",
                ));
            }
            n if n > 0 => return Ok(()),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// TCP_CORK: hold partial packets until uncorked, so that a frame's pieces leave together.
fn set_cork(stream: &TcpStream, on: bool) -> io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: setsockopt reads `value` (an int, as TCP_CORK takes) for the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    fn region(content: &[u8], name: &str) -> FileRegion {
        let path =
            std::env::temp_dir().join(format!("sprat-zero-copy-{name}-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.write_all_at(b"skip", 0).unwrap();
        file.write_all_at(content, 4).unwrap();
        std::fs::remove_file(path).unwrap();
        FileRegion {
            file: Arc::new(file),
            position: 4,
            len: content.len() as u64,
        }
    }

    fn joined(chunks: &[Chunk]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(r) => out.extend_from_slice(&r.read().unwrap()),
            }
        }
        out
    }

    /// A frame as the encoder would write it: size, `head`, then each records field (prefix and
    /// body) followed by `tail`.
    fn frame(head: &[u8], fields: &[Vec<u8>], tail: &[u8], compact: bool) -> Vec<u8> {
        let mut body = head.to_vec();
        for f in fields {
            body.extend_from_slice(&length_prefix(f.len() as u64, compact));
            body.extend_from_slice(f);
            body.extend_from_slice(tail);
        }
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn spliced_frames_equal_copied_frames() {
        for compact in [false, true] {
            let a = vec![7u8; 200];
            let b: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
            let mut splice = Splice::default();
            let fields = vec![
                splice.placeholder(region(&a, &format!("a{compact}"))),
                splice.placeholder(region(&b, &format!("b{compact}"))),
            ];
            let encoded = frame(b"\x00\x01head", &fields, b"\x00tail", compact);
            let chunks = splice.finish(encoded, compact).unwrap();
            assert_eq!(chunks.len(), 5);
            let expected = frame(b"\x00\x01head", &[a, b], b"\x00tail", compact);
            assert_eq!(joined(&chunks), expected);
        }
    }

    #[test]
    fn a_missing_placeholder_is_an_error() {
        let mut splice = Splice::default();
        let _ = splice.placeholder(region(b"records", "missing"));
        let encoded = frame(b"head", &[b"other".to_vec()], b"", true);
        assert!(splice.finish(encoded, true).is_err());
    }

    #[test]
    fn compact_length_prefixes_are_unsigned_varints_of_length_plus_one() {
        assert_eq!(length_prefix(0, true), [1]);
        assert_eq!(length_prefix(126, true), [127]);
        assert_eq!(length_prefix(127, true), [0x80, 0x01]);
        assert_eq!(length_prefix(70_000, true), [0xf1, 0xa2, 0x04]);
        assert_eq!(length_prefix(5, false), [0, 0, 0, 5]);
    }
}
