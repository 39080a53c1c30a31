//! The compression codecs of a v2 record batch (Kafka's `CompressionType` and the streams in
//! `org.apache.kafka.common.compress`): the records section of a batch whose attributes name a
//! codec is compressed as one stream. Only the log cleaner needs these: the produce and fetch
//! paths store and serve batches as the client sent them.
//!
//! Each codec is a well-kept crate: gzip is `flate2`, LZ4 is `lz4_flex`'s frame format (what
//! Kafka's `Lz4BlockOutputStream` writes for magic 1 and 2; the broken header checksum of old
//! clients only ever applied to magic 0, which sprat refuses), zstd is `zstd` (libzstd). Snappy
//! comes in two framings: Kafka's Java client writes snappy-java's "xerial" stream (a magic
//! header, then blocks of raw snappy each behind a 4-byte length), while librdkafka may write one
//! raw snappy block. Both are read (the header tells them apart); the xerial stream is what is
//! written, as Kafka writes it. The framing is a dozen lines here; the snappy blocks are `snap`.
//!
//! Decompression never trusts a length in the input: the output grows with what the stream
//! actually produces and stops with an error past a caller's limit, so a corrupt or hostile batch
//! costs at most that limit.

use byteorder::{BigEndian, ByteOrder};
use std::io::{self, Read, Write};

/// The codec ids of a batch's attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    /// The codec named by a batch's attributes; an error for the ids Kafka does not define.
    pub fn from_attributes(attributes: i16) -> io::Result<Codec> {
        match attributes & 0x07 {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Gzip),
            2 => Ok(Codec::Snappy),
            3 => Ok(Codec::Lz4),
            4 => Ok(Codec::Zstd),
            id => Err(invalid(format!("unknown compression codec id {id}"))),
        }
    }

    /// Kafka's `compression.type` name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// The most bytes one batch's records may decompress to. A batch is at most `message.max.bytes`
/// (1 MiB by default) compressed; 64 MiB leaves room for ratios far beyond what real payloads
/// reach, and bounds the cleaner's memory per batch.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 64 << 20;

/// snappy-java's stream header: magic, then version and minimum compatible version (both 1).
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_SIZE: usize = 16;
/// snappy-java's default block size, which Kafka's `SnappyOutputStream` uses.
const XERIAL_BLOCK_SIZE: usize = 32 * 1024;

/// zstd's window is capped to what the limit allows (2^26 = 64 MiB), so that a frame cannot make
/// the decoder allocate a larger window than the output it may produce.
const ZSTD_WINDOW_LOG_MAX: u32 = 26;

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Decompresses a records section written with `codec`, producing at most `limit` bytes.
pub fn decompress(codec: Codec, input: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let context = |e: io::Error| invalid(format!("{} records: {e}", codec.name()));
    match codec {
        Codec::None => {
            if input.len() > limit {
                return Err(context(over_limit(limit)));
            }
            Ok(input.to_vec())
        }
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), input, limit),
        Codec::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(input), input, limit),
        Codec::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(input)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            read_bounded(decoder, input, limit)
        }
        Codec::Snappy if input.starts_with(&XERIAL_MAGIC) => snappy_xerial_decompress(input, limit),
        Codec::Snappy => {
            let mut out = Vec::new();
            snappy_block_decompress(input, &mut out, limit)?;
            Ok(out)
        }
    }
    .map_err(context)
}

fn over_limit(limit: usize) -> io::Error {
    invalid(format!("decompress to more than {limit} bytes"))
}

/// Reads `decoder` to its end, or fails once it has produced more than `limit` bytes.
fn read_bounded(decoder: impl Read, input: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    // A guess from the input's size; the vector grows only with real output.
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(limit));
    decoder.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(over_limit(limit));
    }
    Ok(out)
}

