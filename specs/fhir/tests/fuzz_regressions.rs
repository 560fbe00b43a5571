//! The FHIR fuzz corpus as plain regression tests: every file under
//! `tests/fuzz_corpus/<target>/` is run through the property of fuzz target `<target>`
//! (`fuzz/props/fhir.rs`, the same code the fuzz targets call). No fuzzer needed; see
//! `docs/fuzzing.md`.

#[path = "../../../fuzz/props/fhir.rs"]
mod props;

#[path = "../../../fuzz/props/corpus.rs"]
mod corpus;

fn run_corpus(target: &str, property: fn(&[u8])) {
    corpus::run_corpus(env!("CARGO_MANIFEST_DIR"), target, property);
}

/// Found by `fhir_read` (the first minute): a member name starting with a multi-byte
/// character (U+FEFF) one byte longer than another's was sliced at byte 1 when looking for the
/// `_name` beside `name` (`crash-bom-member-name`). Now compared with `strip_prefix('_')`.
/// Found by `fhir_read` after 574,395 runs: an XML `value` with blanks around a number
/// (`" 7"`) became a JSON number written with the blanks, which does not read back
/// (`crash-number-with-blanks`). Such values now stay strings, which the validator reports.
#[test]
fn fhir_read_corpus() {
    run_corpus("fhir_read", props::read_round_trip);
}

#[test]
fn fhir_stream_corpus() {
    run_corpus("fhir_stream", props::stream_consistent);
}
