//! The fuzz corpus as plain regression tests: every file under `tests/fuzz_corpus/<target>/` is
//! run through the property of fuzz target `<target>` (`fuzz/props/compiler.rs`, the same code
//! the fuzz targets call). No fuzzer needed. See `docs/fuzzing.md` for how the files were found
//! and how to refresh them.

#[path = "../../fuzz/props/compiler.rs"]
mod props;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Runs `property` on every file of `tests/fuzz_corpus/<target>`; fails listing each file whose
/// property failed (the panic message of each is printed above).
fn run_corpus(target: &str, property: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("corpus file");
            catch_unwind(AssertUnwindSafe(|| property(&data))).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} {target} corpus files fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn expr_parse_corpus() {
    run_corpus("expr_parse", props::expr_parse);
}

#[test]
fn spec_yaml_corpus() {
    let result = catch_unwind(|| run_corpus("spec_yaml", props::spec_yaml));
    props::remove_spec_dir();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
