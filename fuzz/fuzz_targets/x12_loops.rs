#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::x12::loops_check(data));
