//! The two-pass cutter (`sluice_x12::cut_stream`) against the whole-set cut
//! (`sluice_x12::cut::cut_any`): the same parts, byte for byte, in the same order, with the same
//! offsets and occurrence numbers, for every loop of the guide (and every pair of HL levels)
//! on every set of the repository's X12 files and of the shared corpus (when present), and on
//! random sets made of a real 837P's, 835's and 271's segments in any order and number.

mod common;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sluice_x12::codec::{Delimiters, Segment};
use sluice_x12::cut::cut_any;
use sluice_x12::cut_stream::cut_any_streaming;
use sluice_x12::guide::{Guide, Loop, Node, Selector, select};
use sluice_x12::loops::identify;
use sluice_x12::split::{Item, Splitter};

/// Every loop id of `guide`, and each pair of its HL levels.
fn cut_points(guide: &'static Guide) -> Vec<Vec<&'static str>> {
    fn walk(l: &'static Loop, out: &mut Vec<&'static Loop>) {
        for n in &l.children {
            if let Node::Loop(c) = n {
                out.push(c);
                walk(c, out);
            }
        }
    }
    let mut loops = Vec::new();
    walk(&guide.root, &mut loops);
    let mut points: Vec<Vec<&str>> = loops.iter().map(|l| vec![l.id.as_str()]).collect();
    let levels: Vec<&str> = loops.iter().filter(|l| l.is_hierarchical()).map(|l| l.id.as_str()).collect();
    for (i, a) in levels.iter().enumerate() {
        for b in &levels[i + 1..] {
            points.push(vec![a, b]);
        }
    }
    points.dedup();
    points
}

/// Both cuts of `segments` at `loops` agree; returns how many parts they made.
fn same_parts(guide: &'static Guide, segments: &[Segment], loops: &[&str], what: &str) -> usize {
    let whole = cut_any(&identify(guide, segments.to_vec(), true), loops);
    let streamed = cut_any_streaming(guide, segments, loops);
    assert_eq!(streamed.len(), whole.len(), "{what} cut at {loops:?}: number of parts");
    for (s, w) in streamed.iter().zip(&whole) {
        assert_eq!(
            (s.offset, s.occurrence, s.segment_count),
            (w.offset, w.occurrence, w.segment_count),
            "{what} cut at {loops:?}"
        );
        assert!(s.bytes == w.bytes, "{what} cut at {loops:?}, occurrence {}: bytes differ", w.occurrence);
    }
    whole.len()
}

/// Every set of `bytes`, cut at every cut point of its guide both ways; (sets, parts).
fn check_file(bytes: &[u8], what: &str) -> (usize, usize) {
    let (mut isa, mut gs) = (Vec::new(), Vec::new());
    let (mut sets, mut parts) = (0, 0);
    for item in Splitter::new(bytes) {
        let Ok(item) = item else { break };
        match item {
            Item::Envelope { bytes, .. } if bytes.starts_with(b"ISA") => isa = bytes,
            Item::Envelope { bytes, .. } if bytes.starts_with(b"GS") => gs = bytes,
            Item::Set(set) => {
                let d = set.delimiters;
                let segments: Vec<Segment> = set.segments().collect();
                let Some(st) = segments.first() else { continue };
                let (isa, gs) =
                    (Segment { offset: 0, raw: &isa, delimiters: d }, Segment { offset: 0, raw: &gs, delimiters: d });
                let selector = Selector {
                    isa12: isa.element_str(12),
                    gs01: gs.element_str(1),
                    gs08: gs.element_str(8),
                    st01: st.element_str(1),
                    st03: st.element_str(3),
                };
                let Ok(guide) = select(&selector) else { continue };
                sets += 1;
                for loops in cut_points(guide) {
                    parts += same_parts(guide, &segments, &loops, what);
                }
            }
            _ => {}
        }
    }
    (sets, parts)
}

fn x12_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            x12_files(&p, out);
        } else if p.extension().is_none_or(|e| e != "md") && !p.ends_with("LICENSE") {
            out.push(p);
        }
    }
}

/// [`check_file`] over `files`: (sets, parts).
fn check_files(files: &[PathBuf]) -> (usize, usize) {
    let (mut sets, mut parts) = (0, 0);
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        let (s, p) = check_file(&bytes, &f.display().to_string());
        sets += s;
        parts += p;
    }
    (sets, parts)
}

#[test]
fn the_repository_files_cut_the_same_in_two_passes_at_every_loop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["examples", "tests/fixtures/x12", "specs/x12/tests/fixtures"] {
        x12_files(&root.join(dir), &mut files);
    }
    let (sets, parts) = check_files(&files);
    println!("{} files, {sets} sets, {parts} parts compared", files.len());
    assert!(sets >= 30 && parts >= 1000, "the fixtures were read: {sets} sets, {parts} parts");
}

#[test]
fn the_corpus_cuts_the_same_in_two_passes_at_every_loop() {
    let Some(dir) = common::corpus_root() else { return };
    let mut files = Vec::new();
    x12_files(&dir, &mut files);
    let (sets, parts) = check_files(&files);
    println!("corpus: {} files, {sets} sets, {parts} parts compared", files.len());
    assert!(sets >= 100, "the corpus was read: {sets} sets");
}

const CLAIMS: &str = include_str!("fixtures/claims-837p.x12");
const REMITS: &str = include_str!("fixtures/remits-835.x12");
const FAMILY: &str = include_str!("../../../tests/fixtures/x12/eligibility/eligibility-271-family.x12");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_sets_cut_the_same_in_two_passes(
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..150),
        which in 0..3usize,
        keep_trailer in any::<bool>(),
        point in any::<prop::sample::Index>(),
    ) {
        let (file, set_id, version) =
            [(CLAIMS, "837", "005010X222A1"), (REMITS, "835", "005010X221A1"), (FAMILY, "271", "005010X279A1")][which];
        let selector = Selector { isa12: "00501", gs01: "", gs08: version, st01: set_id, st03: version };
        let guide = select(&selector).expect("bundled");
        let text = common::random_set(file, &picks, keep_trailer);
        let segments: Vec<Segment> = sluice_x12::codec::segments(text.as_bytes(), Delimiters::default(), 0).collect();
        let points = cut_points(guide);
        let loops = point.get(&points);
        same_parts(guide, &segments, loops, "random set");
    }
}
