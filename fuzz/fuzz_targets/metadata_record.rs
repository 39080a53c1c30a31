//! A cluster metadata record value, or a sequence of them → `MetadataRecord::decode` and
//! `MetadataImage::apply`.
//! The property checked is documented on `sprat_fuzz::metadata_record`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sprat_fuzz::metadata_record(data));
