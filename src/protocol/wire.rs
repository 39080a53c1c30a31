//! The primitive types of the Kafka wire format: fixed-width big-endian integers, varints, UUIDs,
//! strings, bytes, arrays and tagged-field sections, in both their classic and their compact
//! ("flexible") encodings.
//!
//! [`Decoder`] reads untrusted bytes. Every length it reads is checked against the bytes that remain
//! before anything is allocated, so a peer-declared length can never size an allocation: an array of
//! `n` elements needs at least `n` bytes, so its capacity is bounded by the remaining input. Nothing
//! here panics on any input. [`Encoder`] writes into a `Vec<u8>` and cannot fail.
//!
//! Where Kafka's generated readers are lenient, the decoder is too, so that a request Kafka answers
//! is answered here rather than dropped: any negative length of a nullable field means null (only
//! a non-nullable field refuses it), an unsigned varint keeps its low 32 bits as Java's `int` does,
//! and a string that is not valid UTF-8 is read with U+FFFD in place of the bad bytes, as Java's
//! decoder does (a topic called that is then unknown or invalid, with Kafka's error code).

use byteorder::{BigEndian, ByteOrder, WriteBytesExt};
use std::fmt;

/// Why a byte sequence could not be decoded, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the decoded buffer at which the problem was found.
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// A value needs `needed` bytes but only `remaining` are left.
    Truncated { needed: usize, remaining: usize },
    /// A length prefix is negative (other than the null marker) or larger than the input.
    BadLength(i64),
    /// A null was sent where the field's version does not allow null.
    UnexpectedNull,
    /// A varint runs longer than its type allows.
    VarintTooLong,
    /// Bytes remain after a message that should have ended.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DecodeErrorKind::Truncated { needed, remaining } => write!(
                f,
                "truncated at byte {}: needed {needed} bytes, {remaining} remain",
                self.offset
            ),
            DecodeErrorKind::BadLength(n) => {
                write!(f, "invalid length {n} at byte {}", self.offset)
            }
            DecodeErrorKind::UnexpectedNull => write!(f, "unexpected null at byte {}", self.offset),
            DecodeErrorKind::VarintTooLong => write!(f, "varint too long at byte {}", self.offset),
            DecodeErrorKind::TrailingBytes(n) => {
                write!(f, "{n} unexpected trailing bytes at byte {}", self.offset)
            }
        }
    }
}

impl std::error::Error for DecodeError {}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// A 128-bit Kafka UUID (topic ids, directory ids). Kafka prints it as unpadded URL-safe base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    pub const ZERO: Uuid = Uuid([0; 16]);

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Parses Kafka's string form (22 characters of URL-safe base64 without padding).
    pub fn parse(text: &str) -> Option<Uuid> {
        let text = text.trim();
        if text.len() != 22 {
            return None;
        }
        let mut bits: u128 = 0;
        let mut count = 0;
        for c in text.bytes() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                _ => return None,
            };
            count += 1;
            if count == 22 {
                // The last character carries only 2 meaningful bits (128 = 21 * 6 + 2).
                if v & 0x0f != 0 {
                    return None;
                }
                bits = (bits << 2) | u128::from(v >> 4);
            } else {
                bits = (bits << 6) | u128::from(v);
            }
        }
        Some(Uuid(bits.to_be_bytes()))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bits = u128::from_be_bytes(self.0);
        let mut out = String::with_capacity(22);
        for i in 0..21 {
            let v = (bits >> (122 - 6 * i)) & 0x3f;
            out.push(ALPHABET[v as usize] as char);
        }
        out.push(ALPHABET[((bits & 0x3) << 4) as usize] as char);
        f.write_str(&out)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

