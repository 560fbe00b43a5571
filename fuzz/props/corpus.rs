//! Replays a committed fuzz corpus through a property, for the plain regression tests
//! (`specs/hl7v2/tests/fuzz_regressions.rs`, `compiler/tests/fuzz_regressions.rs` include this
//! file with `#[path]`). Not used by the fuzz targets themselves.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Runs `property` on every file of `<crate>/tests/fuzz_corpus/<target>`; fails listing each
/// file whose property failed (the panic message of each is printed above).
pub fn run_corpus(crate_dir: &str, target: &str, property: fn(&[u8])) {
    let dir = Path::new(crate_dir).join("tests/fuzz_corpus").join(target);
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
