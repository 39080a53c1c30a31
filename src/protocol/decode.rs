//! A request frame decoded in one pure call: [`decode_request`] turns the bytes of a frame (what
//! follows its 4-byte size prefix) into the request header and the typed body of any (API,
//! version) in [`SUPPORTED_APIS`](super::SUPPORTED_APIS), with the generated codecs and nothing
//! else: no I/O, no broker state.
//!
//! It takes the connection thread's steps in the same order (API key, version, header, body), so
//! that the `request_decoder` fuzz target and the replay of its corpus in `tests/fuzz_corpus.rs`
//! exercise exactly the decoding a peer can reach on the port. What the broker does *with* a
//! request (including answering an ApiVersions request of an unknown version with error 35) is
//! the API layer's business, not this module's.
//!
//! The body type is one enum with a variant per generated API, built from the generator's
//! `for_each_api!` table, so an API added to `SUPPORTED_APIS` is decodable here without an edit.

use super::messages::*;
use super::wire::{self, DecodeResult, Decoder, Encoder};
use super::{RequestHeader, api_support, is_flexible};
use std::fmt;

/// The bytes every request header starts with: API key, API version and correlation id.
const FIXED_HEADER_BYTES: usize = 8;

/// A decoded request frame.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    pub header: RequestHeader,
    pub body: RequestBody,
    /// Bytes left after the body. The broker ignores them, so they are not an error here either.
    pub trailing_bytes: usize,
}

/// Why a frame is not a request sprat serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame is shorter than API key, version and correlation id.
    TooShort { frame_bytes: usize },
    /// No API in `SUPPORTED_APIS` has this key.
    UnknownApiKey { api_key: i16 },
    /// The API is served, but not in this version.
    UnsupportedVersion { api_key: i16, api_version: i16 },
    /// The request header does not decode.
    Header(wire::DecodeError),
    /// The body does not decode. Offsets in `error` count from the start of the frame.
    Body {
        api_key: i16,
        api_version: i16,
        error: wire::DecodeError,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort { frame_bytes } => {
                write!(
                    f,
                    "request of {frame_bytes} bytes is too short for a header"
                )
            }
            DecodeError::UnknownApiKey { api_key } => write!(f, "unknown API key {api_key}"),
            DecodeError::UnsupportedVersion {
                api_key,
                api_version,
            } => write!(
                f,
                "unsupported version {api_version} of {}",
                super::api_name(*api_key)
            ),
            DecodeError::Header(e) => write!(f, "malformed request header: {e}"),
            DecodeError::Body {
                api_key,
                api_version,
                error,
            } => write!(
                f,
                "malformed {} v{api_version} request: {error}",
                super::api_name(*api_key)
            ),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Header(e) | DecodeError::Body { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// Decodes one request frame: header, then the body of its (API, version).
pub fn decode_request(frame: &[u8]) -> Result<DecodedRequest, DecodeError> {
    if frame.len() < FIXED_HEADER_BYTES {
        return Err(DecodeError::TooShort {
            frame_bytes: frame.len(),
        });
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = api_support(api_key).ok_or(DecodeError::UnknownApiKey { api_key })?;
    if !(api.min_version..=api.max_version).contains(&api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key,
            api_version,
        });
    }
    let mut d = Decoder::new(frame);
    let header = RequestHeader::decode(&mut d, is_flexible(api_key, api_version))
        .map_err(DecodeError::Header)?;
    let body = RequestBody::decode(api_key, api_version, &mut d)
        .expect("every API in SUPPORTED_APIS has a generated codec")
        .map_err(|error| DecodeError::Body {
            api_key,
            api_version,
            error,
        })?;
    Ok(DecodedRequest {
        header,
        body,
        trailing_bytes: d.remaining(),
    })
}

impl DecodedRequest {
    /// Encodes the request back into a frame (without the size prefix), as a client would send it.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        let version = self.header.api_version;
        self.header
            .encode(&mut e, is_flexible(self.header.api_key, version));
        self.body.encode(&mut e, version);
        e.into_inner()
    }
}

macro_rules! request_body {
    ($($module:ident: $request:ident, $response:ident;)*) => {
        /// The body of a request: one variant per generated API, named after its request type.
        /// [`decode_request`] only produces those in [`SUPPORTED_APIS`](super::SUPPORTED_APIS).
        #[derive(Debug, Clone, PartialEq)]
        pub enum RequestBody {
            $($request(Box<$module::$request>),)*
        }

        impl RequestBody {
            /// Decodes the body of `version` of API `api_key`; `None` when no codec has the key.
            fn decode(
                api_key: i16,
                version: i16,
                d: &mut Decoder<'_>,
            ) -> Option<DecodeResult<RequestBody>> {
                match api_key {
                    $($module::API_KEY => Some(
                        $module::$request::decode(d, version)
                            .map(|body| RequestBody::$request(Box::new(body))),
                    ),)*
                    _ => None,
                }
            }

            /// The API key of the body's API.
            pub fn api_key(&self) -> i16 {
                match self {
                    $(RequestBody::$request(_) => $module::API_KEY,)*
                }
            }

            pub fn encode(&self, e: &mut Encoder, version: i16) {
                match self {
                    $(RequestBody::$request(body) => body.encode(e, version),)*
                }
            }
        }
    };
}