/// Reads wire primitives from a byte slice. Never panics; every read is bounds-checked.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos,
            kind,
        }
    }

    /// Fails unless every byte has been read.
    pub fn finish(&self) -> DecodeResult<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(DecodeErrorKind::TrailingBytes(n))),
        }
    }

    pub fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(DecodeErrorKind::Truncated {
                needed: n,
                remaining: self.remaining(),
            }));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn i8(&mut self) -> DecodeResult<i8> {
        Ok(self.take(1)?[0] as i8)
    }

    pub fn bool(&mut self) -> DecodeResult<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    pub fn i16(&mut self) -> DecodeResult<i16> {
        Ok(BigEndian::read_i16(self.take(2)?))
    }

    pub fn u16(&mut self) -> DecodeResult<u16> {
        Ok(BigEndian::read_u16(self.take(2)?))
    }

    pub fn i32(&mut self) -> DecodeResult<i32> {
        Ok(BigEndian::read_i32(self.take(4)?))
    }

    pub fn u32(&mut self) -> DecodeResult<u32> {
        Ok(BigEndian::read_u32(self.take(4)?))
    }

    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(BigEndian::read_i64(self.take(8)?))
    }

    pub fn f64(&mut self) -> DecodeResult<f64> {
        Ok(BigEndian::read_f64(self.take(8)?))
    }

    pub fn uuid(&mut self) -> DecodeResult<Uuid> {
        let mut id = [0u8; 16];
        id.copy_from_slice(self.take(16)?);
        Ok(Uuid(id))
    }

    /// An unsigned LEB128 varint of at most 5 bytes. As in Kafka's `ByteUtils.readUnsignedVarint`,
    /// bits of the fifth byte beyond the 32nd are dropped.
    pub fn uvarint(&mut self) -> DecodeResult<u32> {
        Ok(self.uvarlong_limited(5)? as u32)
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    pub fn uvarlong(&mut self) -> DecodeResult<u64> {
        self.uvarlong_limited(10)
    }

    fn uvarlong_limited(&mut self, max_bytes: usize) -> DecodeResult<u64> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.error(DecodeErrorKind::VarintTooLong))
    }

    /// A zigzag-encoded signed varint of at most 32 bits.
    pub fn varint(&mut self) -> DecodeResult<i32> {
        let v = self.uvarint()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// A zigzag-encoded signed varint of at most 64 bits.
    pub fn varlong(&mut self) -> DecodeResult<i64> {
        let v = self.uvarlong()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Reads a length prefix: int16 (classic strings), int32 (classic bytes and arrays), or a
    /// compact uvarint holding length + 1, taken as a Java `int`. `None` means null: like Kafka's
    /// generated readers, any negative length is null, and only a non-nullable field refuses it.
    /// The length is checked against the remaining input (each unit needs at least
    /// `min_unit_bytes` bytes) and against `max_len`.
    fn length(
        &mut self,
        flexible: bool,
        wide: bool,
        min_unit_bytes: usize,
        max_len: u64,
    ) -> DecodeResult<Option<usize>> {
        let start = self.pos;
        let raw: i64 = if flexible {
            i64::from((self.uvarint()? as i32).wrapping_sub(1))
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        if raw < 0 {
            return Ok(None);
        }
        let fits = raw as u64 <= max_len
            && (raw as u64).saturating_mul(min_unit_bytes as u64) <= self.remaining() as u64;
        if !fits {
            return Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::BadLength(raw),
            });
        }
        Ok(Some(raw as usize))
    }

    fn not_null<T>(&self, value: Option<T>) -> DecodeResult<T> {
        value.ok_or_else(|| self.error(DecodeErrorKind::UnexpectedNull))
    }

    /// A string of at most `i16::MAX` bytes (Kafka's limit, also for compact strings). Bytes that
    /// are not UTF-8 become U+FFFD, as Java's `new String(bytes, UTF_8)` makes them.
    pub fn nullable_string(&mut self, flexible: bool) -> DecodeResult<Option<String>> {
        let Some(len) = self.length(flexible, false, 1, i16::MAX as u64)? else {
            return Ok(None);
        };
        let bytes = self.take(len)?;
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    }

    pub fn string(&mut self, flexible: bool) -> DecodeResult<String> {
        let s = self.nullable_string(flexible)?;
        self.not_null(s)
    }

    pub fn nullable_bytes_slice(&mut self, flexible: bool) -> DecodeResult<Option<&'a [u8]>> {
        match self.length(flexible, true, 1, u64::MAX)? {
            None => Ok(None),
            Some(len) => self.take(len).map(Some),
        }
    }

    pub fn nullable_bytes(&mut self, flexible: bool) -> DecodeResult<Option<Vec<u8>>> {
        Ok(self.nullable_bytes_slice(flexible)?.map(<[u8]>::to_vec))
    }

    pub fn bytes(&mut self, flexible: bool) -> DecodeResult<Vec<u8>> {
        let b = self.nullable_bytes_slice(flexible)?;
        Ok(self.not_null(b)?.to_vec())
    }

    /// Reads an array whose elements `item` decodes. Capacity is bounded by the remaining input.
    pub fn nullable_array<T>(
        &mut self,
        flexible: bool,
        mut item: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Option<Vec<T>>> {
        let Some(len) = self.length(flexible, true, 1, u64::MAX)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(len.min(self.remaining()));
        for _ in 0..len {
            out.push(item(self)?);
        }
        Ok(Some(out))
    }

    pub fn array<T>(
        &mut self,
        flexible: bool,
        item: impl FnMut(&mut Self) -> DecodeResult<T>,
    ) -> DecodeResult<Vec<T>> {
        let a = self.nullable_array(flexible, item)?;
        self.not_null(a)
    }

    /// Reads a tagged-field section, handing each field's tag and a decoder over exactly its bytes
    /// to `field`. A tag that `field` does not know is skipped by returning `Ok(())` unread. A
    /// count that is negative as a Java `int` reads no fields, as in Kafka.
    pub fn tagged_fields(
        &mut self,
        mut field: impl FnMut(u32, &mut Decoder<'a>) -> DecodeResult<()>,
    ) -> DecodeResult<()> {
        let count = (self.uvarint()? as i32).max(0);
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let offset = self.pos;
            let body = self.take(size)?;
            let mut sub = Decoder::new(body);
            field(tag, &mut sub).map_err(|mut e| {
                e.offset += offset;
                e
            })?;
        }
        Ok(())
    }

    /// Skips a tagged-field section entirely.
    pub fn skip_tagged_fields(&mut self) -> DecodeResult<()> {
        self.tagged_fields(|_, _| Ok(()))
    }
}

