#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::hl7::mllp_consistent(data));
