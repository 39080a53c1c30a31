//! A request frame (the bytes after its size prefix) → `decode_request`: the header and the body
//! of every supported (API, version).
//! The property checked is documented on `sprat_fuzz::request_decoder`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sprat_fuzz::request_decoder(data));
