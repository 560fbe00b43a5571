//! Splits and tokenizes X12 files, counting transaction sets, segments and elements, with the
//! envelope checks on: the work `sluice validate --format x12` does before printing, without the
//! CLI. For measuring (bench/x12.sh, callgrind):
//!
//! `cargo run --release -p sluice-x12 --example x12_scan -- [--loops | --guides] FILE...`
//!
//! `--loops` also identifies the loops of every set against its guide (tokenize plus loop
//! identification, no element checks); `--guides` runs the full guide validation
//! (`Checker::with_guides`: selection, loops, element checks). Prints the counts and the
//! elapsed time with MB/s on stderr.

// The allocator the `sluice` binary uses (src/main.rs): loop identification allocates per
// loop occurrence, and the system allocator's costs are not the product's.
#[global_allocator]
static ALLOCATOR: sluice_alloc::Allocator = sluice_alloc::Allocator;

use sluice_x12::envelope::{Checker, Mode};
use sluice_x12::guide::{Selector, select};
use sluice_x12::split::{Item, Splitter};

fn main() {
    let (mut sets, mut segments, mut elements, mut findings, mut bytes) = (0usize, 0usize, 0usize, 0usize, 0u64);
    let mut placed = 0usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let loops = args.iter().any(|a| a == "--loops");
    let guides = args.iter().any(|a| a == "--guides");
    let start = std::time::Instant::now();
    for path in args.iter().filter(|a| !a.starts_with("--")) {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read {path}: {}", e.kind());
                std::process::exit(2);
            }
        };
        bytes += file.metadata().map_or(0, |m| m.len());
        let mut checker = if guides { Checker::with_guides(Mode::Strict) } else { Checker::new(Mode::Strict) };
        let mut gs = (String::new(), String::new());
        for item in Splitter::new(file) {
            let Ok(item) = item else {
                eprintln!("error: {path}: read failed");
                std::process::exit(1);
            };
            findings += checker.check(&item).len();
            checker.take_done();
            if item.envelope_id() == b"GS"
                && let Item::Envelope { offset, delimiters, bytes } = &item
            {
                let seg = sluice_x12::codec::Segment { offset: *offset, raw: bytes, delimiters: *delimiters };
                gs = (seg.element_str(1).to_string(), seg.element_str(8).to_string());
            }
            if let Item::Set(set) = &item {
                sets += 1;
                for seg in set.segments() {
                    segments += 1;
                    elements += seg.elements().count();
                }
                if loops {
                    let st = set.segments().next();
                    let el = |n| st.map_or("", |s| s.element_str(n));
                    let selector = Selector { isa12: "", gs01: &gs.0, gs08: &gs.1, st01: el(1), st03: el(3) };
                    if let Ok(guide) = select(&selector) {
                        let id = sluice_x12::loops::identify(guide, set.segments().collect(), set.closed);
                        placed += id.placements.iter().filter(|p| p.use_.is_some()).count();
                        findings += id.findings.len();
                    }
                }
            }
        }
        findings += checker.finish(0).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{bytes} bytes, {sets} sets, {segments} segments, {elements} elements, {placed} placed in guide loops, {findings} findings"
    );
    eprintln!("{secs:.3} s, {:.1} MB/s", bytes as f64 / 1e6 / secs.max(1e-9));
}
