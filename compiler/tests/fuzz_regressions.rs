//! The fuzz corpus as plain regression tests: every file under `tests/fuzz_corpus/<target>/` is
//! run through the property of fuzz target `<target>` (`fuzz/props/compiler.rs`, the same code
//! the fuzz targets call). No fuzzer needed. See `docs/fuzzing.md` for how the files were found
//! and how to refresh them.

#[path = "../../fuzz/props/compiler.rs"]
mod props;

#[path = "../../fuzz/props/corpus.rs"]
mod corpus;

/// Runs `property` over this crate's committed corpus for `target`.
fn run_corpus(target: &str, property: fn(&[u8])) {
    corpus::run_corpus(env!("CARGO_MANIFEST_DIR"), target, property);
}

#[test]
fn expr_parse_corpus() {
    run_corpus("expr_parse", props::expr_parse);
}

#[test]
fn spec_yaml_corpus() {
    let result = std::panic::catch_unwind(|| run_corpus("spec_yaml", props::spec_yaml));
    props::remove_spec_dir();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