/// Appends one raw snappy block to `out`, after checking its declared length against `limit`.
fn snappy_block_decompress(block: &[u8], out: &mut Vec<u8>, limit: usize) -> io::Result<()> {
    let length = snap::raw::decompress_len(block).map_err(|e| invalid(e.to_string()))?;
    if length > limit.saturating_sub(out.len()) {
        return Err(over_limit(limit));
    }
    let start = out.len();
    out.resize(start + length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| invalid(e.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

fn snappy_xerial_decompress(input: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    if input.len() < XERIAL_HEADER_SIZE {
        return Err(invalid("truncated xerial snappy header".into()));
    }
    let mut rest = &input[XERIAL_HEADER_SIZE..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(invalid("truncated xerial snappy block length".into()));
        }
        let length = BigEndian::read_i32(rest);
        let body = &rest[4..];
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l <= body.len())
            .ok_or_else(|| {
                invalid(format!(
                    "xerial snappy block of {length} bytes in {} remaining",
                    body.len()
                ))
            })?;
        snappy_block_decompress(&body[..length], &mut out, limit)?;
        rest = &body[length..];
    }
    Ok(out)
}

/// Compresses a records section as Kafka's producer would with `codec` at its default level
/// (gzip 6, zstd 3; LZ4 frames of independent 64 KiB blocks without checksums, as Kafka's
/// `Lz4BlockOutputStream` writes them; snappy in xerial framing).
pub fn compress(codec: Codec, input: &[u8]) -> io::Result<Vec<u8>> {
    compress_parts(codec, &[input])
}

/// Compresses the concatenation of `parts` (a batch's kept records) as [`compress`] does,
/// without copying them into one buffer first.
pub fn compress_parts(codec: Codec, parts: &[&[u8]]) -> io::Result<Vec<u8>> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let out = Vec::with_capacity(len / 2);
    match codec {
        Codec::None => Ok(parts.concat()),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            write_parts(&mut e, parts)?;
            e.finish()
        }
        Codec::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            write_parts(&mut e, parts)?;
            e.finish().map_err(io::Error::other)
        }
        Codec::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, 3)?;
            write_parts(&mut e, parts)?;
            e.finish()
        }
        Codec::Snappy => {
            let mut e = XerialWriter::new(out);
            write_parts(&mut e, parts)?;
            e.finish()
        }
    }
}

fn write_parts(w: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    parts.iter().try_for_each(|p| w.write_all(p))
}

/// snappy-java's stream: the header, then each [`XERIAL_BLOCK_SIZE`] of input as one raw
/// snappy block behind its 4-byte big-endian length.
struct XerialWriter {
    out: Vec<u8>,
    block: Vec<u8>,
    encoder: snap::raw::Encoder,
}

