//! `hl7-peer PARSER FILE`: parses every message of FILE and prints
//! `ok failed parse_seconds` (the parse loop only; reading the file is excluded).
//!
//! - `hl7-parser`: the `hl7-parser` crate; messages split on `\n` exactly as bench/peers.py
//!   splits them for the Python parsers.
//! - `sluice-lines`: Sluice's `codec::parse_message` on the same `\n`-split messages.
//! - `sluice`: Sluice's streaming `MessageSplitter` + `parse_message`, what
//!   `sluice parse --format hl7v2` does, without building or writing JSON.

use std::time::Instant;

use sluice_hl7v2::split::MessageSplitter;

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|m| m.trim_end_matches('\r')).filter(|m| !m.trim().is_empty())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(parser), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: hl7-peer hl7-parser|sluice|sluice-lines FILE");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).expect("readable UTF-8 file");
    let started = Instant::now();
    let (mut ok, mut failed, mut segments) = (0usize, 0usize, 0usize);
    let mut count = |r: Option<usize>| match r {
        Some(n) => {
            ok += 1;
            segments += n;
        }
        None => failed += 1,
    };
    match parser.as_str() {
        "hl7-parser" => {
            for msg in lines(&text) {
                count(hl7_parser::parse_message(msg).ok().map(|m| m.segments().count()));
            }
        }
        "sluice-lines" => {
            for msg in lines(&text) {
                count(sluice_hl7v2::codec::parse_message(msg).ok().map(|m| m.segments.len()));
            }
        }
        "sluice" => {
            for raw in MessageSplitter::new(text.as_bytes()) {
                let raw = raw.expect("in-memory read");
                let parsed = std::str::from_utf8(&raw.bytes)
                    .ok()
                    .and_then(|t| sluice_hl7v2::codec::parse_message(t).ok().map(|m| m.segments.len()));
                count(parsed);
            }
        }
        other => {
            eprintln!("unknown parser {other}");
            std::process::exit(2);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    std::hint::black_box(segments);
    println!("{ok} {failed} {secs:.6}");
}
