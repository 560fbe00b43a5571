#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::fhir::read_round_trip(data));
