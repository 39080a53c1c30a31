//! A produce request's `records` bytes → batch iteration, validation, record decoding and the
//! produce path's checks.
//! The property checked is documented on `sprat_fuzz::record_batch`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sprat_fuzz::record_batch(data));
