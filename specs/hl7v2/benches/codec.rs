//! Criterion benchmarks for the HL7 v2 codec: split, parse, parse + JSON, encode, select.
//!
//! Input: the bundled synthetic feed (`examples/hl7/feed-2024-01-15.hl7`, 60 messages made by
//! `synth.py`), repeated with unique control ids until it holds `MESSAGES` messages. Read via
//! `CARGO_MANIFEST_DIR`, so the bench needs nothing outside the repository.
//!
//! Run: `cargo bench -p sluice-hl7v2`. Throughput is reported in messages (elements) per second.
//! These are measurements, not assertions: nothing here fails on a slow machine.

#[path = "../../../bench/feed.rs"]
mod feed;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_hl7v2::codec::{self, parse_message};
use sluice_hl7v2::json::message_to_json;
use sluice_hl7v2::path::Path;
use sluice_hl7v2::split::MessageSplitter;
use sluice_hl7v2::view::MessageView;

const MESSAGES: usize = 3000;

fn corpus() -> String {
    feed::repeated_example_feed(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")), MESSAGES)
}

fn split_all(text: &str) -> Vec<String> {
    MessageSplitter::new(text.as_bytes())
        .map(|m| String::from_utf8(m.expect("in-memory read").bytes).expect("UTF-8"))
        .collect()
}

fn bench_codec(c: &mut Criterion) {
    let text = corpus();
    let messages = split_all(&text);
    assert_eq!(messages.len(), MESSAGES);
    let parsed: Vec<_> = messages.iter().map(|m| parse_message(m).expect("example messages parse")).collect();
    let n = MESSAGES as u64;

    let mut g = c.benchmark_group("hl7v2");
    g.throughput(Throughput::Elements(n));

    g.bench_function("split", |b| {
        b.iter(|| {
            let mut count = 0usize;
            for m in MessageSplitter::new(black_box(text.as_bytes())) {
                count += m.map(|m| m.bytes.len()).unwrap_or(0);
            }
            count
        })
    });

    g.bench_function("parse_message", |b| {
        b.iter(|| {
            let mut segments = 0usize;
            for m in &messages {
                segments += parse_message(black_box(m)).map(|m| m.segments.len()).unwrap_or(0);
            }
            segments
        })
    });

    // What `sluice parse --format hl7v2 FILE` does per message, minus terminal I/O.
    g.bench_function("split_parse", |b| {
        b.iter(|| {
            let mut segments = 0usize;
            for raw in MessageSplitter::new(black_box(text.as_bytes())) {
                let raw = raw.expect("in-memory read");
                let Ok(t) = std::str::from_utf8(&raw.bytes) else { continue };
                segments += parse_message(t).map(|m| m.segments.len()).unwrap_or(0);
            }
            segments
        })
    });

    g.bench_function("split_parse_json", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for raw in MessageSplitter::new(black_box(text.as_bytes())) {
                let raw = raw.expect("in-memory read");
                let Ok(t) = std::str::from_utf8(&raw.bytes) else { continue };
                if let Ok(m) = parse_message(t) {
                    bytes += message_to_json(&m, false).to_string().len();
                }
            }
            bytes
        })
    });

    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for m in &parsed {
                bytes += codec::encode(black_box(m)).len();
            }
            bytes
        })
    });

    for p in ["PID-5.1", "PID-3[*].1", "OBX[*]-5"] {
        let path = Path::parse(p).expect("valid path");
        g.bench_function(format!("select {p}"), |b| {
            b.iter(|| {
                let mut found = 0usize;
                for m in &parsed {
                    found += m.select(black_box(&path)).len();
                }
                found
            })
        });
    }
    // Benchmark B2's extraction (docs/benchmarks.md), without the JSON: the tree, then the view.
    let b2: Vec<Path> = feed::B2_FIELDS.iter().map(|(_, p)| Path::parse(p).expect("valid path")).collect();
    g.bench_function("parse_message + 8 fields", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for m in &messages {
                let Ok(m) = parse_message(black_box(m)) else { continue };
                for p in &b2 {
                    bytes += m.select(p).first().map_or(0, |v| v.len());
                }
            }
            bytes
        })
    });
    g.bench_function("view", |b| {
        b.iter(|| {
            let mut segments = 0usize;
            for m in &messages {
                segments += MessageView::parse(black_box(m)).map(|v| v.segments.len()).unwrap_or(0);
            }
            segments
        })
    });
    g.bench_function("view + 8 fields", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for m in &messages {
                let Ok(v) = MessageView::parse(black_box(m)) else { continue };
                for p in &b2 {
                    bytes += v.first(p).map_or(0, |v| v.len());
                }
            }
            bytes
        })
    });
    g.finish();
}

/// One message with a 5 MB OBX-5 payload: parsed into the tree, and into the view plus reading
/// OBX-5.5 (both borrow the payload; see the `large_obx5_payload_is_borrowed_not_copied` test).
fn bench_large(c: &mut Criterion) {
    let text = feed::large_obx5_message(5 * 1024 * 1024);
    let obx5 = Path::parse("OBX-5.5").expect("valid path");
    let mut g = c.benchmark_group("hl7v2-5MB-OBX5");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(20);
    g.bench_function("parse_message", |b| {
        b.iter(|| parse_message(black_box(&text)).map(|m| m.segments.len()).unwrap_or(0))
    });
    g.bench_function("view + OBX-5.5", |b| {
        b.iter(|| MessageView::parse(black_box(&text)).ok().and_then(|v| v.first(&obx5)).map_or(0, |v| v.len()))
    });
    g.finish();
}

criterion_group!(benches, bench_codec, bench_large);
criterion_main!(benches);