impl XerialWriter {
    fn new(mut out: Vec<u8>) -> Self {
        out.extend_from_slice(&XERIAL_MAGIC);
        out.extend_from_slice(&1i32.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
        XerialWriter {
            out,
            block: Vec::with_capacity(XERIAL_BLOCK_SIZE),
            encoder: snap::raw::Encoder::new(),
        }
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let compressed = self
            .encoder
            .compress_vec(&self.block)
            .map_err(|e| invalid(e.to_string()))?;
        self.out
            .extend_from_slice(&(compressed.len() as i32).to_be_bytes());
        self.out.extend_from_slice(&compressed);
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<Vec<u8>> {
        self.flush_block()?;
        Ok(self.out)
    }
}

impl Write for XerialWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(XERIAL_BLOCK_SIZE - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == XERIAL_BLOCK_SIZE {
            self.flush_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `batch` (an uncompressed v2 batch) with `records` in place of its records section and the
/// codec bits of its attributes set to `codec`, length and CRC made to match: how tests build
/// compressed batches (valid or not) from plain ones.
#[cfg(test)]
pub(crate) fn with_records_section(batch: &[u8], codec: Codec, records: &[u8]) -> Vec<u8> {
    use super::record_batch::{
        ATTRIBUTES_OFFSET, CRC_OFFSET, HEADER_SIZE, LENGTH_OFFSET, LOG_OVERHEAD,
    };
    let mut out = batch[..HEADER_SIZE].to_vec();
    out.extend_from_slice(records);
    let attributes = BigEndian::read_i16(&out[ATTRIBUTES_OFFSET..]) | codec as i16;
    BigEndian::write_i16(&mut out[ATTRIBUTES_OFFSET..], attributes);
    let length = (out.len() - LOG_OVERHEAD) as i32;
    BigEndian::write_i32(&mut out[LENGTH_OFFSET..], length);
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    BigEndian::write_u32(&mut out[CRC_OFFSET..], crc);
    out
}

/// `batch` (an uncompressed v2 batch) with its records section compressed with `codec`.
#[cfg(test)]
pub(crate) fn compressed_batch(batch: &[u8], codec: Codec) -> Vec<u8> {
    let section = &batch[super::record_batch::HEADER_SIZE..];
    with_records_section(batch, codec, &compress(codec, section).unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    fn sample(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn every_codec_round_trips_empty_small_and_multi_block_input() {
        for codec in CODECS {
            for len in [0, 1, 1000, 200_000] {
                let input = sample(len);
                let compressed = compress(codec, &input).unwrap();
                let output = decompress(codec, &compressed, MAX_DECOMPRESSED_BATCH_BYTES).unwrap();
                assert_eq!(output, input, "{} at {len} bytes", codec.name());
            }
        }
    }

    #[test]
    fn compressing_parts_is_compressing_their_concatenation() {
        let input = sample(100_000);
        let parts: Vec<&[u8]> = vec![&input[..10], &input[10..40_000], &[], &input[40_000..]];
        for codec in CODECS {
            let compressed = compress_parts(codec, &parts).unwrap();
            let output = decompress(codec, &compressed, MAX_DECOMPRESSED_BATCH_BYTES).unwrap();
            assert!(output == input, "{}", codec.name());
        }
        // Snappy's blocks are 32 KiB of input whatever the parts' boundaries.
        let xerial = compress_parts(Codec::Snappy, &parts).unwrap();
        assert!(xerial == compress(Codec::Snappy, &input).unwrap());
    }

    #[test]
    fn codec_ids_are_kafkas() {
        for (id, codec) in CODECS.iter().enumerate() {
            assert_eq!(Codec::from_attributes(0x10 | id as i16).unwrap(), *codec);
        }
        assert!(Codec::from_attributes(5).is_err());
        assert!(Codec::from_attributes(7).is_err());
    }

    #[test]
    fn snappy_is_written_in_xerial_framing_and_raw_blocks_are_read() {
        let input = sample(100_000);
        let xerial = compress(Codec::Snappy, &input).unwrap();
        assert_eq!(&xerial[..8], &XERIAL_MAGIC);
        assert_eq!(BigEndian::read_i32(&xerial[8..]), 1);
        assert_eq!(BigEndian::read_i32(&xerial[12..]), 1);
        // 100,000 bytes in 32 KiB blocks: four blocks, the first 32 KiB long.
        let first = BigEndian::read_i32(&xerial[16..]) as usize;
        assert_eq!(
            snap::raw::decompress_len(&xerial[20..20 + first]).unwrap(),
            XERIAL_BLOCK_SIZE
        );
        // librdkafka's raw snappy.
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        assert_eq!(decompress(Codec::Snappy, &raw, 1 << 20).unwrap(), input);
    }

    #[test]
    fn lz4_is_a_standard_frame_with_64k_independent_blocks() {
        let compressed = compress(Codec::Lz4, &sample(10)).unwrap();
        // Magic 0x184D2204 (little-endian), FLG version 01 + block independence, BD 64 KiB.
        assert_eq!(&compressed[..4], &[0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(compressed[4], 0x60);
        assert_eq!(compressed[5], 0x40);
    }

    #[test]
    fn output_past_the_limit_is_an_error_for_every_codec() {
        let input = vec![0u8; 100_000];
        for codec in CODECS {
            let compressed = compress(codec, &input).unwrap();
            assert!(decompress(codec, &compressed, 100_000).is_ok());
            let e = decompress(codec, &compressed, 99_999).unwrap_err();
            assert!(
                e.to_string().contains("more than 99999 bytes"),
                "{}: {e}",
                codec.name()
            );
        }
    }

    #[test]
    fn a_raw_snappy_block_declaring_a_huge_length_is_refused_before_allocating() {
        // Varint 0xFFFFFFFF: a 4 GiB block, then nothing.
        let hostile = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(decompress(Codec::Snappy, &hostile, 1 << 20).is_err());
        let mut xerial = compress(Codec::Snappy, b"").unwrap();
        xerial.extend_from_slice(&(hostile.len() as i32).to_be_bytes());
        xerial.extend_from_slice(&hostile);
        assert!(decompress(Codec::Snappy, &xerial, 1 << 20).is_err());
        // A block length past the end, and a negative one.
        let mut xerial = compress(Codec::Snappy, b"").unwrap();
        xerial.extend_from_slice(&1000i32.to_be_bytes());
        assert!(decompress(Codec::Snappy, &xerial, 1 << 20).is_err());
        let mut xerial = compress(Codec::Snappy, b"").unwrap();
        xerial.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(decompress(Codec::Snappy, &xerial, 1 << 20).is_err());
    }

    #[test]
    fn corrupt_or_truncated_input_is_an_error_not_a_panic() {
        let input = sample(50_000);
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let compressed = compress(codec, &input).unwrap();
            for cut in [1, 5, 17, compressed.len() / 2, compressed.len() - 1] {
                // A truncated stream never yields partial output. (lz4_flex accepts a frame
                // whose 4-byte end mark is cut short, when every block is whole.)
                match decompress(codec, &compressed[..cut], 1 << 20) {
                    Err(_) => {}
                    Ok(out) => assert!(
                        codec == Codec::Lz4 && cut + 4 >= compressed.len() && out == input,
                        "{} cut at {cut} decompressed to {} bytes",
                        codec.name(),
                        out.len()
                    ),
                }
            }
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..200 {
                let mut bad = compressed.clone();
                for _ in 0..4 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng as usize) % bad.len();
                    bad[i] ^= (rng >> 32) as u8 | 1;
                }
                // Corruption may or may not be detected (snappy and lz4 frames here carry no
                // checksum), but it never panics and never exceeds the limit.
                if let Ok(out) = decompress(codec, &bad, 1 << 20) {
                    assert!(out.len() <= 1 << 20);
                }
            }
        }
    }
}
