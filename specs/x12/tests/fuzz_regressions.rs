//! The fuzz corpus as plain regression tests: every file under `tests/fuzz_corpus/x12_split/`
//! is run through the property of fuzz target `x12_split` (`fuzz/props/x12.rs`, the same code the
//! fuzz target calls). No fuzzer needed. See `docs/fuzzing.md`.

#[path = "../../../fuzz/props/x12.rs"]
mod props;

#[path = "../../../fuzz/props/corpus.rs"]
mod corpus;

#[test]
fn x12_split_corpus() {
    corpus::run_corpus(env!("CARGO_MANIFEST_DIR"), "x12_split", props::split_check);
}

#[test]
fn x12_loops_corpus() {
    corpus::run_corpus(env!("CARGO_MANIFEST_DIR"), "x12_loops", props::loops_check);
}
