//! Shared by the X12 test files: reading the synthetic fixtures of `tests/fixtures/x12/claims/`
//! (and its neighbours), validating with every bundled guide, gathering findings, where each
//! segment of a set was placed, and finding the shared corpus (`../shared/corpus/x12`) for the
//! conformance tests, which say loudly when it is absent.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sluice_x12::envelope::{Finding, InterchangeResult, Mode, check_stream_with_guides};
use sluice_x12::guide::by_id;
use sluice_x12::loops::identify;
use sluice_x12::split::{Item, RawSet, Splitter};

/// A fixture of `tests/fixtures/x12/claims/` (`../eligibility/...` reaches its neighbour).
pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/x12/claims").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Strict validation with the bundled guides.
pub fn check(text: &str) -> Vec<InterchangeResult> {
    check_stream_with_guides(text.as_bytes(), Mode::Strict).unwrap()
}

/// Every finding of every interchange, group and set, in that order.
pub fn findings(res: &[InterchangeResult]) -> Vec<Finding> {
    let mut out = Vec::new();
    for ic in res {
        out.extend(ic.findings.iter().cloned());
        for g in &ic.groups {
            out.extend(g.findings.iter().cloned());
            for s in &g.sets {
                out.extend(s.findings.iter().cloned());
            }
        }
    }
    out
}

/// (code, message) of every finding of `text`.
pub fn codes(text: &str) -> Vec<(&'static str, String)> {
    findings(&check(text)).into_iter().map(|f| (f.code, f.message)).collect()
}

/// The first transaction set of `text`.
pub fn raw_set(text: &str) -> RawSet {
    Splitter::new(text.as_bytes())
        .find_map(|i| match i.unwrap() {
            Item::Set(s) => Some(s),
            _ => None,
        })
        .unwrap()
}

/// (segment id with its first element, loop id) of every segment of the file's first set
/// identified with `guide`, and the codes of the structural findings met on the way.
pub fn placed(text: &str, guide: &str) -> (Vec<(String, String)>, Vec<&'static str>) {
    let set = raw_set(text);
    let id = identify(by_id(guide).unwrap(), set.segments().collect(), set.closed);
    let places = (0..id.segments.len())
        .map(|i| {
            let s = &id.segments[i];
            let first = String::from_utf8_lossy(s.element(1).unwrap_or(b"")).to_string();
            (format!("{}*{first}", s.id_str()), id.loop_of(i).to_string())
        })
        .collect();
    (places, id.findings.iter().map(|f| f.code).collect())
}

/// The loop of the `n`th (0-based) segment starting with `start` (`NM1*72`).
pub fn loop_of(all: &[(String, String)], start: &str, n: usize) -> String {
    all.iter().filter(|(s, _)| s == start).nth(n).unwrap_or_else(|| panic!("no {start} #{n}")).1.clone()
}

/// The X12 corpus (`$SLUICE_CORPUS/x12`, else `../shared/corpus/x12` beside the checkout), or
/// `None` after printing a loud SKIPPED line.
pub fn corpus_root() -> Option<PathBuf> {
    let dir = match std::env::var_os("SLUICE_CORPUS") {
        Some(root) => PathBuf::from(root).join("x12"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/x12"),
    };
    if !dir.is_dir() {
        println!("\n*** SKIPPED: ../shared/corpus not found (looked for {}) ***\n", dir.display());
        eprintln!("SKIPPED: ../shared/corpus not found");
        return None;
    }
    Some(dir)
}

/// The files directly in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// The segments of the file's first set (ST..SE), as text.
pub fn pool(file: &'static str) -> Vec<&'static str> {
    let st = file.find("ST*").expect("a set");
    let se = st + file[st..].find("SE*").expect("a trailer");
    let end = se + file[se..].find('~').expect("terminated");
    file[st..=end].split_terminator('~').map(str::trim).collect()
}

/// The file's ST, then its first set's segments as `picks` choose them, then its SE when
/// `keep_trailer` (random sets for property tests).
pub fn random_set(file: &'static str, picks: &[proptest::sample::Index], keep_trailer: bool) -> String {
    let pool = pool(file);
    let (st, body) = pool.split_first().expect("ST");
    let mut text = format!("{st}~");
    for pick in picks {
        let segment: &&str = pick.get(body);
        text.push_str(segment);
        text.push('~');
    }
    if keep_trailer {
        text.push_str(pool.last().expect("SE"));
        text.push('~');
    }
    text
}
