//! The properties the fuzz targets check, shared with the plain regression tests.
//!
//! Each function takes the fuzzer's bytes and panics when a property fails. The fuzz targets in
//! `fuzz_targets/` call them; `specs/hl7v2/tests/fuzz_regressions.rs` and
//! `compiler/tests/fuzz_regressions.rs` include the same files with `#[path]` and run them on the
//! committed corpus, so `cargo test` checks every corpus file without a fuzzer. See
//! `docs/fuzzing.md`.

pub mod compiler;
pub mod fhir;
pub mod hl7;
pub mod x12;