for_each_api!(request_body);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::SUPPORTED_APIS;

    /// A frame holding `body` (the sample of its request type) behind a header for `version`.
    fn frame(api_key: i16, version: i16, body: &impl Fn(&mut Encoder, i16)) -> Vec<u8> {
        let header = RequestHeader {
            api_key,
            api_version: version,
            correlation_id: 7,
            client_id: Some("fuzz-seed".into()),
        };
        let mut e = Encoder::new();
        header.encode(&mut e, is_flexible(api_key, version));
        body(&mut e, version);
        e.into_inner()
    }

    /// The frame of every supported (API, version), with the generated sample body, as
    /// `(file name, bytes)`. `nulls` makes every nullable field null.
    fn sample_frames(nulls: bool) -> Vec<(String, Vec<u8>)> {
        let mut frames = Vec::new();
        macro_rules! collect {
            ($($module:ident: $request:ident, $response:ident;)*) => {
                $(if let Some(api) = api_support($module::API_KEY) {
                    for version in api.min_version..=api.max_version {
                        let body = |e: &mut Encoder, v: i16| {
                            $module::$request::sample(v, nulls).encode(e, v)
                        };
                        let name = format!(
                            "{}-v{version}{}",
                            stringify!($module),
                            if nulls { "-nulls" } else { "" }
                        );
                        frames.push((name, frame($module::API_KEY, version, &body)));
                    }
                })*
            };
        }
        for_each_api!(collect);
        frames
    }

    #[test]
    fn every_supported_version_decodes_its_sample() {
        let mut seen = 0;
        for nulls in [false, true] {
            for (name, bytes) in sample_frames(nulls) {
                let request = decode_request(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(request.trailing_bytes, 0, "{name}");
                assert_eq!(request.body.api_key(), request.header.api_key, "{name}");
                assert_eq!(
                    request.encode(),
                    bytes,
                    "{name} re-encodes to the same bytes"
                );
                seen += 1;
            }
        }
        let versions: usize = SUPPORTED_APIS
            .iter()
            .map(|a| (a.max_version - a.min_version + 1) as usize)
            .sum();
        assert_eq!(seen, 2 * versions, "a sample for every supported version");
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            decode_request(&[0, 18, 0, 3, 0, 0, 0]),
            Err(DecodeError::TooShort { frame_bytes: 7 })
        );
        assert_eq!(
            decode_request(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]),
            Err(DecodeError::UnknownApiKey { api_key: 0x7f00 })
        );
        // ApiVersions v99: the broker answers it with error 35, but it is not decodable.
        assert_eq!(
            decode_request(&[0, 18, 0, 99, 0, 0, 0, 1, 0xff, 0xff]),
            Err(DecodeError::UnsupportedVersion {
                api_key: 18,
                api_version: 99
            })
        );
        // Heartbeat v0 with a client id that claims more bytes than remain.
        let err = decode_request(&[0, 12, 0, 0, 0, 0, 0, 1, 0, 9, b'x']).unwrap_err();
        assert!(
            matches!(err, DecodeError::Header(ref e) if e.offset == 8),
            "{err:?}"
        );
        // Heartbeat v0 with a null client id and a body cut inside the generation id.
        let frame = [0, 12, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 1, b'g', 0];
        let Err(DecodeError::Body {
            api_key: 12,
            api_version: 0,
            error,
        }) = decode_request(&frame)
        else {
            panic!("a truncated body is a body error");
        };
        assert_eq!(error.offset, 13, "counted from the start of the frame");
    }

    #[test]
    fn trailing_bytes_are_counted_not_refused() {
        let mut bytes = frame(12, 0, &|e: &mut Encoder, v| {
            heartbeat::HeartbeatRequest::default().encode(e, v)
        });
        bytes.extend_from_slice(b"junk");
        assert_eq!(decode_request(&bytes).unwrap().trailing_bytes, 4);
    }

    /// Writes the `request_decoder` fuzz seeds: the sample frame of every supported (API,
    /// version), with and without nulls. Run by `scripts/fuzz --seeds`.
    #[test]
    #[ignore = "writes files; run by scripts/fuzz --seeds"]
    fn write_request_decoder_seeds() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request_decoder");
        std::fs::create_dir_all(&dir).unwrap();
        for nulls in [false, true] {
            for (name, bytes) in sample_frames(nulls) {
                std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
            }
        }
    }
}
