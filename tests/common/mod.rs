//! Shared by the end-to-end tests of the binary: the repository root, and fresh scratch copies
//! of the bundled pipelines, mappings and examples, so tests run in parallel and never touch
//! the user's `out/`.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A fresh temporary directory `sluice-<name>-<pid>` holding a copy of the bundled pipelines,
/// mappings and examples.
pub fn workspace(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["pipelines", "mappings", "examples"] {
        copy_dir(&root().join(sub), &dir.join(sub));
    }
    dir
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The raw messages of a DLQ file written by a bundled pipeline, decrypted with the bundled
/// example key (`examples/dlq-example.key`), as text (lossy for bytes that are not UTF-8).
pub fn dlq_raws(dlq: &Path) -> Vec<String> {
    let key = std::fs::read(root().join("examples/dlq-example.key")).unwrap();
    let key = sluice_runtime::dlq::DlqKey::parse(&key).unwrap();
    sluice_runtime::dlq::read_entries(dlq)
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.raw_bytes(Some(&key)).unwrap()).into_owned())
        .collect()
}
