//! Shared by the corpus suites: where the shared corpus (`../shared/corpus`) is.
//!
//! A user's fresh clone has no `../shared`; the suites then say so loudly and pass.

use std::path::{Path, PathBuf};

/// The corpus root, or `None` (after a loud SKIPPED line) when it or `sub` is not there.
/// `SLUICE_CORPUS` points at another corpus root.
pub fn corpus_root(sub: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("SLUICE_CORPUS") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    if !root.join(sub).exists() {
        println!("\n*** SKIPPED: {} not found (../shared/corpus missing?) ***\n", root.join(sub).display());
        eprintln!("SKIPPED: ../shared/corpus/{sub} not found");
        return None;
    }
    Some(root)
}
