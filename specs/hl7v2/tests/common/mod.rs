//! Shared by the corpus suites: where the shared HL7 v2 corpus is and which files it holds.
//!
//! A user's fresh clone has no `../shared`; the suites then say so loudly and pass.

use std::path::{Path, PathBuf};

/// The HL7 v2 corpus folder and its `.hl7`/`.txt` files, sorted; `None` (after a loud SKIPPED
/// line) when the corpus is not there. `SLUICE_CORPUS` points at another corpus root.
pub fn hl7_corpus() -> Option<(PathBuf, Vec<PathBuf>)> {
    let dir = match std::env::var_os("SLUICE_CORPUS") {
        Some(root) => PathBuf::from(root).join("hl7v2"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/hl7v2"),
    };
    if !dir.is_dir() {
        println!("\n*** SKIPPED: ../shared/corpus not found (looked for {}) ***\n", dir.display());
        eprintln!("SKIPPED: ../shared/corpus not found");
        return None;
    }
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.sort();
    Some((dir, files))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("hl7" | "txt")) {
            out.push(path);
        }
    }
}
