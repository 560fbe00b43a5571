//! The X12 corpus (`../shared/corpus/x12`, or `$SLUICE_CORPUS/x12`) in the end-to-end tests:
//! its folders, when they are there, and its files copied into a test's workspace with the
//! number of records a per-loop source should give for them.
//!
//! A user's fresh clone has no corpus: [`folders`] then prints a loud SKIPPED line and the
//! test returns early; CI has it beside the clone, so the suites run there.

use std::path::{Path, PathBuf};

/// `folders` under the corpus's `x12` folder, or `None` (after a loud SKIPPED line) when any
/// is missing.
pub fn folders(folders: &[&str]) -> Option<Vec<PathBuf>> {
    let corpus = match std::env::var_os("SLUICE_CORPUS") {
        Some(r) => PathBuf::from(r).join("x12"),
        None => super::root().join("../shared/corpus/x12"),
    };
    let found: Vec<PathBuf> = folders.iter().map(|f| corpus.join(f)).collect();
    if let Some(missing) = found.iter().find(|d| !d.is_dir()) {
        println!("\n*** SKIPPED: the X12 corpus is not there (looked for {}) ***\n", missing.display());
        eprintln!("SKIPPED: ../shared/corpus not found");
        return None;
    }
    Some(found)
}

/// The segments of an interchange file, each as its elements (delimiters from its first ISA).
pub fn segments(bytes: &[u8]) -> Vec<Vec<String>> {
    let t = String::from_utf8_lossy(bytes).into_owned();
    let (el, term) = (t.as_bytes()[3] as char, t.as_bytes()[105] as char);
    t.split(term).map(str::trim).filter(|s| !s.is_empty()).map(|s| s.split(el).map(String::from).collect()).collect()
}

/// Copies every interchange file of `dirs` (sorted by name; other files are skipped) into
/// `into` as `{prefix}{i:03}.edi`. Returns the files copied and the records a source cutting
/// at a loop gives for them: per transaction set, `records(set's segments)`, or one (the set
/// itself, sent to the DLQ) when that is zero.
pub fn copy_counting(
    dirs: &[PathBuf],
    prefix: &str,
    into: &Path,
    records: impl Fn(&[Vec<String>]) -> usize,
) -> (usize, usize) {
    std::fs::create_dir_all(into).unwrap();
    let mut entries: Vec<PathBuf> =
        dirs.iter().flat_map(|d| std::fs::read_dir(d).unwrap().flatten().map(|e| e.path())).collect();
    entries.sort();
    let (mut files, mut want) = (0, 0);
    for (i, f) in entries.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        if bytes.len() < 106 || !bytes.starts_with(b"ISA") {
            continue;
        }
        let segs = segments(&bytes);
        let mut start = None;
        for (at, e) in segs.iter().enumerate() {
            match e[0].as_str() {
                "ST" => start = Some(at),
                "SE" => want += start.take().map_or(0, |s| records(&segs[s..=at]).max(1)),
                _ => {}
            }
        }
        std::fs::write(into.join(format!("{prefix}{i:03}.edi")), &bytes).unwrap();
        files += 1;
    }
    (files, want)
}
