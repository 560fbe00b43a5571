//! Splits and tokenizes X12 files, counting transaction sets, segments and elements, with the
//! envelope checks on: the work `sluice validate --format x12` does before printing, without the
//! CLI. For measuring (bench/x12.sh, callgrind):
//!
//! `cargo run --release -p sluice-x12 --example x12_scan -- FILE...`

use sluice_x12::envelope::{Checker, Mode};
use sluice_x12::split::{Item, Splitter};

fn main() {
    let (mut sets, mut segments, mut elements, mut findings, mut bytes) = (0usize, 0usize, 0usize, 0usize, 0u64);
    for path in std::env::args().skip(1) {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read {path}: {}", e.kind());
                std::process::exit(2);
            }
        };
        bytes += file.metadata().map_or(0, |m| m.len());
        let mut checker = Checker::new(Mode::Strict);
        for item in Splitter::new(file) {
            let Ok(item) = item else {
                eprintln!("error: {path}: read failed");
                std::process::exit(1);
            };
            findings += checker.check(&item).len();
            checker.take_done();
            if let Item::Set(set) = &item {
                sets += 1;
                for seg in set.segments() {
                    segments += 1;
                    elements += seg.elements().count();
                }
            }
        }
        findings += checker.finish(0).len();
    }
    println!("{bytes} bytes, {sets} sets, {segments} segments, {elements} elements, {findings} findings");
}
