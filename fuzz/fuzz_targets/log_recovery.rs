//! A partition directory (segment, indexes, producer snapshot) → `PartitionLog::load`, then
//! everything read back.
//! The property checked is documented on `sprat_fuzz::log_recovery`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sprat_fuzz::log_recovery(data));