/// Writes wire primitives into a growable buffer.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(n),
        }
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    // Writing into a Vec cannot fail, so the io::Result of WriteBytesExt is discarded throughout.
    pub fn i8(&mut self, v: i8) {
        self.buf.push(v as u8);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    pub fn i16(&mut self, v: i16) {
        let _ = self.buf.write_i16::<BigEndian>(v);
    }

    pub fn u16(&mut self, v: u16) {
        let _ = self.buf.write_u16::<BigEndian>(v);
    }

    pub fn i32(&mut self, v: i32) {
        let _ = self.buf.write_i32::<BigEndian>(v);
    }

    pub fn u32(&mut self, v: u32) {
        let _ = self.buf.write_u32::<BigEndian>(v);
    }

    pub fn i64(&mut self, v: i64) {
        let _ = self.buf.write_i64::<BigEndian>(v);
    }

    pub fn f64(&mut self, v: f64) {
        let _ = self.buf.write_f64::<BigEndian>(v);
    }

    pub fn uuid(&mut self, v: &Uuid) {
        self.buf.extend_from_slice(&v.0);
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn uvarint(&mut self, v: u32) {
        self.uvarlong(u64::from(v));
    }

    pub fn uvarlong(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn varint(&mut self, v: i32) {
        self.uvarint(((v << 1) ^ (v >> 31)) as u32);
    }

    pub fn varlong(&mut self, v: i64) {
        self.uvarlong(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Writes a length prefix; `None` writes the null marker.
    fn length(&mut self, flexible: bool, wide: bool, len: Option<usize>) {
        match (flexible, len) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(n as u32 + 1),
            (false, None) if wide => self.i32(-1),
            (false, None) => self.i16(-1),
            (false, Some(n)) if wide => self.i32(n as i32),
            (false, Some(n)) => self.i16(n as i16),
        }
    }

    pub fn nullable_string(&mut self, flexible: bool, s: Option<&str>) {
        self.length(flexible, false, s.map(str::len));
        if let Some(s) = s {
            self.raw(s.as_bytes());
        }
    }

    pub fn string(&mut self, flexible: bool, s: &str) {
        self.nullable_string(flexible, Some(s));
    }

    pub fn nullable_bytes(&mut self, flexible: bool, b: Option<&[u8]>) {
        self.length(flexible, true, b.map(<[u8]>::len));
        if let Some(b) = b {
            self.raw(b);
        }
    }

    pub fn bytes(&mut self, flexible: bool, b: &[u8]) {
        self.nullable_bytes(flexible, Some(b));
    }

    pub fn nullable_array<T>(
        &mut self,
        flexible: bool,
        items: Option<&[T]>,
        mut item: impl FnMut(&mut Self, &T),
    ) {
        self.length(flexible, true, items.map(<[T]>::len));
        for x in items.unwrap_or(&[]) {
            item(self, x);
        }
    }

    pub fn array<T>(&mut self, flexible: bool, items: &[T], item: impl FnMut(&mut Self, &T)) {
        self.nullable_array(flexible, Some(items), item);
    }

    /// Writes a tagged-field section from (tag, encoded value) pairs, which must be in tag order.
    pub fn tagged_fields(&mut self, fields: &[(u32, Vec<u8>)]) {
        self.uvarint(fields.len() as u32);
        for (tag, body) in fields {
            self.uvarint(*tag);
            self.uvarint(body.len() as u32);
            self.raw(body);
        }
    }

    /// Writes an empty tagged-field section.
    pub fn no_tagged_fields(&mut self) {
        self.uvarint(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_kafka_examples() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i64::from(i32::MAX), &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i64::from(i32::MIN), &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (value, bytes) in cases {
            let mut e = Encoder::new();
            e.varint(*value as i32);
            assert_eq!(&e.buf, bytes, "varint {value}");
            let mut d = Decoder::new(bytes);
            assert_eq!(i64::from(d.varint().unwrap()), *value);
            let mut e = Encoder::new();
            e.varlong(*value);
            assert_eq!(&e.buf, bytes, "varlong {value}");
            assert_eq!(Decoder::new(bytes).varlong().unwrap(), *value);
        }
        let mut e = Encoder::new();
        e.varlong(i64::MIN);
        assert_eq!(Decoder::new(&e.buf).varlong().unwrap(), i64::MIN);
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            Decoder::new(&bytes).uvarint().unwrap_err().kind,
            DecodeErrorKind::VarintTooLong
        );
        // Bits past the 32nd are dropped, as Java's int arithmetic drops them.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(Decoder::new(&bytes).uvarint().unwrap(), u32::MAX);
    }

    #[test]
    fn fixed_width_integers_are_big_endian() {
        let bytes = [0x81, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.i8().unwrap(), -127);
        assert_eq!(d.i16().unwrap(), 0x0203);
        assert_eq!(d.i32().unwrap(), 0x0405_0607);
        assert!(d.i8().is_ok());
        assert!(matches!(
            d.i8().unwrap_err().kind,
            DecodeErrorKind::Truncated { .. }
        ));
        let mut e = Encoder::new();
        e.i8(-127);
        e.i16(0x0203);
        e.i32(0x0405_0607);
        e.i64(-2);
        e.u16(0xfffe);
        e.u32(7);
        assert_eq!(
            e.buf,
            [
                0x81, 2, 3, 4, 5, 6, 7, 255, 255, 255, 255, 255, 255, 255, 254, 0xff, 0xfe, 0, 0,
                0, 7
            ]
        );
        let mut d = Decoder::new(&e.buf[7..]);
        assert_eq!(d.i64().unwrap(), -2);
        assert_eq!(d.u16().unwrap(), 0xfffe);
        assert_eq!(d.u32().unwrap(), 7);
        assert!(d.finish().is_ok());
    }

    #[test]
    fn strings_classic_and_compact() {
        let mut e = Encoder::new();
        e.string(false, "ab");
        e.nullable_string(false, None);
        e.string(true, "ab");
        e.nullable_string(true, None);
        assert_eq!(e.buf, [0, 2, b'a', b'b', 0xff, 0xff, 3, b'a', b'b', 0]);
        let mut d = Decoder::new(&e.buf);
        assert_eq!(d.string(false).unwrap(), "ab");
        assert_eq!(d.nullable_string(false).unwrap(), None);
        assert_eq!(d.string(true).unwrap(), "ab");
        assert_eq!(
            d.string(true).unwrap_err().kind,
            DecodeErrorKind::UnexpectedNull
        );
    }

    #[test]
    fn bytes_and_uuid_roundtrip() {
        let id = Uuid([7; 16]);
        let mut e = Encoder::new();
        e.bytes(false, b"xyz");
        e.nullable_bytes(true, None);
        e.bytes(true, b"q");
        e.uuid(&id);
        e.bool(true);
        e.f64(1.5);
        assert_eq!(&e.buf[..10], &[0, 0, 0, 3, b'x', b'y', b'z', 0, 2, b'q']);
        let mut d = Decoder::new(&e.buf);
        assert_eq!(d.bytes(false).unwrap(), b"xyz");
        assert_eq!(d.nullable_bytes(true).unwrap(), None);
        assert_eq!(d.bytes(true).unwrap(), b"q");
        assert_eq!(d.uuid().unwrap(), id);
        assert!(d.bool().unwrap());
        assert_eq!(d.f64().unwrap(), 1.5);
        d.finish().unwrap();
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let bytes = [0, 4, b'a', 0xc3, 0x28, 0xff];
        let mut d = Decoder::new(&bytes);
        assert_eq!(d.string(false).unwrap(), "a\u{fffd}(\u{fffd}");
        d.finish().unwrap();
    }

    #[test]
    fn negative_lengths_are_null_only_where_null_is_allowed() {
        // Kafka's generated readers take any negative length as null.
        for bytes in [[0xff, 0xfe], [0x80, 0x00]] {
            let mut d = Decoder::new(&bytes);
            assert_eq!(d.nullable_string(false).unwrap(), None);
            d.finish().unwrap();
            assert_eq!(
                Decoder::new(&bytes).string(false).unwrap_err().kind,
                DecodeErrorKind::UnexpectedNull
            );
        }
        let bytes = (-5i32).to_be_bytes();
        assert_eq!(
            Decoder::new(&bytes)
                .nullable_array(false, |d| d.i8())
                .unwrap(),
            None
        );
        assert_eq!(
            Decoder::new(&bytes)
                .array(false, |d| d.i8())
                .unwrap_err()
                .kind,
            DecodeErrorKind::UnexpectedNull
        );
        // A compact length of 0xffffffff is -1 as an int, so the length is -2: null.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(Decoder::new(&bytes).nullable_bytes(true).unwrap(), None);
    }

    #[test]
    fn compact_strings_longer_than_i16_max_are_refused() {
        let mut e = Encoder::new();
        e.uvarint(0x8000 + 1);
        e.raw(&[b'x'; 0x8000]);
        let err = Decoder::new(&e.buf).string(true).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadLength(0x8000));
        // Bytes have no such limit.
        assert_eq!(Decoder::new(&e.buf).bytes(true).unwrap().len(), 0x8000);
    }

    #[test]
    fn a_negative_tagged_field_count_reads_nothing() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let mut d = Decoder::new(&bytes);
        d.tagged_fields(|_, _| panic!("no field")).unwrap();
        d.finish().unwrap();
    }

    #[test]
    fn lengths_beyond_the_input_are_refused_before_allocating() {
        // A classic array claiming 2^31-1 elements in a 4-byte buffer.
        let bytes = [0x7f, 0xff, 0xff, 0xff];
        let err = Decoder::new(&bytes).array(false, |d| d.i32()).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::BadLength(i64::from(i32::MAX)));
        // A compact string longer than the input.
        let bytes = [0x05, b'a'];
        assert!(matches!(
            Decoder::new(&bytes).string(true).unwrap_err().kind,
            DecodeErrorKind::BadLength(4)
        ));
    }

    #[test]
    fn arrays_and_tagged_fields() {
        let mut e = Encoder::new();
        e.array(true, &[1i32, 2], |e, v| e.i32(*v));
        e.nullable_array::<i32>(false, None, |e, v| e.i32(*v));
        e.tagged_fields(&[(0, vec![9]), (3, vec![1, 2])]);
        assert_eq!(
            e.buf,
            [
                3, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 2, 0, 1, 9, 3, 2, 1, 2
            ]
        );
        let mut d = Decoder::new(&e.buf);
        assert_eq!(d.array(true, |d| d.i32()).unwrap(), vec![1, 2]);
        assert_eq!(d.nullable_array(false, |d| d.i32()).unwrap(), None);
        let mut seen = Vec::new();
        d.tagged_fields(|tag, sub| {
            if tag == 3 {
                seen.push(sub.i16()?);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![0x0102]);
        d.finish().unwrap();
    }

    #[test]
    fn uuid_text_form_matches_kafka() {
        // Kafka prints Uuid(0x0, 0x1) as "AAAAAAAAAAAAAAAAAAAAAQ".
        let mut raw = [0u8; 16];
        raw[15] = 1;
        let id = Uuid(raw);
        assert_eq!(id.to_string(), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(Uuid::parse("AAAAAAAAAAAAAAAAAAAAAQ"), Some(id));
        let id = Uuid(*b"\x71\x2f\x1e\x4f\xa9\x3a\x4e\x05\x8e\x9c\x3d\x33\xe3\xf0\x01\xff");
        assert_eq!(Uuid::parse(&id.to_string()), Some(id));
        assert_eq!(Uuid::parse("short"), None);
        assert_eq!(
            Uuid::parse("AAAAAAAAAAAAAAAAAAAAAB"),
            None,
            "low bits must be zero"
        );
    }
}
